"""Shared by the video tool's runtime tests: the script loaded as a module and a short clip."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_video_script() -> ModuleType:
    """``scripts/segment_video.py`` as a module (it is a script, not a package member)."""
    spec = importlib.util.spec_from_file_location("segment_video_script", ROOT / "scripts" / "segment_video.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_moving_square(folder: Path, n: int = 5, h: int = 64, w: int = 96) -> Path:
    """``n`` JPEG frames of a bright square moving right over a smooth random texture."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (7, 7), 0)
    for i in range(n):
        img = tex.copy()
        img[20:40, 10 + 5 * i:30 + 5 * i] = (30, 200, 240)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), img)
    return folder


def check_network_probabilities(net, references: list, h: int, w: int) -> None:
    """``net``'s probabilities (float32, ``batch x 1 x h x w``) equal each reference network's
    within 1e-4, without and with flip, at batches 1 and 3 (exports are traced at batch 2: the
    batch axis must be dynamic)."""
    import torch

    from engine.views import predict_probs

    g = torch.Generator().manual_seed(3)
    for batch in (1, 3):
        image, flow = torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 3, h, w, generator=g)
        for flip in (False, True):
            got = predict_probs(net, image, flow, flip)
            assert got.shape == (batch, 1, h, w) and got.dtype == torch.float32
            for ref in references:
                assert float((got - predict_probs(ref, image, flow, flip)).abs().max()) < 1e-4
