"""Expected wall time of the paper schedule (``scripts/paper/*.sh``) on this machine.

    python benchmarks/wall_time.py --data_dir data [--ngpu 2] [--model_scale s] [--amp]
        [--frames YouTubeVOS-2018/train=NNN ...] [--timing_data DIR] [--steps 8]

Two parts, both printed:

1. **Frame counts** of the schedule's datasets under ``--data_dir``, counted the way the
   training and test scripts count them (labeled frames only, every ``--youtube_stride``-th
   YouTube-VOS frame, one batch dropped at the end of each epoch). A dataset that is not
   there can be given with ``--frames NAME/SPLIT=COUNT``; otherwise its stage is left out
   of the total and says so.
2. **Speeds measured here**, through the real entry points at the paper's settings (scale,
   384x640, batch 2): seconds per offline step (labeled + unlabeled batch, adversarial
   loss, discriminator update, data loading included), seconds per online-tuning step
   (teacher TTA views, student, mask discriminator, EMA), and inference seconds per frame
   (with mask writing). They are measured on ``--timing_data``: ``--data_dir`` itself when
   it holds DAVIS-2016 train and val, else a small synthetic set at DAVIS resolution.

Time = steps x seconds per step, with each of ``--ngpu`` processes assumed to run at the
speed measured on one device: DDP's gradient all-reduce and SyncBN traffic are not
modelled, so multi-GPU figures are a lower bound. Evaluation is not included (it takes
seconds: ``benchmarks/eval_speed.py``).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

STAGE1_LABELED = [("YouTubeVOS-2018", "train"), ("DAVIS-2016", "train")]
STAGE2_LABELED = [("DAVIS-2016", "train")]
VAL = ("DAVIS-2016", "val")
TEST_SETS = [("DAVIS-2016", "val"), ("FBMS", "val"), ("Youtube-objects", "val")]
# Epochs passed by scripts/paper/1_stage1.sh and 2_stage2.sh.
STAGE1_EPOCHS, STAGE2_EPOCHS = 30, 25


@dataclass
class Speeds:
    """Seconds per offline step, per online step, per inferred frame, and per-video online overhead."""
    offline_step: float
    online_step: float
    infer_frame: float
    online_video_overhead: float = 0.0


@dataclass
class Counts:
    """Frames of one dataset/split, and per-video frame counts when known (for online rounding)."""
    frames: int
    videos: list[int] | None = None


def offline_steps(labeled_frames: int, batch: int, ngpu: int) -> int:
    """Steps per epoch per process, as the offline trainer's loader yields them.

    Its DistributedSampler (``drop_last=True``) gives each process ``frames // ngpu`` frames,
    and the DataLoader drops the last incomplete batch.
    """
    return (labeled_frames // ngpu) // batch


def online_steps(c: Counts, batch: int, passes: int) -> int:
    """Tuning steps over a test set, per_video mode: every video is batched on its own."""
    per_pass = sum(math.ceil(n / batch) for n in c.videos) if c.videos else math.ceil(c.frames / batch)
    return passes * per_pass


def schedule(counts: dict[tuple[str, str], Counts | None], speeds: Speeds, ngpu: int, batch: int,
             online_passes: int, online_batch: int, stage1_epochs: int = STAGE1_EPOCHS,
             stage2_epochs: int = STAGE2_EPOCHS, val_every: int = 1) -> list[dict]:
    """Rows ``{stage, frames, steps, seconds, missing}`` of the paper schedule; seconds is wall time on ``ngpu``."""
    rows = []

    def labeled_row(name: str, sets: list[tuple[str, str]], epochs: int) -> None:
        missing = [f"{d}/{s}" for d, s in sets if counts.get((d, s)) is None]
        frames = sum(counts[k].frames for k in sets if counts.get(k) is not None)
        steps = epochs * offline_steps(frames, batch, ngpu)
        rows.append({"stage": name, "frames": frames, "steps": steps, "seconds": steps * speeds.offline_step,
                     "missing": missing})
        val = counts.get(VAL)
        # The trainer validates every val_every-th epoch and after the last one.
        n_val = math.ceil(epochs / val_every) if val_every > 0 else 0
        rows.append({"stage": f"  validation ({n_val}x {VAL[0]} {VAL[1]})", "frames": val.frames if val else 0,
                     "steps": None,
                     "seconds": n_val * math.ceil(val.frames / ngpu) * speeds.infer_frame if val else 0.0,
                     "missing": [] if val else [f"{VAL[0]}/{VAL[1]}"]})

    labeled_row(f"stage 1 ({stage1_epochs} epochs)", STAGE1_LABELED, stage1_epochs)
    labeled_row(f"stage 2 ({stage2_epochs} epochs)", STAGE2_LABELED, stage2_epochs)
    present = [k for k in TEST_SETS if counts.get(k) is not None]
    missing = [f"{d}/{s}" for d, s in TEST_SETS if counts.get((d, s)) is None]
    test_frames = sum(counts[k].frames for k in present)
    rows.append({"stage": "offline masks (test.py)", "frames": test_frames, "steps": None,
                 "seconds": math.ceil(test_frames / ngpu) * speeds.infer_frame, "missing": missing})
    steps = sum(online_steps(counts[k], online_batch, online_passes) for k in present)
    n_videos = sum(len(counts[k].videos) for k in present if counts[k].videos)
    seconds = (steps * speeds.online_step + n_videos * speeds.online_video_overhead
               + test_frames * speeds.infer_frame) / ngpu  # whole videos are spread over the processes
    rows.append({"stage": f"online tuning (per_video, {online_passes} passes)", "frames": test_frames,
                 "steps": steps, "seconds": seconds, "missing": missing})
    return rows


# ----------------------------------------------------------------------------- counting
def count_frames(data_dir: str, dataset: str, split: str, labeled: bool, youtube_stride: int) -> Counts | None:
    """Frames the scripts would use from ``<data_dir>/<dataset>/<split>``, or None if it is not there."""
    from datasets import FrameDataset

    try:
        ds = FrameDataset(data_dir, [dataset], "labeled" if labeled else "test", split, youtube_stride=youtube_stride,
                          with_labels=False)
    except (FileNotFoundError, ValueError) as e:
        print(f"  {dataset}/{split}: not counted ({e})")
        return None
    return Counts(len(ds), [len(ix) for ix in ds.video_items().values()])


def parse_frames(items: list[str]) -> dict[tuple[str, str], Counts]:
    out = {}
    for it in items:
        try:
            key, n = it.rsplit("=", 1)
            dataset, split = key.split("/")
            out[(dataset, split)] = Counts(int(n))
        except ValueError:
            raise SystemExit(f"--frames {it!r}: expected NAME/SPLIT=COUNT, e.g. YouTubeVOS-2018/train=18000") from None
    return out


# ----------------------------------------------------------------------------- measuring
class _StepClock:
    """Wraps a trainer's ``step`` and records when each one ends (data loading falls between)."""

    def __init__(self, step, cuda: bool):
        self.step, self.cuda, self.ends = step, cuda, []

    def __call__(self, *a, **k):
        import torch

        out = self.step(*a, **k)
        if self.cuda:
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())
        return out

    def per_step(self, warmup: int) -> float:
        gaps = [b - a for a, b in zip(self.ends, self.ends[1:])][warmup:]
        if not gaps:
            raise SystemExit("too few steps were timed; raise --steps")
        return statistics.median(gaps)


def timing_data(a: argparse.Namespace, tmp: Path) -> tuple[str, str, str]:
    """(data_dir, unlabeled dataset, its split) to time on: the user's data, or synthetic frames."""
    root = Path(a.timing_data or a.data_dir)
    if (root / "DAVIS-2016" / "train" / "flows").is_dir() and (root / "DAVIS-2016" / "val" / "flows").is_dir():
        if (root / "Youtube-objects" / "val" / "flows").is_dir():
            return str(root), "Youtube-objects", "val"
        return str(root), "DAVIS-2016", "val"  # same frame size; only the timing matters here
    from datasets.synthetic import make_synthetic_dataset

    print(f"no DAVIS-2016 train/val with flow under {root}: timing on synthetic 480x854 frames")
    layout = {"DAVIS-2016": [("train", "source", 2, 12, 1), ("val", "target", 1, 12, 1)]}
    make_synthetic_dataset(tmp / "data", 0, (480, 854), layout=layout)
    return str(tmp / "data"), "DAVIS-2016", "val"


def measure(a: argparse.Namespace, tmp: Path) -> Speeds:
    import torch

    import online_finetuning
    import unlabeled_train
    from engine.offline import OfflineTrainer
    from engine.online import OnlineTuner
    from engine.online_config import OnlineConfig
    from utils.config import parse_with_config

    data, unl, unl_split = timing_data(a, tmp)
    common = ["--data_dir", data, "--size", *map(str, a.size), "--workers", str(a.workers), "--device", a.device,
              "--no_tensorboard"] + (["--amp"] if a.amp else [])
    args = parse_with_config(unlabeled_train.get_parser(), [
        *common, "--model_scale", a.model_scale, "--labeled_datasets", "DAVIS-2016", "--unlabeled_datasets", unl,
        "--unlabeled_split", unl_split, "--epochs", "1", "--max_steps_per_epoch", str(a.steps), "--val_every", "0",
        "--output_dir", str(tmp / "offline")])
    trainer = OfflineTrainer(args)
    cuda = trainer.info.device.type == "cuda"
    clock = _StepClock(trainer.step, cuda)
    trainer.step = clock
    trainer.fit()
    offline = clock.per_step(a.warmup)
    print(f"offline step: {offline:.3f} s (median of {len(clock.ends) - 1 - a.warmup}, device {trainer.info.device})")

    # Online: the shortest val video, one pass; its first steps are warm-up.
    weights = str(tmp / "offline" / "checkpoint_last.pth")
    from datasets.index import scan_split

    videos = sorted(scan_split(data, "DAVIS-2016", "val", read_labels=False), key=lambda v: len(v.frames))
    video = videos[0].name
    oargs = parse_with_config(online_finetuning.get_parser(), [
        *common, "--weights", weights, "--test_datasets", "DAVIS-2016", "--videos", video, "--epochs", "1",
        "--save_dir", str(tmp / "masks"), "--output_dir", str(tmp / "online")])
    tuner = OnlineTuner(OnlineConfig.from_args(oargs))
    oclock = _StepClock(tuner.step, cuda)
    tuner.step = oclock
    timing = tuner.run()
    online = oclock.per_step(a.warmup)
    overhead = max(timing["tune_s"] - len(oclock.ends) * online, 0.0)
    print(f"online step: {online:.3f} s (median of {len(oclock.ends) - 1 - a.warmup}, video {video}, "
          f"{timing['frames']} frames); per-video overhead {overhead:.1f} s; "
          f"inference {timing['predict_s_per_frame']:.4f} s/frame")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    return Speeds(offline, online, timing["predict_s_per_frame"], overhead)


def _fmt(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="data", help="the prepared datasets the schedule runs on")
    p.add_argument("--frames", nargs="*", default=[], metavar="NAME/SPLIT=COUNT",
                   help="frame counts of datasets not under --data_dir (as the scripts count them)")
    p.add_argument("--timing_data", default=None, help="data to time the steps on (default: --data_dir)")
    p.add_argument("--ngpu", type=int, default=2, help="processes of the paper scripts")
    p.add_argument("--model_scale", default="s")
    p.add_argument("--size", type=int, nargs=2, default=(384, 640))
    p.add_argument("--batch_size", type=int, default=2, help="offline batch per process (paper: 2)")
    p.add_argument("--online_passes", type=int, default=None, help="default: online_finetuning.py's --epochs")
    p.add_argument("--youtube_stride", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true", help="time with mixed precision (CUDA)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--steps", type=int, default=8, help="offline steps to time")
    p.add_argument("--warmup", type=int, default=2, help="step gaps ignored at the start of each timing")
    a = p.parse_args(argv)

    import online_finetuning

    odef = online_finetuning.get_parser().parse_args(["--weights", "x"])
    passes = a.online_passes if a.online_passes is not None else odef.epochs

    print(f"counting frames under {a.data_dir}")
    counts: dict[tuple[str, str], Counts | None] = {}
    for d, s in STAGE1_LABELED:
        counts[(d, s)] = count_frames(a.data_dir, d, s, True, a.youtube_stride)
    for d, s in TEST_SETS:
        counts[(d, s)] = count_frames(a.data_dir, d, s, False, 1)
    counts |= parse_frames(a.frames)

    with tempfile.TemporaryDirectory(prefix="oast_wall_time_") as tmp:
        speeds = measure(a, Path(tmp))
    rows = schedule(counts, speeds, a.ngpu, a.batch_size, passes, odef.batch_size)

    print(f"\nexpected wall time of scripts/paper on {a.ngpu} process(es) at the speed measured here "
          f"({a.model_scale}, {a.size[0]}x{a.size[1]}{', AMP' if a.amp else ''}):")
    print(f"{'stage':44s} {'frames':>8s} {'steps':>8s} {'time':>9s}")
    total = 0.0
    for r in rows:
        steps = "" if r["steps"] is None else str(r["steps"])
        note = f"   (without {', '.join(r['missing'])})" if r["missing"] else ""
        print(f"{r['stage']:44s} {r['frames']:8d} {steps:>8s} {_fmt(r['seconds']):>9s}{note}")
        total += r["seconds"]
    print(f"{'total':44s} {'':8s} {'':8s} {_fmt(total):>9s}")
    return rows


if __name__ == "__main__":
    main()
