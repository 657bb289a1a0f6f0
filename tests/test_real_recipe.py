"""A shortened real-data recipe on the shared DAVIS copy stays above a measured floor; its online
stage tunes real video and stays above measured floors on the gain, with the defaults (the band
weight read per video) and with the band ignored (--band_weight 0) (slow)."""
from __future__ import annotations

import pytest

from models.pretrained import resolve_pretrained

pytestmark = pytest.mark.slow

# The stabilised optimisation of the candidate recipe (README, Results), on which the floors below were measured.
BUNDLE = "--no_decay_norm_bias --warmup_steps 30 --ema_decay 0.999"
# Measured with this exact command, from a frozen checkout of 35a0a3b, alone (benchmarks/davis_real.py with the
# same arguments; ledger rows "slow_stab"; benchmarks/RESULTS.md, "The slow test on the candidate recipe"):
# held-out J&F 0.574 (0.569 before the crop fix and the bundle). The floor leaves 12 points for thread-count and
# library-version noise; an untrained decoder, or encoders that lost their ImageNet weights, fall far below it
# (2 x 60 steps gave 0.256).
FLOOR_MEASURED = 0.574
FLOOR = 0.45
# The online defaults on this model: the --min_cover guard lets 9 of 10 videos be tuned (mallard-water is left as
# it was), 46-60 % of each video's pixels lie between the thresholds, so --band_weight auto gives them weight 1
# (car-turn 0.64): +1.5 against test.py --flip (measured; +3.9 on the model before the bundle). The floor of 0 (the
# stage must not lose on this model) sits between that and the band ignored (below).
ONLINE_GAIN_MEASURED = 0.015
ONLINE_GAIN_FLOOR = 0.0
# --band_weight 0 (the band ignored, the defaults before) on the same model: -2.5 (measured; 7 of 10 videos worse
# by more than a point than temporal fusion; -1.5 before the bundle). The floor is a loss of 5 points: it catches a
# student that ruins what it tunes, not the known loss.
NO_BAND_GAIN_MEASURED = -0.025
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
