"""File helpers shared by the readers and writers of frames, flow images and labels."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image


FRAME_EXTS = (".jpg", ".jpeg", ".png")

_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def list_files(folder: str | Path, exts: Sequence[str] = FRAME_EXTS) -> list[Path]:
    """Visible files of ``folder`` whose lower-case suffix is in ``exts``, sorted by name.

    Hidden files are skipped, among them the ``.<name>.part`` files of unfinished writes.
    """
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in exts and not p.name.startswith(".") and p.is_file())


def _missing_end(head: bytes, tail: bytes) -> str | None:
    """What end marker a JPEG or PNG does not end with (``head``/``tail``: first/last bytes), or None.

    Compressed JPEG data cannot contain the end-of-image marker (0xFF bytes are escaped), so a
    file cut anywhere after its headers does not end with it.
    """
    if head.startswith(_JPEG_SOI) and not tail.endswith(_JPEG_EOI):
        return "truncated JPEG (no end-of-image marker)"
    if head.startswith(_PNG_SIGNATURE) and not tail.endswith(_PNG_IEND):
        return "truncated PNG (no IEND chunk)"
    return None


def _decodes_fully(source: str | Path | BytesIO) -> bool:
    """Whether PIL decodes every pixel (it raises on truncated data, where cv2 pads with grey)."""
    try:
        with Image.open(source) as im:
            im.load()
    except Exception:  # PIL raises OSError, ValueError, SyntaxError... for broken files
        return False
    return True


def image_data_problem(data: bytes) -> str | None:
    """Why the encoded image ``data`` is empty or truncated, or None when it looks complete.

    Cheap: only the first and last bytes are inspected, except for the rare file that does
    not end with its end marker (some writers pad after it), which is fully decoded to tell
    trailing bytes from truncation.
    """
    if not data:
        return "empty file (0 bytes)"
    problem = _missing_end(data[:8], data[-16:])
    if problem and not _decodes_fully(BytesIO(data)):
        return f"{problem}, {len(data)} bytes; the file is incomplete"
    return None


def image_file_problem(path: str | Path) -> str | None:
    """Why the image file ``path`` is empty, truncated or not an image, or None; no pixel decoding.

    For files that are linked or copied without being decoded (dataset preparation): reads
    the head and tail of JPEG and PNG files, and the header of other formats.
    """
    with open(path, "rb") as f:
        head = f.read(8)
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return "empty file (0 bytes)"
        f.seek(max(0, size - 16))
        tail = f.read()
    problem = _missing_end(head, tail)
    if problem and not _decodes_fully(path):
        return f"{problem}, {size} bytes; the file is incomplete"
    if not head.startswith((_JPEG_SOI, _PNG_SIGNATURE)):
        try:
            with Image.open(path):  # reads the header only
                pass
        except Exception as e:  # PIL raises UnidentifiedImageError, SyntaxError... for foreign data
            return f"not an image ({type(e).__name__})"
    return None


def read_image_bytes(path: str | Path, what: str = "image") -> bytes:
    """Bytes of an image file; raises ``OSError`` naming the file when missing, empty or truncated."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"cannot read {what} {path}: file not found") from None
    except OSError as e:
        raise OSError(f"cannot read {what} {path}: {e.strerror or e}") from e
    problem = image_data_problem(data)
    if problem:
        raise OSError(f"cannot read {what} {path}: {problem}")
    return data


def read_rgb(path: str | Path, what: str = "image") -> np.ndarray:
    """RGB ``uint8`` ``(H, W, 3)``; raises ``OSError`` naming the file when it cannot be read.

    Truncated JPEG and PNG files are errors: OpenCV alone would return a JPEG's missing rows
    as grey pixels. The check costs two slices of the bytes already read.
    """
    data = read_image_bytes(path, what)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read {what} {path}: not an image OpenCV can decode ({len(data)} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_json(path: str | Path) -> dict | None:
    """The JSON object in ``path``; None when it is missing, unreadable or not an object (records
    that are rewritten when absent)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


IN_PROGRESS = ".in_progress.json"  # in a mask folder while a run is writing into it


@contextlib.contextmanager
def in_progress(roots: Sequence[str | Path | None], writer: str, items: list[str],
                enabled: bool = True) -> Iterator[None]:
    """Mark each folder of ``roots`` (None skipped) as being written by ``writer`` (naming
    ``items``, e.g. videos) until the block ends without an error: a folder that a killed run
    left half old, half new says so, and ``evaluation`` refuses to score it. ``enabled=False``
    (non-main ranks) does nothing."""
    markers = [Path(r) / IN_PROGRESS for r in roots if r is not None] if enabled else []
    text = json.dumps({"writer": writer, "items": items}, indent=1)
    for m in markers:
        atomic_write(m, lambda tmp: Path(tmp).write_text(text))
    yield
    for m in markers:
        m.unlink(missing_ok=True)


def part_path(path: str | Path) -> Path:
    """The hidden ``.<name>.part`` file :func:`atomic_write` fills before renaming it to ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


def atomic_write(path: str | Path, write: Callable[[Path], None], fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a hidden ``.<name>.part`` beside ``path``, then rename it into place.

    The one way files are written in this project: an interrupted run leaves at most the
    hidden part file (which loaders ignore and a failed ``write`` removes), never a truncated
    output under the real name. ``fsync`` also flushes the data and the rename to disk before
    returning (checkpoints: a power loss must not leave an empty file). An existing ``path``
    that is a symlink is replaced by the new file, never written through. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(path)
    try:
        if os.path.lexists(tmp):  # a killed run's leftover; a symlink there would be written through
            os.unlink(tmp)
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return path


def file_sha1(path: str | Path) -> str:
    """sha1 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_identity(paths: Iterable[str | Path]) -> list[dict[str, str]]:
    """``[{"path": absolute path, "sha1": ...}]`` per checkpoint, in the order given (they are averaged)."""
    out = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint not found: {p}")
        out.append({"path": str(p.resolve()), "sha1": file_sha1(p)})
    return out
