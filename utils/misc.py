"""Small shared helpers: seeding, AMP settings, devices."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch; each rank gets its own stream (``seed + rank``)."""
    s = seed + rank
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


def worker_init_fn(worker_id: int) -> None:
    """Give each DataLoader worker its own NumPy/random seed derived from torch's."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def amp_dtype(name: str) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


def autocast(device: torch.device, enabled: bool, dtype: str = "bf16"):
    """Autocast context for ``device``: on CUDA in ``dtype``; on a CPU in bf16 only (a CPU with
    bf16 instructions runs the network about twice as fast; fp16 there stays float32, as the
    authors' fp16 preset would otherwise run in a CPU precision it was never meant for)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=amp_dtype(dtype))
    if enabled and device.type == "cpu" and dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
