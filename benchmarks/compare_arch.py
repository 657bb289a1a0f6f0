#!/usr/bin/env python
"""Our two-stream network against the authors' 3D MobileViT (``--arch oast3d``), side by side.

Two parts, each runnable alone:

* ``cost``: parameters, GFLOPs, CPU time per 384x640 frame and one training step, for both
  networks at each scale (``benchmarks/speed.py --archs two_stream oast3d --blocks authors``,
  fresh process per measurement).
* ``accuracy``: both networks through the same real-data run (``benchmarks/davis_real.py``:
  same DAVIS-2016 train sequences, flow, input size, steps, batch and learning rate), scored
  on the shared DAVIS-2016 val sequences; then the online stage on each with our settings
  (per video) and with ``--preset authors`` (one model over the test set, their EMA, views,
  logit averaging and mask discriminator), with the same number of passes.

    python benchmarks/compare_arch.py --part cost
    python benchmarks/compare_arch.py --part accuracy --out_dir /tmp/compare_arch

``oast3d`` is built with ``--blocks`` (default ``authors``: the MobileViT of the authors' code,
whose parameter counts equal their network's; ``timm``: timm's MobileViT blocks, which
``--arch oast3d`` builds by default and timm's ImageNet files initialise).

No ImageNet MobileViT weights install here (only EfficientNet-Lite0, which oast3d cannot
use), so the accuracy part starts both networks from random initialisation by default; the
budget options make it short enough for a CPU. Figures from such runs compare the two
networks under one budget; they are not the paper's accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import davis_real  # noqa: E402

ARCHS = ("two_stream", "oast3d")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", nargs="+", default=["cost", "accuracy"], choices=["cost", "accuracy"])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    p.add_argument("--scales", nargs="+", default=["xxs", "s"], help="cost part: MobileViT scales")
    p.add_argument("--blocks", default="authors", choices=["authors", "timm"],
                   help="oast3d's block flavour, both parts: authors (their network) or timm (timm's MobileViT "
                        "blocks; needed for --pretrained with a timm file)")
    p.add_argument("--repeats", type=int, default=3, help="cost part: timed runs (median reported)")
    p.add_argument("--scale", default="xxs", help="accuracy part: MobileViT scale of both networks")
    p.add_argument("--davis", default=davis_real.DEFAULT_DAVIS, help="official DAVIS-2016 layout")
    p.add_argument("--out_dir", default="/tmp/oast_compare_arch", help="accuracy part: work folder")
    p.add_argument("--eval", default="val", choices=["val", "holdout"], help="as benchmarks/davis_real.py")
    p.add_argument("--pretrained", default="none",
                   help="timm mobilevit_<scale> ImageNet file for both networks ('none': random init)")
    p.add_argument("--size", type=int, nargs=2, default=(192, 320), help="training and test size (H W)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs")
    p.add_argument("--steps_per_epoch", type=int, default=60, help="steps per epoch")
    p.add_argument("--batch_size", type=int, default=4, help="training batch")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (cosine schedule)")
    p.add_argument("--online_epochs", type=int, default=1, help="online passes, both settings (no flip TTA anywhere)")
    p.add_argument("--online_lr", type=float, default=1e-4, help="online lr of our setting (the preset keeps 1e-5)")
    p.add_argument("--workers", type=int, default=1)
    return p


def cost(a: argparse.Namespace) -> int:
    from benchmarks import speed

    return speed.main(["--archs", *a.archs, "--blocks", a.blocks, "--scales", *a.scales, "--device", "cpu",
                       "--repeats", str(a.repeats), "--json", str(Path(a.out_dir) / "cost.json")])


def accuracy(a: argparse.Namespace) -> dict:
    """Train, test and tune each network under one budget; returns J&F per network and setting."""
    import online_finetuning
    from evaluation import evaluate_datasets
    from evaluation.summary import scores

    if not (Path(a.davis) / "JPEGImages").is_dir():
        print(f"accuracy part skipped: no DAVIS data at {a.davis}")
        return {}
    out, results = Path(a.out_dir), {}
    test_split = "val" if a.eval == "val" else "holdout"
    for arch in a.archs:
        name = f"{arch}_{a.scale}"
        argv = ["--davis", a.davis, "--out_dir", str(out), "--name", name, "--eval", a.eval,
                "--pretrained", a.pretrained, "--model_scale", a.scale, "--size", *map(str, a.size),
                "--test_size", *map(str, a.size), "--epochs", str(a.epochs),
                "--steps_per_epoch", str(a.steps_per_epoch), "--batch_size", str(a.batch_size), "--lr", str(a.lr),
                "--online", "per_video", "--online_epochs", str(a.online_epochs), "--online_lr", str(a.online_lr),
                "--train_args", f"--arch {arch}" + (f" --blocks {a.blocks}" if arch == "oast3d" else ""),
                "--workers", str(a.workers), "--no_flip"]
        t = time.time()
        res = davis_real.run(davis_real.get_parser().parse_args(argv))
        row = {"offline": res["offline"]["DAVIS-2016 J&F"], "train_s": res["times"]["train"],
               "ours_online": res["online"]["per_video"]["scores"]["DAVIS-2016 J&F"]}
        run_dir = out / name
        weights = str(run_dir / "train" / "checkpoint_last.pth")
        data = out / "data"
        t1 = time.time()
        online_finetuning.main(["--preset", "authors", "--weights", weights, "--data_dir", str(data),
                                "--size", *map(str, a.size), "--workers", str(a.workers),
                                "--test_datasets", "DAVIS-2016", "--split", test_split,
                                "--epochs", str(a.online_epochs),
                                "--save_dir", str(run_dir / "online_authors"),
                                "--output_dir", str(run_dir / "runs_online_authors"), "--resume",
                                "--no_tensorboard"])
        after = evaluate_datasets(run_dir / "online_authors", data, ["DAVIS-2016"], split=test_split)
        row["authors_online"] = scores(after)["DAVIS-2016 J&F"]
        row["authors_online_s"] = time.time() - t1
        row["total_s"] = time.time() - t
        results[name] = row
    print(f"\nDAVIS-2016 {test_split} J&F, {a.scale}, oast3d with {a.blocks} blocks, init {a.pretrained}, "
          f"{a.epochs}x{a.steps_per_epoch} steps of {a.batch_size} at {a.size[0]}x{a.size[1]}, "
          f"online {a.online_epochs} pass(es)")
    print("| network | offline | online, ours (per video) | online, --preset authors | training s |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        ours, theirs = r["ours_online"] - r["offline"], r["authors_online"] - r["offline"]
        print(f"| {name} | {100 * r['offline']:.1f} | {100 * r['ours_online']:.1f} ({100 * ours:+.1f}) "
              f"| {100 * r['authors_online']:.1f} ({100 * theirs:+.1f}) | {r['train_s']:.0f} |")
    from utils.io import atomic_write
    text = json.dumps({"argv": sys.argv[1:], "results": results}, indent=1)
    atomic_write(out / "compare_arch.json", lambda tmp: tmp.write_text(text))
    return results


def main(argv: list[str] | None = None) -> int:
    a = get_parser().parse_args(argv)
    Path(a.out_dir).mkdir(parents=True, exist_ok=True)
    rc = 0
    if "cost" in a.part:
        rc = cost(a)
    if "accuracy" in a.part:
        accuracy(a)
    return rc


if __name__ == "__main__":
    sys.exit(main())
