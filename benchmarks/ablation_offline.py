#!/usr/bin/env python
"""Ablation of stage 1 on the synthetic data: supervised-only vs adversarial (same seed, steps).

The synthetic unlabeled and validation sets share a target style that differs from the
labeled source style, so feature alignment has a domain shift to close. Prints the
validation J (DAVIS-2016 val, target style) of both runs after each epoch.

    python benchmarks/ablation_offline.py --out_dir /tmp/ablation_offline
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", default="/tmp/oast_ablation_offline", help="work folder")
    p.add_argument("--epochs", type=int, default=5, help="epochs per run")
    p.add_argument("--lambda_adv", type=float, nargs="+", default=[0.0, 1e-4, 1e-3, 1e-2],
                   help="weights to compare (0 = supervised only)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and training")
    a = p.parse_args()

    import unlabeled_train
    from datasets.synthetic import make_synthetic_dataset

    out = Path(a.out_dir)
    data = out / "data"
    if not (data / ".complete").is_file():
        make_synthetic_dataset(data, a.seed)
        (data / ".complete").touch()
    rows = {}
    for lam in a.lambda_adv:
        run = out / f"lambda_{lam:g}"
        last = unlabeled_train.main(["--data_dir", str(data), "--output_dir", str(run), "--model_scale", "xxs",
                                     "--size", "128", "224", "--batch_size", "4", "--lr", "5e-4", "--lr_d", "5e-4",
                                     "--epochs", str(a.epochs), "--lambda_adv", str(lam), "--workers", "1",
                                     "--seed", str(a.seed), "--no_tensorboard", "--overwrite"])
        log = (run / "log.txt").read_text().splitlines()
        js = [float(line.split("val_J ")[1].split()[0]) for line in log if "val_J" in line]
        rows[lam] = js or [last["val_J"]]
    print(f"\nvalidation J on synthetic DAVIS-2016 val (target style), seed {a.seed}, per epoch:")
    for lam, js in rows.items():
        name = "supervised only" if lam == 0 else f"adversarial, lambda_adv {lam:g}"
        print(f"  {name:44s} " + " ".join(f"{100 * j:5.1f}" for j in js))


if __name__ == "__main__":
    main()
