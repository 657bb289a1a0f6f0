#!/usr/bin/env python
"""Online adversarial self-tuning on each test video (no ground truth is read).

    python online_finetuning.py --weight runs/stage2/checkpoint_last.pth --data_dir D \\
        --test_datasets DAVIS-2016 FBMS Youtube-objects --save_dir outputs/online_masks
    torchrun --nproc_per_node=2 online_finetuning.py --weight ... (videos are split across processes)

Masks are written like test.py's; score them afterwards with scripts/evaluate.py.
"""
from __future__ import annotations

import argparse

from engine.online import OnlineTuner, add_online_args
from utils.config import HelpFormatter, data_parser, model_parser, parse_with_config, runtime_parser
from utils.distributed import cleanup


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter,
                                parents=[model_parser(from_checkpoint=True), data_parser(), runtime_parser()])
    add_online_args(p)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parse_with_config(get_parser(), argv)
    try:
        return OnlineTuner(args).run()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
