"""File helpers shared by the readers and writers of frames, flow images and labels."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np


FRAME_EXTS = (".jpg", ".jpeg", ".png")


def list_files(folder: str | Path, exts: Sequence[str] = FRAME_EXTS) -> list[Path]:
    """Visible files of ``folder`` whose lower-case suffix is in ``exts``, sorted by name.

    Hidden files are skipped, among them the ``.<name>.part`` files of unfinished writes.
    """
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in exts and not p.name.startswith(".") and p.is_file())


def read_rgb(path: str | Path, what: str = "image") -> np.ndarray:
    """RGB ``uint8`` ``(H, W, 3)``; raises ``OSError`` naming the file when it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read {what} {path} (missing or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a hidden ``.<name>.part`` beside ``path``, then rename it into place.

    An interrupted run leaves at most the hidden part file (which loaders ignore), never a
    truncated output under the real name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    write(tmp)
    os.replace(tmp, path)
