#!/usr/bin/env python
"""A real-data run on the shared DAVIS-2016 copy, CPU-sized.

Converts the official layout (frames symlinked), estimates DIS flow, trains on the train
sequences (stage 1 style, DAVIS-only, no unlabeled set or with the val frames as the
unlabeled set when --adv), writes offline masks for the val sequences, runs online
self-tuning on them, and prints J&F offline vs online. Split by sequence, as the benchmark.
Without ImageNet weights (pass --pretrained if you have them) and with minutes of CPU
training, absolute figures are far below the paper's; the point is the pipeline and the
offline -> online difference.

    python benchmarks/davis_real.py --minutes 12 --out_dir /tmp/davis_real
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--davis", default=os.environ.get("OAST_DAVIS_DIR", str(ROOT.parent / "shared/data/DAVIS")),
                   help="official DAVIS-2016 layout (default: ../shared/data/DAVIS or $OAST_DAVIS_DIR)")
    p.add_argument("--out_dir", default="/tmp/oast_davis_real", help="work folder (data, runs, masks)")
    p.add_argument("--model_scale", default="xxs", help="MobileViT scale")
    p.add_argument("--pretrained", default=None, help="timm ImageNet weights, if available")
    p.add_argument("--size", type=int, nargs=2, default=(192, 352), help="training and test input size")
    p.add_argument("--epochs", type=int, default=6, help="training epochs over the 30 train sequences")
    p.add_argument("--steps_per_epoch", type=int, default=120, help="cap on steps per epoch")
    p.add_argument("--batch_size", type=int, default=4, help="training batch")
    p.add_argument("--lr", type=float, default=5e-4, help="learning rate (higher than the paper's: no pretraining)")
    p.add_argument("--online_epochs", type=int, default=1, help="online passes per val video")
    p.add_argument("--online_lr", type=float, default=1e-4, help="online student learning rate")
    p.add_argument("--adv", action="store_true", help="use the val frames (no labels) as the unlabeled set")
    p.add_argument("--workers", type=int, default=1, help="loader / flow worker processes")
    a = p.parse_args()
    if not (Path(a.davis) / "JPEGImages").is_dir():
        print(f"skipped: no DAVIS data at {a.davis}")
        return

    import online_finetuning
    import test as test_script
    import unlabeled_train
    from datasets.prepare import prepare_dataset
    from engine.pipeline import comparison_table
    from evaluation import evaluate_datasets
    from utils.optical_flow import compute_dataset_flow

    t0 = time.time()
    out, data = Path(a.out_dir), Path(a.out_dir) / "data"
    times = {}
    print(prepare_dataset("DAVIS-2016", a.davis, data, link=True, progress=False))
    times["prepare"] = time.time() - t0
    t = time.time()
    st = compute_dataset_flow(data, "DAVIS-2016", "dis", workers=a.workers)
    times["flow"] = time.time() - t
    print(f"flow: {st}")
    common = ["--data_dir", str(data), "--size", *map(str, a.size), "--workers", str(a.workers)]
    train = [*common, "--model_scale", a.model_scale, "--labeled_datasets", "DAVIS-2016", "--epochs", str(a.epochs),
             "--max_steps_per_epoch", str(a.steps_per_epoch), "--batch_size", str(a.batch_size), "--lr", str(a.lr),
             "--lr_d", str(a.lr), "--lr_step", str(max(a.epochs - 2, 1)), "--val_datasets", "DAVIS-2016", "--val_every", "3",
             "--output_dir", str(out / "runs/train"), "--resume", "auto"]
    if a.pretrained:
        train += ["--pretrained", a.pretrained]
    train += ["--unlabeled_datasets", "DAVIS-2016", "--unlabeled_split", "val"] if a.adv else ["--lambda_adv", "0"]
    t = time.time()
    unlabeled_train.main(train)
    times["train"] = time.time() - t
    weights = str(out / "runs/train/checkpoint_last.pth")
    t = time.time()
    test_script.main([*common, "--weights", weights, "--test_datasets", "DAVIS-2016", "--save_dir", str(out / "offline")])
    times["test"] = time.time() - t
    t = time.time()
    timing = online_finetuning.main([*common, "--weights", weights, "--test_datasets", "DAVIS-2016",
                                     "--epochs", str(a.online_epochs), "--lr", str(a.online_lr),
                                     "--save_dir", str(out / "online"), "--output_dir", str(out / "runs/online"),
                                     "--resume"])
    times["online"] = time.time() - t
    before = evaluate_datasets(out / "offline", data, ["DAVIS-2016"])
    after = evaluate_datasets(out / "online", data, ["DAVIS-2016"])
    print("\nDAVIS-2016 val (10 sequences of the shared copy), trained on the 30 train sequences")
    print(comparison_table(before, after))
    print(f"\nonline: {timing['tune_s_per_frame']:.3f} s/frame tuning, {timing['predict_s_per_frame']:.3f} s/frame inference")
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f", total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
