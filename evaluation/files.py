"""Reading masks from disk and walking the project's folder layout.

Layout (project-wide contract)::

    <data_dir>/<dataset>/<split>/labels/<video>/<frame>.png   ground truth
    <pred_dir>/<dataset>/<video>/<frame>.png                  binary predictions (0/255)
    <prob_dir>/<dataset>/<video>/<frame>.png                  probability maps (uint8)
"""

from __future__ import annotations

import logging
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from utils.io import image_data_problem
from utils.paths import mask_path

logger = logging.getLogger(__name__)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Byte offset of the IHDR colour-type field: 8 (signature) + 4 (length) + 4 ("IHDR")
# + 4 (width) + 4 (height) + 1 (bit depth).
_PNG_COLOR_TYPE_OFFSET = 25
_PNG_PALETTE = 3

# Binarisation thresholds of the contract.
PRED_THRESHOLD = 128  # predictions: value >= 128 is foreground
SALIENCY_GT_THRESHOLD = 128  # saliency GT: value > 128 is foreground (0/255 masks)


class EvaluationError(Exception):
    """Base class of the errors raised by the evaluation toolbox."""


class MissingPredictionError(EvaluationError, FileNotFoundError):
    """A prediction file is missing for an annotated frame."""


class MissingDatasetError(EvaluationError, FileNotFoundError):
    """A dataset folder (ground truth or predictions) does not exist."""


class SizeMismatchError(EvaluationError, ValueError):
    """A prediction does not have the size of its ground truth."""


class UnreadableFileError(EvaluationError, OSError):
    """A mask file is empty, truncated or not an image (the message names it)."""


def read_mask(path: str | Path) -> tuple[np.ndarray, bool]:
    """Decode an image into a 2-D array and say whether it was a palette PNG.

    Palette PNGs come back as their palette *indices* (OpenCV would expand them to
    colours, losing the index), other images as grey values; colour images are
    reduced with the per-pixel maximum over the colour channels so that a coloured
    object on black stays foreground.

    Raises :class:`UnreadableFileError` (an ``OSError``) naming the file when it is
    empty (e.g. left by a killed writer), truncated or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UnreadableFileError(f"cannot read {path.resolve()}: {e.strerror or e}") from e
    problem = image_data_problem(data)
    if problem:
        raise UnreadableFileError(f"cannot read {path.resolve()}: {problem}")
    is_palette = (
        data[:8] == _PNG_SIGNATURE
        and len(data) > _PNG_COLOR_TYPE_OFFSET
        and data[_PNG_COLOR_TYPE_OFFSET] == _PNG_PALETTE
    )
    try:
        if is_palette:
            with Image.open(BytesIO(data)) as im:
                return np.asarray(im), True
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            # Formats OpenCV cannot decode; PIL is slower but broader.
            with Image.open(BytesIO(data)) as im:
                arr = np.asarray(im)
    except (OSError, ValueError, SyntaxError, cv2.error) as e:  # PIL/OpenCV errors name no file
        raise UnreadableFileError(f"cannot read {path.resolve()}: not a readable image ({type(e).__name__}: "
                                  f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''})") from e
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    return arr, False


def read_gt(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask as bool: any non-zero value (or palette index) is foreground."""
    arr, _ = read_mask(path)
    return arr > 0


_warned_01_dirs: set[Path] = set()


def read_pred(path: str | Path) -> np.ndarray:
    """Read a binary prediction as bool: grey value >= 128 (palette PNGs: index > 0).

    A grey prediction whose maximum is 1 is most likely a 0/1 mask that the 0/255
    contract turns into background; this is logged once per folder, not fixed.
    """
    arr, is_palette = read_mask(path)
    if is_palette:
        return arr > 0
    if arr.max(initial=0) == 1:
        folder = Path(path).parent
        if folder not in _warned_01_dirs:
            _warned_01_dirs.add(folder)
            logger.warning("prediction looks like a 0/1 mask; predictions are read as 0/255 (>= 128): %s",
                           Path(path).resolve())
    return arr >= PRED_THRESHOLD


def read_saliency_gt(path: str | Path) -> np.ndarray:
    """Read a saliency ground truth as bool.

    0/255 masks use ``> 128`` (the SOD convention); masks whose maximum is 1 (0/1
    masks) and palette PNGs use ``> 0``, since ``> 128`` would erase their objects.
    """
    arr, is_palette = read_mask(path)
    if is_palette or arr.max(initial=0) <= 1:
        return arr > 0
    return arr > SALIENCY_GT_THRESHOLD


def read_prob(path: str | Path) -> np.ndarray:
    """Read a uint8 probability map (0..255); raise if the file is not 8-bit."""
    arr, _ = read_mask(path)
    if arr.dtype != np.uint8:
        raise EvaluationError(f"probability map must be 8-bit, got {arr.dtype}: {Path(path).resolve()}")
    return arr


def check_same_size(pred: np.ndarray, gt: np.ndarray, pred_path: str | Path, gt_path: str | Path) -> None:
    """Raise :class:`SizeMismatchError` naming both files when the shapes differ."""
    if pred.shape != gt.shape:
        raise SizeMismatchError(
            f"prediction size {pred.shape[1]}x{pred.shape[0]} (WxH) differs from ground truth "
            f"size {gt.shape[1]}x{gt.shape[0]}: {Path(pred_path).resolve()} vs {Path(gt_path).resolve()}"
        )


def labels_root(data_dir: str | Path, dataset: str, split: str = "val") -> Path:
    """Return ``<data_dir>/<dataset>/<split>/labels``, raising if it does not exist."""
    root = Path(data_dir) / dataset / split / "labels"
    if not root.is_dir():
        raise MissingDatasetError(f"ground-truth folder not found: {root.resolve()}")
    return root


def prediction_root(pred_dir: str | Path, dataset: str) -> Path:
    """Return ``<pred_dir>/<dataset>``, raising if it does not exist."""
    root = Path(pred_dir) / dataset
    if not root.is_dir():
        raise MissingDatasetError(f"prediction folder not found: {root.resolve()}")
    return root


def list_videos(root: Path) -> list[str]:
    """Sorted names of the sub-folders of ``root``."""
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def list_frames(video_dir: Path) -> list[str]:
    """Sorted (lexicographic; names are zero-padded) stems of the visible PNG files in ``video_dir``.

    Hidden files (``._*`` copies, part files of unfinished writes) are not frames.
    """
    return sorted(p.stem for p in video_dir.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def frame_paths(root: Path, video: str, frames: list[str], what: str = "prediction") -> list[Path]:
    """Paths ``root/video/<frame>.png``; raise :class:`MissingPredictionError` for the first absent one."""
    paths = [mask_path(root, video, frame) for frame in frames]
    for path in paths:
        if not path.is_file():
            raise MissingPredictionError(f"{what} missing for annotated frame: {path.resolve()}")
    return paths
