"""Checkpoint files: atomic save, load with clear errors, model-config checks, averaging."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder + rename).

    A crash mid-save leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_orphan_tmp(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed :func:`save_checkpoint` left in ``folder``; returns them.

    Only names this module writes (``<name>.pth.<random>.tmp``) are touched.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.glob("*.pth.*.tmp"):
        if p.is_file():
            p.unlink()
            removed.append(p)
    return removed


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on CPU; raise naming the file when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated/foreign files raise many types
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a checkpoint (expected a dict, got {type(ckpt).__name__})")
    if "model" not in ckpt:  # a bare state dict
        ckpt = {"model": ckpt}
    ckpt["model"] = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    return ckpt


def checkpoint_config(paths: list[str | Path]) -> dict | None:
    """The ``model_config`` stored in the first checkpoint (None for bare state dicts)."""
    return load_checkpoint(paths[0]).get("model_config")


def check_config(ckpt_cfg: dict | None, model_cfg: dict, path: str | Path) -> None:
    """Fail clearly when a checkpoint was trained for another architecture."""
    if ckpt_cfg is None:
        return
    for key in ("model_scale", "backbone"):
        if key in ckpt_cfg and ckpt_cfg[key] != model_cfg.get(key):
            raise ValueError(
                f"{path} holds a model with {key}={ckpt_cfg[key]!r}, but the model was built with "
                f"{key}={model_cfg.get(key)!r}; pass --model_scale {ckpt_cfg.get('model_scale')} "
                f"(and --backbone {ckpt_cfg.get('backbone')} if you changed it) or leave them unset")


def load_model_weights(model: nn.Module, paths: str | Path | list[str | Path], model_cfg: dict | None = None,
                       key: str = "model") -> None:
    """Load one checkpoint, or the average of several (same architecture), into ``model``.

    Averaging weights of checkpoints from one run (e.g. the last epochs) is a cheap ensemble.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("no checkpoint given")
    avg: dict[str, torch.Tensor] = {}
    for p in paths:
        ckpt = load_checkpoint(p)
        if model_cfg is not None:
            check_config(ckpt.get("model_config"), model_cfg, p)
        sd = ckpt[key] if key in ckpt else ckpt["model"]
        for k, v in sd.items():
            if k not in avg:
                avg[k] = v.detach().float().clone() if v.is_floating_point() else v.clone()
            elif v.is_floating_point():
                avg[k] += v.float()
    for k, v in avg.items():
        if v.is_floating_point():
            avg[k] = v / len(paths)
    try:
        model.load_state_dict(avg, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"weights in {paths[0]} do not fit this model (was it trained with another --model_scale or "
            f"--backbone?): {str(e).splitlines()[0]} ...") from e
