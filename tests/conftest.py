"""Shared fixtures: the synthetic data set (made once per session), a seeded random xxs
checkpoint, and the shared DAVIS copy."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items) -> None:
    """Slow and faults tests (real-data recipes up to ~20 minutes) get an hour instead of the
    fast tests' 5-minute limit of pytest.ini, unless they set their own."""
    for item in items:
        if (item.get_closest_marker("slow") or item.get_closest_marker("faults")) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(3600))


def davis_dir() -> Path | None:
    """The shared DAVIS-2016 copy (``$OAST_DAVIS_DIR`` or ``../shared/data/DAVIS``), if present."""
    p = Path(os.environ.get("OAST_DAVIS_DIR", ROOT.parent / "shared" / "data" / "DAVIS"))
    return p if (p / "JPEGImages").is_dir() else None


@pytest.fixture(scope="session")
def davis_root() -> Path:
    p = davis_dir()
    if p is None:
        pytest.skip("shared DAVIS data not found (set OAST_DAVIS_DIR or place it at ../shared/data/DAVIS)")
    return p


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """The built-in synthetic data set at a small size (seeded, a few seconds)."""
    from datasets.synthetic import make_synthetic_dataset

    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(out, seed=0, size=(96, 160), save_exact_flow=True)
    return out


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> Path:
    """An xxs two_stream checkpoint with seeded random weights (for tests of the machinery)."""
    from models import build_model, model_config
    from utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("xxs_ckpt") / "xxs.pth"
    # The ReLU head: with this seed its teacher reaches p > 0.5 somewhere, which the online
    # tests need (a target with no object label is not tuned); the linear head's does not.
    save_checkpoint(path, {"model": build_model("xxs", head="relu").state_dict(),
                           "model_config": model_config("xxs", head="relu")})
    return path
