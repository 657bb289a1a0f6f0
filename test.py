#!/usr/bin/env python
"""Inference: write binary masks (and optionally probability maps) for every test frame.

    python test.py --weights runs/stage2/checkpoint_best.pth --data_dir data \\
        --test_datasets DAVIS-2016 FBMS Youtube-objects --save_dir outputs/masks

Masks go to <save_dir>/<dataset>/<video>/<frame>.png (0/255, original frame size);
with --save_prob, probabilities (0..255) go to <prob_dir>/<dataset>/<video>/<frame>.png.
Several --weights are averaged into one model. Works on CPU; multi-GPU with torchrun.
"""
from __future__ import annotations

import argparse
import logging
import time

from datasets import FrameDataset
from engine.inference import MaskWriter, run_inference
from models import build_model_from_checkpoint
from utils.config import (DEFAULT_TEST_DATASETS, HelpFormatter, data_parser, ignored_options_parser, model_parser,
                          parse_with_config, report_ignored_options, runtime_parser)
from utils.distributed import barrier, cleanup, init_distributed
from utils.io import in_progress
from utils.log import setup_logging

_log = logging.getLogger("test")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter,
                                parents=[model_parser(from_checkpoint=True), data_parser(), runtime_parser(),
                                         ignored_options_parser()])
    g = p.add_argument_group("test")
    g.add_argument("--weights", "--weight", nargs="+", required=True,
                   help="checkpoint(s); several are averaged into one model")
    g.add_argument("--test_datasets", nargs="+", default=DEFAULT_TEST_DATASETS, help="datasets to segment")
    g.add_argument("--split", default="val", help="split folder to segment")
    g.add_argument("--save_dir", default="outputs/masks", help="output root for binary masks")
    g.add_argument("--save_prob", action="store_true", help="also write probability maps (saliency metrics)")
    g.add_argument("--prob_dir", default=None, help="output root for probability maps; default <save_dir>_prob")
    g.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    g.add_argument("--scales", type=float, nargs="+", default=[1.0],
                   help="test-time input sizes as multiples of --size (rounded to 32), each resized from the "
                        "original frame; their probabilities are averaged")
    g.add_argument("--temporal", type=int, nargs="*", default=[],
                   help="fuse each frame's probability with its neighbours t-k and t+k for these k, warped in with "
                        "DIS flow where a forward-backward check passes (e.g. '--temporal 1'); the online stage's "
                        "targets do the same")
    g.add_argument("--batch_size", type=int, default=4, help="frames per forward pass")
    g.add_argument("--videos", nargs="+", default=None, help="only these videos (debugging)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parse_with_config(get_parser(), argv)
    info = init_distributed(args.device, args.local_rank)
    setup_logging(None, info.rank)
    if info.is_main:
        report_ignored_options(args, "test.py")
    model = build_model_from_checkpoint(args.weights, args.model_scale, args.backbone, args.arch).to(info.device)
    writer = MaskWriter.for_options(args.save_dir, args.save_prob, args.prob_dir)
    t0, total = time.time(), 0
    with in_progress([writer.save_dir, writer.prob_dir], "test.py", list(args.test_datasets), info.is_main):
        for name in args.test_datasets:
            ds = FrameDataset(args.data_dir, [name], "test", split=args.split, size=args.size, with_labels=False,
                              videos=args.videos)
            total += run_inference(model, ds, writer, info, args.batch_size, args.workers, args.flip, args.amp,
                                   args.amp_dtype, desc=name, scales=args.scales, temporal=args.temporal)
        barrier()  # every rank's masks are written before the marker goes
    _log.info("wrote %d frames (this rank) to %s%s in %.1f s", total, args.save_dir,
              f" and {writer.prob_dir}" if writer.prob_dir else "", time.time() - t0)
    cleanup()


if __name__ == "__main__":
    main()
