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



def test_runtime_rows_run_the_same_network():
    """``--runtimes``: eager is the model itself; ONNX Runtime gives its logits; a bad name is refused."""
    import pytest
    import torch

    model = build_model("xxs").eval()
    x, f = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    net, setup = speed.runtime_network(model, "torch", (64, 96), torch.device("cpu"))
    assert net is model and setup == 0.0
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        speed.runtime_network(model, "tensorrt", (64, 96), torch.device("cpu"))
    pytest.importorskip("onnxruntime")
    with pytest.raises(ValueError, match="CPU only"):
        speed.runtime_network(model, "onnx", (64, 96), torch.device("cuda"))
    net, setup = speed.runtime_network(model, "onnx", (64, 96), torch.device("cpu"))
    with torch.inference_mode():
        want = model(x, f)["logits"].sigmoid()
    assert setup > 0 and (net(x, f)["logits"].sigmoid() - want).abs().max() < 1e-3
