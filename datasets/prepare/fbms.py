"""FBMS-59 -> ``FBMS/val`` (Testset) and optionally the Trainingset.

Accepted download (``--src`` is the folder holding ``Testset/``, or its parent)::

    Testset/<seq>/<seq>_<n>.jpg ...              frames, e.g. cars1_01.jpg, marple2_001.jpg, tennis000.jpg
    Testset/<seq>/GroundTruth/<...><n>_gt.<ext>  sparse annotations, e.g. 001_gt.pgm, cars1_01_gt.ppm, 20_gt.png
    Trainingset/<seq>/...                        same layout (used only with ``trainingset``)

Naming assumptions (documented in docs/data_preparation.md):

* a frame's number is the trailing integer of its file stem after removing the sequence
  name (``cars1_01`` -> 1); frames are renamed to their zero-padded position
  ``00000.jpg, 00001.jpg, ...`` in frame-number order;
* an annotation's number is the trailing integer of its stem after removing ``_gt`` and
  the sequence name (``001_gt`` -> 1, ``cars1_01_gt`` -> 1) and it annotates the frame
  with the *same number* (never shifted); annotations matching no frame are reported;
* annotations are ``.png``, ``.pgm``, ``.ppm``, ``.pbm`` or ``.bmp`` (``.jpg`` is thresholded),
  other files in ``GroundTruth/`` (``*.dat`` region definitions) are ignored;
* objects are the pixels that differ from the background colour. FBMS releases differ
  (objects on black, or coloured/dark objects on white), so the default ``background="auto"``
  takes the most frequent colour on the borders of all annotations of a sequence; pass
  ``"black"`` or ``"white"`` to force it.
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

OUT_NAME = "FBMS"
EXPECTED = "Testset/<seq>/<seq>_<n>.jpg with Testset/<seq>/GroundTruth/*_gt.(png|pgm|ppm)"
GT_DIRS = ("GroundTruth", "groundtruth", "GT")
BACKGROUNDS = ("auto", "black", "white")
TRAININGSET = ("skip", "train", "val")


def find_root(src: Path) -> Path:
    """The folder holding ``Testset`` (``src`` or one of its sub-folders)."""
    require_dir(src, "FBMS", EXPECTED)
    if (src / "Testset").is_dir():
        return src
    for sub in list_dirs(src):
        if (sub / "Testset").is_dir():
            return sub
    raise DatasetLayoutError(f"FBMS: missing folder {src / 'Testset'}; {src} is not an FBMS-59 download "
                             f"(expected {EXPECTED})")


def _gt_dir(seq_dir: Path) -> Path | None:
    for name in GT_DIRS:
        if (seq_dir / name).is_dir():
            return seq_dir / name
    return None


def collect_jobs(src: str | Path, videos: Sequence[str] | None = None, trainingset: str = "skip",
                 background: str = "auto", warnings: list[str] | None = None) -> list[VideoJob]:
    """One job per sequence: Testset -> ``val``, Trainingset -> ``trainingset`` split."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if trainingset not in TRAININGSET:
        raise ValueError(f"trainingset must be one of {TRAININGSET}, got {trainingset!r}")
    warnings = [] if warnings is None else warnings
    root = find_root(Path(src))
    parts = [("Testset", "val")]
    if trainingset != "skip":
        require_dir(root / "Trainingset", "FBMS", "Trainingset/<seq>/...")
        parts.append(("Trainingset", trainingset))
    seq_dirs = {(split, d.name): d for folder, split in parts for d in list_dirs(root / folder)}
    wanted = filter_videos(sorted({name for _, name in seq_dirs}), videos, root)
    jobs = []
    for (split, seq), seq_dir in sorted(seq_dirs.items()):
        if seq not in wanted:
            continue
        images = list_files(seq_dir, IMAGE_EXTS)
        if not images:
            warnings.append(f"FBMS: no frames in {seq_dir}")
            logger.warning(warnings[-1])
            continue
        frames = name_frames(images, prefix=seq)
        gt = _gt_dir(seq_dir)
        labels = list_files(gt, MASK_EXTS) if gt is not None else []
        if not labels:
            warnings.append(f"FBMS: no annotations in {seq_dir / 'GroundTruth'}")
            logger.warning(warnings[-1])
        specs = match_labels(frames, labels, seq, f"FBMS/{seq}", warnings)
        jobs.append(VideoJob(OUT_NAME, split, seq, specs, background=background))
    if not jobs:
        raise DatasetLayoutError(f"FBMS: no sequences with frames under {root / 'Testset'} (expected {EXPECTED})")
    return jobs
