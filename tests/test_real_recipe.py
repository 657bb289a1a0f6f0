"""A shortened real-data recipe on the shared DAVIS copy stays above a measured floor; its online
stage tunes real video and stays above measured floors on the gain, with the defaults and with
--band_weight 1 (slow)."""
from __future__ import annotations

import pytest

from models.pretrained import resolve_pretrained

pytestmark = pytest.mark.slow

# Measured with this exact command, alone (benchmarks/davis_real.py with the same arguments,
# 751 s; README, "A less confident model"): held-out J&F 0.569. The floor leaves 12 points for
# thread-count and library-version noise; an untrained decoder, or encoders that lost their
# ImageNet weights, fall far below it (2 x 60 steps gave 0.256).
FLOOR_MEASURED = 0.569
FLOOR = 0.45
# The online defaults on this model, which is confident enough for the --min_cover guard to let
# 9 of 10 videos be tuned: -1.5 against test.py --flip (measured; -2.8 against temporal fusion,
# 7 of 10 videos worse: the ignored band between the thresholds fills into blobs). The floor is a
# loss of 5 points: it catches a student that ruins what it tunes (the defaults before the guard
# lost 20.5 on a weaker model), not the known loss.
ONLINE_GAIN_MEASURED = -0.015
ONLINE_GAIN_FLOOR = -0.05
# --band_weight 1 (the band learns the teacher's probability) on the same model: +4.0 (measured).
BAND_GAIN_MEASURED = 0.040
BAND_GAIN_FLOOR = 0.01


def test_short_recipe_on_held_out_sequences(davis_root, tmp_path):
    try:
        resolve_pretrained("efficientnet_lite0_pip")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    from benchmarks import davis_real

    args = ["--davis", str(davis_root), "--out_dir", str(tmp_path), "--eval", "holdout", "--epochs", "4",
            "--steps_per_epoch", "100", "--size", "160", "288", "--test_size", "160", "288", "--online", "per_video",
            "--workers", "1"]
    res = davis_real.main([*args, "--online_args", ""])
    jf = res["offline"]["DAVIS-2016 J&F"]
    gain = res["online"]["per_video"]["scores"]["DAVIS-2016 J&F"] - jf
    # the same model and offline masks (reused), online with the band term
    band = davis_real.main([*args, "--online_args=--band_weight 1", "--tag", "_band1"])
    band_gain = band["online"]["per_video"]["scores"]["DAVIS-2016 J&F"] - jf
    print(f"held-out J&F {100 * jf:.1f} (floor {100 * FLOOR:.1f}); online defaults {100 * gain:+.1f} "
          f"(floor {100 * ONLINE_GAIN_FLOOR:+.1f}); --band_weight 1 {100 * band_gain:+.1f} "
          f"(floor {100 * BAND_GAIN_FLOOR:+.1f})")
    assert jf > FLOOR
    assert gain > ONLINE_GAIN_FLOOR
    assert band_gain > BAND_GAIN_FLOOR
