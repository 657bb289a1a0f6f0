"""Logging to console and file, and a rank-0-only TensorBoard writer."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:
    import argparse

    from utils.distributed import DistInfo


_FORMAT = ("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")


class _StartupBuffer(logging.Handler):
    """Keeps the records logged before the run folder may be written, for ``log.txt`` later."""

    def __init__(self, capacity: int = 10000):
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.capacity = capacity

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < self.capacity:
            self.records.append(record)


def setup_logging(run_dir: str | Path | None, rank: int = 0, name: str = "log.txt", buffer: bool = False) -> None:
    """Rank 0 logs INFO to stderr and ``<run_dir>/<name>``; other ranks log warnings only.

    With ``run_dir=None`` and ``buffer``, rank 0 keeps its records in memory until
    :func:`attach_log_file` writes them to the run folder's log: a run that fails its
    start-up checks writes nothing, and one that passes them still has its start in the log.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        if isinstance(h, logging.FileHandler):
            h.close()
    fmt = logging.Formatter(*_FORMAT)
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    if run_dir is not None and rank == 0:
        attach_log_file(run_dir, name)
    elif buffer and rank == 0:
        root.addHandler(_StartupBuffer())


def attach_log_file(run_dir: str | Path, name: str = "log.txt") -> Path:
    """Append the log (from now on, plus any records buffered since start-up) to ``<run_dir>/<name>``."""
    logging.getLogger().addHandler(_file_handler(run_dir, name))
    return Path(run_dir) / name


@contextmanager
def keep_records(records: list[logging.LogRecord]) -> Iterator[None]:
    """Add the root logger's records of the block to ``records``, for :func:`log_to_file` to write
    later; nothing stays attached. Skipped when a start-up buffer (:func:`setup_logging` with
    ``buffer``) already keeps them for the log file."""
    root = logging.getLogger()
    if any(isinstance(h, _StartupBuffer) for h in root.handlers):
        yield
        return
    buf = _StartupBuffer()
    root.addHandler(buf)
    try:
        yield
    finally:
        root.removeHandler(buf)
        records.extend(buf.records)


@contextmanager
def log_to_file(run_dir: str | Path, name: str = "log.txt", enabled: bool = True,
                records: Iterable[logging.LogRecord] = ()) -> Iterator[Path | None]:
    """Inside the block, append the root logger's records to ``<run_dir>/<name>``, after ``records``
    (see :func:`keep_records`) and any buffered since start-up. The handler is removed and closed on
    leaving, so a library call leaves the caller's logging as it was; what reaches the file is what
    the caller's levels let through. With ``enabled`` False (other ranks) nothing happens."""
    if not enabled:
        yield None
        return
    root = logging.getLogger()
    handler = _file_handler(run_dir, name)
    for record in records:
        handler.handle(record)
    root.addHandler(handler)
    try:
        yield Path(run_dir) / name
    finally:
        root.removeHandler(handler)
        handler.close()


def _file_handler(run_dir: str | Path, name: str) -> logging.FileHandler:
    """A handler appending to ``<run_dir>/<name>`` that has written the start-up buffer's records
    (and taken the buffer off the root logger: they are in the file now)."""
    root = logging.getLogger()
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(path)
    fh.setFormatter(logging.Formatter(*_FORMAT))
    for h in list(root.handlers):
        if isinstance(h, _StartupBuffer):
            root.removeHandler(h)
            for record in h.records:
                fh.handle(record)
    return fh


class TensorBoard:
    """TensorBoard ``SummaryWriter`` on rank 0; a no-op elsewhere or when disabled."""

    def __init__(self, log_dir: str | Path | None, enabled: bool = True):
        self.writer = None
        if enabled and log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(log_dir))

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def images(self, tag: str, images: np.ndarray, step: int) -> None:
        """``images``: ``N x 3 x H x W`` floats in [0, 1]."""
        if self.writer:
            self.writer.add_images(tag, images, step)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


# Run folders ---------------------------------------------------------------------------------
RUN_FILES = ("args.yaml", "log.txt")  # with checkpoint*.pth and tb/events.out.tfevents.*


def run_files(folder: str | Path) -> list[Path]:
    """The files of a training run in ``folder``: what a new run there would overwrite or mix with.

    ``checkpoint*.pth`` first (checkpoint_last.pth leading), then ``args.yaml``, ``log.txt``
    and TensorBoard event files under ``tb/``. Anything else in the folder is not a run's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    ckpts = sorted((p for p in folder.glob("checkpoint*.pth") if p.is_file()),
                   key=lambda p: (p.name != "checkpoint_last.pth", p.name))
    named = [folder / n for n in RUN_FILES if (folder / n).is_file()]
    tb = sorted(p for p in (folder / "tb").glob("events.out.tfevents.*") if p.is_file())
    return ckpts + named + tb


def check_run_folder(run_dir: str | Path, resume: str | None, overwrite: bool,
                     finetune: str | None = None) -> list[Path]:
    """Refuse (naming the folder and a file) to start a run over another run's files.

    Allowed: an empty or new folder; ``--resume auto`` or a ``--resume`` checkpoint inside
    ``run_dir`` (the run continues); ``--overwrite`` (returns the files to delete once every
    other option is checked, see :func:`delete_run_files`). Writes nothing.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"--output_dir {run_dir} is a file, not a folder")
    if resume and overwrite:
        raise ValueError(f"--resume {resume} continues the run in {run_dir} and --overwrite deletes it: "
                         f"pass only one of them")
    files = run_files(run_dir)
    if not files:
        return []
    if resume == "auto" or (resume and Path(resume).resolve().parent == run_dir.resolve()):
        return []
    if overwrite:
        if finetune and Path(finetune).resolve() in {f.resolve() for f in files}:
            raise ValueError(f"--finetune {finetune} is a file of the run in {run_dir} that --overwrite would "
                             f"delete; choose another --output_dir")
        return files
    others = f" (and {len(files) - 1} more run file(s))" if len(files) > 1 else ""
    prefix = (f"--resume {resume} is a checkpoint of another folder, but " if resume else "")
    raise FileExistsError(
        f"{prefix}--output_dir {run_dir} already holds a run: {files[0]}{others}. Nothing was written. "
        f"To continue that run, add --resume auto; to replace it, add --overwrite (deletes its checkpoint*.pth, "
        f"args.yaml, log.txt and tb/ event files); or choose another --output_dir.")


def delete_run_files(files: list[Path]) -> list[Path]:
    """Delete the run files :func:`check_run_folder` listed for ``--overwrite``; returns those deleted."""
    deleted = []
    for f in files:
        try:
            f.unlink()
            deleted.append(f)
        except FileNotFoundError:
            pass
    return deleted


def begin_run(args: "argparse.Namespace", info: "DistInfo | None" = None,
              buffer: bool = True) -> "tuple[DistInfo, Path]":
    """Distribution and console logging only: nothing is written to ``args.output_dir`` yet."""
    from utils.distributed import init_distributed

    info = info or init_distributed(args.device, args.local_rank)
    setup_logging(None, info.rank, buffer=buffer)
    return info, Path(args.output_dir)


def open_run(args: "argparse.Namespace", info: "DistInfo", run_dir: Path, write_args: bool = True) -> None:
    """Rank 0 starts writing the run folder: ``log.txt`` (with the buffered start-up log) and ``args.yaml``."""
    from utils.config import save_args

    if info.is_main:
        attach_log_file(run_dir)
        if write_args:
            save_args(args, run_dir)
