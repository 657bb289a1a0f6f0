"""Checkpoint files: atomic save, load with clear errors, model-config checks, averaging."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.io import atomic_write


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically and durably (hidden part file, fsync, rename).

    A crash or kill mid-save leaves the previous file intact, never a truncated one; the
    part file it may leave is removed by :func:`remove_orphan_tmp`.
    """
    atomic_write(path, lambda tmp: torch.save(state, tmp), fsync=True)


def remove_orphan_tmp(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed save left in ``folder``; returns them.

    Only names this project writes are touched: the hidden ``.<name>.part`` files of
    :func:`utils.io.atomic_write` and the ``<name>.pth.<random>.tmp`` files of older versions.
    Call it only while nothing is writing into ``folder``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for pattern in ("*.pth.*.tmp", ".*.part"):
        for p in sorted(folder.glob(pattern)):
            if p.is_file() or p.is_symlink():
                p.unlink()
                removed.append(p)
    return removed


def _state_dict_problem(sd: Any) -> str | None:
    """Why ``sd`` is not a state dict (str -> tensor), or None."""
    if not isinstance(sd, dict):
        return f"found {type(sd).__name__}"
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            return f"entry {k!r} holds {type(v).__name__}, not a tensor"
    return None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on CPU; raise naming the file when missing, unreadable or not a checkpoint.

    Accepted: a dict with a ``"model"`` state dict (what :func:`save_checkpoint` writes) or a
    bare state dict. Anything else raises ``ValueError("<path> is not a checkpoint: ...")``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        from models.authors_keys import tolerant_pickle  # the authors' files pickle whole modules

        ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=tolerant_pickle)
    except Exception as e:  # truncated/foreign files raise many types
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a checkpoint: expected a dict, got {type(ckpt).__name__}")
    bare = "model" not in ckpt
    if bare:
        ckpt = {"model": ckpt}
    problem = _state_dict_problem(ckpt["model"])
    if problem:
        what = "a state dict or a dict with a 'model' state dict" if bare else "its 'model' entry to be a state dict"
        raise ValueError(f"{path} is not a checkpoint: expected {what}; {problem}")
    ckpt["model"] = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    return ckpt


def checkpoint_config(paths: list[str | Path]) -> dict | None:
    """The ``model_config`` stored in the first checkpoint (None for bare state dicts)."""
    return load_checkpoint(paths[0]).get("model_config")


def check_config(ckpt_cfg: dict | None, model_cfg: dict, path: str | Path) -> None:
    """Fail clearly when a checkpoint was trained for another architecture."""
    if ckpt_cfg is None:
        return
    for key, default in (("arch", "two_stream"), ("blocks", None)):
        if ckpt_cfg.get(key, default) != model_cfg.get(key, default):
            raise ValueError(f"{path} holds a model with {key}={ckpt_cfg.get(key, default)!r}, but the model was "
                             f"built with {key}={model_cfg.get(key, default)!r}; pass --{key} "
                             f"{ckpt_cfg.get(key, default)} or leave it unset")
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
        from models.authors_keys import convert_if_authors  # their key names -> ours, strictly checked

        sd = convert_if_authors(sd, p, model)
        problem = _state_dict_problem(sd)
        if problem:
            raise ValueError(f"{p} is not a checkpoint: expected its {key!r} entry to be a state dict; {problem}")
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
