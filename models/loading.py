"""Loading checkpoints' weights into a network: the architecture check, averaging several files,
and the authors' key names mapped onto ours (:mod:`models.authors_keys`)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.authors_keys import convert_if_authors  # their key names -> ours, strictly checked
from utils.checkpoint import load_checkpoint, state_dict_problem


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
        sd = convert_if_authors(sd, p, model)
        problem = state_dict_problem(sd)
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
