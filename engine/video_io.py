"""Input and output of user videos: decoding frames, the work-folder frames, overlay writing.

* :func:`iter_input_frames` decodes a video file (OpenCV) or reads a folder's
  ``.jpg/.jpeg/.png`` files in sorted order, keeping every ``stride``-th frame, at most
  ``max_frames``; all frames must have one size.
* :func:`extract_frames` writes those frames as ``<work_root>/custom/val/images/<video>/00000.jpg,
  ...`` (the project's data layout, so the dataset code reads them unchanged). A small
  ``<work_root>/<video>.source.json`` remembers what was extracted; a rerun with the same
  input and selection reuses the frames, any change starts that video's work folder afresh.
* :class:`OverlayWriter` draws each frame with its mask as a translucent colour fill plus
  the mask's contour into ``<output_dir>/overlay.mp4`` (``mp4v``; ``overlay.avi`` with
  ``MJPG`` when no mp4 writer can be opened; frames otherwise) or
  ``<output_dir>/overlay/<frame>.jpg``; :func:`write_overlay` does it from files on disk.

Every file is written atomically (a hidden temporary file renamed into place) after the
``guard`` (:class:`engine.video_ledger.Ledger`, the output folder's manifest) has agreed and
listed it; files are deleted only through the guard, which deletes only the tool's own.
Without a guard (library use) every file is fair game.
"""
from __future__ import annotations

import json
import logging
import re
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from engine.video_ledger import Ledger, OutputConflict, Unguarded
from utils.io import FRAME_EXTS, atomic_write, list_files, read_rgb

_log = logging.getLogger(__name__)

WORK_DATASET = "custom"  # dataset name of the working layout <output_dir>/work/custom/val/...
WORK_SPLIT = "val"
JPEG_QUALITY = 95
DEFAULT_FPS = 25.0  # overlay frame rate when the input carries none (folders of frames)
# (fourcc, extension) tried in order for the overlay video; MJPG/.avi works wherever OpenCV runs.
VIDEO_CODECS: tuple[tuple[str, str], ...] = (("mp4v", ".mp4"), ("MJPG", ".avi"))
OVERLAY_MODES = ("video", "frames", "none")


class VideoInputError(ValueError):
    """The input video or frames folder cannot be used; the message names the path."""


Guard = Ledger | Unguarded


def encode_image(path: Path, bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """``bgr`` encoded for ``path``'s extension (JPEG at ``quality``); raises naming ``path``."""
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise OSError(f"cannot encode {path} as {ext}")
    return buf.tobytes()


def write_image(path: Path, bgr: np.ndarray, guard: Guard | None = None, quality: int = JPEG_QUALITY) -> None:
    """Write ``bgr`` to ``path`` atomically, after ``guard`` has agreed and listed it."""
    data = encode_image(path, bgr, quality)
    (guard or Unguarded()).before_write(path)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, obj: object, guard: Guard | None = None) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically, after ``guard`` has agreed and listed it."""
    text = json.dumps(obj, indent=1)
    (guard or Unguarded()).before_write(path)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def remove_owned(folder: Path, guard: Guard | None = None) -> None:
    """Delete the tool's files in ``folder`` (listed ones, at any depth) and the folders it made there.

    A file the guard does not own makes this raise :class:`OutputConflict` naming it: the
    folder is one the tool must own entirely (frames or flows read back as a data set).
    """
    guard = guard or Unguarded()
    if isinstance(guard, Ledger):
        for p in guard.entries_under(folder):
            guard.remove(p)
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file() and guard.status(p) not in ("own", "absent"):
                raise OutputConflict(f"{p} is not a file segment_video wrote, but its folder {folder} must hold only "
                                     "the tool's files (they are read back as frames): move it away, or choose "
                                     "another --output_dir")
            if p.is_file():
                guard.remove(p)
    guard.prune_dirs(folder)
    guard.save()


# --------------------------------------------------------------------------- frames
@dataclass
class ExtractedFrames:
    """What :func:`extract_frames` produced."""
    names: list[str]
    size: tuple[int, int]  # (H, W)
    fps: float | None  # of the input video (None for folders or when unknown)
    reused: bool = False


def video_name(path: Path, name: str | None = None) -> str:
    """A folder-safe name: ``name`` or the input's stem, other characters replaced by ``_``."""
    raw = name if name else (path.resolve().name if path.is_dir() else path.stem)
    clean = re.sub(r"[^\w.-]+", "_", raw).strip("._")
    return clean or "video"


def frame_name(index: int) -> str:
    """Name of the ``index``-th kept frame: zero-padded, so sorting gives temporal order."""
    return f"{index:05d}"


def check_input(path: Path) -> None:
    """Raise (naming ``path``) unless it is an existing video file or folder."""
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_file() and path.suffix.lower() in FRAME_EXTS:
        raise VideoInputError(f"{path} is a single image; pass a video file or a folder of frames")


def _decode(path: Path, stride: int, max_frames: int | None) -> Iterator[tuple[str, np.ndarray]]:
    kept = 0
    if path.is_dir():
        files = list_files(path)
        if not files:
            raise VideoInputError(f"{path}: no frames (.jpg/.jpeg/.png files) in this folder")
        for f in files[::stride]:
            try:  # read_rgb refuses truncated files that cv2 would fill with grey
                img = cv2.cvtColor(read_rgb(f, "frame"), cv2.COLOR_RGB2BGR)
            except OSError as e:
                raise VideoInputError(str(e)) from e
            yield f.name, img
            kept += 1
            if max_frames is not None and kept >= max_frames:
                return
        return
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoInputError(f"cannot open video {path} (not a video file OpenCV can decode?)")
        index = 0
        while max_frames is None or kept < max_frames:
            if not cap.grab():  # grab without decoding: skipped frames cost no colour conversion
                break
            if index % stride == 0:
                ok, img = cap.retrieve()
                if not ok:
                    break
                yield str(index), img
                kept += 1
            index += 1
        if kept == 0:
            raise VideoInputError(f"video {path} has no readable frames")
    finally:
        cap.release()


def iter_input_frames(path: Path, stride: int = 1, max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(source, BGR frame)`` for every kept frame of a video file or frames folder.

    ``source`` names where the frame came from (input frame index or file name). Decoding
    stops once ``max_frames`` frames are kept, so long videos are not read to the end. A
    frame whose size differs from the first one's raises :class:`VideoInputError`.
    """
    check_input(path)
    if stride < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max_frames must be >= 1, got {max_frames}")
    size = None
    for source, img in _decode(path, stride, max_frames):
        hw = img.shape[:2]
        if size is None:
            size = hw
        elif hw != size:
            raise VideoInputError(f"{path}: frame {source} is {hw[1]}x{hw[0]} but the first frame is "
                                  f"{size[1]}x{size[0]}; all frames must have one size")
        yield source, img


def input_fps(path: Path) -> float | None:
    """Frame rate of a video file; None for folders and for containers that do not know it."""
    if path.is_dir():
        return None
    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None


def input_frame_count(path: Path, stride: int = 1, max_frames: int | None = None) -> int | None:
    """Expected number of kept frames, for progress bars (None where the container does not know)."""
    if path.is_dir():
        n = len(list_files(path))
    else:
        cap = cv2.VideoCapture(str(path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if n <= 0:
            return None
    n = -(-n // stride)
    return n if max_frames is None else min(n, max_frames)


def signature(path: Path, stride: int, max_frames: int | None) -> dict:
    """Identifies an extraction: the input files (name, size, mtime) and the frame selection."""
    files = [path] if path.is_file() else list_files(path)
    return {"input": str(path.resolve()), "stride": stride, "max_frames": max_frames,
            "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}


def write_source_record(work_root: Path, name: str, sig: dict, names: Sequence[str], sources: Sequence[str],
                        size: Sequence[int], fps: float | None, guard: Guard | None = None) -> Path:
    """``<work_root>/<name>.source.json``: the input's :func:`signature` and, per frame name,
    the input frame index or file name it came from."""
    return write_json(work_root / f"{name}.source.json", {"signature": sig, "frames": list(names),
                                                          "sources": list(sources), "size": list(size), "fps": fps},
                      guard)


def work_dirs(work_root: Path, name: str) -> tuple[Path, Path]:
    """``(images_dir, flows_dir)`` of video ``name`` in the work layout."""
    split_root = work_root / WORK_DATASET / WORK_SPLIT
    return split_root / "images" / name, split_root / "flows" / name


def extract_frames(path: Path, work_root: Path, name: str, stride: int = 1, max_frames: int | None = None,
                   progress: bool = True, guard: Guard | None = None) -> ExtractedFrames:
    """Write the kept frames as ``<work_root>/custom/val/images/<name>/00000.jpg ...``.

    Frames are renamed to zero-padded indices so that sorting gives temporal order; the
    source of each (input frame index or file name) is kept in the ``.source.json`` record.
    ``guard`` decides what may be written and deleted (see the module docstring).
    """
    guard = guard or Unguarded()
    check_input(path)
    images_dir, flows_dir = work_dirs(work_root, name)
    record = work_root / f"{name}.source.json"
    sig = signature(path, stride, max_frames)
    if record.is_file() and images_dir.is_dir():
        try:
            old = json.loads(record.read_text())
        except (OSError, ValueError):
            old = {}
        names = [p.stem for p in list_files(images_dir)]
        if old.get("signature") == sig and names and names == old.get("frames"):
            _log.info("reusing %d frames extracted earlier in %s", len(names), images_dir)
            return ExtractedFrames(names, tuple(old["size"]), old.get("fps"), reused=True)
    # Another input or selection: frames and flows of an earlier run no longer match. The record
    # goes first, so that a kill from here on leaves nothing a rerun would take for finished.
    guard.remove(record)
    for d in (images_dir, flows_dir):
        remove_owned(d, guard)

    names, sources, size = [], [], None
    total = input_frame_count(path, stride, max_frames)
    bar = tqdm(total=total, desc=f"frames {name}", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for source, img in iter_input_frames(path, stride, max_frames):
            size = img.shape[:2]
            frame = frame_name(len(names))
            write_image(images_dir / f"{frame}.jpg", img, guard)
            names.append(frame)
            sources.append(source)
            bar.update(1)
    finally:
        bar.close()
    fps = input_fps(path)
    write_source_record(work_root, name, sig, names, sources, size, fps, guard)
    _log.info("extracted %d frames (%dx%d) from %s to %s", len(names), size[1], size[0], path, images_dir)
    return ExtractedFrames(names, size, fps)


# --------------------------------------------------------------------------- overlay
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
        path = stem.with_suffix(ext)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        if writer.isOpened():
            return writer, path
        writer.release()
        path.unlink(missing_ok=True)
        _log.warning("cannot open a %s video writer for %s; trying the next codec", fourcc, path)
    return None


def overlay_video_paths(output_dir: Path, ext: str) -> tuple[Path, Path]:
    """``(final, temporary)`` overlay video paths for extension ``ext``: the video is written to a
    hidden file with the same extension (the container follows it) and renamed when complete."""
    return Path(output_dir) / f"overlay{ext}", Path(output_dir) / f".overlay-part{ext}"


class OverlayWriter:
    """Overlay output, one frame at a time: ``<output_dir>/overlay.mp4`` or ``<output_dir>/overlay/``.

    ``mode``: ``video``, ``frames`` or ``none`` (everything is a no-op). The target opens
    with the first frame, whose size fixes the video's; video sizes are padded to even
    numbers by edge replication, since MPEG-4 crops odd ones. Use as a context manager or
    call :meth:`close`, which returns the video file or frames folder (None for ``none``).
    The video is streamed into a hidden ``.overlay-part.mp4`` and renamed to ``overlay.mp4``
    by :meth:`close` (an interrupted run keeps the previous overlay); frames are written
    atomically one by one. Frames of an earlier run are not deleted here (see
    :func:`engine.video.segment_video`, which deletes only the tool's own).
    """

    def __init__(self, output_dir: Path, mode: str = "video", fps: float = DEFAULT_FPS,
                 color_rgb: Sequence[int] = (255, 40, 40), alpha: float = 0.45, guard: Guard | None = None) -> None:
        if mode not in OVERLAY_MODES:
            raise ValueError(f"overlay mode must be video, frames or none, got {mode!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"--overlay_alpha must be in [0, 1], got {alpha}")
        self.output_dir, self.mode, self.fps = Path(output_dir), mode, fps
        self.color_rgb, self.alpha = tuple(color_rgb), alpha
        self.guard = guard or Unguarded()
        self.target: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._stream: Path | None = None  # the hidden file the video is written to
        self._pad = (0, 0)

    def _open(self, size_hw: tuple[int, int]) -> None:
        h, w = size_hw
        self._pad = (h % 2, w % 2)
        if self.mode == "video":
            for codec in VIDEO_CODECS:
                final, stream = overlay_video_paths(self.output_dir, codec[1])
                # Both names are agreed and listed before the writer creates the hidden one.
                self.guard.before_write(final)
                self.guard.before_write(stream)
                opened = open_video_writer(stream.with_suffix(""), self.fps, (h + self._pad[0], w + self._pad[1]),
                                           (codec,))
                if opened is not None:
                    self._writer, self._stream = opened
                    self.target = final
                    return
            _log.warning("no video writer could be opened; writing overlay frames instead")
            self.mode = "frames"
        if self.mode == "frames":
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
            write_image(self.target / f"{frame}.jpg", out, self.guard)

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
        elif self._writer is not None:  # a failed run: keep the previous overlay, not a partial one
            self._writer.release()
            self._writer = None


def write_overlay(images_dir: Path, masks_dir: Path, frames: list[str], output_dir: Path, mode: str = "video",
                  fps: float = DEFAULT_FPS, color_rgb: Sequence[int] = (255, 40, 40), alpha: float = 0.45,
                  progress: bool = True, guard: Guard | None = None) -> Path | None:
    """Overlay of the frames ``images_dir/<frame>.jpg`` and masks ``masks_dir/<frame>.png``.

    Returns the video file or the frames folder (None for ``mode="none"``); see
    :class:`OverlayWriter`.
    """
    writer = OverlayWriter(output_dir, mode, fps, color_rgb, alpha, guard)
    if mode == "none":
        return None
    with writer:
        for frame in tqdm(frames, desc="overlay", unit="frame", disable=not progress, dynamic_ncols=True):
            img = cv2.imread(str(images_dir / f"{frame}.jpg"), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(masks_dir / f"{frame}.png"), cv2.IMREAD_GRAYSCALE)
            if img is None or mask is None:
                raise OSError(f"cannot read frame {images_dir / f'{frame}.jpg'} or mask {masks_dir / f'{frame}.png'}")
            writer.write(frame, img, mask)
    return writer.target
