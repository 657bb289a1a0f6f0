"""The overlay: each frame with its mask as a translucent colour fill plus the mask's contour.

Written to ``<output_dir>/overlay.mp4`` (``mp4v``; ``overlay.avi`` with ``MJPG`` when no mp4
writer can be opened; frames otherwise) or ``<output_dir>/overlay/<frame>.jpg``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from segment_video.frames import write_image
from utils.paths import mask_path

_log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # overlay frame rate when the input carries none (folders of frames)
# (fourcc, extension) tried in order for the overlay video; MJPG/.avi works wherever OpenCV runs.
VIDEO_CODECS: tuple[tuple[str, str], ...] = (("mp4v", ".mp4"), ("MJPG", ".avi"))
OVERLAY_MODES = ("video", "frames", "none")
STREAM_STEM = ".overlay-part"  # the hidden file a video is streamed to before it is renamed


def overlay_frame(bgr: np.ndarray, mask: np.ndarray, color_rgb: Sequence[int] = (255, 40, 40),
                  alpha: float = 0.45) -> np.ndarray:
    """``bgr`` with ``mask`` (``H x W``, non-zero = object) as a translucent fill plus its contour."""
    if mask.shape[:2] != bgr.shape[:2]:
        raise ValueError(f"mask {mask.shape[:2]} and frame {bgr.shape[:2]} sizes differ")
    color = np.array(color_rgb[::-1], dtype=np.float32)  # OpenCV images are BGR
    fg = mask > 0
    out = bgr.copy()
    out[fg] = np.clip((1 - alpha) * bgr[fg].astype(np.float32) + alpha * color, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(min(bgr.shape[:2]) / 200))
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), thickness, lineType=cv2.LINE_AA)
    return out


def open_video_writer(stem: Path, fps: float, size_hw: tuple[int, int],
                      codecs: Sequence[tuple[str, str]] = VIDEO_CODECS) -> tuple[cv2.VideoWriter, Path] | None:
    """The first ``(fourcc, extension)`` writer that opens at ``stem + extension``; None if none does."""
    h, w = size_hw
    for fourcc, ext in codecs:
        path = stem.with_name(stem.name + ext)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        if writer.isOpened():
            return writer, path
        writer.release()
        path.unlink(missing_ok=True)
        _log.warning("cannot open a %s video writer for %s; trying the next codec", fourcc, path)
    return None


class OverlayWriter:
    """Overlay output, one frame at a time: ``<output_dir>/overlay.mp4`` or ``<output_dir>/overlay/``.

    ``mode``: ``video``, ``frames`` or ``none`` (everything is a no-op). The target opens
    with the first frame, whose size fixes the video's; video sizes are padded to even
    numbers by edge replication, since MPEG-4 crops odd ones. Use as a context manager or
    call :meth:`close`, which returns the video file or frames folder (None for ``none``).
    The video is streamed into a hidden ``.overlay-part.mp4`` and renamed to ``overlay.mp4``
    by :meth:`close`, so an overlay under its final name is always complete; frames are
    written atomically one by one.
    """

    def __init__(self, output_dir: Path, mode: str = "video", fps: float = DEFAULT_FPS,
                 color_rgb: Sequence[int] = (255, 40, 40), alpha: float = 0.45) -> None:
        if mode not in OVERLAY_MODES:
            raise ValueError(f"overlay mode must be video, frames or none, got {mode!r}")
        self.output_dir, self.mode, self.fps = Path(output_dir), mode, fps
        self.color_rgb, self.alpha = tuple(color_rgb), alpha
        self.target: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._stream: Path | None = None  # the hidden file the video is written to
        self._pad = (0, 0)

    def _open(self, size_hw: tuple[int, int]) -> None:
        h, w = size_hw
        self._pad = (h % 2, w % 2)
        if self.mode == "video":
            self.output_dir.mkdir(parents=True, exist_ok=True)
            opened = open_video_writer(self.output_dir / STREAM_STEM, self.fps, (h + self._pad[0], w + self._pad[1]))
            if opened is not None:
                self._writer, self._stream = opened
                self.target = self.output_dir / f"overlay{self._stream.suffix}"
                return
            _log.warning("no video writer could be opened; writing overlay frames instead")
            self.mode = "frames"
        self.target = self.output_dir / "overlay"

    def write(self, frame: str, bgr: np.ndarray, mask: np.ndarray) -> None:
        """Add frame ``frame`` (BGR, its original size) with ``mask`` (non-zero = object)."""
        if self.mode == "none":
            return
        if self.target is None:
            self._open(bgr.shape[:2])
        out = overlay_frame(bgr, mask, self.color_rgb, self.alpha)
        if self._writer is not None:
            if any(self._pad):
                out = cv2.copyMakeBorder(out, 0, self._pad[0], 0, self._pad[1], cv2.BORDER_REPLICATE)
            self._writer.write(out)
        else:
            write_image(self.target / f"{frame}.jpg", out)

    def close(self) -> Path | None:
        """Finish the video; returns where the overlay went (None for ``none`` or no frames)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            # The rename is the atomic step: the overlay appears complete or not at all.
            os.replace(self._stream, self.target)
        return self.target

    def __enter__(self) -> "OverlayWriter":
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        elif self._writer is not None:  # a failed run: no partial overlay under the final name
            self._writer.release()
            self._writer = None


def write_overlay(images_dir: Path, masks_root: Path, video: str, frames: list[str], output_dir: Path,
                  mode: str = "video", fps: float = DEFAULT_FPS, color_rgb: Sequence[int] = (255, 40, 40),
                  alpha: float = 0.45, progress: bool = True) -> Path | None:
    """Overlay of the frames ``images_dir/<frame>.jpg`` and masks ``masks_root/<video>/<frame>.png``.

    Returns the video file or the frames folder (None for ``mode="none"``); see
    :class:`OverlayWriter`.
    """
    if mode == "none":
        return None
    with OverlayWriter(output_dir, mode, fps, color_rgb, alpha) as writer:
        for frame in tqdm(frames, desc="overlay", unit="frame", disable=not progress, dynamic_ncols=True):
            img = cv2.imread(str(images_dir / f"{frame}.jpg"), cv2.IMREAD_COLOR)
            mask_file = mask_path(masks_root, video, frame)
            mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
            if img is None or mask is None:
                raise OSError(f"cannot read frame {images_dir / f'{frame}.jpg'} or mask {mask_file}")
            writer.write(frame, img, mask)
    return writer.target
