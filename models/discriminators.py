"""Discriminators: feature-level (offline stage) and mask-level (online stage).

Both return raw logits (patch maps); train them with ``BCEWithLogitsLoss``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.GroupNorm(1, cout))  # batch-size-free: discriminators see tiny batches
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class FeatureDiscriminator(nn.Module):
    """Judges whether a feature map comes from a labeled (real) or unlabeled (fake) frame."""

    def __init__(self, in_ch: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(1, width), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)  # B x 1 x h x w logits


class MaskDiscriminator(nn.Module):
    """Judges whether a soft mask is a teacher pseudo-mask (real) or a student mask (fake).

    It is conditioned on the frame so that it judges the mask *for this image*; inputs are
    resized to ``size`` first, which keeps the cost independent of the video resolution.
    """

    def __init__(self, width: int = 32, size: tuple[int, int] = (128, 224), with_image: bool = True):
        super().__init__()
        self.size, self.with_image = size, with_image
        cin = 4 if with_image else 1
        self.net = nn.Sequential(*_down(cin, width, norm=False), *_down(width, 2 * width),
                                 *_down(2 * width, 4 * width), nn.Conv2d(4 * width, 1, 3, padding=1))

    def forward(self, mask: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(mask, size=self.size, mode="bilinear", align_corners=False)
        if self.with_image:
            if image is None:
                raise ValueError("this MaskDiscriminator is conditioned on the image; pass image=")
            x = torch.cat([F.interpolate(image, size=self.size, mode="bilinear", align_corners=False), x], 1)
        return self.net(x)  # B x 1 x h/8 x w/8 logits
