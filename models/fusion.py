"""Fusion of appearance (RGB) and motion (flow) features at one scale."""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MotionAppearanceFusion(nn.Module):
    """Fuse ``a`` (appearance) and ``m`` (motion) of equal size into ``out_ch`` channels.

    Motion gates appearance (moving regions are the likely primary object) and the
    product term lets the network find where both streams agree; a residual path keeps
    appearance alone usable when flow is unreliable (static camera-following shots).
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(in_ch, in_ch, 1), nn.Sigmoid())
        self.proj = conv_bn_relu(3 * in_ch, out_ch, 1)

    def forward(self, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        gated = a * self.gate(m)  # B x C x h x w
        return self.proj(torch.cat([a + gated, m, a * m], 1))  # B x out_ch x h x w
