"""Reading frames, flow images and masks, with errors that name the file."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from utils.flow import read_flow_image
from utils.io import atomic_write, read_image_bytes, read_rgb


def read_image(path: str | Path) -> np.ndarray:
    """RGB ``uint8`` array ``(H, W, 3)``."""
    return read_rgb(path, "image")


def read_flow(path: str | Path) -> np.ndarray:
    """Encoded flow image as RGB ``uint8`` ``(H, W, 3)``."""
    return read_flow_image(path)


def read_mask(path: str | Path) -> np.ndarray:
    """Binary mask ``uint8`` ``(H, W)`` in {0, 1} from 0/255 grey, 0/1, or palette PNGs.

    Palette PNGs are read as indices (not colours), so any object id > 0 is foreground;
    RGB masks count any non-black pixel. Missing, empty or truncated files raise ``OSError``
    naming the file.
    """
    data = read_image_bytes(path, "mask")
    try:
        with Image.open(BytesIO(data)) as im:
            arr = np.asarray(im)
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for undecodable data
        raise OSError(f"cannot read mask {path}: {e}") from e
    if arr.ndim == 3:
        arr = arr[..., :3].max(-1)
    return (arr > 0).astype(np.uint8)


def _write_grey_png(path: str | Path, grey: np.ndarray) -> None:
    """Write ``uint8`` ``(H, W)`` as a mode-"L" PNG atomically (an interrupted run leaves no half file)."""
    im = Image.fromarray(grey, mode="L")
    atomic_write(path, lambda tmp: im.save(tmp, format="PNG"))


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a binary mask as a 0/255 greyscale PNG (atomically)."""
    _write_grey_png(path, (mask > 0).astype(np.uint8) * 255)


def write_probability(path: str | Path, prob: np.ndarray) -> None:
    """Write a probability map in [0, 1] as an 8-bit greyscale PNG (0..255, atomically)."""
    _write_grey_png(path, np.clip(np.rint(prob * 255), 0, 255).astype(np.uint8))
