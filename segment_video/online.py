"""The one call into the online stage (:class:`engine.online.OnlineTuner`) for ``--online``.

:func:`online_config` turns the tool's options into the online stage's
:class:`~engine.online_config.OnlineConfig`; every option the tool has no say in keeps the
online stage's default.
"""
from __future__ import annotations

import time
from pathlib import Path

from engine.inference import MaskWriter
from engine.online_config import OnlineConfig
from segment_video.config import VideoConfig
from segment_video.frames import WORK_DATASET, WORK_SPLIT


def online_config(cfg: VideoConfig, work_root: Path, name: str) -> OnlineConfig:
    """The online stage's options for tuning on video ``name`` of the work folder."""
    return OnlineConfig(
        weights=cfg.weights, model_scale=cfg.model_scale, backbone=cfg.backbone,
        data_dir=str(work_root), test_datasets=(WORK_DATASET,), split=WORK_SPLIT, videos=(name,),
        size=cfg.size, workers=cfg.workers, device=cfg.device, amp=cfg.amp, amp_dtype=cfg.amp_dtype,
        seed=cfg.seed, epochs=cfg.online_epochs, batch_size=cfg.online_batch_size, lr=cfg.online_lr, flip=cfg.flip,
        # The tuner writes through the caller's MaskWriter; save_dir only fills the records.
        save_dir=str(cfg.output_dir / "masks"), output_dir=str(work_root / "online"), no_tensorboard=True)


def tune_and_predict(cfg: VideoConfig, work_root: Path, name: str, writer: MaskWriter) -> dict:
    """OAST online self-tuning on video ``name`` of the work folder, masks written through
    ``writer``; returns the tuner's timing (``frames``, ``tune_s``, ``predict_s``, ...) plus
    ``model_s`` (building the tuner). The tuner's run folder, with its log.txt, is ``<work_root>/online``."""
    from engine.online import OnlineTuner

    t = time.perf_counter()
    tuner = OnlineTuner(online_config(cfg, work_root, name), writer=writer)
    model_s = time.perf_counter() - t
    return {**tuner.run(), "model_s": model_s}
