#!/usr/bin/env python
"""End-to-end speed and J of ``scripts/segment_video.py`` on 480p DAVIS sequences, per stage.

    python benchmarks/segment_speed.py --weights CKPT --fold 1 --plan     # what a run would do, runs nothing
    python benchmarks/segment_speed.py --weights CKPT --fold 1            # every bundle on the ten held-out videos
    python benchmarks/segment_speed.py --weights CKPT --sequences bear --configs old fast --repeat 3
    python benchmarks/segment_speed.py --weights CKPT --input my_frames_folder/     # any input

``benchmarks/segment_speed.sh`` holds the command of the issue's table (every bundle, the ten
held-out videos of fold 1, one run).

**Configurations** (:data:`CONFIGS`) are options of the script. The default list
(:data:`DEFAULT_CONFIGS`) is every bundle to compare: the tool's defaults before ``--quality``
existed (``before_quality``: today's ``fast`` with the flow image passed through JPEG, as the
memory pipeline did then), ``--quality fast``, the PyTorch float reference at fast's size
(``torch_fast``), ``--quality accurate``, int8 with flow at 320x576, the DIS presets
``ultrafast`` and ``fast`` (``medium`` is ``fast``'s own), DIS at the network input size, and
OpenVINO on the ONNX files of ``fast`` and ``int8_320x576`` (``openvino_fast``,
``openvino_int8_320x576``: the same options with ``--runtime openvino``/``openvino_int8``).
``--plan`` prints each with the option values it resolves to, and runs nothing.

**OpenVINO beside ONNX Runtime.** Each OpenVINO configuration is compared with its ONNX Runtime
counterpart (:data:`OPENVINO_PAIRS`): frames/s, J, and the per-frame mask IoU between the two.
``--runtime auto`` is to adopt OpenVINO only where it is faster at equal masks (mean IoU at least
:data:`EQUAL_MASKS_IOU`); the line says whether it was. Without the ``openvino`` package the
OpenVINO configurations fail, named, and the others go on. ``openvino_int8_320x576`` runs the
int8 file that ``int8_320x576`` quantised earlier in the run (same calibration), so its first
runs pay no calibration.

**GPU.** ``--device cuda`` runs every configuration on the GPU; there the network runs in PyTorch
under fp16 autocast, ``torch_fast_fp32`` is the float32 reference, and the CPU-only runtimes
(ONNX Runtime, int8, OpenVINO) are refused, named as failures.

**Sizes.** Without ``--size`` every configuration runs at its own size, as the tool would:
the checkpoint's training size, 320x576 for ``accurate``. ``--size H W`` passes that size to
every configuration (it then overrides the settings' sizes).

**Each configuration** runs :func:`segment_video.segment_video` (the script's code, parsed
from the script's own command line) over each video into a fresh temporary output folder,
``--repeat`` times (``--slow_repeat`` for those with temporal fusion), keeping each video's
fastest run. The stage times come from the run itself (``SegmentResult.timing``). One
untimed two-frame run first pays the one-off costs of a fresh process (imports, the first
forward pass), and each configuration's own untimed two-frame run pays its one-off costs
(the ONNX export at its size). Python start-up and ``import torch`` are outside every figure.
The benchmark works on a private copy of the checkpoint (with the float ONNX exports found
beside it, so nothing is exported again; exports it makes are copied back beside the
checkpoint at the end, where the tool keeps them): every int8 network is quantised during
the run, in the first run of each video (its ``first-run`` frames/s shows that cost).

**Scores.** ``J`` is the DAVIS region similarity (``evaluation.davis.jaccard``, first and last
frame left out, the mean per video, then over the videos) against ``Annotations/480p``;
``IoU`` the mean per-frame mask IoU against the first configuration (two empty masks count
as 1); ``dJ`` the change of J against ``--reference`` (default ``torch_fast``, the float
reference at fast's size). Frames/s are pooled: all frames over all seconds.

**Also measured:** ``--batch_configs``: each configuration once as one call on all the videos
(``segment_videos``: model and int8 calibration loaded once) and once as one call per video,
frames/s of each (each with fresh int8 caches, in this process: the calls' Python start-ups
are not counted, which favours the separate calls); ``--test_py_data``: ``test.py --flip
--temporal 1`` at accurate's size on the flow cache of ``benchmarks/davis_real.py`` (its
frames and DIS flow images), scored the same way, beside ``accurate``; a last row runs the
online stage (``--online --online_epochs 1`` on ``--online_frames`` frames) and reports its
tuning cost per frame. Whether OpenVINO is installed is printed. ``--json`` writes every figure.

A measurement that fails (a configuration, a comparison, the reference, the online row) is
named where it failed and at the end, the others go on, and the exit status is 1. Timings
are only meaningful on a quiet machine: the load average and thread counts are printed with
the results. Skips (exit 0) when a sequence is absent.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, no install

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# name -> extra options of scripts/segment_video.py (after --input/--weights/--output_dir, and --size if given).
CONFIGS = {
    # The bundles to compare (DEFAULT_CONFIGS).
    # The tool's defaults before --quality: ONNX Runtime float, DIS medium at the frame size, the checkpoint's
    # training size, no flip, no temporal fusion, channels_last, and the flow image through JPEG and back.
    "before_quality": "--quality fast --flow_jpeg",
    "fast": "--quality fast",
    "torch_fast": "--quality fast --runtime torch",  # the PyTorch float reference at fast's size
    "accurate": "--quality accurate",  # test.py --flip --temporal 1 at 320x576, files pipeline
    "int8_320x576": "--quality fast --runtime int8 --flow_size 320x576",  # calibrated on each video itself
    "dis_ultrafast": "--quality fast --dis_preset ultrafast",
    "dis_fast": "--quality fast --dis_preset fast",  # (DIS medium is fast's own preset)
    "flow_network": "--flow_size network",  # DIS on the frames resized to the network input size
    # OpenVINO on the same ONNX files, each beside its ONNX Runtime counterpart (OPENVINO_PAIRS).
    "openvino_fast": "--quality fast --runtime openvino",
    "openvino_int8_320x576": "--quality fast --runtime openvino_int8 --flow_size 320x576",
    # Between the frame size and 320x576 for DIS: int8 needs flow under ~45 ms a frame for 20 frames/s on 2 cores.
    "flow_384x672": "--quality fast --flow_size 384x672",
    "int8_384x672": "--quality fast --runtime int8 --flow_size 384x672",
    # Other configurations.
    # the code before the speed work
    "old": "--pipeline files --flow_size frame --memory_format contiguous --runtime torch",
    "default": "",  # the defaults: --quality fast
    "torch": "--runtime torch",  # the PyTorch reference (channels_last)
    "contiguous": "--runtime torch --memory_format contiguous",
    "batch1": "--batch_size 1",
    "batch2": "--batch_size 2",
    "batch8": "--batch_size 8",
    "sequential": "--no_overlap",  # the stages one after another (each stage's time alone)
    "flow_network_sequential": "--flow_size network --no_overlap",
    "int8": "--runtime int8",  # calibrated on the input itself: the first timed run quantises
    "int8_flow_network": "--runtime int8 --flow_size network",
    "flow_network_ultrafast": "--flow_size network --dis_preset ultrafast",
    "flip": "--flip",
    "torch_batch1": "--runtime torch --batch_size 1",
    "torch_flow_network": "--runtime torch --flow_size network",
    "torch_flip": "--runtime torch --flip",
    # With --device cuda: fast's network in float32 on the GPU, beside torch_fast's fp16 autocast (on the CPU the two
    # are the same run).
    "torch_fast_fp32": "--quality fast --runtime torch --cuda_precision fp32",
}
DEFAULT_CONFIGS = ("before_quality", "fast", "torch_fast", "accurate", "int8_320x576", "dis_ultrafast", "dis_fast",
                   "flow_network", "openvino_fast", "openvino_int8_320x576")
# OpenVINO configuration -> its ONNX Runtime counterpart (the same options but the runtime). --runtime auto is to
# adopt OpenVINO only where it is faster than its counterpart at equal masks: mean per-frame mask IoU between the two
# of at least EQUAL_MASKS_IOU (the rule set before any run).
OPENVINO_PAIRS = {"openvino_fast": "fast", "openvino_int8_320x576": "int8_320x576"}
EQUAL_MASKS_IOU = 0.999
DEFAULT_BATCH_CONFIGS = ("fast", "int8_320x576")
ONLINE = "--online --online_epochs 1"
TARGET_FPS = 20.0  # the goal for 480p DAVIS with the recipe's model, 2-core CPU
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


def davis_j(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray]) -> float | None:
    """J of one video by the DAVIS protocol: the mean ``jaccard`` over the annotated frames both
    hold, in frame order, first and last left out (None when they share none)."""
    from evaluation.davis import jaccard, scored_indices

    common = sorted(set(pred) & set(gt))
    if not common:
        return None
    return float(np.mean([jaccard(pred[common[i]], gt[common[i]]) for i in scored_indices(len(common))]))


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


# --------------------------------------------------------------------------- inputs and set-up
class Source(NamedTuple):
    """One video of the benchmark: its frames (or video file) and its annotations, if any."""
    name: str
    path: Path
    annotations: Path | None = None


def sources(a: argparse.Namespace) -> list[Source]:
    """The videos to run: ``--input`` paths, else the DAVIS sequences (``--fold`` or ``--sequences``)."""
    from segment_video.frames import video_name

    if a.input:
        return [Source(video_name(p), p) for p in a.input]
    if a.fold is not None:
        from benchmarks.davis_real import FOLDS

        names = FOLDS[a.fold]
    else:
        names = a.sequences
    return [Source(s, a.davis / "JPEGImages" / "480p" / s, a.davis / "Annotations" / "480p" / s) for s in names]


def private_weights(weights: list[str], folder: Path) -> list[str]:
    """Copies of ``weights`` in ``folder`` (each in its own sub-folder), with the float ONNX exports
    found beside the first, so that nothing is exported again, and no int8 network: one made
    from the copy is quantised anew."""
    out = []
    for i, w in enumerate(map(Path, weights)):
        dest = folder / f"w{i}"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(w, dest / w.name)
        if i == 0:
            for f in w.parent.glob(f"{w.name}.*"):
                if ".int8-" not in f.name and f.suffix in (".onnx", ".json"):
                    shutil.copy2(f, dest / f.name)
        out.append(str(dest / w.name))
    return out


def keep_exports(private: list[str], weights: list[str]) -> None:
    """Copy the float ONNX exports made beside the private copy back beside the first checkpoint,
    where the tool caches them (none that is there already; nothing where that folder is not
    writable), so that the next run does not export again. int8 networks stay behind."""
    src, dest = Path(private[0]), Path(weights[0])
    for f in src.parent.glob(f"{src.name}.*"):
        target = dest.parent / f.name
        if ".int8-" not in f.name and f.suffix in (".onnx", ".json") and not target.exists():
            try:
                shutil.copy2(f, target)
            except OSError:
                return


def openvino_line() -> str:
    """Whether OpenVINO is installed, and what that means for the OpenVINO configurations."""
    spec = importlib.util.find_spec("openvino")
    if spec is None:
        return ("OpenVINO: not installed (pip install -r requirements-openvino.txt); the openvino configurations "
                "fail, naming it")
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("openvino")
    except PackageNotFoundError:
        v = "unknown version"
    return f"OpenVINO: installed ({v}); the openvino configurations time it beside ONNX Runtime"


def openvino_pairs(rows: list[dict], all_runs: dict[str, dict]) -> dict:
    """Each OpenVINO configuration that ran beside its ONNX Runtime counterpart: frames/s of both,
    J of both, and the mean and lowest per-frame mask IoU between them over the videos."""
    by = {r["name"]: r for r in rows}
    out = {}
    for ov, ort in OPENVINO_PAIRS.items():
        if ov not in by or ort not in by:
            continue
        ious = [iou(a, all_runs[ort][v].masks[k]) for v, run in all_runs[ov].items()
                for k, a in run.masks.items() if k in all_runs[ort][v].masks]
        mean = float(np.mean(ious)) if ious else None
        faster = by[ov]["fps"] > by[ort]["fps"]
        out[ov] = {"counterpart": ort, "fps": by[ov]["fps"], "counterpart_fps": by[ort]["fps"],
                   "j": by[ov]["j"], "counterpart_j": by[ort]["j"], "mask_iou": mean,
                   "min_mask_iou": min(ious) if ious else None,
                   "faster_at_equal_masks": bool(faster and mean is not None and mean >= EQUAL_MASKS_IOU)}
    return out


def print_openvino_pairs(pairs: dict) -> None:
    if not pairs:
        return
    print(f"\nOpenVINO beside ONNX Runtime (the same options and ONNX file; --runtime auto is to adopt OpenVINO only "
          f"where it is faster at equal masks: mean mask IoU >= {EQUAL_MASKS_IOU})")
    for ov, p in pairs.items():
        print(f"  {ov} vs {p['counterpart']}: {p['fps']:.1f} vs {p['counterpart_fps']:.1f} frames/s "
              f"({p['fps'] / p['counterpart_fps']:.2f}x), J {_pts(p['j'])} vs {_pts(p['counterpart_j'])}, mask IoU "
              f"mean {_fmt(p['mask_iou'], '.4f')} (lowest frame {_fmt(p['min_mask_iou'], '.4f')}): "
              f"{'faster at equal masks' if p['faster_at_equal_masks'] else 'not faster at equal masks'}")


def _config(script, argv: list[str]):
    from segment_video import VideoConfig

    return VideoConfig.from_args(script.get_parser().parse_args(argv))


def _describe(cfg, training_hw: tuple[int, int] | None) -> str:
    """The option values a configuration resolves to (the ones the settings bundle, and more)."""
    size = cfg.size or training_hw
    size_text = "x".join(map(str, size)) if size else "the checkpoint's training size"
    pipeline = cfg.pipeline if cfg.pipeline != "auto" else ("files" if cfg.online or cfg.temporal else "memory")
    flow_size = (f"the {cfg.flow_size} size" if isinstance(cfg.flow_size, str)
                 else "x".join(map(str, cfg.flow_size)))
    runtime = "auto (ONNX Runtime where installed)" if cfg.runtime == "auto" else cfg.runtime
    return (f"size {size_text}, runtime {runtime}, DIS {cfg.dis_preset} at {flow_size}, flip "
            f"{'on' if cfg.flip else 'off'}, temporal {' '.join(map(str, cfg.temporal)) or 'none'}, "
            f"{cfg.memory_format}, batch {cfg.batch_size}, pipeline {pipeline}"
            + (", flow image through JPEG" if cfg.flow_jpeg and pipeline == "memory" else "")
            + ("" if cfg.overlap or pipeline != "memory" else ", stages one after another"))


# --------------------------------------------------------------------------- running
class Run:
    """A configuration's runs on one video: the fastest (its result, masks and J), and the first
    run's total and model load (which pay one-off costs). A plain class: this file is loaded
    without a module entry by the tests, which dataclasses need."""

    def __init__(self, result, masks: dict, j: float | None, first_total_s: float, first_model_s: float,
                 totals: list[float]) -> None:
        self.result, self.masks, self.j = result, masks, j
        self.first_total_s, self.first_model_s, self.totals = first_total_s, first_model_s, totals


def warm_up(script, base: list[str], extra: str) -> None:
    """An untimed two-frame run: pays a configuration's one-off costs (the ONNX export at its size)."""
    from segment_video import segment_video

    with tempfile.TemporaryDirectory(prefix="segment_speed_warmup_") as tmp:
        args = script.get_parser().parse_args([*base, "--output_dir", tmp, *shlex.split(extra), "--max_frames", "2"])
        segment_video(args, progress=False)


def run_config(script, base: list[str], extra: str, repeat: int, keep: Path | None, label: str,
               annotations: Path | None = None) -> Run:
    """Run one configuration on one video ``repeat`` times: the fastest run, its masks and J, and
    the first run's total and model load (one-off costs such as the int8 calibration show there)."""
    from segment_video import segment_video

    out: Run | None = None
    for r in range(repeat):
        with tempfile.TemporaryDirectory(prefix="segment_speed_") as tmp:
            dest = keep / f"{label}_{r}" if keep else Path(tmp) / "out"
            args = script.get_parser().parse_args([*base, "--output_dir", str(dest), *shlex.split(extra)])
            result = segment_video(args, progress=False)
            total = result.timing["total_s"]
            if out is None or total < out.result.timing["total_s"]:
                masks = _masks(result.masks_dir)
                gt = ground_truth(result, annotations)
                first = (total, result.timing["model_s"]) if out is None else (out.first_total_s, out.first_model_s)
                totals = out.totals if out else []
                out = Run(result, masks, davis_j(masks, gt) if gt else None, *first, totals)
            out.totals.append(total)
    return out


def batch_compare(script, common: list[str], extra: str, srcs: list[Source], weights: list[str],
                  work: Path) -> dict:
    """``extra`` as one call on every video and as one call per video, each with fresh int8
    caches (a private copy of the weights): frames, seconds and frames/s of each, and the
    mean IoU between their masks."""
    from segment_video import segment_video, segment_videos

    timing: dict[str, dict] = {}
    masks: dict[str, dict] = {}
    for mode in ("calls", "one_call"):
        w = private_weights(weights, work / f"weights_{mode}")
        base = [*common, "--weights", *w, *shlex.split(extra)]
        with tempfile.TemporaryDirectory(prefix=f"segment_speed_{mode}_") as tmp:
            t = time.perf_counter()
            if mode == "one_call":
                args = script.get_parser().parse_args([*base, "--input", *(str(s.path) for s in srcs),
                                                       "--output_dir", tmp])
                batch = segment_videos(args, progress=False)
                if batch.failed:
                    raise RuntimeError(f"one call: videos failed: {batch.failed}")
                results = list(batch.results.values())
            else:
                results = []
                for s in srcs:
                    args = script.get_parser().parse_args([*base, "--input", str(s.path), "--output_dir",
                                                           str(Path(tmp) / s.name)])
                    results.append(segment_video(args, progress=False))
            seconds = time.perf_counter() - t
            frames = sum(r.frames for r in results)
            timing[mode] = {"frames": frames, "seconds": seconds, "fps": frames / seconds}
            masks[mode] = {r.video: _masks(r.masks_dir) for r in results}
    agree = [mean_iou(masks["one_call"][v], masks["calls"][v]) for v in masks["calls"]]
    return {**timing, "iou": float(np.mean([x for x in agree if x is not None]))}


def test_py_reference(test_data: Path, split: str, weights: list[str], size: tuple[int, int], device: str,
                      srcs: list[Source], frames: dict[str, int], work: Path) -> dict:
    """``test.py --flip --temporal 1`` at ``size`` on the flow cache ``test_data`` (DAVIS-2016
    ``split``): seconds and J per video, each scored on its first ``frames[video]`` frames (the
    frames the tool's runs wrote) as the tool's rows are."""
    spec = importlib.util.spec_from_file_location("test_py_for_segment_speed", ROOT / "test.py")
    test_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_py)
    save = work / "test_py"
    t = time.perf_counter()
    test_py.main(["--weights", *weights, "--data_dir", str(test_data), "--test_datasets", "DAVIS-2016", "--split",
                  split, "--size", *map(str, size), "--flip", "--temporal", "1", "--workers", "1", "--device", device,
                  "--save_dir", str(save)])
    seconds = time.perf_counter() - t
    per_video = {}
    for s in srcs:
        pred = dict(sorted(_masks(save / "DAVIS-2016" / s.name).items())[:frames.get(s.name, 10 ** 9)])
        gt = {p.stem: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0 for p in sorted(s.annotations.glob("*.png"))} \
            if s.annotations and s.annotations.is_dir() else {}
        per_video[s.name] = davis_j(pred, gt) if pred and gt else None
    return {"seconds": seconds, "per_video": per_video}


# --------------------------------------------------------------------------- printing
def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _pts(v: float | None, signed: bool = False) -> str:
    return "-" if v is None else format(100 * v, "+.1f" if signed else ".1f")


def _header(n_label: int) -> str:
    return (f"{'config':{n_label}s} {'frames':>6s} " + " ".join(f"{c:>12s}" for _, c in STAGE_COLUMNS)
            + f" {'other':>7s} {'total':>8s} {'e2e fps':>8s}")


def _row(name: str, frames: int, timing: dict[str, float], n_label: int) -> str:
    other = timing["total_s"] - sum(v for k, v in timing.items() if k != "total_s")
    cells = " ".join(f"{timing.get(k, 0.0):12.3f}" for k, _ in STAGE_COLUMNS)
    fps = frames / timing["total_s"]
    return f"{name:{n_label}s} {frames:6d} {cells} {other:7.3f} {timing['total_s']:8.2f} {fps:8.1f}"


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(name: str, runs: dict[str, Run], ref_masks: dict[str, dict]) -> dict:
    """Pooled figures of one configuration over its videos."""
    frames = sum(r.result.frames for r in runs.values())
    timing: dict[str, float] = {}
    for r in runs.values():
        for k, v in r.result.timing.items():
            timing[k] = timing.get(k, 0.0) + v
    fps = {v: r.result.frames / r.result.timing["total_s"] for v, r in runs.items()}
    first_s = sum(r.first_total_s for r in runs.values())
    res = next(iter(runs.values())).result
    return {"name": name, "frames": frames, "timing": timing, "fps": frames / timing["total_s"],
            "fps_per_video": fps, "first_run_fps": frames / first_s,
            "first_run_model_s": sum(r.first_model_s for r in runs.values()),
            "j": _mean(r.j for r in runs.values()), "j_per_video": {v: r.j for v, r in runs.items()},
            "iou": _mean(mean_iou(r.masks, ref_masks[v]) for v, r in runs.items()),
            "pipeline": res.pipeline, "runtime": res.runtime, "overlap": res.overlap, "flow_size": res.flow_size}


def print_tables(rows: list[dict], reference: str | None, repeat_note: str) -> None:
    n_label = max(len(r["name"]) for r in rows) + 1
    print(f"\nseconds per stage, summed over the videos ({repeat_note}); other = total - stages (set-up, "
          "bookkeeping; negative when stages overlap); e2e fps = frames / total; IoU against the first "
          "configuration; J by the DAVIS protocol")
    print(_header(n_label) + f" {'IoU':>6s} {'J':>6s}")
    for r in rows:
        print(_row(r["name"], r["frames"], r["timing"], n_label) + f" {_fmt(r['iou'], '.3f'):>6s} "
              f"{_pts(r['j']):>6s}")
    print("\nframes/s per stage")
    print(f"{'config':{n_label}s} " + " ".join(f"{c:>12s}" for _, c in STAGE_COLUMNS))
    for r in rows:
        t = r["timing"]
        print(f"{r['name']:{n_label}s} " + " ".join(f"{_fmt(r['frames'] / t[k] if t.get(k) else None, '.1f'):>12s}"
                                                     for k, _ in STAGE_COLUMNS))
    ref = next((r for r in rows if r["name"] == reference), None)
    print(f"\nper configuration: e2e frames/s pooled over the videos (their range), the first run's frames/s "
          f"(one-off costs such as the int8 calibration included), J and dJ against "
          f"{reference or 'no reference'} (J points), the largest per-video losses")
    print(f"{'config':{n_label}s} {'fps':>6s} {'range':>11s} {'1st fps':>7s} {'J':>6s} {'dJ':>6s}  losses")
    for r in rows:
        lo, hi = min(r["fps_per_video"].values()), max(r["fps_per_video"].values())
        dj = None if ref is None or r["j"] is None or ref["j"] is None else r["j"] - ref["j"]
        losses = ""
        if ref is not None and r is not ref:
            d = {v: r["j_per_video"][v] - ref["j_per_video"][v] for v in r["j_per_video"]
                 if r["j_per_video"][v] is not None and ref["j_per_video"].get(v) is not None}
            losses = ", ".join(f"{v} {100 * x:+.1f}" for v, x in sorted(d.items(), key=lambda kv: kv[1])[:3]
                               if x < 0)
        print(f"{r['name']:{n_label}s} {r['fps']:6.1f} {f'{lo:.1f}-{hi:.1f}':>11s} {r['first_run_fps']:7.1f} "
              f"{_pts(r['j']):>6s} {_pts(dj, True):>6s}  {losses}")
    videos = list(rows[0]["j_per_video"])
    if any(r["j"] is not None for r in rows) and len(videos) > 1:
        print("\nJ per video")
        print(f"{'config':{n_label}s} " + " ".join(f"{v[:10]:>10s}" for v in videos))
        for r in rows:
            print(f"{r['name']:{n_label}s} " + " ".join(f"{_pts(r['j_per_video'][v]):>10s}" for v in videos))


def print_targets(rows: list[dict], batch: dict, test_py: dict | None, reference: str | None) -> None:
    """The issue's targets, from the figures of this run only (a line per target it can check)."""
    by = {r["name"]: r for r in rows}
    lines = []
    if "fast" in by and "before_quality" in by:
        f, b = by["fast"], by["before_quality"]
        lines.append(f"fast >= 1.6x the frames/s of the defaults before --quality: {f['fps']:.1f} vs {b['fps']:.1f} "
                     f"({f['fps'] / b['fps']:.2f}x)")
    for name in ("fast", "int8_320x576"):
        if name in by:
            lines.append(f"{name} >= {TARGET_FPS:g} frames/s end to end: {by[name]['fps']:.1f} "
                         f"({'met' if by[name]['fps'] >= TARGET_FPS else 'not met'})")
            ref = by.get(reference or "")
            if ref and ref is not by[name] and by[name]["j"] is not None and ref["j"] is not None:
                d = 100 * (by[name]["j"] - ref["j"])
                lines.append(f"{name} J within 1 point of {reference}: {d:+.1f} ({'met' if d >= -1 else 'not met'})")
    if test_py and "accurate" in by and by["accurate"]["j"] is not None:
        tj = _mean(test_py["per_video"].get(v) for v in by["accurate"]["j_per_video"])
        if tj is not None:
            d = 100 * (by["accurate"]["j"] - tj)
            lines.append(f"accurate J equal to test.py --flip --temporal 1 (within 0.1): {_pts(by['accurate']['j'])} "
                         f"vs {_pts(tj)} ({d:+.2f}; {'met' if abs(d) <= 0.1 else 'not met'})")
    for name, b in batch.items():
        lines.append(f"{name}: one call on all videos at least as fast per frame as one call each: "
                     f"{b['one_call']['fps']:.1f} vs {b['calls']['fps']:.1f} frames/s "
                     f"({'met' if b['one_call']['fps'] >= b['calls']['fps'] else 'not met'})")
    if lines:
        print("\ntargets (this run's figures)")
        for line in lines:
            print("  " + line)


# --------------------------------------------------------------------------- main
def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, nargs="+", help="checkpoint(s) of the model to time")
    p.add_argument("--davis", type=Path, default=default_davis(),
                   help="DAVIS root with JPEGImages/480p/<sequence> and Annotations/480p/<sequence> "
                        "(default: $OAST_DAVIS_DIR or ../shared/data/DAVIS)")
    p.add_argument("--sequences", "--sequence", nargs="+", default=["blackswan"], help="DAVIS sequences")
    p.add_argument("--fold", type=int, default=None, choices=(1, 2, 3),
                   help="the ten held-out train sequences of this fold of benchmarks/davis_real.py instead of "
                        "--sequences (use that fold's model: it was not trained on them)")
    p.add_argument("--input", type=Path, nargs="+", default=None,
                   help="any video files or frames folders instead of DAVIS (no J)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="network input size of every configuration; default: each configuration's own (the "
                        "checkpoint's training size, accurate's 320x576)")
    p.add_argument("--max_frames", type=int, default=None, help="only the first N frames of each video")
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=list(CONFIGS),
                   help="configurations to run, in order; IoU is measured against the first")
    p.add_argument("--reference", default="torch_fast",
                   help="configuration that dJ is measured against (default: the float reference at fast's "
                        "size; the first configuration when it is not run)")
    p.add_argument("--repeat", type=int, default=2, help="runs per configuration and video; the fastest is kept")
    p.add_argument("--slow_repeat", type=int, default=1,
                   help="runs of the configurations with temporal fusion (accurate: minutes per video)")
    p.add_argument("--batch_configs", nargs="*", default=list(DEFAULT_BATCH_CONFIGS), choices=list(CONFIGS),
                   help="configurations timed as one call on all the videos and as one call per video (none: "
                        "skip; needs two videos or more)")
    p.add_argument("--test_py_data", type=Path, default=None,
                   help="data folder of benchmarks/davis_real.py (DAVIS-2016 with its DIS flow cache): run test.py "
                        "--flip --temporal 1 there at accurate's size and score it beside accurate")
    p.add_argument("--test_py_split", default=None,
                   help="its split holding the videos (default with --fold: that fold's held-out split)")
    p.add_argument("--online_frames", type=int, default=20, help="frames of the online row (0: skip it)")
    p.add_argument("--device", default="cpu", help="device of the network (flow runs on the CPU for DIS)")
    p.add_argument("--keep", type=Path, default=None, help="keep every run's output under this folder")
    p.add_argument("--extra", default="", help="options of scripts/segment_video.py added to every configuration "
                                              "(e.g. --int8_calibration FOLDER)")
    p.add_argument("--json", type=Path, default=None, help="write every figure of the run to this JSON file")
    p.add_argument("--plan", action="store_true",
                   help="print the videos, the configurations with the option values they resolve to, and the "
                        "other measurements, then stop (runs nothing)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = get_parser().parse_args(argv)
    srcs = sources(a)
    script = _script()
    size_args = ["--size", *map(str, a.size)] if a.size else []
    common = ["--device", a.device, "--overlay", "video", *size_args, *shlex.split(a.extra)]
    limit = ["--max_frames", str(a.max_frames)] if a.max_frames else []
    reference = a.reference if a.reference in a.configs else a.configs[0]
    batch_configs = a.batch_configs if len(srcs) > 1 else []
    test_split = a.test_py_split
    if test_split is None and a.fold is not None:
        from benchmarks.davis_real import holdout_splits

        test_split = holdout_splits(a.fold)[1]
    from segment_video.quality import RECIPE_TEST_SIZE

    test_size = tuple(a.size) if a.size else RECIPE_TEST_SIZE

    if a.plan:
        return plan(a, script, srcs, common, reference, batch_configs, test_split, test_size)
    missing = [str(s.path) for s in srcs if not s.path.exists()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found (set OAST_DAVIS_DIR, --davis or --input)")
        return 0
    if a.test_py_data is not None and test_split is None:
        print("error: --test_py_data needs --test_py_split (or --fold)", file=sys.stderr)
        return 2

    import torch

    from segment_video import segment_video
    from segment_video.pipeline import training_size

    with tempfile.TemporaryDirectory(prefix="segment_speed_weights_") as wtmp:
        weights = private_weights(a.weights, Path(wtmp))
        base_of = {s.name: ["--input", str(s.path), "--weights", *weights, *common, *limit] for s in srcs}
        first = base_of[srcs[0].name]
        if a.keep:
            a.keep.mkdir(parents=True, exist_ok=True)

        with tempfile.TemporaryDirectory(prefix="segment_speed_warmup_") as tmp:
            args = script.get_parser().parse_args([*first, "--output_dir", tmp, "--max_frames", "2"])
            t = time.perf_counter()
            warm = segment_video(args, progress=False)
            cold_s = time.perf_counter() - t
        h, w = warm.size
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        names = ", ".join(s.name for s in srcs)
        print(f"inputs: {len(srcs)} video(s) ({names}), the first {w}x{h}; network input "
              f"{'x'.join(map(str, a.size)) if a.size else 'each configuration its own'}; weights: "
              f"{' '.join(a.weights)}")
        print(f"device {a.device}; torch threads {torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}, "
              f"{os.cpu_count()} CPUs; load average before the runs {load:.2f}; OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
        print(f"warm-up (2 frames, fresh process costs: imports, first forward): {cold_s:.2f} s")
        print(openvino_line())
        if load > 0.5:
            print("warning: the machine is busy; these timings are not valid measurements")

        failed: dict[str, str] = {}  # measurement -> error: reported, and the others go on

        def attempt(label: str, fn):
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 -- one measurement's failure must not void a long run
                failed[label] = f"{type(e).__name__}: {e}"
                print(f"\n{label} failed: {failed[label]}")
                return None

        rows, all_runs, ref_masks = [], {}, None
        for name in a.configs:
            extra = CONFIGS[name]
            cfg = _config(script, [*first, "--output_dir", "x", *shlex.split(extra)])
            repeat = a.slow_repeat if cfg.temporal else a.repeat

            def measure(name=name, extra=extra, repeat=repeat):
                warm_up(script, first, extra)
                return {s.name: run_config(script, base_of[s.name], extra, repeat, a.keep, f"{name}_{s.name}",
                                           s.annotations) for s in srcs}

            runs = attempt(f"configuration {name}", measure)
            if runs is None:
                continue
            ref_masks = ref_masks or {v: r.masks for v, r in runs.items()}
            row = summarise(name, runs, ref_masks)
            row["resolved"] = _describe(cfg, training_size(weights) if cfg.size is None else None)
            row["repeat"] = repeat
            rows.append(row)
            all_runs[name] = runs
        n_label = max([len(r["name"]) for r in rows] + [len("online")]) + 1
        if rows:
            print_tables(rows, reference, f"fastest of {a.repeat} runs per video; {a.slow_repeat} with temporal "
                                          "fusion")
            print("\nconfigurations (options of scripts/segment_video.py besides --input --weights"
                  f"{' --size' if a.size else ''}):")
            for r in rows:
                flow = "frame size" if r["flow_size"] is None else f"{r['flow_size'][0]}x{r['flow_size'][1]}"
                print(f"  {r['name']:{n_label}s} {CONFIGS[r['name']] or '(defaults)'}  [pipeline {r['pipeline']}, "
                      f"flow at {flow}, network in {r['runtime']}, {'overlapped' if r['overlap'] else 'sequential'}; "
                      f"model load in the first runs {r['first_run_model_s']:.2f} s]")

        batch = {}
        with tempfile.TemporaryDirectory(prefix="segment_speed_batch_") as btmp:
            for name in batch_configs:
                b = attempt(f"one call vs one call each, {name}", lambda name=name: batch_compare(
                    script, [*common, *limit], CONFIGS[name], srcs, weights, Path(btmp) / name))
                if b is not None:
                    batch[name] = b
        if batch:
            print(f"\n{len(srcs)} videos in one call vs one call per video (fresh int8 caches; model load and "
                  "calibration included; the calls' Python start-ups are not)")
            for name, b in batch.items():
                print(f"  {name}: one call {b['one_call']['frames']} frames in {b['one_call']['seconds']:.1f} s = "
                      f"{b['one_call']['fps']:.1f} frames/s; one call each {b['calls']['seconds']:.1f} s = "
                      f"{b['calls']['fps']:.1f} frames/s ({b['one_call']['fps'] / b['calls']['fps']:.2f}x); "
                      f"mask IoU between the two {b['iou']:.3f}")

        test_py = None
        if a.test_py_data is not None:
            frames = {v: r.result.frames for v, r in all_runs.get("accurate", {}).items()}
            with tempfile.TemporaryDirectory(prefix="segment_speed_test_py_") as ttmp:
                test_py = attempt("test.py reference", lambda: test_py_reference(
                    a.test_py_data, test_split, weights, test_size, a.device, srcs, frames, Path(ttmp)))
        if test_py is not None:
            tj = _mean(test_py["per_video"].values())
            acc = next((r for r in rows if r["name"] == "accurate"), None)
            print(f"\ntest.py --flip --temporal 1 --size {test_size[0]} {test_size[1]} on {a.test_py_data} "
                  f"(split {test_split}; frames and flow images of the cache, flow not timed): J {_pts(tj)}"
                  + (f", accurate {_pts(acc['j'])} ({100 * (acc['j'] - tj):+.2f})" if acc and acc["j"] is not None
                     and tj is not None else "") + f"; {test_py['seconds']:.1f} s for the whole split")

        print_targets(rows, batch, test_py, reference)
        pairs = openvino_pairs(rows, all_runs)
        print_openvino_pairs(pairs)

        online = None
        if a.online_frames > 0:
            extra = f"{ONLINE} --max_frames {a.online_frames}"
            base = ["--input", str(srcs[0].path), "--weights", *weights, *common]

            def tune():
                warm_up(script, base, ONLINE)
                return run_config(script, base, extra, 1, a.keep, "online").result

            res = attempt("online row", tune)
            if res is not None:
                t, n = res.timing, res.frames
                online = {"frames": n, "timing": t}
                print(f"\nonline stage ({extra}; pipeline {res.pipeline}, {srcs[0].name}), 1 run; network = writing "
                      "the tuned model's masks")
                print(_header(n_label) + f" {'tune':>8s} {'tune s/frame':>12s}")
                print(_row("online", n, t, n_label) + f" {t['tune_s']:8.2f} {t['tune_s'] / n:12.3f}")
        keep_exports(weights, a.weights)

    if failed:
        print("\nfailed (the rest of the run is above): " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        keep = ("name", "frames", "timing", "fps", "fps_per_video", "first_run_fps", "first_run_model_s", "j",
                "j_per_video", "iou", "pipeline", "runtime", "overlap", "flow_size", "resolved", "repeat")
        a.json.write_text(json.dumps({
            "argv": sys.argv[1:] if argv is None else list(argv), "load_before": load, "videos": [s.name for s in srcs],
            "configs": [{**{k: r[k] for k in keep}, "options": CONFIGS[r["name"]]} for r in rows],
            "reference": reference, "batch": batch, "test_py": test_py, "online": online, "failed": failed,
            "openvino": openvino_line(), "openvino_pairs": pairs}, indent=1, default=str) + "\n")
        print(f"\nfigures written to {a.json}")
    return 1 if failed else 0


def plan(a: argparse.Namespace, script, srcs: list[Source], common: list[str], reference: str,
         batch_configs: list[str], test_split: str | None, test_size: tuple[int, int]) -> int:
    """``--plan``: what a run with these options would do."""
    from segment_video.frames import input_frame_count
    from segment_video.pipeline import training_size

    training_hw = training_size(a.weights) if all(Path(w).is_file() for w in a.weights) else None
    total = 0
    print(f"videos ({len(srcs)}):")
    for s in srcs:
        n = input_frame_count(s.path, 1, a.max_frames) if s.path.exists() else None
        total += n or 0
        print(f"  {s.name}: {s.path}" + (f", {n} frames" if n else ", NOT FOUND" if not s.path.exists() else "")
              + ("" if s.annotations is None else f", annotations {'found' if s.annotations.is_dir() else 'missing'}"))
    print(f"  {total} frames in all")
    print("weights: " + " ".join(a.weights) + ("" if training_hw else " (not found: sizes shown as the setting's)"))
    first = ["--input", str(srcs[0].path), "--weights", *a.weights, *common, "--output_dir", "x"]
    n_label = max(len(c) for c in a.configs) + 1
    print(f"configurations ({len(a.configs)}; IoU against {a.configs[0]}, dJ against {reference}):")
    for name in a.configs:
        cfg = _config(script, [*first, *shlex.split(CONFIGS[name])])
        repeat = a.slow_repeat if cfg.temporal else a.repeat
        print(f"  {name:{n_label}s} {CONFIGS[name] or '(defaults)'}")
        print(f"  {'':{n_label}s}   -> {_describe(cfg, training_hw)}; {repeat} run(s) per video")
    for name in batch_configs:
        print(f"one call on all {len(srcs)} videos vs one call each: {name} ({CONFIGS[name] or '(defaults)'})")
    if a.test_py_data is not None:
        print(f"test.py --flip --temporal 1 --size {test_size[0]} {test_size[1]} on {a.test_py_data}, split "
              f"{test_split}" + ("" if (a.test_py_data / "DAVIS-2016").is_dir() else " (NOT FOUND)"))
    if a.online_frames > 0:
        print(f"online row: {ONLINE} --max_frames {a.online_frames} on {srcs[0].name}")
    for ov, ort in OPENVINO_PAIRS.items():
        if ov in a.configs:
            print(f"OpenVINO beside ONNX Runtime: {ov} vs {ort}"
                  + ("" if ort in a.configs else f" (NOT RUN: add {ort} to --configs)")
                  + f"; equal masks: mean mask IoU >= {EQUAL_MASKS_IOU}")
    print(openvino_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
