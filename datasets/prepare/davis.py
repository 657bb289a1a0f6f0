"""DAVIS -> ``DAVIS-2016/{train,val}``.

Accepted downloads (``--src`` is the folder holding ``JPEGImages``, or its parent ``DAVIS/``):

* DAVIS-2016: ``JPEGImages/480p/<seq>/00000.jpg``, ``Annotations/480p/<seq>/00000.png``
  (mode L, 0/255), ``ImageSets/2016/{train,val}.txt`` (or the original
  ``ImageSets/480p/{train,val}.txt`` with path lines);
* DAVIS-2017 trainval: the same folders, annotations are palette PNGs with one index per
  object; ``ImageSets/2016/{train,val}.txt`` selects the DAVIS-2016 sequences.

Masks become the union of all objects (index/value > 0). The split lists may hold one
sequence name per line or the DAVIS-2016 style ``/JPEGImages/480p/<seq>/00000.jpg ...``
lines. Note: DAVIS-2017 re-annotated some DAVIS-2016 sequences with extra objects, so the
union of 2017 objects can differ slightly from the official 2016 masks; use the
DAVIS-2016 download for numbers comparable with published DAVIS-2016 results.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from datasets.prepare.common import (
    IMAGE_EXTS, MASK_EXTS, DatasetLayoutError, VideoJob, filter_videos, list_files, match_labels, name_frames,
    require_dir,
)

logger = logging.getLogger(__name__)

OUT_NAME = "DAVIS-2016"
SPLITS = ("train", "val")


def find_root(src: Path, resolution: str = "480p") -> Path:
    """The DAVIS root under ``src`` (``src`` itself or ``src/DAVIS``)."""
    for cand in (src, src / "DAVIS"):
        if (cand / "JPEGImages" / resolution).is_dir():
            return cand
    expected = (f"JPEGImages/{resolution}/<seq>/*.jpg, Annotations/{resolution}/<seq>/*.png, "
                "ImageSets/2016/{train,val}.txt")
    require_dir(src, "DAVIS", expected)
    raise DatasetLayoutError(f"DAVIS: missing folder {src / 'JPEGImages' / resolution}; "
                             f"{src} is not a DAVIS download (expected {expected})")


def split_list(root: Path, split: str, resolution: str = "480p") -> Path:
    """``ImageSets/2016/<split>.txt`` (DAVIS-2017, tidy 2016 copies) or the original
    DAVIS-2016 ``ImageSets/<resolution>/<split>.txt``; the first when neither exists."""
    for cand in (root / "ImageSets" / "2016" / f"{split}.txt", root / "ImageSets" / resolution / f"{split}.txt"):
        if cand.is_file():
            return cand
    return root / "ImageSets" / "2016" / f"{split}.txt"


def read_split(path: Path) -> list[str]:
    """Sequence names of a DAVIS split list (plain names or DAVIS-2016 path lines)."""
    if not path.is_file():
        raise DatasetLayoutError(f"DAVIS: missing split list {path}; expected ImageSets/2016/train.txt and val.txt")
    names: list[str] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        # "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png" -> "bear"
        name = line.split()[0].strip("/").split("/")[2] if line.startswith("/") else line.split()[0]
        if name not in names:
            names.append(name)
    return names


def collect_jobs(src: str | Path, videos: Sequence[str] | None = None, resolution: str = "480p",
                 splits: Sequence[str] = SPLITS, warnings: list[str] | None = None) -> list[VideoJob]:
    """One job per DAVIS-2016 sequence of ``splits`` (optionally only ``videos``)."""
    warnings = [] if warnings is None else warnings
    root = find_root(Path(src), resolution)
    img_root = root / "JPEGImages" / resolution
    ann_root = require_dir(root / "Annotations" / resolution, "DAVIS", f"Annotations/{resolution}/<seq>/*.png")
    split_names = {s: read_split(split_list(root, s, resolution)) for s in splits}
    if videos is not None:
        filter_videos([n for names in split_names.values() for n in names], videos, root / "ImageSets")
    jobs = []
    for split, names in split_names.items():
        for seq in names:
            if videos is not None and seq not in videos:
                continue
            seq_dir = img_root / seq
            if not seq_dir.is_dir():
                # A partial copy (e.g. half of val) is legitimate; say so rather than fail.
                warnings.append(f"DAVIS: sequence {seq} of {split}.txt missing in {img_root}")
                logger.warning(warnings[-1])
                continue
            frames = name_frames(list_files(seq_dir, IMAGE_EXTS))
            if not frames:
                raise DatasetLayoutError(f"DAVIS: no frames in {seq_dir}")
            ann_dir = ann_root / seq
            labels = list_files(ann_dir, MASK_EXTS) if ann_dir.is_dir() else []
            if not labels:
                warnings.append(f"DAVIS: no annotations for {seq} in {ann_dir}")
                logger.warning(warnings[-1])
            specs = match_labels(frames, labels, seq, f"DAVIS/{seq}", warnings)
            jobs.append(VideoJob(OUT_NAME, split, seq, specs, background="index0"))
    return jobs
