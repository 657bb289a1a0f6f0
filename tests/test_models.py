"""Model factory, shapes, weight loading, discriminators, checkpoint config checks."""
from __future__ import annotations

import pytest
import timm
import torch

from models import build_feature_discriminator, build_mask_discriminator, build_model, model_config
from models.loading import load_model_weights
from utils.checkpoint import save_checkpoint


@pytest.mark.parametrize("scale", ["xxs", "xs", "s"])
@pytest.mark.parametrize("hw", [(64, 96), (65, 97)])
def test_output_shapes_all_scales(scale, hw):
    model = build_model(model_scale=scale).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        out = model(x, torch.rand_like(x))
    assert out["logits"].shape == (2, 1, *hw)
    # Features come from the stride-32 level of the padded input.
    assert out["features"].shape == (2, model.feature_channels, -(-hw[0] // 32), -(-hw[1] // 32))
    assert torch.isfinite(out["logits"]).all()


def test_other_timm_backbone():
    model = build_model(backbone="resnet18").eval()
    assert model.rgb_encoder.name == "resnet18"
    with torch.no_grad():
        out = model(torch.rand(1, 3, 70, 50), torch.rand(1, 3, 70, 50))
    assert out["logits"].shape == (1, 1, 70, 50)


def test_padding_does_not_leak_into_valid_region():
    """Outputs at odd sizes equal the outputs on the same content padded by the caller."""
    torch.manual_seed(0)
    model = build_model("xxs").eval()
    x, f = torch.rand(1, 3, 60, 90), torch.rand(1, 3, 60, 90)
    with torch.no_grad():
        a = model(x, f)["logits"]
        xp = torch.nn.functional.pad(x, (0, 6, 0, 4), mode="replicate")
        fp = torch.nn.functional.pad(f, (0, 6, 0, 4), mode="replicate")
        b = model(xp, fp)["logits"]
    # Same padded tensor internally; only the final resize differs (output grid 64x96 vs cropped).
    assert torch.allclose(a, b[..., :60, :90], atol=1e-4)


def test_mismatched_inputs_raise():
    model = build_model("xxs")
    with pytest.raises(ValueError, match="same shape"):
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 32, 64))


def test_bad_scale_raises():
    with pytest.raises(ValueError, match="model_scale"):
        build_model(model_scale="m")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_loads_good_file(tmp_path, suffix):
    src = timm.create_model("mobilevit_xxs", pretrained=False)
    sd = src.state_dict()
    path = tmp_path / f"mobilevit_xxs{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    model = build_model("xxs", pretrained=path)
    # timm's feature wrapper renames stages.0 -> stages_0; the weights must land there.
    got = model.rgb_encoder.body.state_dict()["stages_0.0.conv1_1x1.conv.weight"]
    assert torch.equal(got, sd["stages.0.0.conv1_1x1.conv.weight"])
    assert torch.equal(model.flow_encoder.body.state_dict()["stem.conv.weight"], sd["stem.conv.weight"])


def test_pretrained_wrong_file_raises(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    with pytest.raises(ValueError, match="resnet18.pth.*missing keys"):
        build_model("xxs", pretrained=path)


def test_pretrained_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_model("xxs", pretrained=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pth"):
        build_model("xxs", pretrained=bad)


def test_discriminators_shapes_and_logits():
    model = build_model("xxs")
    fd = build_feature_discriminator(model)
    feats = torch.rand(2, model.feature_channels, 4, 7)
    assert fd(feats).shape == (2, 1, 4, 7)
    md = build_mask_discriminator(size=(64, 96))
    out = md(torch.rand(3, 1, 50, 70), torch.rand(3, 3, 50, 70))
    assert out.shape == (3, 1, 8, 12)
    # Logits, not probabilities: no sigmoid at the end, so values leave [0, 1] for large inputs.
    assert not isinstance(list(md.net.children())[-1], torch.nn.Sigmoid)
    with pytest.raises(ValueError, match="image"):
        md(torch.rand(1, 1, 50, 70))


def test_checkpoint_scale_mismatch_message(tmp_path):
    path = tmp_path / "xxs.pth"
    save_checkpoint(path, {"model": build_model("xxs").state_dict(), "model_config": model_config("xxs")})
    with pytest.raises(ValueError, match="model_scale='xxs'.*--model_scale xxs"):
        load_model_weights(build_model("s"), path, model_config("s"))
    # A bare state dict has no config: the shape mismatch is still reported clearly.
    bare = tmp_path / "bare.pth"
    torch.save(build_model("xxs").state_dict(), bare)
    with pytest.raises(ValueError, match="another --model_scale"):
        load_model_weights(build_model("s"), bare, model_config("s"))


def test_checkpoint_averaging(tmp_path):
    a, b = build_model("xxs"), build_model("xxs")
    save_checkpoint(tmp_path / "a.pth", {"model": a.state_dict(), "model_config": model_config("xxs")})
    save_checkpoint(tmp_path / "b.pth", {"model": b.state_dict(), "model_config": model_config("xxs")})
    c = build_model("xxs")
    load_model_weights(c, [tmp_path / "a.pth", tmp_path / "b.pth"], model_config("xxs"))
    key = "decoder.head.1.weight"
    expect = (a.state_dict()[key] + b.state_dict()[key]) / 2
    assert torch.allclose(c.state_dict()[key], expect)


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, {"epoch": 1})

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def _cap_head(net: torch.nn.Module, bias: float = 0.5) -> None:
    """The trained failure: every weight of the last 1x1 conv negative."""
    last = net.decoder.head[-1]
    with torch.no_grad():
        last.weight.copy_(-last.weight.abs() - 0.01)
        last.bias.fill_(bias)


def test_relu_head_caps_the_logit_at_its_bias_and_linear_head_does_not():
    torch.manual_seed(0)
    relu = build_model("xxs", head="relu").eval()
    linear = build_model("xxs", head="linear").eval()
    linear.load_state_dict(relu.state_dict(), strict=True)  # same parameters, either way
    _cap_head(relu)
    _cap_head(linear)
    x = torch.rand(2, 3, 64, 96)
    for _ in range(3):  # different inputs, same verdict
        assert relu(x, x.flip(0))["logits"].max() <= 0.5 + 1e-5
    assert linear(x, x.flip(0))["logits"].max() > 0.5 + 1e-3


def test_head_in_config_and_old_checkpoints_keep_the_relu_head(tmp_path):
    assert model_config("xxs")["head"] == "linear"
    assert model_config("xxs", head="relu")["head"] == "relu"
    with pytest.raises(ValueError, match="decoder_head"):
        model_config("xxs", head="sigmoid")
    with pytest.raises(ValueError, match="two_stream"):
        model_config("xxs", arch="oast3d", head="linear")
    net = build_model("xxs", head="linear")
    assert not any(isinstance(m, torch.nn.ReLU) for m in net.decoder.head.modules())
    old = {k: v for k, v in net.config.items() if k != "head"}  # written before the option existed
    rebuilt = build_model(config=old)
    assert rebuilt.config["head"] == "relu"
    assert any(isinstance(m, torch.nn.ReLU) for m in rebuilt.decoder.head.modules())
    from models import build_model_from_checkpoint
    path = tmp_path / "lin.pth"
    save_checkpoint(path, {"model": net.state_dict(), "model_config": net.config})
    back = build_model_from_checkpoint(path)
    assert back.config["head"] == "linear"
    x = torch.rand(1, 3, 64, 96)
    assert torch.equal(back.eval()(x, x)["logits"], net.eval()(x, x)["logits"])


def test_amp_on_a_cpu_runs_bf16_and_keeps_the_masks():
    """``--amp`` on a CPU: the network runs in bf16 (fp16 stays float32 there); the probabilities
    come back float32 and within bf16's rounding of the float32 ones."""
    from engine.inference import predict_probs
    from utils.misc import autocast

    cpu = torch.device("cpu")
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with autocast(cpu, True, "bf16"):
        assert conv(x).dtype == torch.bfloat16
    for enabled, dtype in ((True, "fp16"), (False, "bf16")):
        with autocast(cpu, enabled, dtype):
            assert conv(x).dtype == torch.float32
    torch.manual_seed(0)
    model = build_model(model_scale="xxs").eval()
    image, flow = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    ref = predict_probs(model, image, flow, flip=True)
    low = predict_probs(model, image, flow, flip=True, amp=True, amp_dtype="bf16")
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert not torch.equal(low, ref) and (low - ref).abs().max() < 0.05
