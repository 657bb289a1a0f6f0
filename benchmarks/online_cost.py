#!/usr/bin/env python
"""Cost of the online stage per frame against plain inference, on the same frames and size.

Runs ``test.py`` (with the given test-time views) and then ``online_finetuning.py`` (tuning +
writing masks, same views) on a few videos, one after the other in this process, and prints
seconds per frame of each and their ratio. Run it on a quiet machine: two PyTorch processes
sharing the cores can slow each other many times over.

    python benchmarks/online_cost.py --weights /tmp/dr/recipe_holdout/train/checkpoint_last.pth \\
        --data_dir /tmp/dr/data --split holdout --videos bear hike --size 320 576
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--dataset", default="DAVIS-2016")
    p.add_argument("--split", default="holdout")
    p.add_argument("--videos", nargs="+", default=None, help="default: every video of the split")
    p.add_argument("--size", type=int, nargs=2, default=(320, 576))
    p.add_argument("--views", default="--flip", help="test-time views of both (e.g. '--flip --scales 1 1.25')")
    p.add_argument("--test_args", default="", help="test.py options only, timed as a second test.py run (e.g. "
                                                   "'--temporal 1': the best offline inference)")
    p.add_argument("--online_args", default="", help="online_finetuning.py options (default: its defaults)")
    a = p.parse_args(argv)

    import online_finetuning
    import test as test_script

    common = ["--weights", a.weights, "--data_dir", a.data_dir, "--test_datasets", a.dataset, "--split", a.split,
              "--size", *map(str, a.size), "--workers", "1", *shlex.split(a.views)]
    if a.videos:
        common += ["--videos", *a.videos]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        test_script.main([*common, "--save_dir", f"{tmp}/test"])
        t_test = time.perf_counter() - t
        n = sum(1 for _ in Path(tmp, "test").rglob("*.png"))
        t_extra = None
        if a.test_args:
            t = time.perf_counter()
            test_script.main([*common, "--save_dir", f"{tmp}/test_extra", *shlex.split(a.test_args)])
            t_extra = time.perf_counter() - t
        t = time.perf_counter()
        timing = online_finetuning.main([*common, "--save_dir", f"{tmp}/online", "--output_dir", f"{tmp}/run",
                                         "--no_tensorboard", *shlex.split(a.online_args)])
        t_online = time.perf_counter() - t
    out = {"frames": n, "test_s_per_frame": t_test / n, "online_s_per_frame": t_online / n,
           "tune_s_per_frame": timing["tune_s_per_frame"], "write_s_per_frame": timing["predict_s_per_frame"]}
    out["ratio"] = out["online_s_per_frame"] / out["test_s_per_frame"]
    print(f"\n{n} frames at {a.size[0]}x{a.size[1]}, views '{a.views}'")
    print(f"test.py:        {out['test_s_per_frame']:.3f} s/frame (model load included)")
    if t_extra is not None:
        out["test_extra_s_per_frame"] = t_extra / n
        out["ratio_extra"] = out["online_s_per_frame"] / out["test_extra_s_per_frame"]
        print(f"test.py {a.test_args}: {out['test_extra_s_per_frame']:.3f} s/frame")
    print(f"online stage:   {out['online_s_per_frame']:.3f} s/frame = tuning {out['tune_s_per_frame']:.3f} + writing "
          f"{out['write_s_per_frame']:.3f} + loading/records")
    print(f"ratio:          {out['ratio']:.2f}x inference"
          + (f", {out['ratio_extra']:.2f}x test.py {a.test_args}" if t_extra is not None else ""))
    return out


if __name__ == "__main__":
    main()
