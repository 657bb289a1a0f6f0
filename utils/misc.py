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
    """Autocast context for ``device`` (AMP is only used on CUDA)."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=amp_dtype(dtype))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
