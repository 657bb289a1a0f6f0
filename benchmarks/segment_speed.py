#!/usr/bin/env python
"""End-to-end speed of ``scripts/segment_video.py`` on a 480p DAVIS sequence, per stage.

    python benchmarks/segment_speed.py --weights runs/real/train/checkpoint_last.pth
    python benchmarks/segment_speed.py --weights CKPT --sequence bear --configs old fast --repeat 3
    python benchmarks/segment_speed.py --weights CKPT --input my_frames_folder/     # any input

Each configuration runs :func:`segment_video.segment_video` (the script's code, parsed from
the script's own command line) over the whole sequence into a fresh temporary output
folder. The stage times come from the run itself (``SegmentResult.timing``): decoding (and
writing the work JPEGs), flow, model loading, network, mask writing, overlay, and the total
from start to end. Each configuration runs ``--repeat`` times and the fastest total is kept.
One untimed two-frame run first pays the one-off costs of a fresh process (imports, the
first forward pass), which a long video amortises, and each configuration's own untimed
two-frame run pays its one-off costs (the ONNX export, cached beside the checkpoint). Python
start-up and ``import torch`` (a few seconds) are outside every figure. ``default`` is the
tool's defaults: ONNX Runtime when ``requirements-onnx.txt`` is installed; ``torch`` is the
PyTorch reference.

Columns ``IoU`` (mean per-frame mask IoU against the first configuration, two empty masks
count as 1) and ``J`` (mean IoU against the DAVIS annotation, when the ``Annotations``
folder is there) show what a configuration changes in the masks. A last row runs the
online stage (``--online --online_epochs 1`` on ``--online_frames`` frames) and reports
its tuning cost per frame.

Timings are only meaningful on a quiet machine: the load average and thread counts are
printed with the results. Skips (exit 0) when the sequence is absent.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, no install

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# name -> extra options of scripts/segment_video.py (after --input/--weights/--output_dir/--size).
CONFIGS = {
    # the code before the speed work
    "old": "--pipeline files --flow_size frame --memory_format contiguous --runtime torch",
    "default": "",  # --runtime auto: ONNX Runtime when requirements-onnx.txt is installed
    "torch": "--runtime torch",  # the PyTorch reference (channels_last)
    "contiguous": "--runtime torch --memory_format contiguous",
    "batch1": "--batch_size 1",
    "batch2": "--batch_size 2",
    "batch8": "--batch_size 8",
    "flow_network": "--flow_size network",  # fastest flow, less accurate (benchmarks/RESULTS.md, Speed)
    "sequential": "--no_overlap",  # the stages one after another (each stage's time alone)
    "flow_network_sequential": "--flow_size network --no_overlap",
    "int8": "--runtime int8",  # calibrated on the input itself: the first timed run quantises
    "int8_flow_network": "--runtime int8 --flow_size network",
    "dis_fast": "--dis_preset fast",
    "flow_network_ultrafast": "--flow_size network --dis_preset ultrafast",
    "flip": "--flip",
    "torch_batch1": "--runtime torch --batch_size 1",
    "torch_flow_network": "--runtime torch --flow_size network",
    "torch_flip": "--runtime torch --flip",
}
DEFAULT_CONFIGS = ("old", "default", "torch", "batch1", "flow_network", "flip")
ONLINE = "--online --online_epochs 1"
TARGET_FPS = 20.0  # the goal for 480p DAVIS with the recipe's model at its training size, 2-core CPU
STAGE_COLUMNS = (("frames_s", "decode+write"), ("flow_s", "flow"), ("model_s", "model load"),
                 ("network_s", "network"), ("masks_s", "masks"), ("overlay_s", "overlay"))


def default_davis() -> Path:
    return Path(os.environ.get("OAST_DAVIS_DIR", ROOT.parent / "shared" / "data" / "DAVIS"))


def _script():
    """``scripts/segment_video.py`` as a module: the benchmark parses exactly its options."""
    spec = importlib.util.spec_from_file_location("segment_video_script", ROOT / "scripts" / "segment_video.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _masks(masks_dir: Path) -> dict[str, np.ndarray]:
    return {p.stem: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0 for p in sorted(masks_dir.glob("*.png"))}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; two empty masks agree fully (1)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def mean_iou(pred: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> float | None:
    """Mean per-frame IoU over the frames both hold (None when they share none)."""
    common = sorted(set(pred) & set(ref))
    return float(np.mean([iou(pred[k], ref[k]) for k in common])) if common else None


def ground_truth(result, annotations: Path | None) -> dict[str, np.ndarray]:
    """Annotation masks keyed by output frame name, through the run's source record."""
    if annotations is None or not annotations.is_dir():
        return {}
    record = json.loads((result.work_dir / f"{result.video}.source.json").read_text())
    out = {}
    for frame, source in zip(record["frames"], record["sources"]):
        path = annotations / f"{Path(source).stem}.png"
        if path.is_file():
            out[frame] = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
    return out


def run_config(script, base: list[str], extra: str, repeat: int, keep: Path | None, label: str,
               annotations: Path | None = None):
    """Run one configuration ``repeat`` times: (fastest result, its masks, its J or None, the first
    timed run's model load in seconds: one-off costs such as int8 calibration show there)."""
    from segment_video import segment_video

    best, first_load = None, None
    # Untimed: a two-frame run pays this configuration's one-off costs (the ONNX export, cached beside the checkpoint).
    with tempfile.TemporaryDirectory(prefix="segment_speed_warmup_") as tmp:
        args = script.get_parser().parse_args([*base, "--output_dir", tmp, *shlex.split(extra), "--max_frames", "2"])
        segment_video(args, progress=False)
    for r in range(repeat):
        with tempfile.TemporaryDirectory(prefix="segment_speed_") as tmp:
            out = keep / f"{label}_{r}" if keep else Path(tmp) / "out"
            args = script.get_parser().parse_args([*base, "--output_dir", str(out), *shlex.split(extra)])
            result = segment_video(args, progress=False)
            first_load = result.timing["model_s"] if first_load is None else first_load
            if best is None or result.timing["total_s"] < best[0].timing["total_s"]:
                masks = _masks(result.masks_dir)
                gt = ground_truth(result, annotations)
                best = (result, masks, mean_iou(masks, gt) if gt else None)
    return (*best, first_load)


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _header(n_label: int) -> str:
    return (f"{'config':{n_label}s} {'frames':>6s} " + " ".join(f"{c:>12s}" for _, c in STAGE_COLUMNS)
            + f" {'other':>7s} {'total':>8s} {'e2e fps':>8s}")


def _row(name: str, res, n_label: int) -> str:
    t = res.timing
    other = t["total_s"] - sum(v for k, v in t.items() if k != "total_s")
    cells = " ".join(f"{t.get(k, 0.0):12.3f}" for k, _ in STAGE_COLUMNS)
    fps = res.frames / t["total_s"]
    return f"{name:{n_label}s} {res.frames:6d} {cells} {other:7.3f} {t['total_s']:8.2f} {fps:8.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, nargs="+", help="checkpoint(s) of the model to time")
    p.add_argument("--davis", type=Path, default=default_davis(),
                   help="DAVIS root with JPEGImages/480p/<sequence> "
                        "(default: $OAST_DAVIS_DIR or ../shared/data/DAVIS)")
    p.add_argument("--sequence", default="blackswan", help="DAVIS sequence")
    p.add_argument("--input", type=Path, default=None, help="any video file or frames folder instead of DAVIS")
    p.add_argument("--size", type=int, nargs=2, default=(224, 416), metavar=("H", "W"), help="network input size")
    p.add_argument("--max_frames", type=int, default=None, help="only the first N frames (default: all)")
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=list(CONFIGS),
                   help="configurations to run, in order; IoU is measured against the first")
    p.add_argument("--repeat", type=int, default=3, help="runs per configuration; the fastest total is kept")
    p.add_argument("--online_frames", type=int, default=20, help="frames of the online row (0: skip it)")
    p.add_argument("--device", default="cpu", help="device of the network (flow runs on the CPU for DIS)")
    p.add_argument("--keep", type=Path, default=None, help="keep every run's output under this folder")
    p.add_argument("--extra", default="", help="options of scripts/segment_video.py added to every configuration "
                                              "(e.g. --int8_calibration FOLDER)")
    a = p.parse_args(argv)

    if a.input is not None:
        source, annotations = a.input, None
    else:
        source = a.davis / "JPEGImages" / "480p" / a.sequence
        annotations = a.davis / "Annotations" / "480p" / a.sequence
    if not source.exists():
        print(f"skipped: {source} not found (set OAST_DAVIS_DIR, --davis or --input)")
        return 0

    import torch

    script = _script()
    common = ["--input", str(source), "--weights", *map(str, a.weights), "--size", *map(str, a.size),
              "--device", a.device, "--overlay", "video", *shlex.split(a.extra)]
    base = [*common, "--max_frames", str(a.max_frames)] if a.max_frames else common
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="segment_speed_warmup_") as tmp:
        args = script.get_parser().parse_args([*base, "--output_dir", tmp, "--max_frames", "2"])
        t = time.perf_counter()
        from segment_video import segment_video

        warm = segment_video(args, progress=False)
        cold_s = time.perf_counter() - t
    h, w = warm.size
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"input: {source} ({w}x{h}); network input {a.size[0]}x{a.size[1]}; weights: {' '.join(a.weights)}")
    print(f"device {a.device}; torch threads {torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}, "
          f"{os.cpu_count()} CPUs; load average before the runs {load:.2f}; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"warm-up (2 frames, fresh process costs: imports, first forward): {cold_s:.2f} s")
    if load > 0.5:
        print("warning: the machine is busy; these timings are not valid measurements")

    rows, ref = [], None
    for name in a.configs:
        result, masks, j, first_load = run_config(script, base, CONFIGS[name], a.repeat, a.keep, name, annotations)
        ref = masks if ref is None else ref
        rows.append((name, result, mean_iou(masks, ref), j, first_load))

    n_label = max(len(r[0]) for r in rows) + 1
    print(f"\nseconds per stage (fastest of {a.repeat} runs); other = total - stages (set-up, bookkeeping; "
          "negative when stages overlap); "
          "e2e fps = frames / total")
    print(_header(n_label) + f" {'IoU':>6s} {'J':>6s}")
    for name, res, agree, j, _ in rows:
        print(_row(name, res, n_label) + f" {_fmt(agree, '.3f'):>6s} {_fmt(j, '.3f'):>6s}")
    print("\nframes/s per stage")
    print(f"{'config':{n_label}s} " + " ".join(f"{c:>12s}" for _, c in STAGE_COLUMNS))
    for name, res, *_ in rows:
        t = res.timing
        print(f"{name:{n_label}s} " + " ".join(f"{_fmt(res.frames / t[k] if t.get(k) else None, '.1f'):>12s}"
                                                for k, _ in STAGE_COLUMNS))
    print("\nconfigurations (options of scripts/segment_video.py besides --input --weights --size):")
    for name, res, _, _, first_load in rows:
        flow = "frame size" if res.flow_size is None else f"{res.flow_size[0]}x{res.flow_size[1]}"
        print(f"  {name:{n_label}s} {CONFIGS[name] or '(defaults)'}  [pipeline {res.pipeline}, flow at {flow}, "
              f"network in {res.runtime}, {'overlapped' if res.overlap else 'sequential'}; "
              f"model load in the first timed run {first_load:.2f} s]")
    print()
    for name, res, *_ in rows:
        fps = res.frames / res.timing["total_s"]
        print(f"target >= {TARGET_FPS:g} frames/s end to end: {name} gives {fps:.1f} "
              f"({'met' if fps >= TARGET_FPS else 'not met'})")

    if a.online_frames > 0:
        extra = f"{ONLINE} --max_frames {a.online_frames}"
        res, _, _, _ = run_config(script, common, extra, 1, a.keep, "online")
        t, n = res.timing, res.frames
        print(f"\nonline stage ({extra}; pipeline {res.pipeline}), 1 run; network = writing the tuned model's masks")
        print(_header(n_label) + f" {'tune':>8s} {'tune s/frame':>12s}")
        print(_row("online", res, n_label) + f" {t['tune_s']:8.2f} {t['tune_s'] / n:12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
