"""The one call into the online stage (:class:`engine.online.OnlineTuner`) for ``--online``.

The tuner takes the online stage's argparse options, so :func:`online_args` builds them from
the same parser pieces as ``online_finetuning.py``; only this module knows that.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from engine.inference import MaskWriter
from segment_video.frames import WORK_DATASET, WORK_SPLIT


def online_parser() -> argparse.ArgumentParser:
    """The options of the online stage, from the same parser pieces as ``online_finetuning.py``."""
    from engine.online import add_online_args
    from utils.config import data_parser, ignored_options_parser, model_parser, runtime_parser

    p = argparse.ArgumentParser(add_help=False, parents=[model_parser(from_checkpoint=True), data_parser(),
                                                         runtime_parser(), ignored_options_parser()])
    add_online_args(p)
    return p


def online_args(args: argparse.Namespace, work_root: Path, name: str) -> argparse.Namespace:
    """The online-stage options for tuning on this one video (as ``online_finetuning.py`` would get)."""
    argv = ["--weights", *map(str, args.weights), "--data_dir", str(work_root), "--test_datasets", WORK_DATASET,
            "--split", WORK_SPLIT, "--videos", name, "--size", *map(str, args.size), "--workers", str(args.workers),
            "--epochs", str(args.online_epochs), "--batch_size", str(args.online_batch_size),
            "--lr", str(args.online_lr), "--mode", args.online_mode, "--tta", *args.tta, "--predict_with", "teacher",
            # The tuner writes through the caller's MaskWriter; --save_dir only fills the records.
            "--save_dir", str(Path(args.output_dir) / "masks"), "--output_dir", str(work_root / "online"),
            "--device", args.device, "--amp_dtype", args.amp_dtype, "--seed", str(args.seed), "--no_tensorboard"]
    if args.model_scale:
        argv += ["--model_scale", args.model_scale]
    if args.backbone:
        argv += ["--backbone", args.backbone]
    if args.flip:
        argv.append("--flip")
    if args.amp:
        argv.append("--amp")
    return online_parser().parse_args(argv)


def tune_and_predict(args: argparse.Namespace, work_root: Path, name: str, writer: MaskWriter) -> dict:
    """OAST online self-tuning on video ``name`` of the work folder, masks by the teacher through
    ``writer``; returns the tuner's timing (``frames``, ``tune_s``, ``predict_s``, ...) plus
    ``model_s`` (building the tuner). The tuner's run folder is ``<work_root>/online``."""
    from engine.online import OnlineTuner

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        t = time.perf_counter()
        tuner = OnlineTuner(online_args(args, work_root, name), writer=writer)
        model_s = time.perf_counter() - t
        timing = tuner.run()
    finally:
        # The tuner sets up logging to its run folder's log.txt; the rest of this run logs as before.
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
    return {**timing, "model_s": model_s}
