#!/usr/bin/env python
"""Run the whole method on the built-in synthetic data on a CPU (a few minutes).

Makes the data, estimates optical flow, trains stage 1 and stage 2, writes offline masks,
runs online self-tuning, and prints J&F before and after online tuning.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.pipeline import DemoConfig, run_demo  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    d = DemoConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out_dir", type=Path, default=d.out_dir, help="data, runs, masks and evaluation go here")
    p.add_argument("--flow", default=d.flow, choices=["dis", "exact"], help="estimate flow (dis) or keep the rendered flow")
    p.add_argument("--stage1_epochs", type=int, default=d.stage1_epochs, help="stage-1 epochs")
    p.add_argument("--stage2_epochs", type=int, default=d.stage2_epochs, help="stage-2 epochs")
    p.add_argument("--online_epochs", type=int, default=d.online_epochs, help="online passes per video")
    p.add_argument("--model_scale", default=d.model_scale, choices=["xxs", "xs", "s"], help="MobileViT scale")
    p.add_argument("--workers", type=int, default=d.workers, help="data-loading worker processes")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    a = p.parse_args(argv)
    cfg = DemoConfig(out_dir=a.out_dir, flow=a.flow, stage1_epochs=a.stage1_epochs, stage2_epochs=a.stage2_epochs,
                     online_epochs=a.online_epochs, model_scale=a.model_scale, workers=a.workers, seed=a.seed)
    return run_demo(cfg)


if __name__ == "__main__":
    main()
