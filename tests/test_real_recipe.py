"""A shortened real-data recipe on the shared DAVIS copy stays above a measured floor, and its online
stage (the defaults) does not lower it by more than a point (slow)."""
from __future__ import annotations

import pytest

from models.pretrained import resolve_pretrained

pytestmark = pytest.mark.slow

# Measured with this exact command: held-out J&F 0.245 with the linear decoder head (0.324 with
# the earlier ReLU head; OMP_NUM_THREADS=1, beside another job); 0.256 in a later session, alone. The floor leaves 7 points for
# thread-count and library-version noise; an untrained decoder, or encoders that lost their
# ImageNet weights, fall far below it.
FLOOR_MEASURED = 0.256
FLOOR = 0.175
# The online defaults on this short model. Its probabilities never fall below --confidence LO,
# so its targets hold object labels only: before the --min_cover guard the student learnt to
# call every pixel the object and J&F fell by 20.5 points (measured, every video worse); with
# the guard no video is tuned and J&F moved by 0.0 (measured). Since the online stage fuses the
# masks it writes over time (--write_temporal 1), an untuned video gets the offline masks fused
# with t+-1: +1.1 (measured alone, 10 of 10 videos untuned, every one +0.1 to +2.6). The floor is
# a loss of 1 point.
ONLINE_GAIN_MEASURED = 0.011
ONLINE_GAIN_FLOOR = -0.01


def test_short_recipe_on_held_out_sequences(davis_root, tmp_path):
    try:
        resolve_pretrained("efficientnet_lite0_pip")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    from benchmarks import davis_real

    res = davis_real.main(["--davis", str(davis_root), "--out_dir", str(tmp_path), "--eval", "holdout",
                           "--epochs", "2", "--steps_per_epoch", "60", "--size", "160", "288", "--test_size", "160", "288",
                           "--online", "per_video", "--online_args", "",
                           "--workers", "1"])
    jf = res["offline"]["DAVIS-2016 J&F"]
    gain = res["online"]["per_video"]["scores"]["DAVIS-2016 J&F"] - jf
    print(f"held-out J&F {100 * jf:.1f} (floor {100 * FLOOR:.1f}); online defaults {100 * gain:+.1f} "
          f"(floor {100 * ONLINE_GAIN_FLOOR:+.1f})")
    assert jf > FLOOR
    assert gain > ONLINE_GAIN_FLOOR
