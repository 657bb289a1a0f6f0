#!/usr/bin/env python
"""Ablation of online self-tuning on the synthetic data (per_video mode; --modes adds transductive).

Variants: no tuning (offline masks) / pseudo-label only (no adversarial loss) / full OAST /
without TTA (teacher sees the identity view only). Needs an offline checkpoint; by default
it reuses the demo's (`python scripts/demo.py` first) or trains one quickly.

    python benchmarks/ablation_online.py --weights demo_output/runs/stage2/checkpoint_last.pth \\
        --data_dir demo_output/data
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASETS = ["DAVIS-2016", "FBMS", "Youtube-objects"]
VARIANTS = {
    "pseudo-label only": ["--lambda_adv", "0"],
    "full OAST": [],  # the defaults: lambda_adv 1e-4, discriminator lr 1e-5
    "full OAST, lambda_adv 1e-3, lr_d 1e-4": ["--lambda_adv", "1e-3", "--lr_d", "1e-4"],
    "full OAST, lambda_adv 0.1": ["--lambda_adv", "0.1"],
    "without TTA": ["--tta", "identity"],
    "TTA without the rescale view": ["--tta", "identity", "flip", "jitter"],
    "sharpen 0.25": ["--sharpen", "0.25"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="demo_output/runs/stage2/checkpoint_last.pth", help="offline checkpoint")
    p.add_argument("--data_dir", default="demo_output/data", help="synthetic data (project layout)")
    p.add_argument("--out_dir", default="/tmp/oast_ablation_online", help="masks and runs")
    p.add_argument("--size", type=int, nargs=2, default=(128, 224), help="input size")
    p.add_argument("--modes", nargs="+", default=["per_video"], choices=["per_video", "transductive"],
                   help="online modes")
    p.add_argument("--epochs", type=int, default=3, help="online passes per video (per_video mode; the demo's)")
    p.add_argument("--lr", type=float, default=3e-4, help="student learning rate (the demo's)")
    a = p.parse_args()
    if not Path(a.weights).is_file():
        sys.exit(f"no offline checkpoint at {a.weights}: run `python scripts/demo.py` first or pass --weights")

    import online_finetuning
    import test as test_script
    from evaluation.summary import scores
    from evaluation import evaluate_datasets

    out = Path(a.out_dir)
    common = ["--weights", a.weights, "--data_dir", a.data_dir, "--size", *map(str, a.size), "--workers", "1",
              "--test_datasets", *DATASETS]
    test_script.main([*common, "--save_dir", str(out / "offline")])
    table = {"no tuning": scores(evaluate_datasets(out / "offline", a.data_dir, DATASETS))}
    for mode in a.modes:
        for name, extra in VARIANTS.items():
            tag = f"{mode}_{name.replace(' ', '_')}"
            online_finetuning.main([*common, "--mode", mode, "--epochs", str(a.epochs), "--lr", str(a.lr), *extra,
                                    "--no_tensorboard",
                                    "--save_dir", str(out / tag), "--output_dir", str(out / "runs" / tag)])
            table[f"{mode}: {name}"] = scores(evaluate_datasets(out / tag, a.data_dir, DATASETS))
    keys = ["DAVIS-2016 J&F", "DAVIS-2016 J", "DAVIS-2016 F", "FBMS J", "Youtube-objects J"]
    print(f"\n{'variant':50s} " + " ".join(f"{k:>18s}" for k in keys))
    for name, s in table.items():
        print(f"{name:50s} " + " ".join(f"{100 * s[k]:18.1f}" for k in keys))


if __name__ == "__main__":
    main()
