"""Segmenting user videos (video files or folders of frames) with a trained model.

:func:`segment_video` runs five stages on one video; :func:`segment_videos` runs them on
each of several, into one output sub-folder per video, with the network loaded once:

1. **frames**: decode the input (:mod:`segment_video.frames`), every ``stride``-th frame, at
   most ``max_frames``; frames are named ``00000, 00001, ...``.
2. **flow**: forward optical flow of each frame to the next (:mod:`segment_video.flow`), on
   frames downscaled to ``flow_size`` when asked, colour-encoded as everywhere in the project
   (:mod:`utils.flow`); the last frame reuses the previous frame's flow image.
3. **network**: plain inference with the checkpoint (with ``flip``, averaged with the mirrored
   pass; with ``temporal``, fused with the flow-warped neighbours: the library code of
   ``test.py --flip --temporal``), or with ``online`` OAST online self-tuning on this video
   first (:mod:`segment_video.online`, the online stage's defaults). ``runtime`` picks what runs
   plain inference on the CPU (PyTorch, ONNX Runtime, OpenVINO, float or int8); on CUDA it is
   PyTorch under fp16 autocast (:mod:`segment_video.precision`).
4. **masks**: ``<output_dir>/masks/<video>/<frame>.png`` (0/255, original frame size); with
   ``save_prob``, probabilities go to ``<output_dir>/probs/<video>/<frame>.png``.
5. **overlay**: ``<output_dir>/overlay.mp4`` or ``<output_dir>/overlay/<frame>.jpg``
   (:mod:`segment_video.overlay`).

Two pipelines run these stages:

* ``memory`` streams batches of ``batch_size`` frames through all stages: frames and flow
  images never touch the disk. DIS runs on the frames downscaled once to ``flow_size``
  (``network``: the network input size), and each flow field is colour-encoded at the network
  input size (:func:`segment_video.flow.network_flow_image`) instead of the frame size: the
  8-bit image the network gets, with no JPEG encode and decode in between unless
  ``flow_jpeg``. Plain inference only. Its masks differ slightly from the files pipeline's,
  through that pipeline's JPEG copies of the frames and of the flow images. Unless
  ``--no_overlap``, decoding with flow, the network, and writing run in three overlapping
  threads (same masks).
* ``files`` writes the frames and flow images as JPEGs in the project's data layout under
  ``<output_dir>/work/custom/val/{images,flows}/<video>/`` and runs each stage over the
  whole video; a rerun with the same input and flow settings reuses them, so an
  interrupted run resumes. Online tuning and temporal fusion read this layout, so
  ``--online`` and ``--temporal`` use it; inference there is ``test.py``'s
  (:func:`engine.inference.run_inference`) on the work folder as a dataset.

The weights are loaded before any frame is decoded or flow computed, so a bad ``--weights``
fails at once, naming the file. The output folder follows :mod:`segment_video.outputs`.
Each stage's wall time is recorded in :attr:`SegmentResult.timing`.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from engine.inference import MaskWriter, to_original_size
from engine.views import predict_probs
from segment_video import outputs
from segment_video.config import VideoConfig
from segment_video.flow import (compute_flow, downscale, flow_estimator, flow_settings, network_flow_image,
                                reset_stale_flows, resolve_flow_size)
from segment_video.frames import (WORK_DATASET, WORK_SPLIT, ExtractedFrames, check_input, extract_frames, frame_name,
                                  input_fps, input_frame_count, iter_input_frames, list_videos, named_videos, signature,
                                  video_name, work_dirs, write_source_record)
from segment_video.network_input import to_network_batch
from segment_video.online import tune_and_predict
from segment_video.overlay import DEFAULT_FPS, OverlayWriter, write_overlay
from segment_video.precision import describe as precision_text
from segment_video.precision import network_precision
from utils.optical_flow import FlowStats

_log = logging.getLogger(__name__)

# Keys of SegmentResult.timing, in pipeline order (seconds; "tune_s" only with --online).
STAGES = ("frames_s", "flow_s", "model_s", "tune_s", "network_s", "masks_s", "overlay_s")


@dataclass
class SegmentResult:
    """Where everything went, and how long each stage took.

    ``timing`` (seconds): ``frames_s`` decoding (plus writing the JPEG frames, files
    pipeline), ``flow_s`` flow estimation and encoding (plus writing flow images),
    ``model_s`` loading the checkpoint, ``tune_s`` online tuning (``--online`` only),
    ``network_s`` network input preparation, forward passes and resizing the probabilities
    to the frame size, ``masks_s`` writing mask (and probability) PNGs, ``overlay_s`` the
    overlay, and ``total_s`` all of :func:`segment_video` (stages plus set-up). With
    ``overlap`` the stages run at the same time, so their sum exceeds ``total_s``.
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
    overlap: bool = False  # memory pipeline: stages ran in overlapping threads (their times add up to more than total_s)
    # What ran the network: "torch", "onnx" (ONNX Runtime), "int8" (its int8 version), "openvino" or "openvino_int8"
    # (OpenVINO on those two files).
    runtime: str = "torch"


class StageClock:
    """Wall time accumulated per stage: ``with clock("flow_s"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:  # the overlapped pipeline books stages from three threads
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class TimedMaskWriter(MaskWriter):
    """A :class:`MaskWriter` that books its writing time on ``clock`` as ``masks_s``.

    Inference and online tuning call the writer from inside their loops; timing the
    writer itself is what separates mask writing from the network's time there.
    """

    def __init__(self, clock: StageClock, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def write(self, dataset: str, video: str, frame: str, prob: np.ndarray) -> None:
        with self.clock("masks_s"):
            super().write(dataset, video, frame, prob)


# --------------------------------------------------------------------------- network
# The runtimes that run the ONNX export on the CPU (none falls back to PyTorch when asked for by name), and
# those of them that run its int8 version.
CPU_RUNTIMES = ("onnx", "int8", "openvino", "openvino_int8")
INT8_RUNTIMES = ("int8", "openvino_int8")
OPENVINO_RUNTIMES = ("openvino", "openvino_int8")  # served by segment_video.openvino_runtime (imported lazily)
# The log's name for each value of SegmentResult.runtime.
RUNTIME_NAMES = {"onnx": "ONNX Runtime", "int8": "ONNX Runtime int8", "openvino": "OpenVINO",
                 "openvino_int8": "OpenVINO int8", "torch": "PyTorch"}


def load_model(cfg: VideoConfig, device: torch.device) -> torch.nn.Module:
    """The checkpoint's network on ``device`` in eval mode, in ``--memory_format``; with
    ``--runtime onnx``, its ONNX Runtime version at ``--size`` (:mod:`segment_video.onnx_runtime`);
    with ``--runtime int8``, that version quantised to int8 (:mod:`segment_video.int8`); with
    ``--runtime openvino`` or ``openvino_int8``, one of those two files compiled by OpenVINO
    (:mod:`segment_video.openvino_runtime`)."""
    from models import build_model_from_checkpoint

    def build() -> torch.nn.Module:
        return build_model_from_checkpoint(cfg.weights, cfg.model_scale, cfg.backbone,
                                           cfg.arch).eval()

    runtime = cfg.runtime
    # auto never picks OpenVINO: it is to be adopted only where measured faster than ONNX Runtime at equal masks.
    if runtime in CPU_RUNTIMES or (runtime == "auto" and _onnx_by_default(cfg, device)):
        from segment_video.onnx_runtime import load_int8_network, load_onnx_network

        try:
            # The PyTorch network is built only when the export is not cached yet.
            net = load_onnx_network(build, cfg.weights, cfg.size)
        except RuntimeError as e:  # an export that fails or differs from PyTorch
            if runtime != "auto":
                raise
            _log.warning("%s; running the network in PyTorch instead", e)
        else:
            if runtime in INT8_RUNTIMES:
                from segment_video.int8 import calibration_inputs, calibration_key

                net = load_int8_network(net, calibration_key(cfg), lambda: calibration_inputs(cfg))
            if runtime in OPENVINO_RUNTIMES:
                from segment_video.openvino_runtime import load_openvino_network

                return load_openvino_network(net, int8=runtime == "openvino_int8")
            return net
    model = build().to(device)
    if cfg.memory_format == "channels_last":
        # The convolutions pick the weights' layout, so inputs need no conversion for this.
        model = model.to(memory_format=torch.channels_last)
    return model


def _onnx_by_default(cfg: VideoConfig, device: torch.device) -> bool:
    """``--runtime auto``: ONNX Runtime for plain inference on the CPU when its packages are installed
    (on CUDA: PyTorch, see :mod:`segment_video.precision`)."""
    from segment_video.onnx_runtime import available

    return device.type == "cpu" and not cfg.online and available()


def runtime_used(model: object, runtime: str) -> str:
    """What ran the network (:attr:`SegmentResult.runtime`) for the loaded ``model`` (None: the
    online tuner's PyTorch network) and ``--runtime``."""
    if model is None or isinstance(model, torch.nn.Module):
        return "torch"
    # A runtime named on the command line never falls back (a failed export or check raises), and auto picks
    # only ONNX Runtime's float network besides PyTorch.
    return "onnx" if runtime == "auto" else runtime


def training_size(weights: str | Path | list) -> tuple[int, int]:
    """The input size the (first) checkpoint was trained at, else the paper's 384 x 640.

    That is its ``train_size`` (the crop size of the saved epoch; ``--final_size`` in a run's last
    ``--final_epochs`` epochs), else its options' ``size`` (checkpoints made before ``train_size``).
    """
    from utils.checkpoint import load_checkpoint

    first = weights[0] if isinstance(weights, (list, tuple)) else weights
    ckpt = load_checkpoint(first)
    saved = ckpt.get("args") or {}
    saved = vars(saved) if not isinstance(saved, dict) else saved  # the authors' files hold a Namespace
    size = ckpt.get("train_size")
    if size is None:
        size = saved.get("size", saved.get("img_size"))
    if isinstance(size, int):
        size = (size, size)
    try:
        return (int(size[0]), int(size[1])) if size is not None and len(size) == 2 else (384, 640)
    except (TypeError, ValueError):
        return (384, 640)


def _check_weights(cfg: VideoConfig, device: torch.device) -> torch.nn.Module | None:
    """Load the checkpoint(s) and build the network now, so that a bad ``--weights`` fails before any
    slow stage. Returns the model for plain inference; None for ``--online`` (the tuner builds its own)."""
    if not cfg.online:
        return load_model(cfg, device)
    from models import build_model_from_checkpoint

    build_model_from_checkpoint(cfg.weights, cfg.model_scale, cfg.backbone, cfg.arch)
    return None


# --------------------------------------------------------------------------- pipelines
@dataclass
class _Frame:
    """One decoded frame of the memory pipeline and what has been derived from it."""
    name: str
    source: str  # input frame index or file name
    bgr: np.ndarray
    flow_rgb: np.ndarray | None = None  # RGB at the flow size, input of the flow estimator
    flow_image: np.ndarray | None = None  # encoded flow to the next frame at the network size, RGB uint8


class _Inline:
    """Runs each submitted call at once in the caller's thread: the sequential stand-in for a
    one-thread executor, so that both pipelines share one loop."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as e:  # re-raised by .result(), where the threaded executor raises too
            done.set_exception(e)
        return done

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class _MemoryPipeline:
    """Batches of frames through flow, network, masks and overlay, nothing kept on disk.

    Frames wait in a buffer until their batch is handed on; the buffer holds one frame more
    than a batch, because a frame's flow needs its successor.

    With ``overlap`` three threads work at once: one decodes the next batch and computes its
    flow, the calling thread runs the network on the current batch, and one writes the
    previous batch's masks and overlay. The decoder, DIS, the PNG and video encoders and
    ONNX Runtime all release the GIL, so the single-threaded stages run beside the network
    instead of after it. Each stage has one thread, so frames stay in order and the masks
    are those of the sequential run.
    """

    def __init__(self, cfg: VideoConfig, path: Path, name: str, device: torch.device, writer: MaskWriter,
                 overlay: OverlayWriter, clock: StageClock, model: torch.nn.Module, overlap: bool = False) -> None:
        self.cfg, self.name, self.device = cfg, name, device
        self.writer, self.overlay, self.clock = writer, overlay, clock
        self.net_hw = cfg.size
        self.batch = max(1, int(cfg.batch_size))
        self.channels_last = cfg.memory_format == "channels_last" and isinstance(model, torch.nn.Module)
        self.amp = network_precision(device.type, cfg.amp, cfg.amp_dtype, cfg.cuda_precision)
        self.model = model
        self.overlap = overlap
        with clock("model_s"):
            self.estimator = flow_estimator(cfg)
        self.frames = iter_input_frames(path, cfg.stride, cfg.max_frames)
        self.exhausted = False
        self.decoded = 0  # frames taken from the input so far (they name the next frame)
        self.buf: list[_Frame] = []
        self.size: tuple[int, int] | None = None  # frame (H, W), known from the first frame
        self.flow_hw: tuple[int, int] | None = None
        self.last_flow: np.ndarray | None = None
        self.stats = FlowStats(videos=1)
        self.sources: list[str] = []

    def run(self, total: int | None = None, progress: bool = True) -> int:
        """Segment every frame; returns the number of masks written."""
        n = 0
        # Two batches may wait for the writer: enough to keep it busy, and memory stays bounded.
        max_pending = 2
        pool = (lambda: ThreadPoolExecutor(1)) if self.overlap else _Inline
        with tqdm(total=total, desc=f"segment {self.name}", unit="frame", disable=not progress,
                  dynamic_ncols=True) as bar, pool() as reader, pool() as writing:
            writes: deque[Future] = deque()
            ahead = reader.submit(self._next_chunk)
            while (chunk := ahead.result()) is not None:
                ahead = reader.submit(self._next_chunk)  # the next batch decodes while this one runs
                with self.clock("network_s"):
                    probs = self._predict(chunk)
                writes.append(writing.submit(self._write, chunk, probs))
                while len(writes) > max_pending:
                    writes.popleft().result()  # raises the writer's error here
                n += len(chunk)
                bar.update(len(chunk))
            for w in writes:
                w.result()
        self.stats.frames = n
        return n

    def _next_chunk(self) -> list[_Frame] | None:
        """The next batch of decoded frames with their flow images, or None at the end."""
        with self.clock("frames_s"):
            self._decode()
        if not self.buf:
            return None
        chunk = self.buf[:self.batch]
        with self.clock("flow_s"):
            self._flow(chunk)
        del self.buf[:len(chunk)]
        return chunk

    def _write(self, chunk: list[_Frame], probs: list[np.ndarray]) -> None:
        for f, p in zip(chunk, probs):
            self.writer.write(WORK_DATASET, self.name, f.name, p)  # books masks_s itself
            with self.clock("overlay_s"):
                self.overlay.write(f.name, f.bgr, (p >= self.cfg.threshold).astype(np.uint8))
            self.sources.append(f.source)

    def _decode(self) -> None:
        while not self.exhausted and len(self.buf) < self.batch + 1:
            item = next(self.frames, None)
            if item is None:
                self.exhausted = True
            else:
                self.buf.append(_Frame(frame_name(self.decoded), *item))
                self.decoded += 1
        if self.size is None and self.buf:
            self.size = self.buf[0].bgr.shape[:2]
            self.flow_hw = resolve_flow_size(self.cfg.flow_size, self.net_hw, self.size)

    def _flow(self, chunk: list[_Frame]) -> None:
        pairs = [k for k in range(len(chunk)) if k + 1 < len(self.buf)]
        for k in {*pairs, *(k + 1 for k in pairs)}:
            f = self.buf[k]
            if f.flow_rgb is None:
                f.flow_rgb = cv2.cvtColor(downscale(f.bgr, self.flow_hw), cv2.COLOR_BGR2RGB)
        if pairs:
            flows = self.estimator([self.buf[k].flow_rgb for k in pairs], [self.buf[k + 1].flow_rgb for k in pairs])
            jpeg = self.cfg.flow_jpeg
            for k, fl in zip(pairs, flows):
                chunk[k].flow_image = self.last_flow = network_flow_image(fl, self.size, self.net_hw, jpeg)
            self.stats.computed += len(pairs)
        for f in chunk:
            if f.flow_image is None:  # the last frame: the previous frame's flow, as in the work layout
                if self.last_flow is None:  # a one-frame video: no motion
                    still = np.zeros((*self.net_hw, 2), np.float32)
                    self.last_flow = network_flow_image(still, self.net_hw, self.net_hw, self.cfg.flow_jpeg)
                f.flow_image = self.last_flow
                self.stats.copied += 1

    def _predict(self, chunk: list[_Frame]) -> list[np.ndarray]:
        a = self.cfg
        image = to_network_batch([cv2.cvtColor(f.bgr, cv2.COLOR_BGR2RGB) for f in chunk], self.net_hw, self.device,
                                 self.channels_last)
        flow = to_network_batch([f.flow_image for f in chunk], self.net_hw, self.device, self.channels_last)
        with torch.inference_mode():
            prob = predict_probs(self.model, image, flow, a.flip, *self.amp)
            return list(to_original_size(prob, torch.tensor([self.size] * len(chunk))))


def _segment_with_files(cfg: VideoConfig, path: Path, name: str, device: torch.device, writer: MaskWriter,
                        clock: StageClock, progress: bool = True, model: torch.nn.Module | None = None
                        ) -> tuple[int, ExtractedFrames, FlowStats, tuple[int, int] | None]:
    """Frames and flow images through the work folder, then inference (with ``model``) or online
    tuning; returns (masks written, extracted frames, flow counts, flow size)."""
    work_root = cfg.output_dir / "work"
    with clock("frames_s"):
        frames = extract_frames(path, work_root, name, cfg.stride, cfg.max_frames, progress)
    images_dir, flows_dir = work_dirs(work_root, name)
    flow_hw = resolve_flow_size(cfg.flow_size, cfg.size, frames.size)
    with clock("flow_s"):
        reset_stale_flows(work_root, name, flow_settings(cfg, flow_hw))
        flow = compute_flow(images_dir, flows_dir, cfg.flow, progress, flow_hw, flow_estimator(cfg))

    masks_before = clock.seconds.get("masks_s", 0.0)
    if cfg.online:
        timing = tune_and_predict(cfg, work_root, name, writer)
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
                model = load_model(cfg, device)
        t = time.perf_counter()
        data = FrameDataset(work_root, [WORK_DATASET], "test", WORK_SPLIT, cfg.size, with_labels=False,
                            videos=[name])
        # test.py's own call: with the same frames, flow images, size and options, its masks.
        amp, amp_dtype = network_precision(device.type, cfg.amp, cfg.amp_dtype, cfg.cuda_precision)
        n = run_inference(model, data, writer, DistInfo(0, 1, 0, device), cfg.batch_size, cfg.workers, cfg.flip,
                          amp, amp_dtype, desc=f"segment {name}", temporal=cfg.temporal)
        predict_s = time.perf_counter() - t
    # The writer ran inside the prediction loop and booked its own time.
    clock.add("network_s", max(0.0, predict_s - (clock.seconds.get("masks_s", 0.0) - masks_before)))
    return n, frames, flow, flow_hw


def _run_options(cfg: VideoConfig, pipeline: str) -> dict:
    """The options a run records in the manifest (for the user; only input, name and weights decide)."""
    keys = ("input", "name", "quality", "stride", "max_frames", "size", "flow", "dis_preset", "flow_size",
            "threshold", "flip", "temporal", "memory_format", "online", "online_epochs", "overlay", "save_prob",
            "runtime", "cuda_precision", "int8_calibration", "int8_frames", "flow_jpeg")
    out = {k: getattr(cfg, k) for k in keys}
    return {**{k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in out.items()},
            "pipeline": pipeline}


def _checked(cfg: VideoConfig) -> tuple[VideoConfig, str]:
    """The options checked before any file is read: ``cfg`` (on the CPU for ONNX Runtime and
    OpenVINO) and the pipeline that ``auto`` stands for. Raises ``ValueError`` naming the
    conflicting options, and ``ImportError`` naming what to install for the runtime asked for."""
    if cfg.online and cfg.online_epochs < 0:
        raise ValueError("--online_epochs must be >= 0")
    # Temporal fusion reads a frame's neighbours on both sides, so it needs the whole video in the work folder.
    pipeline = cfg.pipeline if cfg.pipeline != "auto" else ("files" if cfg.online or cfg.temporal else "memory")
    if pipeline == "memory" and cfg.online:
        raise ValueError("--online needs --pipeline files (or auto): the tuner reads the frames from the work folder")
    if pipeline == "memory" and cfg.temporal:
        raise ValueError("--temporal needs --pipeline files (or auto): temporal fusion reads the whole video's "
                         "frames from the work folder")
    if cfg.runtime in CPU_RUNTIMES:
        rt = cfg.runtime
        if cfg.online:
            raise ValueError(f"--runtime {rt} runs a fixed network; --online tunes it in PyTorch (use --runtime torch)")
        if cfg.device not in ("auto", "cpu"):
            raise ValueError(f"--runtime {rt} runs on the CPU; got --device {cfg.device} (use --device cpu, or "
                             "--runtime torch for the GPU)")
        if cfg.device == "auto" and torch.cuda.is_available():
            _log.warning("--runtime %s runs on the CPU, although CUDA is available (--runtime torch or auto runs the "
                         "network on the GPU)", rt)
        cfg = cfg.replace(device="cpu")
        # Before any frame is decoded: what to install, naming the option asked for.
        if rt in OPENVINO_RUNTIMES:
            from segment_video.openvino_runtime import require as require_openvino

            require_openvino(rt)
        from segment_video.onnx_runtime import require

        require()
        if rt in INT8_RUNTIMES and cfg.int8_calibration is not None:
            from segment_video.int8 import check_calibration_source

            check_calibration_source(cfg.int8_calibration)  # before the weights and any video
    return cfg, pipeline


def segment_video(cfg: VideoConfig | argparse.Namespace, progress: bool = True) -> SegmentResult:
    """Run the stages of the module docstring with ``cfg`` (or the parsed command line of
    ``scripts/segment_video.py``, see :func:`segment_video.cli.add_video_args`) on its one input.

    Raises :class:`segment_video.outputs.OutputConflict` (a ``ValueError``) before writing
    anything when the output folder is not this run's (see :mod:`segment_video.outputs`).
    """
    from utils.misc import resolve_device, seed_everything

    t_start = time.perf_counter()
    if isinstance(cfg, argparse.Namespace):
        cfg = VideoConfig.from_args(cfg)
    cfg, pipeline = _checked(cfg)
    path = cfg.input
    check_input(path)  # fail on a bad input before loading anything heavy
    outputs.check_input_placement(path, cfg.output_dir)
    if cfg.size is None:
        cfg = cfg.replace(size=training_size(cfg.weights))
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    clock = StageClock()
    with clock("model_s"):
        model = _check_weights(cfg, device)
    return _segment_one(cfg, pipeline, device, model, clock, t_start, progress)


def _segment_one(cfg: VideoConfig, pipeline: str, device: torch.device, model: torch.nn.Module | None,
                 clock: StageClock, t_start: float, progress: bool) -> SegmentResult:
    """Claim ``cfg.output_dir`` for the one input of ``cfg``, run the stages with the loaded
    ``model`` (None: ``--online`` builds its own), and mark the run done."""
    from utils.io import weights_identity

    path, out_dir = cfg.input, cfg.output_dir
    work_root = out_dir / "work"
    name = video_name(path, cfg.name)
    identity = {"input": str(path.resolve()), "video": name, "weights": weights_identity(cfg.weights)}
    manifest = outputs.claim(out_dir, identity, _run_options(cfg, pipeline), cfg.overwrite)
    result = _run_stages(cfg, path, name, pipeline, device, model, clock, progress)
    if cfg.clean_work:
        left = outputs.clean_work(work_root, name)
        _log.info("removed the frames, flows and records of %s in %s%s", name, work_root,
                  f"; kept {len(left)} other file(s) there, e.g. {left[0]}" if left else "")
    elif pipeline == "files":
        _log.info("frames and flows kept in %s (reused by a rerun; --clean_work deletes them)", work_root)
    outputs.finish(manifest, result.frames)
    timing = {k: clock.seconds.get(k, 0.0) for k in STAGES if k != "tune_s" or cfg.online}
    timing["total_s"] = time.perf_counter() - t_start
    n = result.frames
    result.runtime = runtime_used(model, cfg.runtime)
    network = RUNTIME_NAMES[result.runtime]
    if result.runtime == "torch" and model is not None:  # plain inference: say its arithmetic (fp16 on CUDA)
        amp = network_precision(device.type, cfg.amp, cfg.amp_dtype, cfg.cuda_precision)
        network += f" ({precision_text(device.type, *amp)} on {device.type})"
    _log.info("%d frames in %.2f s (%.1f frames/s, network in %s): %s", n, timing["total_s"],
              n / max(timing["total_s"], 1e-9), network,
              ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in timing.items() if k != "total_s"))
    result.timing, result.manifest = timing, manifest
    return result


@dataclass
class BatchResult:
    """What :func:`segment_videos` did: each video's result, and each failure's message."""
    results: dict[str, SegmentResult] = field(default_factory=dict)  # by video name (= its sub-folder)
    failed: dict[str, str] = field(default_factory=dict)  # video name -> "<input>: <error>"
    model_s: float = 0.0  # loading the network once (the ONNX export, the int8 calibration)


def _batch_model(cfg: VideoConfig, videos: list[tuple[str, Path]], device: torch.device,
                 batch: BatchResult) -> torch.nn.Module | None:
    """The network of a many-video run, loaded once (None: ``--online`` builds its own per video).

    With ``--runtime int8`` and no ``--int8_calibration`` it is calibrated on a video of the
    run: the first that can be read. Each video before it whose frames cannot be read is
    recorded in ``batch.failed`` (it would fail the same way when segmented) and the next is
    tried; when none can be read, every video has failed and nothing is loaded. Any other
    error (the weights, the export, an int8 network that disagrees with the float one) raises.
    """
    from segment_video.int8 import CalibrationInputError

    for name, path in videos:
        try:
            # This video's config: the int8 calibration reads its frames unless --int8_calibration names a source.
            return _check_weights(cfg.for_video(path, cfg.output_dir / name), device)
        except CalibrationInputError as e:
            if cfg.int8_calibration is not None:  # checked before; unreadable since: not one video's failure
                raise
            _log.error("video %s (%s) failed: %s; the int8 calibration goes on to the next video", name, path, e)
            batch.failed[name] = f"{path}: {e}"
    return None


def segment_videos(cfg: VideoConfig | argparse.Namespace, progress: bool = True) -> BatchResult:
    """Segment every video of ``cfg.inputs`` (:func:`segment_video.frames.list_videos`), each into
    ``<output_dir>/<video>/`` laid out and owned as a one-video run's output folder.

    The network is loaded once for all (the ONNX export, and with ``--runtime int8`` one
    calibration: on ``--int8_calibration``, else on the first video that can be read, see
    :func:`_batch_model`). A video that fails is logged and recorded in
    :attr:`BatchResult.failed`, and the others go on; an error in the options, the weights, the
    export or an ``--int8_calibration`` source stops the run before any video.
    """
    from utils.misc import resolve_device, seed_everything

    if isinstance(cfg, argparse.Namespace):
        cfg = VideoConfig.from_args(cfg)
    if cfg.name is not None:
        raise ValueError("--name names one video; with several, each is named by its file or folder")
    cfg, pipeline = _checked(cfg)
    for path in cfg.inputs:  # e.g. the output folder itself given as the folder of videos
        outputs.check_input_placement(path, cfg.output_dir)
    videos = named_videos(list_videos(cfg.inputs))
    outputs.check_batch_folder(cfg.output_dir)
    if cfg.size is None:
        cfg = cfg.replace(size=training_size(cfg.weights))
    device = resolve_device(cfg.device)
    batch = BatchResult()
    t = time.perf_counter()
    model = _batch_model(cfg, videos, device, batch)
    batch.model_s = time.perf_counter() - t
    for name, path in tqdm(videos, desc="videos", unit="video", disable=not progress, dynamic_ncols=True):
        if name in batch.failed:  # could not be read for the int8 calibration: already reported
            continue
        one = cfg.for_video(path, cfg.output_dir / name)
        try:
            check_input(path)
            outputs.check_input_placement(path, one.output_dir)
            seed_everything(cfg.seed)  # each video as in a call of its own
            batch.results[name] = _segment_one(one, pipeline, device, model, StageClock(), time.perf_counter(),
                                               progress)
        except Exception as e:  # noqa: BLE001 -- any failure of one video is reported and the others go on
            _log.error("video %s (%s) failed: %s", name, path, e)
            batch.failed[name] = f"{path}: {e}"
    _log.info("%d of %d videos segmented into %s%s", len(batch.results), len(videos), cfg.output_dir,
              f"; failed: {', '.join(batch.failed)}" if batch.failed else "")
    return batch


def _run_stages(cfg: VideoConfig, path: Path, name: str, pipeline: str, device: torch.device,
                model: torch.nn.Module | None, clock: StageClock, progress: bool) -> SegmentResult:
    """Frames, flow, network, masks and overlay of one video."""
    out_dir = cfg.output_dir
    work_root = out_dir / "work"
    masks_root = out_dir / "masks"
    prob_root = out_dir / "probs" if cfg.save_prob else None
    # One user video from a single working dataset: no <dataset> folder level in the output.
    writer = TimedMaskWriter(clock, masks_root, prob_root, cfg.threshold, per_dataset=False)
    overlap = pipeline == "memory" and cfg.overlap  # only the memory pipeline overlaps stages
    color = cfg.overlay_color
    if pipeline == "memory":
        fps_in = input_fps(path)
        fps = cfg.fps or ((fps_in / cfg.stride) if fps_in else DEFAULT_FPS)
        sig = signature(path, cfg.stride, cfg.max_frames)
        with OverlayWriter(out_dir, cfg.overlay, fps, color, cfg.overlay_alpha) as overlay:
            run = _MemoryPipeline(cfg, path, name, device, writer, overlay, clock, model, overlap)
            n = run.run(input_frame_count(path, cfg.stride, cfg.max_frames), progress)
        # The only file of the work folder here: which input frame each output frame came from.
        write_source_record(work_root, name, sig, [frame_name(i) for i in range(n)], run.sources, run.size, fps_in)
        overlay_path, n_frames, size, flow, flow_hw, reused = overlay.target, n, run.size, run.stats, run.flow_hw, False
    else:
        n, frames, flow, flow_hw = _segment_with_files(cfg, path, name, device, writer, clock, progress, model)
        n_frames, size, reused = len(frames.names), frames.size, frames.reused
        fps = cfg.fps or ((frames.fps / cfg.stride) if frames.fps else DEFAULT_FPS)
        images_dir, _ = work_dirs(work_root, name)
        with clock("overlay_s"):
            overlay_path = write_overlay(images_dir, masks_root, name, frames.names, out_dir, cfg.overlay, fps,
                                         color, cfg.overlay_alpha, progress)
    if n != n_frames:
        raise RuntimeError(f"wrote {n} masks for {n_frames} frames of {name}")
    _log.info("masks: %s (%d frames)%s", masks_root / name, n,
              f", probabilities: {prob_root / name}" if prob_root else "")
    if overlay_path is not None:
        _log.info("overlay: %s", overlay_path)
    return SegmentResult(name, n, tuple(size), masks_root / name, prob_root / name if prob_root else None,
                         overlay_path, work_root, reused, flow, {}, pipeline, flow_hw, overlap=overlap)
