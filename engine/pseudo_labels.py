"""Pseudo-labels for online self-tuning, built once per pass from the teacher.

A frame's target is made in these steps (2 and 4 may be off):

1. **Views**: the teacher's foreground probability at the test size, resized from the
   original frame, with and without a horizontal flip, averaged (:mod:`engine.temporal`).
2. **Temporal fusion**: the neighbours' probabilities (``t +- k``) are warped into frame
   ``t`` with pixel-scale DIS flow computed both ways between the two frames at the test
   size; only pixels that pass a forward-backward consistency check take part
   (:mod:`engine.temporal`).
3. **Confidence**: hard labels where the fused probability is above ``hi`` (object) or below
   ``lo`` (background); every other pixel is ``IGNORE`` and gives no loss.
4. **Motion veto** (optional): a background label is dropped where the pixel moves unlike the
   background. The background's motion is a homography fitted (RANSAC) to the flow at the
   background labels; a pixel whose flow departs from it by more than a share of the object
   labels' typical departure is moving on its own, and a confident "background" there is the
   appearance model's error more often than not (a missed moving part of the object; see
   benchmarks/RESULTS.md). Frames where the veto would drop
   many background labels (water, smoke, a failed fit) keep theirs.

A frame whose labels cover little of either side of the teacher's mask (:func:`label_cover`)
is better not learnt from: a teacher that is never below ``lo`` gives object labels only, and
a student tuned on them learns to call every pixel the object.

Ground truth is never read here.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.temporal import FlowCache, TargetConfig, consistent, fused_probs_and_flows
from utils.camera_motion import homography_residual

_log = logging.getLogger(__name__)

IGNORE = 255  # label value of pixels that give no loss


def hard_labels(prob: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """uint8 labels: 1 above ``hi``, 0 below ``lo``, ``IGNORE`` between."""
    out = torch.full(prob.shape, IGNORE, dtype=torch.uint8)
    out[prob > hi] = 1
    out[prob < lo] = 0
    return out


def background_residual(flow: torch.Tensor, fit: torch.Tensor, stride: int = 4, min_points: int = 50,
                        ransac_px: float = 1.0) -> torch.Tensor | None:
    """``H x W``: how far each pixel's flow (``2 x H x W``, pixels) departs from the homography
    that RANSAC fits to the flow at ``fit`` (``H x W`` bool, sampled every ``stride`` pixels);
    None when fewer than ``min_points`` samples or no fit (:func:`utils.camera_motion.homography_residual`)."""
    res = homography_residual(flow.float().numpy(), fit.numpy(), stride, min_points, ransac_px)
    if res is None:
        return None
    dist = np.hypot(res[0], res[1])
    return torch.from_numpy(np.nan_to_num(dist, nan=0.0, posinf=0.0).astype(np.float32))


def motion_veto(labels: torch.Tensor, flows: dict[tuple[int, int], torch.Tensor], rel: float,
                floor: float = 0.3, max_share: float = 0.2, alpha: float = 0.01,
                beta: float = 0.5, checks: dict[tuple[int, int], torch.Tensor] | None = None) -> torch.Tensor:
    """``labels`` (``T x 1 x H x W`` uint8) with the background labels that move on their own
    set to ``IGNORE`` (module docstring, step 4). A pixel's motion is its mean departure from
    the background's homography over the neighbours ``t +- 1`` where the forward-backward check
    passes; it is vetoed above ``max(floor, rel * median over the object labels)``.
    ``checks``: :func:`pair_consistency` of ``flows``, when the caller has it already."""
    out = labels.clone()
    vetoed, guarded, dropped = 0, 0, 0
    for t in range(len(labels)):
        lab = labels[t, 0]
        bg, obj = lab == 0, lab == 1
        total, count = torch.zeros(lab.shape), torch.zeros(lab.shape)
        for n in (t - 1, t + 1):
            if (t, n) not in flows:
                continue
            ok = checks[(t, n)] if checks is not None else consistent(flows[(t, n)], flows[(n, t)], alpha, beta)
            res = background_residual(flows[(t, n)], bg & ok)
            if res is not None:
                total += ok * res
                count += ok
        if not count.any() or not obj.any():
            continue
        motion = total / count.clamp_min(1)  # no evidence: 0, the label stays
        moving = bg & (motion > max(floor, rel * float(motion[obj].median())))
        if moving.sum() <= max_share * bg.sum():
            out[t, 0][moving] = IGNORE
            vetoed, dropped = vetoed + bool(moving.any()), dropped + int(moving.sum())
        else:
            guarded += 1
    _log.info("motion veto: %.2f%% of the background labels dropped, in %d of %d frames (%d frames keep all: "
              "over %.0f%% would go)", 100 * dropped / max(int((labels == 0).sum()), 1), vetoed, len(labels),
              guarded, 100 * max_share)
    return out


def label_cover(prob: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame (``T x 1 x H x W``): the fraction of the teacher's mask (``prob > 0.5``) that
    carries object labels, and of the rest that carries background labels (0 where a side is empty)."""
    obj = (prob > 0.5).flatten(1)
    n_obj = obj.sum(1).float()
    n_rest = obj.shape[1] - n_obj
    fg = (labels == 1).flatten(1).sum(1).float()
    bg = (labels == 0).flatten(1).sum(1).float()
    return (torch.where(n_obj > 0, fg / n_obj.clamp_min(1), torch.zeros_like(fg)),
            torch.where(n_rest > 0, bg / n_rest.clamp_min(1), torch.zeros_like(bg)))


def in_band(prob: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """The pixels whose probability lies between the thresholds (``lo <= p <= hi``), where
    :func:`hard_labels` gives no label."""
    return (prob >= lo) & (prob <= hi)


def band_share(prob: torch.Tensor, lo: float, hi: float) -> float:
    """The share of a video's pixels :func:`in_band`: how unsure the teacher is. A confident
    model leaves few pixels there, a less confident one many (the shares measured per model are
    in benchmarks/RESULTS.md, "The band between the thresholds")."""
    return float(in_band(prob, lo, hi).float().mean())


def auto_band_weight(share: float, share_range: Sequence[float]) -> float:
    """``--band_weight auto``: 0 for a video whose :func:`band_share` is at most ``share_range[0]``,
    1 from ``share_range[1]`` on, linear between. A confident teacher's band holds what the student
    should resolve on its own; an unsure one's holds the boundaries, which it must be held to."""
    lo, hi = share_range
    return min(max((share - lo) / (hi - lo), 0.0), 1.0)


def masked_seg_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float = 1.0, iou_weight: float = 1.0,
                    soft: torch.Tensor | None = None, band: torch.Tensor | None = None,
                    band_weight: float | torch.Tensor = 0.0) -> torch.Tensor:
    """BCE + ``iou_weight`` x soft IoU over the labelled pixels only (``labels`` uint8 with ``IGNORE``);
    with ``band_weight`` > 0, + ``band_weight`` x the mean BCE against the teacher's probability
    ``soft`` over the pixels of ``band`` (bool, the unlabelled band between the thresholds).
    ``band_weight`` may be one weight per sample (a tensor of ``B``): each sample's band pixels
    weigh that much, and the sum is still divided by the number of band pixels."""
    valid = (labels != IGNORE).float()
    target = (labels == 1).float()
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=valid, reduction="sum") / valid.sum().clamp_min(1)
    p = logits.sigmoid() * valid
    inter = (p * target).flatten(1).sum(1)
    union = (p + target - p * target).flatten(1).sum(1)
    loss = bce + iou_weight * (1 - (inter + eps) / (union + eps)).mean()
    bw = torch.as_tensor(band_weight, dtype=torch.float32, device=logits.device)
    if soft is not None and band is not None and bool((bw > 0).any()):
        w = band.float()
        if bw.dim():  # one weight per sample
            bw = bw.view(-1, *[1] * (logits.dim() - 1))
        loss = loss + F.binary_cross_entropy_with_logits(
            logits, soft.float(), weight=bw * w, reduction="sum") / w.sum().clamp_min(1)
    return loss


def build_targets(model: torch.nn.Module, data, indices: Sequence[int], test_hw: Sequence[int], cfg: TargetConfig,
                  device: torch.device, batch_size: int = 4, workers: int = 0, amp: bool = False,
                  amp_dtype: str = "bf16", flow_cache: FlowCache | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One video's targets: (fused probability ``T x 1 x H x W``, hard labels uint8 with ``IGNORE``).
    ``flow_cache``: flows kept from (and for) another pass over the same frames."""
    prob, flows, checks = fused_probs_and_flows(model, data, indices, test_hw, cfg, device, batch_size, workers,
                                                amp, amp_dtype, flow_cache)
    labels = hard_labels(prob, cfg.lo, cfg.hi)
    if cfg.motion_veto > 0:
        labels = motion_veto(labels, flows, cfg.motion_veto, cfg.motion_floor, cfg.motion_max_share,
                             cfg.fb_alpha, cfg.fb_beta, checks)
    return prob, labels
