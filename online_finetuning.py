#!/usr/bin/env python
"""Online adversarial self-tuning on each test video (no ground truth is read).

    python online_finetuning.py --weight runs/stage2/checkpoint_last.pth --data_dir D \\
        --test_datasets DAVIS-2016 FBMS Youtube-objects --save_dir outputs/online_masks
    torchrun --nproc_per_node=2 online_finetuning.py --weight ... (videos are split across processes)

The authors' command line (--pretrained P --sync-bn, from `python -m torch.distributed.launch`)
is accepted; those two options are unused here and a warning says so.

Masks are written like test.py's; score them afterwards with scripts/evaluate.py.
"""
from __future__ import annotations

import argparse

from engine.online import OnlineTuner, add_online_args
from engine.online_config import OnlineConfig
from utils.config import (HelpFormatter, data_parser, ignored_options_parser, model_parser, parse_with_config,
                          report_ignored_options, runtime_parser)
from utils.distributed import cleanup, init_distributed
from utils.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter,
                                parents=[model_parser(from_checkpoint=True), data_parser(), runtime_parser(),
                                         ignored_options_parser()])
    add_online_args(p)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parse_with_config(get_parser(), argv)
    config = OnlineConfig.from_args(args)
    try:
        info = init_distributed(config.device, args.local_rank)
        # Records before the tuner has checked the weights and data are kept for its log.txt.
        setup_logging(None, info.rank, buffer=True)
        tuner = OnlineTuner(config, info)
        if info.is_main:
            report_ignored_options(args, "online_finetuning.py")
        return tuner.run()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
