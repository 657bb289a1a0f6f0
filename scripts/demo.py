#!/usr/bin/env python
"""Run the whole method on the built-in synthetic data on a CPU (a few minutes).

synthetic data -> optical flow -> stage 1 (adversarial, labeled + unlabeled) -> stage 2
(DAVIS finetune) -> test.py (offline masks) -> online self-tuning -> evaluation, printing J&F
before and after online tuning. Every stage runs through the same entry points a user
calls (``unlabeled_train.main`` etc.), only with small CPU-sized settings.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import evaluate_datasets  # noqa: E402
from evaluation.summary import comparison_table, scores  # noqa: E402

DEMO_DATASETS = ["DAVIS-2016", "FBMS", "Youtube-objects"]


@dataclass
class DemoConfig:
    """CPU-sized settings; the paper's settings are the entry scripts' defaults."""
    out_dir: Path = Path("demo_output")
    seed: int = 0
    frame_size: tuple[int, int] = (144, 256)
    size: tuple[int, int] = (128, 224)
    model_scale: str = "xxs"
    flow: str = "dis"  # "dis": estimate flow like on real data; "exact": keep the rendered flow
    stage1_epochs: int = 5
    stage2_epochs: int = 3
    online_epochs: int = 1  # the online stage's defaults (one pass at lr 1e-4)
    batch_size: int = 4
    lr: float = 5e-4  # higher than the paper's 1e-4: no ImageNet weights and a few hundred steps
    lambda_adv: float = 1e-4  # the paper's
    online_lr: float = 1e-4
    workers: int = 1

    @property
    def data_dir(self) -> Path:
        return self.out_dir / "data"


def _banner(i: int, n: int, text: str, t0: float) -> None:
    print(f"\n=== [{i}/{n}] {text}  (t = {time.time() - t0:.0f} s) ===", flush=True)


def run_demo(cfg: DemoConfig) -> dict[str, dict[str, float]]:
    """Run every stage; returns the offline and online dataset figures."""
    import online_finetuning
    import test as test_script
    import unlabeled_train
    from datasets.synthetic import make_synthetic_dataset
    from utils.optical_flow import compute_dataset_flow

    t0, n = time.time(), 7
    out, data = cfg.out_dir, str(cfg.data_dir)
    runs, masks = out / "runs", out / "masks"
    common = ["--data_dir", data, "--size", *map(str, cfg.size), "--workers", str(cfg.workers), "--seed", str(cfg.seed)]
    train = [*common, "--model_scale", cfg.model_scale, "--batch_size", str(cfg.batch_size), "--lr_d", str(cfg.lr),
             "--lr_step", "100"]

    _banner(1, n, "synthetic data", t0)
    marker = cfg.data_dir / ".complete"
    if marker.is_file():
        print(f"reusing {data}")
    else:
        counts = make_synthetic_dataset(cfg.data_dir, cfg.seed, cfg.frame_size)
        print("\n".join(f"  {k:28s} {v:5d} frames" for k, v in counts.items()))

    _banner(2, n, f"optical flow ({cfg.flow})", t0)
    if cfg.flow == "dis" and not marker.is_file():
        for name in ["YouTubeVOS-2018", "DAVIS-2016", "FBMS", "Youtube-objects"]:
            compute_dataset_flow(data, name, "dis", overwrite=True, workers=cfg.workers)
    elif cfg.flow == "exact":
        print("keeping the exact rendered flow images")
    marker.touch()

    _banner(3, n, "stage 1: semi-supervised adversarial training (YouTube-VOS + DAVIS labeled, "
                  "Youtube-objects unlabeled)", t0)
    unlabeled_train.main([*train, "--epochs", str(cfg.stage1_epochs), "--output_dir", str(runs / "stage1"),
                          "--lr", str(cfg.lr), "--lambda_adv", str(cfg.lambda_adv), "--resume", "auto"])

    _banner(4, n, "stage 2: DAVIS-2016 finetune", t0)
    # A gentler finetune (lr / 5): it should refine stage 1, not relearn it on six videos.
    unlabeled_train.main([*train, "--epochs", str(cfg.stage2_epochs), "--labeled_datasets", "DAVIS-2016",
                          "--lr", str(cfg.lr / 5),
                          "--finetune", str(runs / "stage1" / "checkpoint_last.pth"),
                          "--lambda_adv", str(cfg.lambda_adv),
                          "--output_dir", str(runs / "stage2"), "--resume", "auto"])
    weights = str(runs / "stage2" / "checkpoint_last.pth")  # last, not best-on-val: no test-set selection

    _banner(5, n, "test.py: offline masks", t0)
    test_script.main([*common, "--weights", weights, "--test_datasets", *DEMO_DATASETS,
                      "--save_dir", str(masks / "offline")])

    _banner(6, n, "online adversarial self-tuning (per video, no ground truth)", t0)
    timing = online_finetuning.main([*common, "--weights", weights, "--test_datasets", *DEMO_DATASETS,
                                     "--epochs", str(cfg.online_epochs), "--lr", str(cfg.online_lr),
                                     "--save_dir", str(masks / "online"), "--output_dir", str(runs / "online")])

    _banner(7, n, "evaluation", t0)
    before = evaluate_datasets(masks / "offline", data, DEMO_DATASETS, out_dir=out / "eval" / "offline")
    after = evaluate_datasets(masks / "online", data, DEMO_DATASETS, out_dir=out / "eval" / "online")
    print("\n" + comparison_table(before, after))
    print(f"\nonline tuning: {timing['tune_s_per_frame']:.3f} s/frame of tuning vs "
          f"{timing['predict_s_per_frame']:.3f} s/frame of inference")
    print(f"\nmasks:        {masks / 'offline'}  and  {masks / 'online'}")
    print(f"logs:         {runs}/<stage>/log.txt  (resolved options in args.yaml)")
    print(f"TensorBoard:  tensorboard --logdir {runs}")
    print(f"evaluation:   {out / 'eval'} (CSV and JSON)")
    print(f"total time:   {time.time() - t0:.0f} s")
    return {"offline": scores(before), "online": scores(after)}


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
