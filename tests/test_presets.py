"""Issue 13: the authors' discriminators, their TTA views, and the option presets."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image, ImageEnhance

from engine.tta import AUTHORS_SCALES, TTA_CHOICES, TTA_VIEWS, pil_enhance, rescaled_size, tta_probs
from models.discriminators import (AuthorsFeatureDiscriminator, AuthorsMaskDiscriminator, FeatureDiscriminator,
                                   MaskDiscriminator, build_authors_feature_discriminator,
                                   build_authors_mask_discriminator, real_fake_logits)
from models.losses import adversarial_loss
from utils import presets
from utils.config import HelpFormatter, parse_with_config, save_args
from utils.flow import decode_flow, encode_flow
from engine.variants import add_variant_args
from utils.presets import PRESETS, check_preset

# --- discriminators ---------------------------------------------------------------------------


def test_authors_feature_discriminator_shapes_and_reduction():
    torch.manual_seed(0)
    d = build_authors_feature_discriminator(stride=32)
    feat = torch.randn(3, 40, 2, 3)  # B x C x h x w at stride 32
    assert d.reduce(feat).shape == (3, 1, 64, 96)
    assert d(feat).shape == (3, 1, 1, 1)
    # A 3D network's B x C x T x h x w: channel and time mean first equals the authors' order
    # (upsample to the frame, then average over time and channels).
    feat5 = torch.randn(3, 40, 2, 2, 3)
    theirs = F.interpolate(feat5, size=(2, 64, 96), mode="trilinear", align_corners=True).mean(2).mean(1)
    assert torch.allclose(d.reduce(feat5)[:, 0], theirs, atol=1e-5)
    # An already reduced B x H x W map (their network's output) is used as is.
    assert torch.equal(d.reduce(theirs)[:, 0], theirs)
    assert AuthorsFeatureDiscriminator(full_size=True).reduce(theirs[:, None]).shape == (3, 1, 64, 96)
    with pytest.raises(ValueError, match="features must be"):
        d(torch.randn(2, 3))


@pytest.mark.parametrize("arch", ["two_stream", "oast3d"])
def test_authors_feature_discriminator_on_the_networks_features(arch):
    """Upsampled features fill exactly the input frame, for both networks (oast3d pads to 64)."""
    from models import build_model

    torch.manual_seed(0)
    try:
        net = build_model("xxs", arch=arch).eval()
    except NotImplementedError:
        pytest.skip(f"--arch {arch} is not built yet")
    image, flow = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        out = net(image, flow)
    d = build_authors_feature_discriminator(net)
    fmap = d.reduce(out["features"])
    assert fmap.shape == (1, 1, 64, 128)
    if "feature_map" in out:  # what the authors' network itself returns
        assert torch.allclose(fmap, out["feature_map"], atol=1e-5)
    assert d(out["features"]).shape == (1, 1, 1, 1)


def test_authors_mask_discriminator_per_pixel_on_logits_without_image():
    torch.manual_seed(0)
    d = build_authors_mask_discriminator()
    prob = torch.rand(2, 1, 24, 40)
    out = d(prob, torch.rand(2, 3, 24, 40))
    assert out.shape == (2, 1, 24, 40)  # full resolution, one logit per pixel
    assert torch.equal(out, d(prob, torch.rand(2, 3, 24, 40))) and torch.equal(out, d(prob))  # frame unused
    # It sees logits: the same weights fed logit(p) directly give the same answer.
    raw = AuthorsMaskDiscriminator(on_logits=False)
    raw.load_state_dict(d.state_dict())
    assert torch.allclose(out, raw(torch.logit(prob, eps=1e-6)), atol=1e-5)
    assert AuthorsMaskDiscriminator(size=(12, 20))(prob).shape == (2, 1, 12, 20)


@pytest.mark.parametrize("kind", ["feature", "mask"])
def test_real_fake_logits_normalises_real_and_fake_apart(kind):
    """One forward that equals the authors' two calls (real batch, fake batch) in train mode."""
    torch.manual_seed(0)
    if kind == "feature":
        d, real, fake = AuthorsFeatureDiscriminator(stride=8), torch.randn(2, 16, 3, 4), torch.randn(3, 16, 3, 4) + 1
    else:
        d, real, fake = AuthorsMaskDiscriminator(), torch.rand(2, 1, 16, 24), torch.rand(3, 1, 16, 24) ** 3
    both = real_fake_logits(d, real, fake)
    apart = torch.cat([d(real), d(fake)])
    assert torch.allclose(both, apart, atol=1e-5)
    assert not torch.allclose(both, d(torch.cat([real, fake])), atol=1e-3)  # one mixed batch differs


def test_real_fake_logits_is_the_old_call_for_our_discriminators():
    torch.manual_seed(0)
    fd, md = FeatureDiscriminator(16), MaskDiscriminator(8, (32, 48))
    real, fake = torch.randn(2, 16, 3, 4), torch.randn(2, 16, 3, 4)
    assert torch.equal(real_fake_logits(fd, real, fake), fd(torch.cat([real, fake])))
    pr, pf, img = torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48), torch.rand(2, 3, 32, 48)
    assert torch.equal(real_fake_logits(md, pr, pf, img), md(torch.cat([pr, pf]), torch.cat([img, img])))


def _train_disc(d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, steps: int) -> list[float]:
    opt = torch.optim.Adam(d.parameters(), 1e-2)
    losses = []
    for _ in range(steps):
        logits = real_fake_logits(d, real, fake)
        n = real.shape[0]
        loss = 0.5 * (adversarial_loss(logits[:n], True) + adversarial_loss(logits[n:], False))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_authors_discriminators_learn_a_toy_separation():
    # A sigmoid inside the network under BCE-with-logits (the authors' offline code) bounds the
    # loss below by (0.313 + 0.693) / 2 = 0.503; logits out lets it go towards 0.
    torch.manual_seed(0)
    floor = 0.5 * (-math.log(torch.sigmoid(torch.tensor(1.0)).item()) + math.log(2))
    real, fake = torch.randn(4, 8, 2, 3) + 0.5, torch.randn(4, 8, 2, 3) - 0.5
    losses = _train_disc(AuthorsFeatureDiscriminator(stride=8, width=4), real, fake, 40)
    assert losses[-1] < 0.5 * losses[0] and losses[-1] < floor
    real_m = torch.sigmoid(torch.randn(4, 1, 16, 24) * 0.5 + 2)  # foreground-ish vs background-ish
    fake_m = torch.sigmoid(torch.randn(4, 1, 16, 24) * 0.5 - 2)
    losses = _train_disc(AuthorsMaskDiscriminator(width=4), real_m, fake_m, 40)
    assert losses[-1] < 0.5 * losses[0] and losses[-1] < floor


# --- TTA views ------------------------------------------------------------------------------------


class _Recorder(torch.nn.Module):
    """Stands in for the network: records its inputs, returns zero logits of the input size."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, image, flow):
        self.calls.append((image.clone(), flow.clone()))
        return {"logits": torch.zeros(image.shape[0], 1, *image.shape[-2:])}


def test_default_views_unchanged():
    assert TTA_VIEWS == ("identity", "flip", "jitter", "scale")
    assert set(TTA_CHOICES) == set(TTA_VIEWS) | {"jitter_pil", "scale_set"}


def test_scale_set_view_sizes_are_multiples_of_64():
    hw = (384, 640)
    # Python's round (half to even), as the authors' int(round(s * r / 64)) * 64.
    expected = {(192, 320), (256, 512), (512, 768), (576, 960)}
    assert {rescaled_size(hw, r, 64) for r in AUTHORS_SCALES} == expected
    model, gen = _Recorder(), torch.Generator().manual_seed(0)
    image, flow = torch.rand(1, 3, *hw), torch.rand(1, 3, *hw)
    for _ in range(24):
        out = tta_probs(model, image, flow, ("scale_set",), gen, average="logits")
        assert out.shape == (1, 1, *hw)
    sizes = {tuple(im.shape[-2:]) for im, _ in model.calls}
    assert sizes == expected  # every factor drawn, nothing else
    assert all(h % 64 == 0 and w % 64 == 0 for h, w in sizes)
    assert all(im.shape == fl.shape for im, fl in model.calls)


def test_jitter_pil_view_matches_pil_and_keeps_flow():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    img = np.stack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256], -1).astype(np.float64)
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    for fb, fc, fcol, fs in [(0.5, 1.5, 0.0, 3.0), (1.5, 0.5, 2.0, 0.0), (1.2, 1.3, 1.7, 2.2), (0.7, 0.6, 0.3, 1.5)]:
        im = Image.fromarray(img)
        for enhancer, f in ((ImageEnhance.Brightness, fb), (ImageEnhance.Contrast, fc),
                            (ImageEnhance.Color, fcol), (ImageEnhance.Sharpness, fs)):
            im = enhancer(im).enhance(f)
        ref = np.asarray(im).astype(np.float64) / 255
        ours = pil_enhance(t, torch.tensor([fb]), torch.tensor([fc]), torch.tensor([fcol]), torch.tensor([fs]))
        diff = np.abs(ours[0].permute(1, 2, 0).numpy() - ref)
        # PIL rounds to 8 bits after every step; we do not.
        assert diff.mean() < 2.5 / 255 and diff.max() < 10 / 255, (fb, fc, fcol, fs)
    model, gen = _Recorder(), torch.Generator().manual_seed(0)
    flow = torch.rand(2, 3, 40, 56)
    image = t.repeat(2, 1, 1, 1)
    tta_probs(model, image, flow, ("jitter_pil",), gen)
    (seen_image, seen_flow), = model.calls
    assert torch.equal(seen_flow, flow) and not torch.allclose(seen_image, image, atol=1e-3)


def test_flip_view_mirrors_flow_motion():
    # Rightward motion (u > 0) on the left half, still on the right half.
    h, w = 16, 24
    field = torch.zeros(1, 2, h, w)
    field[:, 0, :, : w // 2] = 1.0
    flow = encode_flow(field, max_norm=1.0).float() / 255
    model = _Recorder()
    tta_probs(model, torch.rand(1, 3, h, w), flow, ("flip",), torch.Generator().manual_seed(0))
    (_, seen), = model.calls
    uv = decode_flow(seen)
    # Mirrored frame: the moving half is now on the right and moves left.
    assert (uv[0, 0, :, w // 2 + 1:] < -0.9).all() and (uv[0, 1, :, w // 2 + 1:].abs() < 0.1).all()
    assert (uv[0].abs()[:, :, : w // 2 - 1] < 0.05).all()
    # Mirroring the flow image only (the authors' flip) would keep it moving right.
    assert (decode_flow(flow.flip(-1))[0, 0, :, w // 2 + 1:] > 0.9).all()


# --- presets --------------------------------------------------------------------------------------

TOY = {"ours": {}, "authors": {"lr": 1e-5, "epochs": 10, "tta": ["identity", "flip"], "mode": "transductive"}}


def _toy_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy", formatter_class=HelpFormatter)
    p.add_argument("--weights", required=True)
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--tta", nargs="+", default=["identity"], choices=["identity", "flip", "jitter"])
    p.add_argument("--mode", default="per_video", choices=["per_video", "transductive"])
    p.add_argument("--config", default=None)
    add_variant_args(p, "online")
    return p


@pytest.fixture
def toy_presets(monkeypatch):
    monkeypatch.setitem(PRESETS, "online", TOY)


def _yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_preset_order_preset_config_command_line(toy_presets, tmp_path):
    w = ["--weights", "x.pth"]
    a = parse_with_config(_toy_parser(), w)
    assert (a.preset, a.lr, a.epochs, a.mode) == ("ours", 1e-4, 2, "per_video")
    a = parse_with_config(_toy_parser(), [*w, "--preset", "authors"])
    assert (a.preset, a.lr, a.epochs, a.tta, a.mode) == ("authors", 1e-5, 10, ["identity", "flip"], "transductive")
    a.tta.append("jitter")  # a run's lists are its own
    assert parse_with_config(_toy_parser(), [*w, "--preset", "authors"]).tta == ["identity", "flip"]
    cfg = _yaml(tmp_path / "c.yaml", {"epochs": 3})
    a = parse_with_config(_toy_parser(), [*w, "--preset", "authors", "--config", cfg])
    assert (a.lr, a.epochs) == (1e-5, 3)  # config over preset
    a = parse_with_config(_toy_parser(), [*w, "--preset", "authors", "--config", cfg, "--epochs", "4", "--lr", "2e-3"])
    assert (a.preset, a.lr, a.epochs, a.mode) == ("authors", 2e-3, 4, "transductive")  # command line over both
    # The config file may pick the preset; the command line's choice still wins.
    cfg2 = _yaml(tmp_path / "c2.yaml", {"preset": "authors", "epochs": 5})
    a = parse_with_config(_toy_parser(), [*w, "--config", cfg2])
    assert (a.preset, a.lr, a.epochs) == ("authors", 1e-5, 5)
    a = parse_with_config(_toy_parser(), [*w, "--config", cfg2, "--preset", "ours"])
    assert (a.preset, a.lr, a.epochs) == ("ours", 1e-4, 5)
    # The name is recorded in args.yaml, and that file reproduces the run.
    a = parse_with_config(_toy_parser(), [*w, "--preset", "authors", "--epochs", "7"])
    save_args(a, tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "args.yaml").read_text())
    assert saved["preset"] == "authors" and saved["epochs"] == 7
    b = parse_with_config(_toy_parser(), [*w, "--config", str(tmp_path / "run" / "args.yaml")])
    assert vars(b) == {**vars(a), "config": str(tmp_path / "run" / "args.yaml")}


def test_preset_help_and_errors(toy_presets, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        parse_with_config(_toy_parser(), ["--preset", "authors", "--help"])  # no --weights needed for help
    assert e.value.code == 0
    assert "1e-05" in capsys.readouterr().out  # help shows the preset's values
    bad = _yaml(tmp_path / "bad.yaml", {"preset": "nonsense"})
    with pytest.raises(SystemExit):
        parse_with_config(_toy_parser(), ["--weights", "x", "--config", bad])
    assert "bad.yaml" in capsys.readouterr().err
    for text in ("- preset: authors\n", "epochs: [1\n"):  # not a mapping; not YAML
        broken = tmp_path / "broken.yaml"
        broken.write_text(text)
        with pytest.raises(SystemExit):
            parse_with_config(_toy_parser(), ["--weights", "x", "--preset", "authors", "--config", str(broken)])
        assert "broken.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse rejects it on the command line
        parse_with_config(_toy_parser(), ["--weights", "x", "--preset", "nonsense"])
    # argparse never checks defaults against choices: the preset check does, naming the preset.
    with pytest.raises(ValueError, match=r"online preset 'authors'.*tta.*scale_set"):
        check_preset(_toy_parser(), {"tta": ["identity", "scale_set"]}, "online preset 'authors'")
    with pytest.raises(ValueError, match="no options"):
        check_preset(_toy_parser(), {"not_an_option": 1}, "x")


def test_authors_presets_are_the_documented_settings():
    on, off = PRESETS["online"]["authors"], PRESETS["offline"]["authors"]
    assert PRESETS["online"]["ours"] == {} and PRESETS["offline"]["ours"] == {}
    # online_finetuning.py (first upload 0fc9402, README command): lr_g = lr_d = 1e-5, lambda_adv
    # 1e-4, EMA 0.9996, 10 epochs over DAVIS-2016 + FBMS in a SequentialSampler order, views
    # identity / flip / colour / one scale from {0.5, 0.75, 1.25, 1.5}, logits averaged.
    assert (on["lr"], on["lr_d"], on["lambda_adv"], on["d_loss_weight"], on["ema"]) == (1e-5, 1e-5, 1e-4, 1e-4, 0.9996)
    assert (on["mode"], on["transductive_order"], on["epochs"], on["batch_size"]) == ("transductive", "fixed", 10, 2)
    assert on["test_datasets"] == ["DAVIS-2016", "FBMS"] and on["size"] == [384, 640]
    assert on["tta"] == ["identity", "flip", "jitter_pil", "scale_set"] and on["tta_average"] == "logits"
    assert (on["sharpen"], on["mask_disc"], on["weight_decay"]) == (1.0, "authors", 1e-2)
    # unlabeled_train.py + README stage 1.
    assert (off["arch"], off["model_scale"], off["epochs"], off["batch_size"]) == ("oast3d", "s", 30, 2)
    assert (off["lr"], off["lr_d"], off["weight_decay"], off["lr_step"], off["lr_gamma"]) == (1e-4, 1e-4, 1e-2, 10, 0.1)
    assert (off["lambda_adv"], off["d_loss_weight"], off["start_adv"], off["youtube_stride"]) == (1e-4, 1e-4, 0, 10)
    assert off["labeled_datasets"] == ["YouTubeVOS-2018", "DAVIS-2016"]
    assert off["unlabeled_datasets"] == ["Youtube-objects"] and off["feature_disc"] == "authors"


def _real_parser(stage: str) -> argparse.ArgumentParser:
    if stage == "online":
        import online_finetuning as script
    else:
        import unlabeled_train as script
    return script.get_parser()


@pytest.mark.parametrize("stage", ["online", "offline"])
def test_real_parsers_take_every_preset(stage):
    for name, values in PRESETS[stage].items():
        check_preset(_real_parser(stage), values, f"{stage} preset {name!r}")
    argv = ["--weights", "x.pth"] if stage == "online" else []
    a = parse_with_config(_real_parser(stage), [*argv, "--preset", "authors"])
    for k, v in PRESETS[stage]["authors"].items():
        assert getattr(a, k) == v, k
    assert a.preset == "authors"


def test_stage_check():
    with pytest.raises(ValueError, match="stage"):
        add_variant_args(argparse.ArgumentParser(), "train")
    assert presets.STAGES == ("online", "offline")
