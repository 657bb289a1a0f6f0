"""The network's probabilities over views of a frame: mirrored (flip TTA) and at several input sizes."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from utils.flow import hflip_flow_image
from utils.misc import autocast


def hflip_logits(model: torch.nn.Module, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Logits of the mirrored frame, mapped back to the frame's orientation.

    The flow image is mirrored with its vectors (a flipped frame moves the other way).
    """
    return model(image.flip(-1), hflip_flow_image(flow))["logits"].flip(-1)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, image: torch.Tensor, flow: torch.Tensor, flip: bool = False,
                  amp: bool = False, amp_dtype: str = "bf16") -> torch.Tensor:
    """Foreground probabilities ``B x 1 x H x W``; ``flip`` averages with the mirrored pass."""
    with autocast(image.device, amp, amp_dtype):
        prob = model(image, flow)["logits"].float().sigmoid()
        if flip:
            fl = hflip_logits(model, image, flow).float().sigmoid()
            prob = (prob + fl) / 2
    return prob


def rescaled_size(hw: Sequence[int], factor: float, multiple: int = 32) -> tuple[int, int]:
    """``hw * factor`` rounded to the nearest multiple the network takes without padding."""
    return tuple(max(multiple, int(round(s * factor / multiple)) * multiple) for s in hw)


@torch.no_grad()
def view_probs(model: torch.nn.Module, views: Sequence[tuple[torch.Tensor, torch.Tensor]], out_hw: Sequence[int],
               flip: bool, amp: bool = False, amp_dtype: str = "bf16") -> torch.Tensor:
    """Mean foreground probability ``B x 1 x H x W`` (``out_hw``) over ``views``, a list of
    ``(image, flow)`` batches of one set of frames at different sizes; ``flip`` adds each mirrored."""
    total, n = None, 0
    for image, flow in views:
        with autocast(image.device, amp, amp_dtype):
            logits = [model(image, flow)["logits"]]
            if flip:
                logits.append(hflip_logits(model, image, flow))
        for lg in logits:
            p = lg.float().sigmoid()
            if tuple(p.shape[-2:]) != tuple(out_hw):
                p = F.interpolate(p, size=tuple(out_hw), mode="bilinear", align_corners=False)
            total = p if total is None else total + p
            n += 1
    return total / n


class ViewSet(torch.utils.data.Dataset):
    """Items of a ``FrameDataset`` at several sizes (see ``FrameDataset.views``)."""

    def __init__(self, data, indices: Sequence[int], sizes: list[tuple[int, int]]):
        self.data, self.indices, self.sizes = data, list(indices), sizes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.data.views(self.indices[i], self.sizes)


def scale_sizes(size: Sequence[int], scales: Sequence[float]) -> dict[float, tuple[int, int]]:
    """The input size of each scale, the test size itself (scale 1) first."""
    return {1.0: tuple(size), **{s: rescaled_size(size, s) for s in scales if s != 1.0}}


def view_sizes(size: Sequence[int], scales: Sequence[float]) -> list[tuple[int, int]]:
    """The input size of each scale, the test size itself first."""
    return list(scale_sizes(size, scales).values())
