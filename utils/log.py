"""Logging to console and file, and a rank-0-only TensorBoard writer."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import argparse

    from utils.distributed import DistInfo


def setup_logging(run_dir: str | Path | None, rank: int = 0, name: str = "log.txt") -> None:
    """Rank 0 logs INFO to stderr and ``<run_dir>/<name>``; other ranks log warnings only."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    if run_dir is not None and rank == 0:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(Path(run_dir) / name)
        fh.setFormatter(fmt)
        root.addHandler(fh)


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


def start_run(args: "argparse.Namespace", info: "DistInfo | None" = None) -> "tuple[DistInfo, Path]":
    """Set up distribution, logging to ``<output_dir>/log.txt`` and ``args.yaml`` for a run.

    Returns ``(info, run_dir)``; shared by every stage so run folders look alike.
    """
    from utils.config import save_args
    from utils.distributed import init_distributed

    info = info or init_distributed(args.device, args.local_rank)
    run_dir = Path(args.output_dir)
    setup_logging(run_dir, info.rank)
    if info.is_main:
        save_args(args, run_dir)
    return info, run_dir
