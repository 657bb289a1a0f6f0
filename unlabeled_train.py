#!/usr/bin/env python
"""Offline semi-supervised adversarial training (OAST stages 1 and 2).

Stage 1 (YouTube-VOS-2018 + DAVIS-2016 labeled, Youtube-objects unlabeled), into runs/stage1:
    torchrun --nproc_per_node=2 unlabeled_train.py --epochs 30 --data_dir D --pretrained P --sync-bn
Stage 2 (DAVIS-2016 finetune), into runs/stage2 (the default whenever --finetune is given):
    torchrun --nproc_per_node=2 unlabeled_train.py --epochs 25 --labeled_datasets DAVIS-2016 \\
        --finetune runs/stage1/checkpoint_last.pth --sync-bn
`python -m torch.distributed.launch` and a plain single-process `python unlabeled_train.py` work too.

Run folders: a folder that already holds a run (args.yaml, log.txt or checkpoint*.pth) is refused,
naming the file, unless the run resumes it (--resume auto: continue, or report a finished run) or
--overwrite replaces it. Nothing is written before the options, weights and data are checked.
A killed run loses at most its current epoch: rerun the same command with --resume auto.
"""
from __future__ import annotations

import argparse

from engine.offline import OfflineTrainer, add_offline_args
from models import add_blocks_arg
from utils.config import HelpFormatter, data_parser, model_parser, parse_with_config, runtime_parser
from utils.distributed import cleanup


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter,
                                parents=[model_parser(add_model_args=add_blocks_arg), data_parser(), runtime_parser()])
    add_offline_args(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_with_config(get_parser(), argv)
    try:
        return OfflineTrainer(args).fit()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
