"""Reading the input (a video file or a folder of frames) and the frames of the work folder.

* :func:`iter_input_frames` decodes a video file (OpenCV) or reads a folder's
  ``.jpg/.jpeg/.png`` files in sorted order, keeping every ``stride``-th frame, at most
  ``max_frames``; all frames must have one size.
* :func:`extract_frames` writes those frames as ``<work_root>/custom/val/images/<video>/00000.jpg,
  ...`` (the project's data layout, so the dataset code reads them unchanged). A small
  ``<work_root>/<video>.source.json`` remembers what was extracted; a rerun with the same
  input and selection reuses the frames, any change starts that video's frames and flows afresh.

Every file is written atomically (:func:`utils.io.atomic_write`).
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from utils.io import FRAME_EXTS, atomic_write, list_files, read_json, read_rgb

_log = logging.getLogger(__name__)

WORK_DATASET = "custom"  # dataset name of the working layout <output_dir>/work/custom/val/...
WORK_SPLIT = "val"
JPEG_QUALITY = 95
# What a folder of videos lists as video files (OpenCV decodes more; name such a file itself).
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


class VideoInputError(ValueError):
    """The input video or frames folder cannot be used; the message names the path."""


def write_image(path: Path, bgr: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Write ``bgr`` to ``path`` atomically, encoded for its extension (JPEG at ``quality``)."""
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise OSError(f"cannot encode {path} as {ext}")
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.tobytes()))


def write_json(path: Path, obj: object) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=1)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


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


def folder_videos(folder: Path) -> list[Path]:
    """The videos directly in ``folder``, sorted by name: video files (:data:`VIDEO_EXTS`) and
    subfolders holding frames. Empty for a frames folder (it is one video) and a file."""
    if not folder.is_dir() or list_files(folder):
        return []
    return [c for c in sorted(folder.iterdir()) if not c.name.startswith(".")
            and ((c.is_file() and c.suffix.lower() in VIDEO_EXTS) or (c.is_dir() and list_files(c)))]


def is_many(inputs: Sequence[Path]) -> bool:
    """Whether ``inputs`` (``--input``) name several videos: more than one path, or a folder of videos.
    One video file or frames folder is the one-video run, with its own output layout."""
    return len(inputs) > 1 or bool(folder_videos(Path(inputs[0])))


def list_videos(inputs: Sequence[Path]) -> list[Path]:
    """Every video of ``inputs``: each folder of videos stands for its videos, any other path for
    itself (a missing or unreadable one then fails as that video)."""
    out: list[Path] = []
    for p in map(Path, inputs):
        out.extend(folder_videos(p) or [p])
    return out


def named_videos(paths: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of each video (:func:`video_name`: its output sub-folder); two videos of one
    name are refused, naming both, before any work."""
    seen: dict[str, Path] = {}
    for p in paths:
        name = video_name(p)
        if name in seen:
            raise VideoInputError(f"{seen[name]} and {p} would both be written to the video folder {name!r}: "
                                  "rename one, or segment them in separate calls")
        seen[name] = p
    if not seen:
        raise VideoInputError("--input names no video")
    return list(seen.items())


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
                        size: Sequence[int], fps: float | None) -> Path:
    """``<work_root>/<name>.source.json``: the input's :func:`signature` and, per frame name,
    the input frame index or file name it came from."""
    return write_json(work_root / f"{name}.source.json", {"signature": sig, "frames": list(names),
                                                          "sources": list(sources), "size": list(size), "fps": fps})


def work_dirs(work_root: Path, name: str) -> tuple[Path, Path]:
    """``(images_dir, flows_dir)`` of video ``name`` in the work layout."""
    split_root = work_root / WORK_DATASET / WORK_SPLIT
    return split_root / "images" / name, split_root / "flows" / name


def extract_frames(path: Path, work_root: Path, name: str, stride: int = 1, max_frames: int | None = None,
                   progress: bool = True) -> ExtractedFrames:
    """Write the kept frames as ``<work_root>/custom/val/images/<name>/00000.jpg ...``.

    Frames are renamed to zero-padded indices so that sorting gives temporal order; the
    source of each (input frame index or file name) is kept in the ``.source.json`` record.
    """
    check_input(path)
    images_dir, flows_dir = work_dirs(work_root, name)
    record = work_root / f"{name}.source.json"
    sig = signature(path, stride, max_frames)
    old = read_json(record) or {}
    if images_dir.is_dir():
        names = [p.stem for p in list_files(images_dir)]
        if old.get("signature") == sig and names and names == old.get("frames"):
            _log.info("reusing %d frames extracted earlier in %s", len(names), images_dir)
            return ExtractedFrames(names, tuple(old["size"]), old.get("fps"), reused=True)
    # Another input or selection: the frames and flows of an earlier run no longer match. The record
    # goes first, so that a kill from here on leaves nothing a rerun would take for finished.
    record.unlink(missing_ok=True)
    for d in (images_dir, flows_dir):
        shutil.rmtree(d, ignore_errors=True)

    names, sources, size = [], [], None
    total = input_frame_count(path, stride, max_frames)
    bar = tqdm(total=total, desc=f"frames {name}", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for source, img in iter_input_frames(path, stride, max_frames):
            size = img.shape[:2]
            frame = frame_name(len(names))
            write_image(images_dir / f"{frame}.jpg", img)
            names.append(frame)
            sources.append(source)
            bar.update(1)
    finally:
        bar.close()
    fps = input_fps(path)
    write_source_record(work_root, name, sig, names, sources, size, fps)
    _log.info("extracted %d frames (%dx%d) from %s to %s", len(names), size[1], size[0], path, images_dir)
    return ExtractedFrames(names, size, fps)
