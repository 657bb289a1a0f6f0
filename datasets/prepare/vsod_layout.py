"""Sequence-folder layouts of the video salient object detection (VSOD) benchmarks.

DAVSOD, ViSal and MCL are distributed as one folder per sequence holding a frame folder and a
ground-truth folder, under different names depending on the release:

* DAVSOD release (2021 archives): ``<seq>/Imgs/`` and ``<seq>/GT_object_level/`` (plus
  ``GT_instance_level``, ``Fixation_maps``, ... which are ignored);
* the DAVSOD benchmark's unified copies of the older sets (and its ``Datasets/DAVSOD``):
  ``<seq>/Imgs/<seq>_00000.jpg`` and ``<seq>/ground-truth/<seq>_00000.png``;
* "per-kind" copies: ``Imgs/<seq>/`` next to ``ground-truth/<seq>/`` (DAVIS style).

This module finds those folders and turns them into :class:`VideoJob` lists; the dataset
modules (:mod:`datasets.prepare.davsod`, :mod:`datasets.prepare.visal`) only locate the root.
Folder names are matched case-insensitively. Ground truth may be sparse (ViSal, MCL): frames
without a mask file simply get no label.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from datasets.prepare.common import (
    IMAGE_EXTS, MASK_EXTS, DatasetLayoutError, VideoJob, filter_videos, list_dirs, list_files, match_labels,
    name_frames,
)

logger = logging.getLogger(__name__)

IMAGE_DIRS = ("Imgs", "Img", "images", "JPEGImages", "frames")
# Object-level masks first: DAVSOD also ships GT_instance_level, which must not be picked.
GT_DIRS = ("GT_object_level", "ground-truth", "groundtruth", "GT", "gt", "labels", "Annotations", "masks")
_KIND_NAMES = {n.lower() for n in IMAGE_DIRS + GT_DIRS}


@dataclass
class SequenceFolders:
    """Where one sequence's frames and (optional) ground truth are."""
    name: str
    images: Path
    labels: Path | None


def child_dir(folder: Path, names: Sequence[str]) -> Path | None:
    """The first sub-folder of ``folder`` whose name is one of ``names`` (case-insensitive)."""
    by_lower = {p.name.lower(): p for p in list_dirs(folder)}
    for n in names:
        if n.lower() in by_lower:
            return by_lower[n.lower()]
    return None


def sequence_folders(seq_dir: Path) -> SequenceFolders | None:
    """Frame and ground-truth folders of ``seq_dir``, or None when it holds no frames.

    Frames are in an ``Imgs``-like sub-folder, or directly in ``seq_dir``.
    """
    images = child_dir(seq_dir, IMAGE_DIRS)
    if images is None and list_files(seq_dir, IMAGE_EXTS):
        images = seq_dir
    if images is None:
        return None
    return SequenceFolders(seq_dir.name, images, child_dir(seq_dir, GT_DIRS))


def find_sequences(root: Path) -> list[SequenceFolders]:
    """Sequences of a per-sequence layout ``root/<seq>/{Imgs,<gt>}``; empty if there are none."""
    out = []
    for d in list_dirs(root):
        if d.name.lower() in _KIND_NAMES:  # a per-kind layout's Imgs/ is not a sequence
            continue
        seq = sequence_folders(d)
        if seq is not None:
            out.append(seq)
    return out


def find_sequences_by_kind(root: Path) -> list[SequenceFolders]:
    """Sequences of a per-kind layout ``root/Imgs/<seq>/`` + ``root/<gt>/<seq>/``; empty if none."""
    img_root = child_dir(root, IMAGE_DIRS)
    if img_root is None:
        return []
    gt_root = child_dir(root, GT_DIRS)
    out = []
    for d in list_dirs(img_root):
        if not list_files(d, IMAGE_EXTS):
            continue
        gt = child_dir(gt_root, [d.name]) if gt_root is not None else None
        out.append(SequenceFolders(d.name, d, gt))
    return out


def is_grey_level(path: Path) -> bool:
    """Whether a grey annotation holds values other than 0, 1 and its maximum (anti-aliased edges)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "I", "I;16"):
                return False
            values = np.unique(np.asarray(im))
    except (OSError, ValueError) as e:
        raise DatasetLayoutError(f"cannot read annotation {path}: {e}") from e
    return len(set(values.tolist()) - {0, 1, int(values.max())}) > 0


def build_jobs(dataset: str, seqs: Sequence[SequenceFolders], root: Path, videos: Sequence[str] | None,
               warnings: list[str], expected: str, split: str = "val",
               expected_count: int | None = None) -> list[VideoJob]:
    """One :class:`VideoJob` per sequence (optionally only ``videos``); masks are objects on black.

    Raises :class:`DatasetLayoutError` naming ``root`` when no sequence has frames or none has
    a ground-truth folder (nothing could be scored); sequences without one only warn.
    """
    if not seqs:
        raise DatasetLayoutError(f"{dataset}: no sequence folders with frames under {root} (expected {expected})")
    by_name = {s.name: s for s in seqs}
    if expected_count is not None and videos is None and len(by_name) != expected_count:
        warnings.append(f"{dataset}: {len(by_name)} sequences in {root}, the benchmark has {expected_count}")
        logger.warning(warnings[-1])
    if all(s.labels is None for s in seqs):
        raise DatasetLayoutError(
            f"{dataset}: no ground-truth folder in any sequence under {root}, e.g. {seqs[0].images.parent} "
            f"has none of {'/'.join(GT_DIRS)} (expected {expected})")
    jobs = []
    for name in filter_videos(sorted(by_name), videos, root):
        seq = by_name[name]
        images = list_files(seq.images, IMAGE_EXTS)
        if not images:
            warnings.append(f"{dataset}: no frames in {seq.images}")
            logger.warning(warnings[-1])
            continue
        frames = name_frames(images, prefix=name)
        labels = list_files(seq.labels, MASK_EXTS) if seq.labels is not None else []
        if not labels:
            warnings.append(f"{dataset}: no annotations for {name} ({seq.labels or seq.images.parent})")
            logger.warning(warnings[-1])
        elif labels[0].suffix.lower() not in (".jpg", ".jpeg") and is_grey_level(labels[0]):
            # Values in between are written as foreground (> 0); the DAVSOD toolbox thresholds
            # its ground truth at > 128, so scores could differ slightly on such edges.
            warnings.append(f"{dataset}: annotation {labels[0]} has grey levels; every value > 0 becomes "
                            f"foreground (the DAVSOD toolbox uses > 128)")
            logger.warning(warnings[-1])
        specs = match_labels(frames, labels, name, f"{dataset}/{name}", warnings)
        jobs.append(VideoJob(dataset, split, name, specs, background="black"))
    return jobs
