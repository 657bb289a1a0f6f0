"""Top-down decoder with skip connections from every fused scale."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.fusion import conv_bn_relu

HEADS = ("relu", "linear")


class RefineBlock(nn.Module):
    """Upsample the coarser map, add the skip, refine with a depthwise-separable conv."""

    def __init__(self, coarse_ch: int, skip_ch: int, out_ch: int):
        super().__init__()
        self.reduce = conv_bn_relu(coarse_ch + skip_ch, out_ch, 1)
        self.refine = nn.Sequential(conv_bn_relu(out_ch, out_ch, 3, groups=out_ch), conv_bn_relu(out_ch, out_ch, 1))

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.reduce(torch.cat([up, skip], 1))
        return x + self.refine(x)


class Decoder(nn.Module):
    """Decode fused features (finest first) into one-channel logits at the finest scale."""

    def __init__(self, channels: list[int], head: str = "relu"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown decoder head {head!r}; choose from {HEADS}")
        # channels[i] is the width of fused level i; the deepest level seeds the top-down path.
        self.context = nn.Sequential(conv_bn_relu(channels[-1], channels[-1], 3, groups=channels[-1]),
                                     conv_bn_relu(channels[-1], channels[-1], 1))
        self.blocks = nn.ModuleList(
            RefineBlock(channels[i + 1], channels[i], channels[i]) for i in reversed(range(len(channels) - 1)))
        # "relu": a ReLU feeds the last 1x1 conv, so the logit is at most its bias once all of that
        # conv's weights turn negative (seen in trained models: the foreground probability then
        # stops at sigmoid(bias) and foreground pixels give no gradient). "linear" drops that ReLU;
        # both have the same parameters, so either loads the other's weights.
        dw = conv_bn_relu(channels[0], channels[0], 3, groups=channels[0])
        self.head = nn.Sequential(dw if head == "relu" else dw[:2], nn.Conv2d(channels[0], 1, 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1] + self.context(feats[-1])
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            x = block(x, skip)
        return self.head(x)  # B x 1 x h0 x w0 at the finest feature stride
