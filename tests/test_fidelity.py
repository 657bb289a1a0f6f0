"""Options that bring our runs to the authors' settings: oast3d's block flavour (``--blocks``)
and the unsmoothed IoU loss (``--iou_smooth 0``), and the authors preset selecting them.

The parameter counts below were measured by building the authors' published network
(``MobileViTVOS`` of sutiankang/OAST ``models/mobilevit3d.py``, dropout 0, no backbone file)
outside this repository, on CPU, at each scale.
"""
from __future__ import annotations

import argparse
import logging

import pytest
import timm
import torch
import torch.nn.functional as F

from models import add_blocks_arg, build_model
from models.losses import IOU_SMOOTH, add_loss_args, seg_loss, soft_iou_loss
from models.pretrained import IMAGENET_MEAN

AUTHORS_PARAMS = {"xxs": 11_808_137, "xs": 18_552_945, "s": 49_665_921}  # their code's network
TIMM_PARAMS = {"xxs": 11_904_505, "xs": 18_905_953, "s": 50_838_449}  # ours with timm's blocks (the default)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def oast3d_on_meta(scale: str, **kw) -> torch.nn.Module:
    """The network without allocating or initialising memory: only shapes are needed here."""
    with torch.device("meta"):
        return build_model(scale, arch="oast3d", **kw)


# --- --blocks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["xxs", "xs", "s"])
def test_authors_blocks_have_the_parameter_count_of_the_authors_network(scale):
    theirs, default = oast3d_on_meta(scale, blocks="authors"), oast3d_on_meta(scale)
    assert n_params(theirs) == AUTHORS_PARAMS[scale]
    assert theirs.config["blocks"] == "authors" and theirs.config["mean"] == pytest.approx(list(IMAGENET_MEAN))
    # Without the option --arch oast3d is still timm's flavour: not the authors' network.
    assert default.config["blocks"] == "timm" and n_params(default) == TIMM_PARAMS[scale]


def test_blocks_option_parses_and_reaches_the_network():
    p = argparse.ArgumentParser()
    add_blocks_arg(p)
    assert p.parse_args([]).blocks is None
    args = p.parse_args(["--blocks", "authors"])
    assert oast3d_on_meta("xxs", blocks=args.blocks).blocks == "authors"
    assert oast3d_on_meta("xxs", blocks=p.parse_args(["--blocks", "timm"]).blocks).blocks == "timm"
    with pytest.raises(SystemExit):
        p.parse_args(["--blocks", "cvnets"])


def test_authors_blocks_forward_shapes():
    """Same outputs as the authors' network gives at this size (their mask 1x1x128x192, their
    feature map 1x128x192), with the blocks a random authors-flavour network has."""
    torch.manual_seed(0)
    model = build_model("xxs", arch="oast3d", blocks="authors").eval()
    image, flow = torch.rand(1, 3, 128, 192), torch.rand(1, 3, 128, 192)
    with torch.no_grad():
        out = model(image, flow)
    assert out["logits"].shape == (1, 1, 128, 192) and out["feature_map"].shape == (1, 1, 128, 192)
    assert torch.isfinite(out["logits"]).all()


def test_blocks_contradicting_the_pretrained_file_fail_with_the_fix(tmp_path):
    path = tmp_path / "mobilevit_xxs.pth"
    torch.save(timm.create_model("mobilevit_xxs", pretrained=False).state_dict(), path)
    with pytest.raises(ValueError, match=r"mobilevit_xxs\.pth is for 'timm' blocks, not --blocks authors.*"
                                         r"--blocks timm"):
        build_model("xxs", pretrained=path, arch="oast3d", blocks="authors")
    assert build_model("xxs", pretrained=path, arch="oast3d").blocks == "timm"  # the file chooses


def test_two_stream_ignores_blocks_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="models"), torch.device("meta"):
        net = build_model("xxs", blocks="authors")
    assert type(net).__name__ == "TwoStreamNet" and "blocks" not in net.config
    assert "--blocks authors is an option of --arch oast3d" in caplog.text


# --- --iou_smooth -----------------------------------------------------------------------------------

def authors_iou_loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' formula, sample by sample: 1 - sum(t p) / (sum(t) + sum(p) - sum(t p))."""
    losses = []
    for p, t in zip(prob, target):
        inter = (t * p).sum()
        losses.append(1 - inter / (t.sum() + p.sum() - inter))
    return torch.stack(losses).mean()


def test_unsmoothed_seg_loss_is_the_authors_bce_plus_iou():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(3, 1, 16, 24, generator=g)
    target = (torch.rand(3, 1, 16, 24, generator=g) > 0.6).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    expected = bce + authors_iou_loss(logits.sigmoid(), target)
    assert seg_loss(logits, target, iou_smooth=0.0).item() == pytest.approx(expected.item(), rel=1e-6)
    # Our default is unchanged: 1 added to intersection and union.
    p, t = logits.sigmoid().flatten(1), target.flatten(1)
    inter, union = (p * t).sum(1), (p + t - p * t).sum(1)
    ours = bce + (1 - (inter + 1) / (union + 1)).mean()
    assert IOU_SMOOTH == 1.0 and seg_loss(logits, target).item() == pytest.approx(ours.item(), rel=1e-6)
    assert abs(seg_loss(logits, target).item() - expected.item()) > 1e-4  # the option matters


def test_unsmoothed_iou_gives_an_empty_target_no_gradient():
    """Why ours smooths: on a frame without object the unsmoothed IoU is 0 whatever the
    prediction, so only BCE pushes the prediction towards empty."""
    logits = torch.randn(1, 1, 8, 8, requires_grad=True)
    empty = torch.zeros(1, 1, 8, 8)
    loss = soft_iou_loss(logits, empty, eps=0.0)
    loss.backward()
    assert loss.item() == pytest.approx(1.0) and torch.count_nonzero(logits.grad) == 0
    logits.grad = None
    soft_iou_loss(logits, empty).backward()
    assert (logits.grad > 0).all()  # smoothed: every pixel is pushed down


def test_unsmoothed_iou_of_two_empty_masks_is_a_perfect_match_not_nan():
    logits = torch.full((2, 1, 4, 4), -200.0)  # sigmoid underflows to exactly 0 in float32
    assert logits.sigmoid().max() == 0
    assert soft_iou_loss(logits, torch.zeros(2, 1, 4, 4), eps=0.0).item() == 0.0


def test_iou_smooth_option_refuses_negative_values():
    p = argparse.ArgumentParser()
    add_loss_args(p)
    assert p.parse_args([]).iou_smooth == IOU_SMOOTH and p.parse_args(["--iou_smooth", "0"]).iou_smooth == 0.0
    for bad in ("-1", "nan"):
        with pytest.raises(SystemExit):
            p.parse_args(["--iou_smooth", bad])
    with pytest.raises(ValueError, match=">= 0"):
        soft_iou_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), eps=-0.5)


# --- the authors preset -----------------------------------------------------------------------------

def test_authors_presets_select_their_network_precision_and_loss():
    from utils.presets import PRESETS

    off, on = PRESETS["offline"]["authors"], PRESETS["online"]["authors"]
    # unlabeled_train.py: MobileViTVOS on their MobileViT; GradScaler and autocast (fp16) always on.
    assert off["blocks"] == "authors" and (off["amp"], off["amp_dtype"]) == (True, "fp16")
    # utils/loss.py of both stages: IoU without a smoothing term. Their online stage has no AMP.
    assert off["iou_smooth"] == 0.0 and on["iou_smooth"] == 0.0 and "amp" not in on
    net = oast3d_on_meta(off["model_scale"], blocks=off["blocks"])
    assert off["arch"] == "oast3d" and n_params(net) == AUTHORS_PARAMS["s"]


def test_authors_offline_preset_trains_their_network_with_their_loss(synthetic_dir, tmp_path, monkeypatch):
    """The options reach the trainer: their network's parameter count and the unsmoothed loss."""
    import unlabeled_train
    from engine import offline
    from utils.config import parse_with_config

    smooth_used = []
    real_loss = offline.seg_loss

    def recording_loss(logits, target, *args, **kwargs):
        smooth_used.append(args[0] if args else kwargs.get("iou_smooth", IOU_SMOOTH))
        return real_loss(logits, target, *args, **kwargs)

    monkeypatch.setattr(offline, "seg_loss", recording_loss)
    args = parse_with_config(unlabeled_train.get_parser(), [
        "--preset", "authors", "--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "run"),
        "--model_scale", "xxs", "--size", "64", "64", "--epochs", "1", "--max_steps_per_epoch", "1",
        "--workers", "0", "--no_tensorboard", "--val_every", "0"])
    assert (args.blocks, args.amp, args.amp_dtype, args.iou_smooth) == ("authors", True, "fp16", 0.0)
    trainer = offline.OfflineTrainer(args)
    assert trainer.net.blocks == "authors" and n_params(trainer.net) == AUTHORS_PARAMS["xxs"]
    trainer.fit()
    assert smooth_used and set(smooth_used) == {0.0}
    ours = parse_with_config(unlabeled_train.get_parser(), ["--data_dir", str(synthetic_dir)])
    assert (ours.blocks, ours.amp, ours.amp_dtype, ours.iou_smooth) == (None, False, "bf16", IOU_SMOOTH)
