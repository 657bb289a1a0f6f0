"""Inference: probabilities with optional flip TTA, and the one mask writer of the project."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from datasets import FrameDataset, collate_frames, write_mask, write_probability
from utils.distributed import DistInfo, shard_indices
from utils.flow import hflip_flow_image
from utils.misc import autocast

_log = logging.getLogger(__name__)


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


class MaskWriter:
    """Writes ``<save_dir>/<dataset>/<video>/<frame>.png`` (0/255) and optional probability maps.

    Every file is written atomically (:func:`utils.io.atomic_write`): a killed run leaves only
    hidden ``.<frame>.png.part`` files, never a half-written PNG under a frame's name.
    ``per_dataset=False`` leaves out the ``<dataset>`` level (one user video, see engine/video.py).
    """

    def __init__(self, save_dir: str | Path, prob_dir: str | Path | None = None, threshold: float = 0.5,
                 per_dataset: bool = True):
        self.save_dir, self.threshold, self.per_dataset = Path(save_dir), threshold, per_dataset
        self.prob_dir = Path(prob_dir) if prob_dir else None

    def write(self, dataset: str, video: str, frame: str, prob: np.ndarray) -> None:
        """``prob``: ``H x W`` in [0, 1] at the frame's original size."""
        rel = Path(dataset, video) if self.per_dataset else Path(video)
        write_mask(self.save_dir / rel / f"{frame}.png", prob >= self.threshold)
        if self.prob_dir is not None:
            write_probability(self.prob_dir / rel / f"{frame}.png", prob)


def to_original_size(prob: torch.Tensor, sizes: torch.Tensor) -> Iterator[np.ndarray]:
    """Resize each ``1 x h x w`` probability map to its frame's original ``(H, W)``."""
    for p, (h, w) in zip(prob, sizes.tolist()):
        if tuple(p.shape[-2:]) != (h, w):
            p = F.interpolate(p[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        yield p[0].cpu().numpy()


def frame_loader(dataset: FrameDataset, info: DistInfo, batch_size: int, workers: int,
                 indices: list[int] | None = None, shard: bool = True) -> DataLoader:
    """Loader over ``indices`` in order; with ``shard``, this rank's share only (no padding)."""
    indices = list(range(len(dataset))) if indices is None else indices
    if shard:
        indices = [indices[i] for i in shard_indices(len(indices), info)]
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=collate_frames, pin_memory=info.device.type == "cuda")


def write_predictions(model: torch.nn.Module, loader: Iterable[dict], writer: MaskWriter, device: torch.device,
                      flip: bool = False, amp: bool = False, amp_dtype: str = "bf16") -> int:
    """Predict every batch of ``loader`` with ``model`` in eval mode and write the masks."""
    model.eval()
    n = 0
    for batch in loader:
        prob = predict_probs(model, batch["image"].to(device), batch["flow"].to(device), flip, amp, amp_dtype)
        for p, ds, vid, fr in zip(to_original_size(prob, batch["orig_size"]), batch["dataset"], batch["video"],
                                  batch["frame"]):
            writer.write(ds, vid, fr, p)
            n += 1
    return n


def run_inference(model: torch.nn.Module, dataset: FrameDataset, writer: MaskWriter, info: DistInfo,
                  batch_size: int = 4, workers: int = 2, flip: bool = False, amp: bool = False,
                  amp_dtype: str = "bf16", desc: str = "inference") -> int:
    """Predict every frame of ``dataset`` (this rank's share) and write masks; returns the count."""
    loader = frame_loader(dataset, info, batch_size, workers)
    bar = tqdm(loader, desc=desc, disable=not info.is_main, dynamic_ncols=True)
    return write_predictions(model, bar, writer, info.device, flip, amp, amp_dtype)
