"""Frames as the network takes them: shared by the pipelines and the int8 calibration."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch


def to_network_batch(rgbs: Sequence[np.ndarray], size_hw: tuple[int, int], device: torch.device,
                     channels_last: bool = False) -> torch.Tensor:
    """RGB ``uint8`` frames -> float ``B x 3 x H x W`` in [0, 1] at ``size_hw``.

    Bilinear resizing and scaling as the test dataset does (``datasets.transforms``), so
    both pipelines feed the network the same values for the same frames.
    """
    h, w = size_hw
    arr = np.stack([r if r.shape[:2] == (h, w) else cv2.resize(r, (w, h), interpolation=cv2.INTER_LINEAR)
                    for r in rgbs])
    x = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
