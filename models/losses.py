"""Losses. Everything takes logits: sigmoid is applied inside, in a numerically safe way."""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

# Smoothing of the soft IoU loss (``--iou_smooth``). Ours adds 1 to intersection and union, so a
# frame whose target is empty still pulls its prediction towards empty; unsmoothed (the authors',
# 0) such a frame has IoU 0 whatever is predicted: a constant loss of 1 without gradient.
IOU_SMOOTH = 1.0


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = IOU_SMOOTH) -> torch.Tensor:
    """1 - soft IoU per sample, averaged; ``target`` may be soft (pseudo-masks).

    ``eps`` is added to intersection and union (smoothing); ``eps=0`` is the unsmoothed
    ratio of the authors' code, where a sample whose prediction and target are both exactly
    empty counts as a perfect match instead of 0/0.
    """
    if eps < 0:
        raise ValueError(f"the IoU smoothing term must be >= 0, got {eps}")
    p = logits.float().sigmoid().flatten(1)
    t = target.float().flatten(1)
    inter = (p * t).sum(1)
    union = (p + t - p * t).sum(1)
    if eps > 0:
        iou = (inter + eps) / (union + eps)
    else:
        iou = torch.where(union > 0, inter / union.clamp_min(torch.finfo(union.dtype).tiny), torch.ones_like(union))
    return (1 - iou).mean()


def seg_loss(logits: torch.Tensor, target: torch.Tensor, iou_smooth: float = IOU_SMOOTH) -> torch.Tensor:
    """The segmentation loss of both stages: BCE (with logits) + soft IoU smoothed by ``iou_smooth``."""
    return (F.binary_cross_entropy_with_logits(logits.float(), target.float())
            + soft_iou_loss(logits, target, iou_smooth))


def adversarial_loss(d_logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE of discriminator logits against the all-real (1) or all-fake (0) label."""
    target = torch.full_like(d_logits, 1.0 if real else 0.0, dtype=torch.float32)
    return F.binary_cross_entropy_with_logits(d_logits.float(), target)


@torch.no_grad()
def batch_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hard IoU per sample of thresholded predictions (1 where both are empty)."""
    p = logits.flatten(1) > 0
    t = target.flatten(1) > 0.5
    inter = (p & t).sum(1).float()
    union = (p | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def non_negative(text: str) -> float:
    """argparse type: a float >= 0."""
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_loss_args(group: argparse._ActionsContainer) -> None:
    """``--iou_smooth``: the smoothing term of the soft IoU in :func:`seg_loss` (both stages)."""
    group.add_argument("--iou_smooth", type=non_negative, default=IOU_SMOOTH,
                       help="added to the soft IoU loss's intersection and union (offline loss; online with "
                            "--targets per_step; cached targets keep 1); 0 is the authors' unsmoothed IoU, under "
                            "which a frame with an empty target gives the IoU term no gradient")
