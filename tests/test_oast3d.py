"""The authors' network (``--arch oast3d``): shapes, inflation, checkpoints, the authors' key map.

The fixture ``tests/fixtures/oast3d_authors_{keys.json,outputs.pt}`` was made by running the
authors' published network (their code, outside this repository) filled by :func:`fill`:
it holds their state dicts' key names and shapes and their outputs on :func:`authors_inputs`.
The tests refill the same tensors under the same names, map them with
:mod:`models.authors_keys` into our ``oast3d`` and must reproduce those outputs.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import types
import zlib
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from models import build_feature_discriminator, build_model, build_model_from_checkpoint
from models import authors_keys
from utils.checkpoint import save_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((FIXTURES / "oast3d_authors_keys.json").read_text())


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "oast3d_authors_outputs.pt", map_location="cpu", weights_only=True)


def fill(key: str, shape, seed: int = 1234) -> torch.Tensor:
    """Deterministic tensor for ``key``: seeded by the key's CRC32, BN statistics kept sane
    (variance in [0.5, 1.5]), norm scales near 1, biases near 0, kernels ~ N(0, 1/fan_in)."""
    g = torch.Generator().manual_seed(seed + zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    shape = tuple(shape)
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.long)
    if leaf == "running_var":
        return 0.5 + torch.rand(shape, generator=g)
    if leaf == "running_mean":
        return 0.1 * torch.randn(shape, generator=g)
    if len(shape) == 1:
        return (1.0 if leaf == "weight" else 0.0) + 0.1 * torch.randn(shape, generator=g)
    return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))


def authors_state_dict(meta: dict, scale: str, backbone: bool = False) -> dict[str, torch.Tensor]:
    keys, shapes = (meta["backbone_keys"], meta["backbone_shapes"]) if backbone else (meta["keys"], meta["shapes"])
    return {k: fill(k, s, meta["seed"]) for k, s in zip(keys, shapes[scale])}


def authors_inputs(meta: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(frame in [0, 1], flow in [0, 1]); the authors' network got the frame ImageNet-normalised."""
    g = torch.Generator().manual_seed(meta["seed"])
    h, w = meta["size"]
    return torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)


def run(model: nn.Module, image: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return model(image, flow)


# --- our side: shapes, inflation, checkpoints -----------------------------------------------------

def test_shapes_config_and_feature_discriminator_xxs():
    torch.manual_seed(0)
    model = build_model("xxs", arch="oast3d")
    assert model.config["arch"] == "oast3d" and model.config["blocks"] == "timm"
    assert model.config["flow_mean"] == [0.0] * 3 and model.config["flow_std"] == [1.0] * 3
    image, flow = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)  # 96 is padded to 128
    out = model(image, flow)
    assert out["logits"].shape == (2, 1, 64, 96)
    assert out["feature_map"].shape == (2, 1, 64, 96)
    assert out["features"].shape == (2, model.feature_channels, 2, 4) and model.feature_channels == 320
    disc = build_feature_discriminator(model, 16)
    assert disc(out["features"]).shape == (2, 1, 2, 4)
    out["logits"].mean().backward()
    assert model.encoder.stem.conv.weight.grad is not None


def test_flow_is_not_normalised_but_the_frame_is():
    model = build_model("xxs", arch="oast3d", config={"arch": "oast3d", "model_scale": "xxs", "blocks": "authors",
                                                       "mean": [0.5] * 3, "std": [0.25] * 3})
    seen = {}
    model.encoder.stem.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    image, flow = torch.full((1, 3, 64, 64), 0.75), torch.full((1, 3, 64, 64), 0.75)
    run(model, image, flow)
    assert torch.allclose(seen["x"][:, :, 0], torch.full((1, 3, 64, 64), 1.0))  # (0.75 - 0.5) / 0.25
    assert torch.allclose(seen["x"][:, :, 1], flow)  # the flow image as given, in [0, 1]


@pytest.mark.parametrize("cin,cout,k,stride,groups,bias", [(8, 16, 3, 1, 1, True), (16, 16, 3, 2, 16, False),
                                                         (6, 4, 1, 1, 1, True), (8, 8, 3, 2, 4, True)])
@pytest.mark.parametrize("time", [1, 2, 3])
def test_folded_temporal_conv_equals_conv3d(cin, cout, k, stride, groups, bias, time):
    from models.oast3d_layers import conv3d

    torch.manual_seed(4)
    conv = conv3d(cin, cout, k, stride, groups, bias)
    x = torch.randn(2, cin, time, 10, 12)
    torch.testing.assert_close(conv(x), nn.Conv3d.forward(conv, x), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    sd = timm.create_model("mobilevit_xxs", pretrained=False).state_dict()
    g = torch.Generator().manual_seed(2)
    for k, v in sd.items():  # BatchNorm statistics away from (0, 1), so that a lost one shows
        if k.endswith("running_mean"):
            v.copy_(0.1 * torch.randn(v.shape, generator=g))
        elif k.endswith("running_var"):
            v.copy_(0.5 + torch.rand(v.shape, generator=g))
    path = tmp_path_factory.mktemp("timm") / "mobilevit_xxs.pth"
    torch.save(sd, path)
    return path, sd


def test_inflation_puts_2d_kernels_in_the_centre_and_a_static_clip_acts_as_the_2d_net(timm_file):
    path, sd = timm_file
    model = build_model("xxs", pretrained=path, arch="oast3d").eval()
    assert model.config["blocks"] == "timm" and model.config["mean"] == [0.0] * 3  # timm's MobileViT: [0, 1] input
    k = model.encoder.state_dict()
    w = k["stages.2.1.conv_fusion.conv.weight"]  # 5D
    assert torch.equal(w[:, :, 1], sd["stages.2.1.conv_fusion.conv.weight"])
    assert not w[:, :, 0].any() and not w[:, :, 2].any()
    assert torch.equal(k["stages.3.1.transformer.2.attn.qkv.weight"], sd["stages.3.1.transformer.2.attn.qkv.weight"])
    assert torch.equal(k["final_conv.bn.running_var"], sd["final_conv.bn.running_var"])

    # A clip constant in time: each convolution sees only its own time step (zero side taps)
    # and attention sees every patch twice, which leaves softmax-weighted means unchanged, so
    # both time steps must carry exactly the 2D network's features.
    net2d = timm.create_model("mobilevit_xxs", pretrained=False)
    net2d.load_state_dict(sd)
    net2d.eval()
    x = torch.rand(1, 3, 128, 192)
    with torch.no_grad():
        y, ref = net2d.stages[0](net2d.stem(x)), []
        for stage in net2d.stages[1:]:
            y = stage(y)
            ref.append(y)
        ref[-1] = net2d.final_conv(ref[-1])
        ours = model.encoder(torch.stack([x, x], 2))
    for r, o in zip(ref, ours):
        for t in range(2):
            torch.testing.assert_close(o[:, :, t], r, atol=1e-4, rtol=1e-4)


def test_inflation_is_strict_and_names_the_file(timm_file, tmp_path):
    path, sd = timm_file
    extra = tmp_path / "extra.pth"
    torch.save({**sd, "stages.9.0.conv.weight": torch.zeros(1)}, extra)
    with pytest.raises(ValueError, match=r"extra\.pth.*stages\.9\.0\.conv\.weight"):
        build_model("xxs", pretrained=extra, arch="oast3d")
    missing = tmp_path / "missing.pth"
    torch.save({k: v for k, v in sd.items() if k != "stages.1.2.conv2_kxk.bn.weight"}, missing)
    with pytest.raises(ValueError, match=r"missing\.pth.*stages\.1\.2\.conv2_kxk\.bn\.weight"):
        build_model("xxs", pretrained=missing, arch="oast3d")
    with pytest.raises(ValueError, match=r"mobilevit_xxs\.pth does not fit.* [1-9]\d* shape mismatches"):
        build_model("s", pretrained=path, arch="oast3d")  # an xxs file for the s network
    cvnets = tmp_path / "cvnets.pt"
    torch.save({"conv_1.block.conv.weight": torch.zeros(16, 3, 3, 3), "layer_1.0.block.x": torch.zeros(1)}, cvnets)
    with pytest.raises(ValueError, match=r"cvnets\.pt holds Apple ml-cvnets"):
        build_model("xxs", pretrained=cvnets, arch="oast3d")


@pytest.mark.parametrize("blocks", ["timm", "authors"])
def test_checkpoint_round_trip(tmp_path, blocks):
    torch.manual_seed(3)
    model = build_model(config={"arch": "oast3d", "model_scale": "xxs", "blocks": blocks})
    for m in model.modules():  # trained-looking BN statistics
        if isinstance(m, nn.BatchNorm3d):
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config})
    again = build_model_from_checkpoint(path)
    assert type(again).__name__ == "OAST3D" and again.config == model.config and again.blocks == blocks
    image, flow = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(run(again, image, flow)["logits"], run(model, image, flow)["logits"], atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"ckpt\.pth.*model_scale"):
        build_model_from_checkpoint(path, model_scale="s")
    assert type(build_model_from_checkpoint(path, arch="oast3d")).__name__ == "OAST3D"
    with pytest.raises(ValueError, match=r"ckpt\.pth.*arch='oast3d', not --arch two_stream"):
        build_model_from_checkpoint(path, arch="two_stream")


# --- the authors' files --------------------------------------------------------------------------

def _fake_authors_module() -> types.ModuleType:
    """A module standing for the authors' ``models.discriminator``, removed after pickling."""
    mod = types.ModuleType("oast_fake_authors_discriminator")

    class DiscriminatorFinetuning(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.Conv2d(128, 1, 1)

    DiscriminatorFinetuning.__module__ = mod.__name__
    DiscriminatorFinetuning.__qualname__ = "DiscriminatorFinetuning"
    mod.DiscriminatorFinetuning = DiscriminatorFinetuning
    return mod


def test_authors_checkpoint_file_reproduces_their_outputs(meta, expected, tmp_path):
    sd = authors_state_dict(meta, "xxs")
    # A teacher file as their online stage writes it: args, and the discriminator pickled as a
    # whole module of their code, which is not importable here.
    mod = _fake_authors_module()
    sys.modules[mod.__name__] = mod
    try:
        path = tmp_path / "online-finetunebest.pth"
        torch.save({"model": sd, "model_D": mod.DiscriminatorFinetuning(), "epoch": 4,
                    "args": argparse.Namespace(model_scale="xxs", dropout=0.1, mean=None, std=None)}, path)
    finally:
        del sys.modules[mod.__name__]
    model = build_model_from_checkpoint(path)
    assert model.config["blocks"] == "authors" and model.config["model_scale"] == "xxs"
    assert model.config["mean"] == pytest.approx(meta["mean"]) and model.config["dropout"] == 0.1
    out = run(model, *authors_inputs(meta))
    torch.testing.assert_close(out["logits"], expected["full_xxs"]["logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["feature_map"][:, 0], expected["full_xxs"]["feature_map"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"online-finetunebest\.pth holds the authors' network at model_scale='xxs'"):
        build_model_from_checkpoint(path, model_scale="s")


def test_authors_state_dict_reproduces_their_outputs_s(meta, expected):
    model = build_model(config={"arch": "oast3d", "model_scale": "s", "blocks": "authors"})
    model.load_state_dict(authors_keys.map_authors_state_dict(authors_state_dict(meta, "s"), model, "fixture"))
    out = run(model, *authors_inputs(meta))
    torch.testing.assert_close(out["logits"], expected["full_s"]["logits"], atol=1e-5, rtol=0)


def test_authors_backbone_file_inflates_as_theirs(meta, expected, tmp_path):
    bb = authors_state_dict(meta, "xxs", backbone=True)
    path = tmp_path / "mobilevit-xxs.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in bb.items()}, "epoch": 3}, path)
    model = build_model("xxs", pretrained=path, arch="oast3d")
    assert model.config["blocks"] == "authors" and model.config["mean"] == pytest.approx(meta["mean"])
    # The decoder is not in the backbone file: fill it by the rule, through the key map.
    full = authors_state_dict(meta, "xxs")
    mapped = authors_keys.map_authors_state_dict(full, model, "fixture")
    model.load_state_dict({k: v for k, v in mapped.items() if k.startswith("decoder.")}, strict=False)
    out = run(model, *authors_inputs(meta))
    torch.testing.assert_close(out["logits"], expected["inflated_xxs"]["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", ["xs", "s"])
def test_key_maps_fit_the_other_scales(meta, scale):
    """Names and shapes of the authors' full network and backbone at xs and s map one to one."""
    from models.oast3d import OAST3D, inflate_into

    model = OAST3D(scale, "authors")
    mapped = authors_keys.map_authors_state_dict(authors_state_dict(meta, scale), model, "fixture")
    assert set(mapped) == set(model.state_dict())
    bb, ignored = authors_keys.map_authors_backbone(authors_state_dict(meta, scale, backbone=True), "fixture")
    assert sorted(ignored) == ["fc.bias", "fc.weight"]
    inflate_into(model.encoder, bb, "fixture")
    k = "stages.4.1.conv_fusion.conv.weight"
    assert torch.equal(model.encoder.state_dict()[k][:, :, 1], bb[k]) and not model.encoder.state_dict()[k][:, :, 0].any()


def test_key_map_names_unknown_missing_and_misshapen_keys(meta):
    model = build_model(config={"arch": "oast3d", "model_scale": "xxs", "blocks": "authors"})
    sd = authors_state_dict(meta, "xxs")
    with pytest.raises(ValueError, match=r"their\.pth.*unknown keys.*decoder\.stage1\.0\.extra\.weight"):
        authors_keys.map_authors_state_dict({**sd, "decoder.stage1.0.extra.weight": torch.zeros(1)}, model,
                                            "their.pth")
    bad = dict(sd)
    bad["encoder.body.1.1.fusion_block2.weight"] = torch.zeros(48, 96, 3, 3)  # 2D where 3D belongs
    with pytest.raises(ValueError, match=r"their\.pth.*shape mismatches.*encoder\.body\.1\.1\.fusion_block2\.weight"):
        authors_keys.map_authors_state_dict(bad, model, "their.pth")
    less = {k: v for k, v in sd.items() if k != "decoder.r2.norm_layer.running_var"}
    with pytest.raises(ValueError, match=r"their\.pth.*not given.*decoder\.skips\.1\.bn\.running_var"):
        authors_keys.map_authors_state_dict(less, model, "their.pth")
    # thop's profiling counters are no weights: dropped, as the authors' loader does
    ok = authors_keys.map_authors_state_dict({**sd, "decoder.r1.total_ops": torch.zeros(1)}, model, "their.pth")
    assert len(ok) == len(model.state_dict())
    two_stream = build_model("xxs")
    with pytest.raises(ValueError, match=r"their\.pth holds the authors' network"):
        authors_keys.convert_if_authors(sd, "their.pth", two_stream)
