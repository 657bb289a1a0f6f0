"""Reading state dicts from local files (.pth / .pt / .safetensors)."""
from __future__ import annotations

from pathlib import Path

import torch


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a flat tensor dict; unwraps ``{"state_dict"|"model": ...}`` containers.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or is
    not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign files raise many different types
        raise ValueError(f"cannot read weights from {path}: {type(e).__name__}: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} is not a weights file: expected a state dict (tensors by name), "
                         f"got {type(sd).__name__}")
    if not sd:
        raise ValueError(f"{path} is not a weights file: the state dict is empty")
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise ValueError(f"{path} is not a weights file: expected a state dict (tensors by name), "
                             f"but entry {k!r} holds {type(v).__name__}")
    return {k.removeprefix("module."): v for k, v in sd.items()}
