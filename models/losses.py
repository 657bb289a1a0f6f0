"""Losses. Everything takes logits: sigmoid is applied inside, in a numerically safe way."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft IoU per sample, averaged; ``target`` may be soft (pseudo-masks)."""
    p = logits.float().sigmoid().flatten(1)
    t = target.float().flatten(1)
    inter = (p * t).sum(1)
    union = (p + t - p * t).sum(1)
    return (1 - (inter + eps) / (union + eps)).mean()


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The segmentation loss of both stages: BCE (with logits) + soft IoU."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float()) + soft_iou_loss(logits, target)


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
