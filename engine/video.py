"""Segmenting one user video (a video file or a folder of frames) with a trained model.

:func:`segment_video` (the logic behind ``scripts/segment_video.py``) runs five stages:

1. **frames**: decode the input (:mod:`engine.video_io`), every ``stride``-th frame, at most
   ``max_frames``; frames are named ``00000, 00001, ...``.
2. **flow**: forward optical flow of each frame to the next (:mod:`engine.video_flow`), on
   frames downscaled to ``flow_size`` when asked, colour-encoded as everywhere in the project
   (:mod:`utils.flow`); the last frame reuses the previous frame's flow image.
3. **network**: plain inference with the checkpoint, or with ``online`` OAST online
   self-tuning on this video first (:class:`engine.online.OnlineTuner`, teacher predictions).
4. **masks**: ``<output_dir>/masks/<video>/<frame>.png`` (0/255, original frame size); with
   ``save_prob``, probabilities go to ``<output_dir>/probs/<video>/<frame>.png``.
   :class:`MaskWriter` normally adds a ``<dataset>`` level; the single working dataset
   carries no information for one video, so it is left out.
5. **overlay**: ``<output_dir>/overlay.mp4`` or ``<output_dir>/overlay/<frame>.jpg``
   (:class:`engine.video_io.OverlayWriter`).

Two pipelines run these stages:

* ``memory`` streams batches of ``batch_size`` frames through all stages: frames and flow
  images never touch the disk (no JPEG write and read back), and each flow field is encoded
  at the network input size (:func:`network_flow_image`) instead of the frame size. Plain
  inference only. On four DAVIS sequences its masks matched the files pipeline's with mean
  IoU 0.89 (0.76-0.97 per sequence), mean J 71.0 vs 71.6; most of that difference comes
  from the files pipeline's JPEG copies (with flow encoded at the frame size as there, but
  no JPEG, the IoU was 0.90).
* ``files`` writes the frames and flow images as JPEGs in the project's data layout under
  ``<output_dir>/work/custom/val/{images,flows}/<video>/`` and runs each stage over the
  whole video; a rerun with the same input and flow settings reuses them, so an
  interrupted run resumes. Online tuning reads this layout, so ``--online`` uses it.

Each stage's wall time is recorded in :attr:`SegmentResult.timing`.

**What it may touch.** The weights are loaded (checkpoint read, network built) before any
frame is decoded or flow computed, so a bad ``--weights`` fails at once, naming the file.
``<output_dir>/.segment_video.json`` lists every file the tool wrote there
(:mod:`engine.video_ledger`); everything else in the output folder is the user's and is never
deleted. Before anything is written, a run refuses (naming the file, suggesting
``--overwrite`` or another ``--output_dir``) when it would overwrite or leave mixed in with
its results a file it did not write, or a result of an earlier run with other weights or of
another video (the shared ``overlay.mp4``/``overlay/``). Its own earlier results of the same
video and weights are replaced, whatever the other options. With ``--overwrite``, files at
the names the run writes are replaced and the tool's results of other runs in those places
are deleted, but a user's file the run does not replace is kept (and named in a warning).
The frames and flows folders of the work folder must hold only the tool's files (they are
read back as a data set): a foreign file there is always refused. ``--clean_work`` deletes
only the listed work files and then the folders the tool created. An ``--input`` that is
the output folder or lies in one of the places the tool writes (``masks/``, ``probs/``,
``overlay/``, ``overlay.mp4``, ``work/``) is refused; an output folder inside a frames
folder is fine (outputs go to subfolders, and only the frames folder's own files are read).
Every file is written atomically, and the manifest lists it before it is written, so a
killed run leaves no truncated file and a rerun finishes the job.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from engine.inference import MaskWriter, predict_probs, to_original_size
from engine.video_io import (DEFAULT_FPS, WORK_DATASET, WORK_SPLIT, ExtractedFrames, Guard, OverlayWriter, check_input,
                             extract_frames, frame_name, input_fps, input_frame_count, iter_input_frames, signature,
                             video_name, work_dirs, write_overlay, write_source_record)
from engine.video_flow import (compute_flow, downscale, flow_estimator, flow_settings, network_flow_image,
                               reset_stale_flows, resolve_flow_size)
from engine.video_ledger import Ledger, Owner, Unguarded
from engine.video_outputs import check_paths, clean_work, plan_outputs
from utils.optical_flow import FlowStats

_log = logging.getLogger(__name__)

# Keys of SegmentResult.timing, in pipeline order (seconds; "tune_s" only with --online).
STAGES = ("frames_s", "flow_s", "model_s", "tune_s", "network_s", "masks_s", "overlay_s")

# Memory pipeline: flow images pass through JPEG like the stored ones the network learnt from.
FLOW_JPEG = True

FlowEstimator = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list]


@dataclass
class SegmentResult:
    """Where everything went, and how long each stage took.

    ``timing`` (seconds): ``frames_s`` decoding (plus writing the JPEG frames, files
    pipeline), ``flow_s`` flow estimation and encoding (plus writing flow images),
    ``model_s`` loading the checkpoint, ``tune_s`` online tuning (``--online`` only),
    ``network_s`` network input preparation, forward passes and resizing the probabilities
    to the frame size, ``masks_s`` writing mask (and probability) PNGs, ``overlay_s`` the
    overlay, and ``total_s`` all of :func:`segment_video` (stages plus set-up).
    """
    video: str
    frames: int
    size: tuple[int, int]
    masks_dir: Path
    prob_dir: Path | None
    overlay: Path | None
    work_dir: Path  # frames and flows (files pipeline); the memory pipeline keeps only <video>.source.json there
    frames_reused: bool = False
    flow: FlowStats = field(default_factory=FlowStats)
    timing: dict[str, float] = field(default_factory=dict)
    pipeline: str = "files"
    flow_size: tuple[int, int] | None = None  # (H, W) flow was computed at; None: the frame size
    manifest: Path | None = None  # <output_dir>/.segment_video.json
    kept: list[Path] = field(default_factory=list)  # user files left in the output folders (--overwrite)


class StageClock:
    """Wall time accumulated per stage: ``with clock("flow_s"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class TimedMaskWriter(MaskWriter):
    """A :class:`MaskWriter` that books its writing time on ``clock`` as ``masks_s`` and has each
    file agreed and listed by ``guard`` first.

    Inference and online tuning call the writer from inside their loops; timing the
    writer itself is what separates mask writing from the network's time there.
    """

    def __init__(self, clock: StageClock, *args: Any, guard: Guard | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.guard = guard or Unguarded()

    def write(self, dataset: str, video: str, frame: str, prob: np.ndarray) -> None:
        with self.clock("masks_s"):
            rel = Path(dataset, video) if self.per_dataset else Path(video)
            self.guard.before_write(self.save_dir / rel / f"{frame}.png")
            if self.prob_dir is not None:
                self.guard.before_write(self.prob_dir / rel / f"{frame}.png")
            super().write(dataset, video, frame, prob)


# --------------------------------------------------------------------------- network
def load_model(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    """The checkpoint's network on ``device`` in eval mode, in ``--memory_format``."""
    from models import build_model_from_checkpoint

    arch = getattr(args, "arch", None)
    model = build_model_from_checkpoint(args.weights, args.model_scale, args.backbone, arch).to(device).eval()
    if args.memory_format == "channels_last":
        # The convolutions pick the weights' layout, so inputs need no conversion for this.
        model = model.to(memory_format=torch.channels_last)
    return model


def _to_batch(rgbs: Sequence[np.ndarray], size_hw: tuple[int, int], device: torch.device,
              channels_last: bool) -> torch.Tensor:
    """RGB ``uint8`` frames -> float ``B x 3 x H x W`` in [0, 1] at ``size_hw``.

    Bilinear resizing and scaling as the test dataset does (``datasets.transforms``), so
    both pipelines feed the network the same values for the same frames.
    """
    h, w = size_hw
    arr = np.stack([r if r.shape[:2] == (h, w) else cv2.resize(r, (w, h), interpolation=cv2.INTER_LINEAR)
                    for r in rgbs])
    x = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


# --------------------------------------------------------------------------- online
def online_parser() -> argparse.ArgumentParser:
    """The options of the online stage, from the same parser pieces as ``online_finetuning.py``."""
    from engine.online import add_online_args
    from utils.config import data_parser, ignored_options_parser, model_parser, runtime_parser

    p = argparse.ArgumentParser(add_help=False, parents=[model_parser(from_checkpoint=True), data_parser(),
                                                         runtime_parser(), ignored_options_parser()])
    add_online_args(p)
    return p


def online_args(args: argparse.Namespace, work_root: Path, name: str) -> argparse.Namespace:
    """The online-stage options for tuning on this one video (as ``online_finetuning.py`` would get)."""
    argv = ["--weights", *map(str, args.weights), "--data_dir", str(work_root), "--test_datasets", WORK_DATASET,
            "--split", WORK_SPLIT, "--videos", name, "--size", *map(str, args.size), "--workers", str(args.workers),
            "--epochs", str(args.online_epochs), "--batch_size", str(args.online_batch_size),
            "--lr", str(args.online_lr), "--mode", args.online_mode, "--tta", *args.tta, "--predict_with", "teacher",
            # The tuner writes through the caller's flat MaskWriter (see online_masks).
            "--save_dir", str(Path(args.output_dir) / "masks"), "--output_dir", str(work_root / "online"),
            "--device", args.device, "--amp_dtype", args.amp_dtype, "--seed", str(args.seed), "--no_tensorboard"]
    if args.model_scale:
        argv += ["--model_scale", args.model_scale]
    if args.backbone:
        argv += ["--backbone", args.backbone]
    if args.flip:
        argv.append("--flip")
    if args.amp:
        argv.append("--amp")
    return online_parser().parse_args(argv)


# What the online tuner writes in its run folder (engine/online.py, utils/log.py); listed before it starts.
ONLINE_RUN_FILES = ("log.txt", "args.yaml", "timing.json")


def online_masks(args: argparse.Namespace, work_root: Path, name: str, writer: MaskWriter,
                 guard: Guard | None = None) -> dict:
    """OAST online self-tuning on this video, teacher predictions; the tuner's timing
    (``frames``, ``tune_s``, ``predict_s``, ...) plus ``model_s`` (building the tuner).

    The tuner's run folder is ``<work_root>/online``; its files are listed by ``guard``
    before the tuner starts (and any other file it made there, after it finished).
    """
    from engine.online import OnlineTuner

    guard = guard or Unguarded()
    run_dir = work_root / "online"
    for f in (*ONLINE_RUN_FILES, f"done/{WORK_DATASET}/{name}.json"):
        guard.before_write(run_dir / f)
    t0 = time.time()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        t = time.perf_counter()
        tuner = OnlineTuner(online_args(args, work_root, name), writer=writer)
        model_s = time.perf_counter() - t
        timing = tuner.run()
    finally:
        # The tuner logs to <run_dir>/log.txt; later messages of this run belong to the caller's log only
        # (a log that grew after the run finished would no longer count as the tool's file).
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
    if isinstance(guard, Ledger) and run_dir.is_dir():
        new = [p for p in run_dir.rglob("*") if p.is_file() and guard.rel(p) not in guard.files
               and p.stat().st_mtime >= t0 - 1]
        if new:
            guard.claim(new)
            guard.adopt_written(new)
    return {**timing, "model_s": model_s}


# --------------------------------------------------------------------------- pipelines


@dataclass
class _Frame:
    """One decoded frame of the memory pipeline and what has been derived from it."""
    name: str
    source: str  # input frame index or file name
    bgr: np.ndarray
    flow_rgb: np.ndarray | None = None  # RGB at the flow size, input of the flow estimator
    flow_image: np.ndarray | None = None  # encoded flow to the next frame at the network size, RGB uint8


class _MemoryPipeline:
    """Batches of frames through flow, network, masks and overlay, nothing kept on disk.

    Frames wait in a buffer until their mask is written; the buffer holds one frame more
    than a batch, because a frame's flow needs its successor.
    """

    def __init__(self, args: argparse.Namespace, path: Path, name: str, device: torch.device, writer: MaskWriter,
                 overlay: OverlayWriter, clock: StageClock, model: torch.nn.Module) -> None:
        self.args, self.name, self.device = args, name, device
        self.writer, self.overlay, self.clock = writer, overlay, clock
        self.net_hw = (int(args.size[0]), int(args.size[1]))
        self.batch = max(1, int(args.batch_size))
        self.channels_last = args.memory_format == "channels_last"
        self.model = model
        with clock("model_s"):
            self.estimator = flow_estimator(args)
        self.frames = iter_input_frames(path, args.stride, args.max_frames)
        self.exhausted = False
        self.buf: list[_Frame] = []
        self.size: tuple[int, int] | None = None  # frame (H, W), known from the first frame
        self.flow_hw: tuple[int, int] | None = None
        self.last_flow: np.ndarray | None = None
        self.stats = FlowStats(videos=1)
        self.sources: list[str] = []

    def run(self, total: int | None = None, progress: bool = True) -> int:
        """Segment every frame; returns the number of masks written."""
        n = 0
        with tqdm(total=total, desc=f"segment {self.name}", unit="frame", disable=not progress,
                  dynamic_ncols=True) as bar:
            while True:
                with self.clock("frames_s"):
                    self._decode(n)
                if not self.buf:
                    break
                chunk = self.buf[:self.batch]
                with self.clock("flow_s"):
                    self._flow(chunk)
                with self.clock("network_s"):
                    probs = self._predict(chunk)
                for f, p in zip(chunk, probs):
                    self.writer.write(WORK_DATASET, self.name, f.name, p)  # books masks_s itself
                    with self.clock("overlay_s"):
                        self.overlay.write(f.name, f.bgr, (p >= self.args.threshold).astype(np.uint8))
                    self.sources.append(f.source)
                n += len(chunk)
                bar.update(len(chunk))
                del self.buf[:len(chunk)]
        self.stats.frames = n
        return n

    def _decode(self, done: int) -> None:
        while not self.exhausted and len(self.buf) < self.batch + 1:
            item = next(self.frames, None)
            if item is None:
                self.exhausted = True
            else:
                self.buf.append(_Frame(frame_name(done + len(self.buf)), *item))
        if self.size is None and self.buf:
            self.size = self.buf[0].bgr.shape[:2]
            self.flow_hw = resolve_flow_size(self.args.flow_size, self.net_hw, self.size)

    def _flow(self, chunk: list[_Frame]) -> None:
        pairs = [k for k in range(len(chunk)) if k + 1 < len(self.buf)]
        for k in {*pairs, *(k + 1 for k in pairs)}:
            f = self.buf[k]
            if f.flow_rgb is None:
                f.flow_rgb = cv2.cvtColor(downscale(f.bgr, self.flow_hw), cv2.COLOR_BGR2RGB)
        if pairs:
            flows = self.estimator([self.buf[k].flow_rgb for k in pairs], [self.buf[k + 1].flow_rgb for k in pairs])
            for k, fl in zip(pairs, flows):
                chunk[k].flow_image = self.last_flow = network_flow_image(fl, self.size, self.net_hw, FLOW_JPEG)
            self.stats.computed += len(pairs)
        for f in chunk:
            if f.flow_image is None:  # the last frame: the previous frame's flow, as in the work layout
                if self.last_flow is None:  # a one-frame video: no motion
                    still = np.zeros((*self.net_hw, 2), np.float32)
                    self.last_flow = network_flow_image(still, self.net_hw, self.net_hw, FLOW_JPEG)
                f.flow_image = self.last_flow
                self.stats.copied += 1

    def _predict(self, chunk: list[_Frame]) -> list[np.ndarray]:
        a = self.args
        image = _to_batch([cv2.cvtColor(f.bgr, cv2.COLOR_BGR2RGB) for f in chunk], self.net_hw, self.device,
                          self.channels_last)
        flow = _to_batch([f.flow_image for f in chunk], self.net_hw, self.device, self.channels_last)
        with torch.inference_mode():
            prob = predict_probs(self.model, image, flow, a.flip, a.amp, a.amp_dtype)
            return list(to_original_size(prob, torch.tensor([self.size] * len(chunk))))


def _segment_with_files(args: argparse.Namespace, path: Path, name: str, device: torch.device, writer: MaskWriter,
                        clock: StageClock, progress: bool = True, model: torch.nn.Module | None = None,
                        guard: Guard | None = None) -> tuple[int, ExtractedFrames, FlowStats, tuple[int, int] | None]:
    """Frames and flow images through the work folder, then inference (with ``model``) or online
    tuning; returns (masks written, extracted frames, flow counts, flow size)."""
    guard = guard or Unguarded()
    work_root = Path(args.output_dir) / "work"
    with clock("frames_s"):
        frames = extract_frames(path, work_root, name, args.stride, args.max_frames, progress, guard)
    images_dir, flows_dir = work_dirs(work_root, name)
    flow_hw = resolve_flow_size(args.flow_size, args.size, frames.size)
    with clock("flow_s"):
        reset_stale_flows(work_root, name, flow_settings(args, flow_hw), guard)
        flow = compute_flow(images_dir, flows_dir, args.flow, progress, flow_hw, flow_estimator(args), guard)

    masks_before = clock.seconds.get("masks_s", 0.0)
    if args.online:
        timing = online_masks(args, work_root, name, writer, guard)
        n = int(timing["frames"])
        clock.add("model_s", timing["model_s"])
        clock.add("tune_s", timing["tune_s"])
        predict_s = timing["predict_s"]
    else:
        from datasets import FrameDataset
        from engine.inference import run_inference
        from utils.distributed import DistInfo

        if model is None:
            with clock("model_s"):
                model = load_model(args, device)
        t = time.perf_counter()
        data = FrameDataset(work_root, [WORK_DATASET], "test", WORK_SPLIT, tuple(args.size), with_labels=False,
                            videos=[name])
        n = run_inference(model, data, writer, DistInfo(0, 1, 0, device), args.batch_size, args.workers, args.flip,
                          args.amp, args.amp_dtype, desc=f"segment {name}")
        predict_s = time.perf_counter() - t
    # The writer ran inside the prediction loop and booked its own time.
    clock.add("network_s", max(0.0, predict_s - (clock.seconds.get("masks_s", 0.0) - masks_before)))
    return n, frames, flow, flow_hw


def training_size(weights: str | Path | list) -> tuple[int, int]:
    """The input size the (first) checkpoint was trained at, else the paper's 384 x 640."""
    from utils.checkpoint import load_checkpoint

    first = weights[0] if isinstance(weights, (list, tuple)) else weights
    saved = load_checkpoint(first).get("args") or {}
    saved = vars(saved) if not isinstance(saved, dict) else saved  # the authors' files hold a Namespace
    size = saved.get("size", saved.get("img_size"))
    if isinstance(size, int):
        size = (size, size)
    try:
        return (int(size[0]), int(size[1])) if size is not None and len(size) == 2 else (384, 640)
    except (TypeError, ValueError):
        return (384, 640)


def _check_weights(args: argparse.Namespace, device: torch.device) -> torch.nn.Module | None:
    """Load the checkpoint(s) and build the network now, so that a bad ``--weights`` fails before any
    slow stage. Returns the model for plain inference; None for ``--online`` (the tuner builds its own)."""
    if not args.online:
        return load_model(args, device)
    from models import build_model_from_checkpoint

    build_model_from_checkpoint(args.weights, args.model_scale, args.backbone, getattr(args, "arch", None))
    return None


def _run_options(args: argparse.Namespace, pipeline: str) -> dict:
    """The options a run records in the manifest (for the user; nothing depends on them)."""
    keys = ("input", "name", "stride", "max_frames", "size", "flow", "dis_preset", "flow_size", "threshold", "flip",
            "online", "online_epochs", "overlay", "save_prob")
    out = {k: getattr(args, k, None) for k in keys}
    return {**{k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in out.items()},
            "pipeline": pipeline}


def segment_video(args: argparse.Namespace, progress: bool = True) -> SegmentResult:
    """Run the stages of the module docstring for ``args`` (see :func:`engine.video_args.add_video_args`).

    Raises :class:`engine.video_ledger.OutputConflict` (a ``ValueError``) before writing
    anything when the run would touch a file it may not (see the module docstring).
    """
    from utils.misc import resolve_device, seed_everything

    t_start = time.perf_counter()
    if args.online and args.online_epochs < 0:
        raise ValueError("--online_epochs must be >= 0")
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise ValueError(f"--overlay_alpha must be in [0, 1], got {args.overlay_alpha}")
    pipeline = args.pipeline if args.pipeline != "auto" else ("files" if args.online else "memory")
    if pipeline == "memory" and args.online:
        raise ValueError("--online needs --pipeline files (or auto): the tuner reads the frames from the work folder")
    path = Path(args.input)
    check_input(path)  # fail on a bad input before loading anything heavy
    out_dir = Path(args.output_dir)
    check_paths(path, out_dir)
    if args.size is None:
        args.size = training_size(args.weights)
    work_root = out_dir / "work"
    name = video_name(path, args.name)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    clock = StageClock()
    with clock("model_s"):
        model = _check_weights(args, device)

    ledger = Ledger(out_dir, Owner.of(name, args.weights), overwrite=getattr(args, "overwrite", False))
    with ledger.locked():
        kept = plan_outputs(ledger, args, out_dir, name, pipeline)
        ledger.start_run(_run_options(args, pipeline))
        result = _run_stages(args, path, name, pipeline, device, model, clock, ledger, progress)
        ledger.finish_run(result.frames)
        kept = [p for p in kept if p.exists() and ledger.status(p) == "user"]
        if kept:
            _log.warning("kept %d file(s) not written by segment_video next to the results: %s%s", len(kept),
                         ", ".join(map(str, kept[:5])), " ..." if len(kept) > 5 else "")
        if args.clean_work:
            removed, left = clean_work(ledger, work_root)
            _log.info("removed %d file(s) segment_video wrote in %s%s", removed, work_root,
                      f"; kept {len(left)} other file(s) there, e.g. {left[0]}" if left else "")
        elif pipeline == "files":
            _log.info("frames and flows kept in %s (reused by a rerun; --clean_work deletes them)", work_root)
    timing = {k: clock.seconds.get(k, 0.0) for k in STAGES if k != "tune_s" or args.online}
    timing["total_s"] = time.perf_counter() - t_start
    n = result.frames
    _log.info("%d frames in %.2f s (%.1f frames/s): %s", n, timing["total_s"], n / max(timing["total_s"], 1e-9),
              ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in timing.items() if k != "total_s"))
    result.timing, result.manifest, result.kept = timing, ledger.path, kept
    return result


def _run_stages(args: argparse.Namespace, path: Path, name: str, pipeline: str, device: torch.device,
                model: torch.nn.Module | None, clock: StageClock, guard: Guard, progress: bool) -> SegmentResult:
    """Frames, flow, network, masks and overlay of one video, every file through ``guard``."""
    out_dir = Path(args.output_dir)
    work_root = out_dir / "work"
    masks_root = out_dir / "masks"
    prob_root = out_dir / "probs" if args.save_prob else None
    # One user video from a single working dataset: no <dataset> folder level in the output.
    writer = TimedMaskWriter(clock, masks_root, prob_root, args.threshold, per_dataset=False, guard=guard)
    color = tuple(args.overlay_color)
    if pipeline == "memory":
        fps_in = input_fps(path)
        fps = args.fps or ((fps_in / args.stride) if fps_in else DEFAULT_FPS)
        sig = signature(path, args.stride, args.max_frames)
        with OverlayWriter(out_dir, args.overlay, fps, color, args.overlay_alpha, guard) as overlay:
            run = _MemoryPipeline(args, path, name, device, writer, overlay, clock, model)
            n = run.run(input_frame_count(path, args.stride, args.max_frames), progress)
        # The only file of the work folder here: which input frame each output frame came from.
        write_source_record(work_root, name, sig, [frame_name(i) for i in range(n)], run.sources, run.size, fps_in,
                            guard)
        overlay_path, n_frames, size, flow, flow_hw, reused = overlay.target, n, run.size, run.stats, run.flow_hw, False
    else:
        n, frames, flow, flow_hw = _segment_with_files(args, path, name, device, writer, clock, progress, model, guard)
        n_frames, size, reused = len(frames.names), frames.size, frames.reused
        fps = args.fps or ((frames.fps / args.stride) if frames.fps else DEFAULT_FPS)
        images_dir, _ = work_dirs(work_root, name)
        with clock("overlay_s"):
            overlay_path = write_overlay(images_dir, masks_root / name, frames.names, out_dir, args.overlay, fps,
                                         color, args.overlay_alpha, progress, guard)
    if n != n_frames:
        raise RuntimeError(f"wrote {n} masks for {n_frames} frames of {name}")
    _log.info("masks: %s (%d frames)%s", masks_root / name, n,
              f", probabilities: {prob_root / name}" if prob_root else "")
    if overlay_path is not None:
        _log.info("overlay: %s", overlay_path)
    return SegmentResult(name, n, tuple(size), masks_root / name, prob_root / name if prob_root else None,
                         overlay_path, work_root, reused, flow, {}, pipeline, flow_hw)
