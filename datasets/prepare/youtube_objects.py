"""Youtube-objects (the UVOS evaluation version) -> ``Youtube-objects/val``.

Accepted layout (``--src`` is the folder holding the class folders)::

    <src>/<class>/<video_id>/<frames>/*.jpg       <frames>: images, frames, JPEGImages or Images
    <src>/<class>/<video_id>/<labels>/*.png       <labels>: labels, GroundTruth, Annotations, masks or gt

Class folders are the ten YouTube-Objects classes (``aeroplane``, ``bird``, ``boat``, ``car``,
``cat``, ``cow``, ``dog``, ``horse``, ``motorbike``, ``train``) but any name is accepted.
Output videos are named ``<class>_<video_id>`` (e.g. ``aeroplane_0001``). Masks are sparse:
a label is written only for frames with a mask file, matched by identical stem or else by
frame number (``00012_gt.png`` -> frame ``00012``). Mask files may be ``.png``, ``.bmp``,
``.pgm`` or ``.jpg`` (thresholded at 128); background is black (0), anything else is the
object. Frame names are kept when they are equal-width digit strings, else renumbered.
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

OUT_NAME = "Youtube-objects"
IMAGE_DIRS = ("images", "frames", "JPEGImages", "Images")
LABEL_DIRS = ("labels", "GroundTruth", "Annotations", "masks", "gt")
EXPECTED = "<class>/<video_id>/images/*.jpg and <class>/<video_id>/labels/*.png"


def _first_dir(folder: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        if (folder / n).is_dir():
            return folder / n
    return None


def collect_jobs(src: str | Path, videos: Sequence[str] | None = None,
                 warnings: list[str] | None = None) -> list[VideoJob]:
    """One job per ``<class>/<video_id>`` folder that has a frame folder."""
    warnings = [] if warnings is None else warnings
    src = require_dir(Path(src), "Youtube-objects", EXPECTED)
    found: dict[str, tuple[Path, Path | None]] = {}
    for cls in list_dirs(src):
        for vid in list_dirs(cls):
            img_dir = _first_dir(vid, IMAGE_DIRS)
            if img_dir is None:
                warnings.append(f"Youtube-objects: {vid} has no frame folder ({'/'.join(IMAGE_DIRS)}); skipped")
                logger.warning(warnings[-1])
                continue
            found[f"{cls.name}_{vid.name}"] = (img_dir, _first_dir(vid, LABEL_DIRS))
    if not found:
        raise DatasetLayoutError(f"Youtube-objects: no <class>/<video_id>/images folders under {src} "
                                 f"(expected {EXPECTED})")
    jobs = []
    for name in filter_videos(sorted(found), videos, src):
        img_dir, lab_dir = found[name]
        frames = name_frames(list_files(img_dir, IMAGE_EXTS))
        if not frames:
            warnings.append(f"Youtube-objects: no frames in {img_dir}")
            logger.warning(warnings[-1])
            continue
        labels = list_files(lab_dir, MASK_EXTS) if lab_dir is not None else []
        if not labels:
            warnings.append(f"Youtube-objects: no masks for {name} ({lab_dir or img_dir.parent})")
            logger.info(warnings[-1])
        specs = match_labels(frames, labels, "", f"Youtube-objects/{name}", warnings)
        jobs.append(VideoJob(OUT_NAME, "val", name, specs, background="black"))
    return jobs
