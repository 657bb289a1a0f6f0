"""The project's one mask-path rule: where a frame's mask (prediction, probability map or
ground-truth label) lies under a mask folder."""
from __future__ import annotations

from pathlib import Path

MASK_SUFFIX = ".png"


def mask_path(root: str | Path, video: str, frame: str, dataset: str | None = None) -> Path:
    """``root/[dataset/]video/frame.png``: ``dataset`` for folders that hold several data sets
    (``test.py``'s ``--save_dir``), none for a data set's own folder (its labels, or
    ``<pred>/<dataset>``) or one video's output."""
    base = Path(root) if dataset is None else Path(root, dataset)
    return base / video / f"{frame}{MASK_SUFFIX}"
