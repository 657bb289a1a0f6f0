"""benchmarks/speed.py measures the network it is asked for (a scale, or a timm encoder)."""
import importlib.util
from pathlib import Path

from models import build_model

_spec = importlib.util.spec_from_file_location("speed", Path(__file__).parents[1] / "benchmarks" / "speed.py")
speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(speed)


def _static(**job):
    return speed.measure({"kind": "static", "scale": "xxs", "size": [64, 96], **job})


def test_backbone_rows_measure_that_encoder():
    lite0, lite1 = _static(backbone="efficientnet_lite0"), _static(backbone="efficientnet_lite1")
    expected = sum(p.numel() for p in build_model(backbone="efficientnet_lite0").parameters())
    assert lite0["params"] == expected
    assert lite1["params"] > lite0["params"] and lite1["flops"] > lite0["flops"] > 0
    assert _static()["params"] == sum(p.numel() for p in build_model("xxs").parameters())  # the scale's MobileViT

