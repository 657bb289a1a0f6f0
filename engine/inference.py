"""Inference: probabilities with optional flip TTA, and the one mask writer of the project."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from datasets import FrameDataset, collate_frames, write_mask, write_probability
from engine.temporal import FlowCache, TargetConfig, fused_video_probs
from engine.views import ViewSet, predict_probs, view_probs, view_sizes
from utils.distributed import DistInfo, shard_indices
from utils.paths import mask_path

_log = logging.getLogger(__name__)


def write_view_predictions(model: torch.nn.Module, data: FrameDataset, indices: Sequence[int], writer: "MaskWriter",
                           device: torch.device, size: Sequence[int], scales: Sequence[float], flip: bool,
                           batch_size: int = 4, workers: int = 0, amp: bool = False, amp_dtype: str = "bf16",
                           progress: bool = False) -> int:
    """Masks of ``indices`` from the mean probability over input sizes ``size * scale``, each
    resized from the original frame (with flip: mirrored too), at the frame's original size."""
    model.eval()
    loader = DataLoader(ViewSet(data, indices, view_sizes(size, scales)), batch_size=batch_size, num_workers=workers)
    n = 0
    for batch in tqdm(loader, desc="inference", disable=not progress, dynamic_ncols=True):
        prob = view_probs(model, [(im.to(device), fl.to(device)) for im, fl in batch["views"]], size, flip, amp,
                          amp_dtype)
        for p, i in zip(to_original_size(prob, batch["orig_size"]), batch["index"].tolist()):
            vid_idx, frame = data.items[i]
            writer.write(data.videos[vid_idx].dataset, data.videos[vid_idx].name, frame, p)
            n += 1
    return n


def rank_videos(data: FrameDataset, info: DistInfo) -> list[tuple[int, tuple[str, str], list[int]]]:
    """This rank's whole videos as ``(global index, (dataset, video), frame indices in temporal
    order)``: work that needs a video's neighbouring frames (temporal fusion, per-video tuning)
    is split across ranks by video, never by frame. The global index (the video's place in the
    sorted set) does not depend on the number of ranks, so per-video seeds keyed on it do not either."""
    videos = sorted(data.video_items().items())
    return [(v, *videos[v]) for v in shard_indices(len(videos), info)]


def write_temporal_predictions(model: torch.nn.Module, data: FrameDataset, writer: "MaskWriter", info: DistInfo,
                               size: Sequence[int], scales: Sequence[float], flip: bool, temporal: Sequence[int],
                               batch_size: int = 4, workers: int = 0, amp: bool = False, amp_dtype: str = "bf16") -> int:
    """Masks whose probability is fused over time (:func:`write_fused_video`, per video). Whole
    videos go to each rank."""
    n = 0
    mine = rank_videos(data, info)
    for _, _, indices in tqdm(mine, desc="inference (temporal)", disable=not info.is_main, dynamic_ncols=True):
        n += write_fused_video(model, data, indices, writer, size, scales, flip, temporal, info.device, batch_size,
                               workers, amp, amp_dtype)
    return n


def write_fused_video(model: torch.nn.Module, data: FrameDataset, indices: Sequence[int], writer: "MaskWriter",
                      size: Sequence[int], scales: Sequence[float], flip: bool, temporal: Sequence[int],
                      device: torch.device, batch_size: int = 4, workers: int = 0, amp: bool = False,
                      amp_dtype: str = "bf16", flow_cache: FlowCache | None = None) -> int:
    """Masks of one video (``indices`` in temporal order) whose probability is fused over time:
    each frame's (mean over ``scales`` and ``flip``) averaged with its neighbours' ``t +- k``
    (``k`` in ``temporal``), warped in with DIS flow where a forward-backward check passes
    (:mod:`engine.temporal`, the online stage's target machinery without its thresholds).
    ``flow_cache``: flows of this video kept from an earlier pass (the online stage's targets),
    which are then not computed again."""
    from PIL import Image

    cfg = TargetConfig(scales=tuple(scales), flip=flip, temporal=tuple(temporal))
    prob = fused_video_probs(model, data, indices, size, cfg, device, batch_size, workers, amp, amp_dtype, flow_cache)
    for p, i in zip(prob, indices):
        vid, frame = data.videos[data.items[i][0]], data.items[i][1]
        with Image.open(vid.image_paths[frame]) as im:  # the header only: the original size
            w, h = im.size
        writer.write(vid.dataset, vid.name, frame, next(to_original_size(p[None], torch.tensor([[h, w]]))))
    return len(indices)


class MaskWriter:
    """Writes ``<save_dir>/<dataset>/<video>/<frame>.png`` (0/255) and optional probability maps.

    Every file is written atomically (:func:`utils.io.atomic_write`): a killed run leaves only
    hidden ``.<frame>.png.part`` files, never a half-written PNG under a frame's name.
    ``per_dataset=False`` leaves out the ``<dataset>`` level (one user video: the segment_video tool).
    """

    def __init__(self, save_dir: str | Path, prob_dir: str | Path | None = None, threshold: float = 0.5,
                 per_dataset: bool = True):
        self.save_dir, self.threshold, self.per_dataset = Path(save_dir), threshold, per_dataset
        self.prob_dir = Path(prob_dir) if prob_dir else None

    @classmethod
    def for_options(cls, save_dir: str | Path, save_prob: bool, prob_dir: str | Path | None = None) -> "MaskWriter":
        """The writer of test.py and the online stage: probability maps (with ``save_prob``) in
        ``prob_dir``, by default ``<save_dir>_prob``."""
        if save_prob and prob_dir is None:
            prob_dir = f"{str(save_dir).rstrip('/')}_prob"
        return cls(save_dir, prob_dir if save_prob else None)

    def relative(self, dataset: str, video: str, frame: str) -> Path:
        """Where a frame's mask goes under either root: the one mask-path rule."""
        return mask_path(Path(), video, frame, dataset if self.per_dataset else None)

    def write(self, dataset: str, video: str, frame: str, prob: np.ndarray) -> None:
        """``prob``: ``H x W`` in [0, 1] at the frame's original size."""
        rel = self.relative(dataset, video, frame)
        write_mask(self.save_dir / rel, prob >= self.threshold)
        if self.prob_dir is not None:
            write_probability(self.prob_dir / rel, prob)


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
                  amp_dtype: str = "bf16", desc: str = "inference", scales: Sequence[float] = (1.0,),
                  temporal: Sequence[int] = ()) -> int:
    """Predict every frame of ``dataset`` (this rank's share) and write masks; returns the count.
    ``scales`` other than ``(1.0,)`` average the views at those multiples of the dataset's size;
    ``temporal`` offsets fuse each frame with its flow-warped neighbours."""
    if tuple(temporal):
        return write_temporal_predictions(model, dataset, writer, info, dataset.size, scales, flip, temporal,
                                          batch_size, workers, amp, amp_dtype)
    if tuple(scales) != (1.0,):
        mine = shard_indices(len(dataset), info)
        return write_view_predictions(model, dataset, mine, writer, info.device, dataset.size, scales, flip,
                                      batch_size, workers, amp, amp_dtype, progress=info.is_main)
    loader = frame_loader(dataset, info, batch_size, workers)
    bar = tqdm(loader, desc=desc, disable=not info.is_main, dynamic_ncols=True)
    return write_predictions(model, bar, writer, info.device, flip, amp, amp_dtype)
