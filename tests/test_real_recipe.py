"""A shortened real-data recipe on the shared DAVIS copy stays above a measured floor; its online
stage tunes real video and stays above measured floors on the gain, with the defaults (the band
weight read per video) and with the band ignored (--band_weight 0) (slow)."""
from __future__ import annotations

import pytest

from models.pretrained import resolve_pretrained

pytestmark = pytest.mark.slow

# Measured with this exact command, alone (benchmarks/davis_real.py with the same arguments,
# 751 s; benchmarks/RESULTS.md, "The band between the thresholds"): held-out J&F 0.569. The floor leaves 12 points for
# thread-count and library-version noise; an untrained decoder, or encoders that lost their
# ImageNet weights, fall far below it (2 x 60 steps gave 0.256).
# The stabilised optimisation of the candidate recipe (README, Results).
BUNDLE = "--no_decay_norm_bias --warmup_steps 30 --ema_decay 0.999"
FLOOR_MEASURED = 0.569
FLOOR = 0.45
# The online defaults on this model, which is confident enough for the --min_cover guard to let
# 9 of 10 videos be tuned, and unsure enough (38-83 % of each video's pixels between the
# thresholds) for --band_weight auto to give each video weight 1 (swing 0.9): +3.9 against
# test.py --flip (measured). The floor of +1 fails if the band is ignored again.
ONLINE_GAIN_MEASURED = 0.039
ONLINE_GAIN_FLOOR = 0.01
# --band_weight 0 (the band ignored, the defaults before) on the same model: -1.5 (measured;
# 7 of 10 videos worse than temporal fusion: the band fills into blobs). The floor is a loss of
# 5 points: it catches a student that ruins what it tunes, not the known loss.
NO_BAND_GAIN_MEASURED = -0.015
NO_BAND_GAIN_FLOOR = -0.05


def test_short_recipe_on_held_out_sequences(davis_root, tmp_path):
    try:
        resolve_pretrained("efficientnet_lite0_pip")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    from benchmarks import davis_real

    args = ["--davis", str(davis_root), "--out_dir", str(tmp_path), "--eval", "holdout", "--epochs", "4",
            "--steps_per_epoch", "100", "--size", "160", "288", "--test_size", "160", "288", "--online", "per_video",
            "--workers", "1", "--ledger", str(tmp_path / "ledger.jsonl"), f"--train_args={BUNDLE}"]
    res = davis_real.main([*args, "--online_args", ""])
    jf = res["offline"]["DAVIS-2016 J&F"]
    gain = res["online"]["per_video"]["scores"]["DAVIS-2016 J&F"] - jf
    # the same model and offline masks (reused), online with the band ignored
    no_band = davis_real.main([*args, "--online_args=--band_weight 0", "--tag", "_band0"])
    no_band_gain = no_band["online"]["per_video"]["scores"]["DAVIS-2016 J&F"] - jf
    print(f"held-out J&F {100 * jf:.1f} (floor {100 * FLOOR:.1f}); online defaults {100 * gain:+.1f} "
          f"(floor {100 * ONLINE_GAIN_FLOOR:+.1f}); --band_weight 0 {100 * no_band_gain:+.1f} "
          f"(floor {100 * NO_BAND_GAIN_FLOOR:+.1f})")
    assert jf > FLOOR
    assert gain > ONLINE_GAIN_FLOOR
    assert no_band_gain > NO_BAND_GAIN_FLOOR
