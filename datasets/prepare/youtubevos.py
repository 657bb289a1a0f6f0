"""YouTube-VOS 2018 train -> ``YouTubeVOS-2018/train``.

Accepted download (``--src`` is the ``train`` folder, or its parent holding ``train/``)::

    train/JPEGImages/<vid>/00000.jpg ...     frames
    train/Annotations/<vid>/00000.png ...    palette PNGs, one index per object, every 5th frame
    train/meta.json                          optional, not needed

The official ``train.zip`` holds only the annotated (every 5th) frames in ``JPEGImages``;
the separate ``train_all_frames.zip`` holds every frame. When a folder
``train_all_frames/JPEGImages`` lies next to ``train/`` (or ``all_frames`` is given) its
frames are used, so that flow is computed between consecutive frames. Labels are written
only for annotated frames (union of objects, index > 0); other frames get no label file
and are therefore not labelled samples.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from datasets.prepare.common import (
    IMAGE_EXTS, MASK_EXTS, DatasetLayoutError, VideoJob, filter_videos, list_dirs, list_files, match_labels,
    name_frames, require_dir,
)

logger = logging.getLogger(__name__)

OUT_NAME = "YouTubeVOS-2018"
EXPECTED = "train/JPEGImages/<vid>/*.jpg and train/Annotations/<vid>/*.png"


def find_root(src: Path) -> Path:
    """The folder holding ``JPEGImages`` and ``Annotations`` (``src`` or ``src/train``)."""
    for cand in (src, src / "train"):
        if (cand / "JPEGImages").is_dir() and (cand / "Annotations").is_dir():
            return cand
    require_dir(src, "YouTube-VOS", EXPECTED)
    missing = src / ("Annotations" if (src / "JPEGImages").is_dir() else "JPEGImages")
    raise DatasetLayoutError(f"YouTube-VOS: missing folder {missing}; {src} is not a YouTube-VOS 2018 "
                             f"train download (expected {EXPECTED})")


def collect_jobs(src: str | Path, videos: Sequence[str] | None = None, all_frames: str | Path | None = None,
                 warnings: list[str] | None = None) -> list[VideoJob]:
    """One job per training video; frames from ``all_frames`` when available."""
    warnings = [] if warnings is None else warnings
    root = find_root(Path(src))
    ann_root = root / "Annotations"
    if all_frames is not None:
        img_root = require_dir(Path(all_frames), "YouTube-VOS all frames", "train_all_frames/JPEGImages/<vid>/*.jpg")
    else:
        cand = root.parent / "train_all_frames" / "JPEGImages"
        img_root = cand if cand.is_dir() else root / "JPEGImages"
    if img_root == root / "JPEGImages":
        logger.info("YouTube-VOS: using %s; if it holds only annotated frames, flow spans 5 frames "
                    "(put train_all_frames/ next to train/ for all frames)", img_root)
    else:
        logger.info("YouTube-VOS: frames from %s", img_root)
    names = filter_videos([d.name for d in list_dirs(img_root)], videos, img_root)
    if not names:
        raise DatasetLayoutError(f"YouTube-VOS: no video folders in {img_root} (expected {EXPECTED})")
    jobs = []
    for vid in names:
        frames = name_frames(list_files(img_root / vid, IMAGE_EXTS))
        if not frames:
            warnings.append(f"YouTube-VOS: no frames in {img_root / vid}")
            logger.warning(warnings[-1])
            continue
        ann_dir = ann_root / vid
        labels = list_files(ann_dir, MASK_EXTS) if ann_dir.is_dir() else []
        # Match by identical stem only: YouTube-VOS names are frame numbers already, and a
        # number match could pair an annotation with a different (subsampled) frame.
        known = {name for name, _ in frames}
        for lab in labels:
            if lab.stem not in known:
                warnings.append(f"YouTube-VOS/{vid}: annotation {lab.name} matches no frame")
        labels = [lab for lab in labels if lab.stem in known]
        specs = match_labels(frames, labels, "", f"YouTube-VOS/{vid}", warnings)
        jobs.append(VideoJob(OUT_NAME, "train", vid, specs, background="index0"))
    return jobs
