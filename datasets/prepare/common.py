"""Shared machinery of the dataset converters: masks, frame naming, linking and the run loop.

Every converter turns its download into a list of :class:`VideoJob` (which source image
becomes which output frame, which annotation file belongs to which frame); :func:`run_jobs`
then writes ``<data_dir>/<dataset>/<split>/{images,labels}/<video>/`` the same way for all
of them: images are symlinked (or copied, or re-encoded when the source is not a JPEG),
annotations are binarised (any object = foreground) and written as mode-"L" PNGs with
values 0/255. Every file is written atomically. Outputs that are up to date with their
source are skipped, so an interrupted run resumes where it stopped, and a source file that
was replaced since (a corrupt frame fixed) gets its output re-made. Sources are checked
(empty, truncated, not an image) and an error names the file.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from utils.io import atomic_write, image_file_problem, list_files  # noqa: F401  (list_files: re-exported)

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
MASK_EXTS = (".png", ".pgm", ".ppm", ".pbm", ".bmp", ".jpg", ".jpeg")
_JPEG_EXTS = (".jpg", ".jpeg")  # copied as they are; lossy, so masks in them are thresholded
JPEG_QUALITY = 95


class DatasetLayoutError(FileNotFoundError):
    """The source folder is not the expected download (the message names the path)."""


@dataclass
class FrameSpec:
    """One output frame: its name, the source image, and the source annotation if any."""
    name: str
    image: Path
    label: Path | None = None


@dataclass
class VideoJob:
    """Everything needed to convert one video.

    ``background`` says which value of the annotation files is background: ``"index0"``
    (palette index / grey value 0: DAVIS, YouTube-VOS, Youtube-objects), ``"black"``,
    ``"white"`` or ``"auto"`` (the colour that dominates the border of the video's
    annotations; FBMS, whose releases differ).
    """
    dataset: str
    split: str
    video: str
    frames: list[FrameSpec]
    background: str = "index0"


@dataclass
class PrepareSummary:
    """Counts reported at the end of a conversion."""
    dataset: str
    videos: int = 0
    frames: int = 0
    frames_written: int = 0
    frames_skipped: int = 0
    labels: int = 0
    labels_written: int = 0
    labels_skipped: int = 0
    splits: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def add(self, other: "PrepareSummary") -> None:
        for name in ("videos", "frames", "frames_written", "frames_skipped", "labels", "labels_written",
                     "labels_skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.splits.update(other.splits)
        self.warnings.extend(other.warnings)

    def format(self) -> str:
        """Human-readable multi-line summary."""
        splits = ", ".join(f"{k}: {v} videos" for k, v in sorted(self.splits.items())) or "none"
        lines = [
            f"{self.dataset}: {self.videos} videos ({splits})",
            f"  frames: {self.frames} found, {self.frames_written} written, {self.frames_skipped} already present",
            f"  labels: {self.labels} found, {self.labels_written} written, {self.labels_skipped} already present",
        ]
        if self.warnings:
            lines.append(f"  warnings: {len(self.warnings)} (first: {self.warnings[0]})")
        return "\n".join(lines)


# --------------------------------------------------------------------------- file discovery
def require_dir(path: Path, what: str, expected: str) -> Path:
    """Return ``path`` if it is a folder, else raise :class:`DatasetLayoutError` naming it."""
    if not path.is_dir():
        raise DatasetLayoutError(f"{what}: missing folder {path}; expected {expected}")
    return path


def list_dirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def filter_videos(names: Iterable[str], wanted: Sequence[str] | None, where: Path) -> list[str]:
    """Keep the names in ``wanted`` (all when None); unknown names are an error naming ``where``."""
    names = list(names)
    if wanted is None:
        return names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise DatasetLayoutError(f"videos {unknown} not found in {where}")
    keep = set(wanted)
    return [n for n in names if n in keep]


_TRAILING_INT = re.compile(r"(\d+)$")


def frame_number(stem: str, prefix: str = "") -> int | None:
    """Frame number of a file stem: the trailing digits after dropping ``prefix`` and ``_gt``.

    ``cars1_01`` -> 1, ``001_gt`` -> 1, ``tennis000`` -> 0. Dropping the sequence name first
    matters for names such as ``cars101`` of sequence ``cars1`` (-> 1, not 101).
    """
    s = re.sub(r"[_-]?gt$", "", stem, flags=re.IGNORECASE)
    if prefix and s.lower().startswith(prefix.lower()) and len(s) > len(prefix):
        s = s[len(prefix):]
    m = _TRAILING_INT.search(s)
    return int(m.group(1)) if m else None


def name_frames(images: Sequence[Path], prefix: str = "") -> list[tuple[str, Path]]:
    """Order frames temporally and give each an output name.

    Names that are already equal-width digit strings (DAVIS ``00000``, YouTube-VOS) are
    kept, because other tools refer to frames by them. Anything else (FBMS ``cars1_01``)
    is renamed to its zero-padded position ``00000, 00001, ...`` in frame-number order, so
    that lexicographic order is temporal order as the project layout requires.
    """
    stems = [p.stem for p in images]
    if stems and all(s.isdigit() for s in stems) and len({len(s) for s in stems}) == 1:
        return sorted(zip(stems, images))

    def key(p: Path) -> tuple[int, int, str]:
        n = frame_number(p.stem, prefix)
        return (0, n, p.name) if n is not None else (1, 0, p.name)

    ordered = sorted(images, key=key)
    width = max(5, len(str(len(ordered) - 1)))
    return [(f"{i:0{width}d}", p) for i, p in enumerate(ordered)]


# --------------------------------------------------------------------------- masks
def _load_array(path: Path) -> tuple[np.ndarray, str]:
    """Pixels of an annotation file and its PIL mode (palette images keep their indices)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("RGBA", "LA", "PA", "1"):
                # Alpha carries no label information; 1-bit images become 0/255 grey.
                im = im.convert({"RGBA": "RGB", "LA": "L", "PA": "P", "1": "L"}[mode])
                mode = im.mode
            elif mode not in ("P", "L", "RGB", "I", "I;16", "I;16B", "I;16L", "F"):
                im = im.convert("RGB")
                mode = "RGB"
            arr = np.array(im)
    except (OSError, ValueError) as e:  # PIL raises both for truncated / unknown files
        raise DatasetLayoutError(f"cannot read annotation {path}: {e}") from e
    return arr, mode


def _background_value(arr: np.ndarray, background: str) -> np.ndarray:
    """Background colour (shape ``(C,)`` or ``()``) for the fixed conventions."""
    shape = arr.shape[2:] if arr.ndim == 3 else ()
    if background == "white":
        # 8-bit files use 255; 16-bit PGMs (maxval 65535) use their own maximum.
        return np.full(shape, 255 if arr.max(initial=0) <= 255 else int(arr.max()))
    return np.zeros(shape, np.int64)


def border_colour(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The most frequent value on the image borders over all ``arrays`` (same channel count)."""
    counts: Counter = Counter()
    for a in arrays:
        a3 = a if a.ndim == 3 else a[..., None]
        border = np.concatenate([a3[0], a3[-1], a3[:, 0], a3[:, -1]], 0)
        vals, n = np.unique(border.reshape(-1, a3.shape[2]), axis=0, return_counts=True)
        counts.update({tuple(int(x) for x in v): int(c) for v, c in zip(vals, n)})
    best = counts.most_common(1)[0][0]
    return np.array(best if arrays[0].ndim == 3 else best[0])


def binarize(arr: np.ndarray, mode: str, background: str = "index0", lossy: bool = False,
             bg_value: np.ndarray | None = None) -> np.ndarray:
    """Union of all objects of one annotation as a bool mask.

    * palette (``P``) images: every index other than 0 is an object;
    * lossless grey/colour images: every value other than the background colour (black,
      white, or ``bg_value``) is an object, so multi-object grey levels become one mask;
    * lossy (JPEG) annotations: compression noise is removed by thresholding the distance
      to the background at half range.
    """
    if mode == "P" and background in ("index0", "black"):
        return arr != 0
    if bg_value is None:
        bg_value = _background_value(arr, background)
    diff = np.abs(arr.astype(np.int64) - bg_value.astype(np.int64))
    if diff.ndim == 3:
        diff = diff.max(-1)
    if lossy:
        half = 128 if arr.max(initial=0) <= 255 else (int(arr.max()) + 1) // 2
        return diff >= half
    return diff > 0


def read_binary_mask(path: Path, background: str = "index0", bg_value: np.ndarray | None = None) -> np.ndarray:
    """Read one annotation file and return the union-of-objects bool mask."""
    arr, mode = _load_array(path)
    return binarize(arr, mode, background, path.suffix.lower() in _JPEG_EXTS, bg_value)


def write_label(path: Path, mask: np.ndarray, source: Path | None = None) -> None:
    """Write a bool mask as mode-"L" PNG (0/255) atomically; it takes the modification time of ``source``."""
    im = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))

    def write(tmp: Path) -> None:
        im.save(tmp, format="PNG")
        if source is not None:
            _copy_mtime(source, tmp)

    atomic_write(path, write)


# --------------------------------------------------------------------------- freshness
# An output records which version of its source it was made from by carrying the source's
# modification time (copies also its size); links must point at the source. A source that
# is replaced (e.g. a corrupt frame fixed) therefore gets its output re-made on the next run.
def _copy_mtime(src: Path, dst: Path) -> None:
    st = src.stat()
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _same_mtime(a: os.stat_result, b: os.stat_result) -> bool:
    """Equal modification times; a file system that keeps whole seconds only also matches."""
    if a.st_mtime_ns == b.st_mtime_ns:
        return True
    (sa, na), (sb, nb) = divmod(a.st_mtime_ns, 10 ** 9), divmod(b.st_mtime_ns, 10 ** 9)
    return sa == sb and (na == 0 or nb == 0)


def image_up_to_date(src: Path, dst: Path, link: bool) -> bool:
    """Whether the output frame ``dst`` still matches ``src``: a link to it (``link`` mode), a copy
    with its size and modification time, or a re-encoding made from this version of it."""
    if os.path.islink(dst):
        # A link is only right in link mode, pointing at this source (and not broken).
        return link and os.readlink(dst) == str(src.resolve()) and dst.exists()
    try:
        d, s = dst.stat(), src.stat()
    except OSError:
        return False
    if not _same_mtime(d, s):
        return False
    return src.suffix.lower() not in _JPEG_EXTS or d.st_size == s.st_size


def label_up_to_date(src: Path, dst: Path) -> bool:
    """Whether the converted label ``dst`` was made from this version of the annotation ``src``."""
    if os.path.islink(dst):
        return False
    try:
        return _same_mtime(dst.stat(), src.stat())
    except OSError:
        return False


# --------------------------------------------------------------------------- images
def check_source_image(src: Path) -> None:
    """Raise :class:`DatasetLayoutError` naming ``src`` when it is empty, truncated or not an image.

    Frames are linked or copied without decoding; a broken download must be found here, not
    by training or inference much later.
    """
    try:
        problem = image_file_problem(src)
    except OSError as e:
        raise DatasetLayoutError(f"cannot read image {src}: {e.strerror or e}") from e
    if problem:
        raise DatasetLayoutError(f"cannot read image {src}: {problem}")


def place_image(src: Path, dst: Path, link: bool) -> None:
    """Put ``src`` at ``dst`` (a ``.jpg``): symlink or copy a JPEG, re-encode anything else.

    ``dst`` is replaced atomically whatever it was (file, link or broken link); the source is
    checked first (:func:`check_source_image`).
    """
    check_source_image(src)
    if src.suffix.lower() in _JPEG_EXTS:
        if link:
            # Absolute target so the link survives moving the working directory.
            target = src.resolve()
            atomic_write(dst, lambda tmp: os.symlink(target, tmp))
            return

        def copy(tmp: Path) -> None:
            shutil.copyfile(src, tmp)
            _copy_mtime(src, tmp)

        atomic_write(dst, copy)
        return

    def reencode(tmp: Path) -> None:
        with Image.open(src) as im:
            im.convert("RGB").save(tmp, format="JPEG", quality=JPEG_QUALITY)
        _copy_mtime(src, tmp)

    try:
        atomic_write(dst, reencode)
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetLayoutError(f"cannot read image {src}: {e}") from e


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file header; :class:`DatasetLayoutError` naming the file when it is not an image."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetLayoutError(f"cannot read image {path}: {e}") from e


# --------------------------------------------------------------------------- run loop
def convert_video(job: VideoJob, data_dir: Path, link: bool = True, overwrite: bool = False) -> PrepareSummary:
    """Write images and binary labels of one video; skip outputs that are up to date.

    An output is re-made when its source changed since (size or modification time differ, or
    a link points elsewhere), so fixing a corrupt file in the download and re-running repairs
    the converted copy; ``overwrite`` re-makes everything.
    """
    s = PrepareSummary(job.dataset, videos=1, frames=len(job.frames))
    s.splits[job.split] = 1
    root = data_dir / job.dataset / job.split
    img_dir, lab_dir = root / "images" / job.video, root / "labels" / job.video
    labelled = [f for f in job.frames if f.label is not None]
    s.labels = len(labelled)

    for f in job.frames:
        dst = img_dir / f"{f.name}.jpg"
        if not overwrite and image_up_to_date(f.image, dst, link):
            s.frames_skipped += 1
            continue
        place_image(f.image, dst, link)
        s.frames_written += 1

    todo = [f for f in labelled
            if overwrite or not label_up_to_date(f.label, lab_dir / f"{f.name}.png")]  # type: ignore[arg-type]
    s.labels_skipped = len(labelled) - len(todo)
    if not todo:
        return s
    bg_value = None
    if job.background == "auto":
        # Decided over all annotations of the video (not only the missing ones) so a resumed
        # run binarises exactly like an uninterrupted one.
        arrays = [_load_array(f.label)[0] for f in labelled]  # type: ignore[arg-type]
        if len({a.ndim for a in arrays}) > 1:
            arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, -1) for a in arrays]
        bg_value = border_colour(arrays)
        logger.debug("%s/%s: background colour %s", job.dataset, job.video, bg_value.tolist())
    for f in todo:
        assert f.label is not None
        arr, mode = _load_array(f.label)
        if bg_value is not None and bg_value.ndim == 1 and arr.ndim == 2:
            arr = np.repeat(arr[..., None], bg_value.shape[0], -1)
        mask = binarize(arr, mode, job.background, f.label.suffix.lower() in _JPEG_EXTS, bg_value)
        w, h = image_size(f.image)
        if mask.shape != (h, w):
            raise DatasetLayoutError(
                f"{job.dataset}/{job.video}: annotation {f.label} is {mask.shape[1]}x{mask.shape[0]} "
                f"but frame {f.image} is {w}x{h}")
        write_label(lab_dir / f"{f.name}.png", mask, source=f.label)
        s.labels_written += 1
    return s


def run_jobs(jobs: Sequence[VideoJob], data_dir: str | Path, dataset: str, link: bool = True,
             overwrite: bool = False, workers: int = 1, progress: bool = True) -> PrepareSummary:
    """Convert all videos (threads over videos) with a tqdm bar; return the summary."""
    data_dir = Path(data_dir)
    total = PrepareSummary(dataset)
    bar = tqdm(total=len(jobs), desc=f"prepare {dataset}", unit="video", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                total.add(convert_video(job, data_dir, link, overwrite))
                bar.update(1)
        else:
            # Threads suffice: the work is file I/O and PNG coding, which release the GIL.
            with ThreadPoolExecutor(workers) as pool:
                for res in pool.map(lambda j: convert_video(j, data_dir, link, overwrite), jobs):
                    total.add(res)
                    bar.update(1)
    finally:
        bar.close()
    return total


def match_labels(frames: Sequence[tuple[str, Path]], labels: Sequence[Path], prefix: str,
                 where: str, warnings: list[str]) -> list[FrameSpec]:
    """Attach annotation files to frames: by identical stem first, else by frame number.

    Annotations that match no frame are reported in ``warnings`` and dropped; when several
    files give the same frame (e.g. ``.png`` and ``.pgm`` copies) the first in
    :data:`MASK_EXTS` order wins.
    """
    by_stem = {p.stem: name for name, p in frames}
    by_num: dict[int, str] = {}
    for name, p in frames:
        n = frame_number(p.stem, prefix)
        if n is not None:
            by_num.setdefault(n, name)
    chosen: dict[str, Path] = {}
    rank = {e: i for i, e in enumerate(MASK_EXTS)}
    for lab in sorted(labels, key=lambda p: (rank.get(p.suffix.lower(), 99), p.name)):
        name = by_stem.get(lab.stem)
        if name is None:
            n = frame_number(lab.stem, prefix)
            name = by_num.get(n) if n is not None else None
        if name is None:
            warnings.append(f"{where}: annotation {lab.name} matches no frame")
            continue
        chosen.setdefault(name, lab)
    return [FrameSpec(name, p, chosen.get(name)) for name, p in frames]
