"""Frame-level datasets for the three modes: labeled, unlabeled, test."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.index import Video, check_sizes, labeled_frames, scan_split
from datasets.io import read_flow, read_image, read_mask
from datasets.transforms import TrainAugment, resize_pair, to_tensor

_log = logging.getLogger(__name__)


class FrameDataset(Dataset):
    """Frames of one or more ``<dataset>/<split>`` folders.

    ``mode``:
      * ``labeled``: annotated frames only (YouTube-VOS keeps every ``youtube_stride``-th),
        augmented, returns ``mask``;
      * ``unlabeled``: every frame, augmented, labels never read;
      * ``test``: every frame in temporal order, resized to ``size`` (None keeps it);
        returns ``mask`` only when ``with_labels`` and a label exists (``has_mask``).
    Samples are dicts of tensors and metadata (``dataset``, ``video``, ``frame``,
    ``orig_size``); images and flow images are float ``3 x H x W`` in [0, 1].

    A frame, flow image or label that cannot be read raises ``OSError`` naming the file,
    unless ``skip_bad``: then every sample carries ``skipped``, a list of ``(file, error)``
    it stepped over. Training modes use the next readable index instead (deterministic);
    test mode returns a ``dropped`` sample that :func:`collate_frames` leaves out, so no
    frame is scored twice.
    """

    MAX_SKIPS = 20  # consecutive unreadable samples before giving up: a broken folder, not a bad file

    def __init__(self, data_dir: str | Path, datasets: list[str], mode: str, split: str | None = None,
                 size: tuple[int, int] | None = (384, 640), youtube_stride: int = 10,
                 augment: TrainAugment | None = None, with_labels: bool = True, seed: int = 0,
                 videos: list[str] | None = None, skip_bad: bool = False):
        if mode not in ("labeled", "unlabeled", "test"):
            raise ValueError(f"mode must be labeled|unlabeled|test, got {mode!r}")
        self.mode, self.size, self.seed, self.skip_bad = mode, (tuple(size) if size else None), seed, skip_bad
        split = split or {"labeled": "train", "unlabeled": "val", "test": "val"}[mode]
        read_labels = mode == "labeled" or (mode == "test" and with_labels)
        self.augment = augment if augment is not None else (TrainAugment(self.size) if mode != "test" else None)
        self.videos: list[Video] = []
        self.items: list[tuple[int, str]] = []
        for name in datasets:
            vids = scan_split(data_dir, name, split, need_labels=mode == "labeled", read_labels=read_labels,
                              videos=videos)
            for v in vids:
                if mode == "labeled":
                    frames = labeled_frames(v, youtube_stride if name.startswith("YouTubeVOS") else 1)
                else:
                    frames = v.frames
                self.items += [(len(self.videos), f) for f in frames]
                self.videos.append(v)
        if not self.items:
            raise ValueError(f"no {mode} frames found in {data_dir} for {datasets} ({split})")
        self.epoch = 0
        _log.info("%s set: %d frames from %d videos of %s/%s", mode, len(self.items), len(self.videos), datasets, split)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Make augmentation draws depend on the epoch (with persistent workers too)."""
        self.epoch = epoch

    def set_train_size(self, size: tuple[int, int]) -> None:
        """Crop training samples (labeled, unlabeled) at ``size`` (H, W) from now on.

        Set it before a loader iterates: workers copy the dataset when they start, so persistent
        workers would keep the size they started with.
        """
        if self.mode == "test":
            raise ValueError("set_train_size: test samples are resized to the dataset's size, not cropped")
        self.size = self.augment.out_hw = (int(size[0]), int(size[1]))

    def _read(self, index: int) -> tuple[Video, str, np.ndarray, np.ndarray, np.ndarray | None]:
        """(video, frame, image, flow, mask or None) of one item.

        Raises ``OSError`` naming an unreadable file, ``ValueError`` naming files of unequal sizes.
        """
        vid_idx, frame = self.items[index]
        video = self.videos[vid_idx]
        image = read_image(video.image_paths[frame])
        flow = read_flow(video.flow_paths[frame])
        mask = read_mask(video.label_paths[frame]) if frame in video.label_paths else None
        check_sizes(video, frame, image, flow, *([mask] if mask is not None else []))  # ValueError
        return video, frame, image, flow, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.skip_bad:
            return self._sample(index, *self._read(index))
        skipped: list[tuple[str, str]] = []
        for k in range(min(self.MAX_SKIPS, len(self.items))):
            alt = (index + k) % len(self.items)
            try:
                read = self._read(alt)
            except (OSError, ValueError) as e:  # a file of the wrong size is as unusable as a broken one
                skipped.append((_failed_file(self, alt, e), str(e)))
                if self.mode == "test":  # never score another frame in its place
                    return {"dropped": True, "skipped": skipped}
                continue
            sample = self._sample(index, *read)  # the original index's augmentation draws
            sample["skipped"] = skipped
            return sample
        raise OSError(f"{len(skipped)} consecutive unreadable samples from index {index} on, last: "
                      f"{skipped[-1][1]}; is the data folder damaged?")

    def _sample(self, index: int, video: Video, frame: str, image: np.ndarray, flow: np.ndarray,
                mask: np.ndarray | None) -> dict[str, Any]:
        sample: dict[str, Any] = {"dataset": video.dataset, "video": video.name, "frame": frame,
                                  "orig_size": torch.tensor(image.shape[:2])}
        if self.mode == "test":
            image, flow = resize_pair(image, flow, self.size)
            if mask is not None:
                sample["mask"] = torch.from_numpy(mask)[None].float()  # original size
            sample["has_mask"] = mask is not None
        else:
            # Seeded per (seed, epoch, index): runs are reproducible whatever the worker layout.
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, flow, mask = self.augment(image, flow, mask if self.mode == "labeled" else None, rng)
            if mask is not None:
                sample["mask"] = torch.from_numpy(mask)[None].float()
        sample["image"], sample["flow"] = to_tensor(image), to_tensor(flow)
        return sample

    def views(self, index: int, sizes: list[tuple[int, int]]) -> dict[str, Any]:
        """Item ``index``'s frame and flow image resized from the original to each of ``sizes``
        (as test mode resizes): ``views`` (list of ``(image, flow)`` tensors), ``rgb`` (the frame
        as ``H x W x 3`` uint8 at ``sizes[0]``), ``orig_size`` and ``index``."""
        _, _, image, flow, _ = self._read(index)
        resized = [resize_pair(image, flow, s) for s in sizes]
        return {"views": [(to_tensor(i), to_tensor(f)) for i, f in resized], "rgb": resized[0][0],
                "orig_size": torch.tensor(image.shape[:2]), "index": index}

    def video_items(self) -> dict[tuple[str, str], list[int]]:
        """Indices of each (dataset, video) in temporal order."""
        out: dict[tuple[str, str], list[int]] = {}
        for i, (v, _) in enumerate(self.items):
            out.setdefault((self.videos[v].dataset, self.videos[v].name), []).append(i)
        return out


def _failed_file(ds: FrameDataset, index: int, err: Exception) -> str:
    """The file of item ``index`` that ``err`` names (the frame's image when none is named)."""
    vid_idx, frame = ds.items[index]
    video = ds.videos[vid_idx]
    paths = [video.image_paths[frame], video.flow_paths[frame]]
    if frame in video.label_paths:
        paths.append(video.label_paths[frame])
    msg = str(err)
    return str(next((p for p in paths if str(p) in msg), paths[0]))


def collate_frames(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images/flows (and masks when every sample has one of equal size); list the rest.

    Test-time masks keep each frame's original size, so they stay a list. With
    ``FrameDataset(skip_bad=True)`` samples, ``dropped`` ones are left out and ``skipped``
    is the batch's list of ``(file, error)``; the batch holds only ``skipped`` when all were dropped.
    """
    skipping = any("skipped" in b for b in batch)
    skipped = [x for b in batch for x in b.get("skipped", ())]
    batch = [b for b in batch if not b.get("dropped")]
    out: dict[str, Any] = {}
    for key in (batch[0] if batch else ()):
        if key == "skipped":
            continue
        vals = [b.get(key) for b in batch]
        if all(isinstance(v, torch.Tensor) for v in vals) and len({tuple(v.shape) for v in vals}) == 1:
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    if skipping:
        out["skipped"] = skipped
    return out
