"""Checkpoint files: atomic save, and load with clear errors (also files that pickle classes
of code that is not here, such as the authors' checkpoints).

Loading weights into a model (config checks, averaging, the authors' key names) is
:mod:`models.loading`'s.
"""
from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

import torch

from utils.io import atomic_write


class Unresolved:
    """Stands in for a class whose code is not importable here (e.g. the authors' discriminator,
    pickled as a whole module of their code in their teacher files)."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state


_SAFE_ROOTS = ("torch", "collections", "numpy", "_codecs")
_SAFE = {("argparse", "Namespace"), ("copyreg", "_reconstructor")} | {
    ("builtins", n) for n in ("set", "frozenset", "slice", "range", "complex", "bytes", "bytearray", "dict",
                              "list", "tuple", "int", "float", "bool", "str", "object")}


class TolerantUnpickler(pickle.Unpickler):
    """Resolves tensors, containers and ``argparse.Namespace``; any other class (such as the
    authors' modules, which are not importable here) becomes an inert :class:`Unresolved` subclass."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in _SAFE_ROOTS or (module, name) in _SAFE:
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                pass
        return type(name, (Unresolved,), {"__module__": f"unresolved.{module}"})


# The ``pickle_module`` that torch.load is given for every checkpoint.
tolerant_pickle = types.ModuleType("oast_tolerant_pickle")
tolerant_pickle.Unpickler = TolerantUnpickler  # type: ignore[attr-defined]
tolerant_pickle.load = lambda f, **kw: TolerantUnpickler(f, **kw).load()  # type: ignore[attr-defined]
tolerant_pickle.__dict__["loads"] = pickle.loads


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


def state_dict_problem(sd: Any) -> str | None:
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
        ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=tolerant_pickle)
    except Exception as e:  # truncated/foreign files raise many types
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a checkpoint: expected a dict, got {type(ckpt).__name__}")
    bare = "model" not in ckpt
    if bare:
        ckpt = {"model": ckpt}
    problem = state_dict_problem(ckpt["model"])
    if problem:
        what = "a state dict or a dict with a 'model' state dict" if bare else "its 'model' entry to be a state dict"
        raise ValueError(f"{path} is not a checkpoint: expected {what}; {problem}")
    ckpt["model"] = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    return ckpt


def checkpoint_config(paths: list[str | Path]) -> dict | None:
    """The ``model_config`` stored in the first checkpoint (None for bare state dicts)."""
    return load_checkpoint(paths[0]).get("model_config")
