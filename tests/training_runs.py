"""An offline training killed part-way, for the tests that resume it."""
from __future__ import annotations

import pytest

import unlabeled_train
from engine.offline import OfflineTrainer


def run_killed_at_step(monkeypatch: pytest.MonkeyPatch, argv: list[str], step: int) -> None:
    """Run ``unlabeled_train.py argv`` and kill it (KeyboardInterrupt) at its ``step``-th training
    step (1-based, counted over epochs), as a crash would; the real step is back afterwards."""
    calls = {"n": 0}
    real_step = OfflineTrainer.step

    def crashing_step(self, batch, unl):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt("simulated crash")
        return real_step(self, batch, unl)

    monkeypatch.setattr(OfflineTrainer, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        unlabeled_train.main(argv)
    monkeypatch.setattr(OfflineTrainer, "step", real_step)
