"""Segmenting one user video (a video file or a folder of frames) with a trained model.

Pipeline of :func:`segment_video` (the logic behind ``scripts/segment_video.py``):

1. **Frames**: the video is decoded with OpenCV (or the folder's ``.jpg/.jpeg/.png`` files
   are read in sorted order), every ``stride``-th frame is kept, at most ``max_frames``,
   and each is written as ``<output_dir>/work/custom/val/images/<video>/00000.jpg, ...``
   (the project's data layout, so the dataset code reads it unchanged). A small
   ``work/<video>.source.json`` remembers what was extracted; a rerun with the same input
   and options reuses the frames, any change starts the work folder of that video afresh.
2. **Flow**: :mod:`utils.optical_flow` writes ``work/custom/val/flows/<video>/<frame>.jpg``;
   existing flow images are reused, so an interrupted run resumes.
3. **Masks**: plain inference (``build_model_from_checkpoint`` + ``run_inference``) or, with
   ``online``, OAST online self-tuning on this video (:class:`engine.online.OnlineTuner`,
   teacher predictions). Masks are written as ``<output_dir>/masks/<video>/<frame>.png``
   (0/255, original frame size); with ``save_prob``, probabilities go to
   ``<output_dir>/probs/<video>/<frame>.png``. :class:`MaskWriter` normally adds a
   ``<dataset>`` level; the single working dataset ``custom`` carries no information for
   one video, so the mask writer leaves that level out.
4. **Overlay**: each frame with its mask as a translucent colour fill plus the mask's
   contour, written as ``<output_dir>/overlay.mp4`` (``mp4v``; ``overlay.avi`` with
   ``MJPG`` when no mp4 writer can be opened; frames otherwise) or as
   ``<output_dir>/overlay/<frame>.jpg``.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from engine.inference import MaskWriter
from engine.tta import TTA_VIEWS
from utils.io import FRAME_EXTS, list_files
from utils.optical_flow import DIS_PRESETS, METHODS, FlowStats, compute_video_flow, make_estimator

_log = logging.getLogger(__name__)

WORK_DATASET = "custom"  # dataset name of the working layout <output_dir>/work/custom/val/...
WORK_SPLIT = "val"
JPEG_QUALITY = 95
DEFAULT_FPS = 25.0  # overlay frame rate when the input carries none (folders of frames)
# (fourcc, extension) tried in order for the overlay video; MJPG/.avi works wherever OpenCV runs.
VIDEO_CODECS: tuple[tuple[str, str], ...] = (("mp4v", ".mp4"), ("MJPG", ".avi"))


class VideoInputError(ValueError):
    """The input video or frames folder cannot be used; the message names the path."""


# --------------------------------------------------------------------------- options
def add_video_args(p: argparse.ArgumentParser) -> None:
    """Options of ``scripts/segment_video.py`` (model and runtime options come from parent parsers)."""
    g = p.add_argument_group("input")
    g.add_argument("--input", required=True, type=Path,
                   help="video file (mp4, avi, ... anything OpenCV decodes) or folder of .jpg/.png frames (sorted)")
    g.add_argument("--name", default=None,
                   help="video name used for output folders; default: the input's file or folder name")
    g.add_argument("--stride", type=int, default=1, help="keep every N-th input frame")
    g.add_argument("--max_frames", type=int, default=None, help="keep at most N frames (after --stride)")

    g = p.add_argument_group("optical flow")
    g.add_argument("--flow", default="dis", choices=METHODS,
                   help="flow back end: OpenCV DIS (CPU, no weights) or torchvision RAFT")
    g.add_argument("--dis_preset", default="medium", choices=sorted(DIS_PRESETS), help="DIS speed/quality preset")
    g.add_argument("--raft_weights", type=Path, default=None,
                   help="RAFT state dict file; omitted: torchvision's pretrained weights (needs internet)")
    g.add_argument("--raft_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="run RAFT at this size (multiples of 8); the flow is resized back")
    g.add_argument("--flow_batch_size", type=int, default=4, help="frame pairs per RAFT forward pass")

    g = p.add_argument_group("segmentation")
    g.add_argument("--weights", "--weight", nargs="+", required=True,
                   help="trained checkpoint(s); several are averaged into one model")
    g.add_argument("--output_dir", type=Path, required=True,
                   help="output root: masks/<video>/, overlay.mp4 or overlay/, work/ (frames, flows)")
    g.add_argument("--size", type=int, nargs=2, default=(384, 640), metavar=("H", "W"),
                   help="network input size (frames are resized to it; masks come back at the frame size)")
    g.add_argument("--batch_size", type=int, default=4, help="frames per forward pass")
    g.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    g.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    g.add_argument("--threshold", type=float, default=0.5, help="foreground probability threshold of the masks")
    g.add_argument("--save_prob", action="store_true", help="also write probability maps to <output_dir>/probs/")

    g = p.add_argument_group("online self-tuning")
    g.add_argument("--online", action="store_true",
                   help="adapt the model to this video first (OAST online stage; the teacher writes the masks)")
    g.add_argument("--online_epochs", type=int, default=2, help="tuning passes over the video's frames")
    g.add_argument("--online_batch_size", type=int, default=2, help="frames per tuning step")
    g.add_argument("--online_lr", type=float, default=1e-5, help="student learning rate")
    g.add_argument("--online_mode", default="per_video", choices=["per_video", "causal"],
                   help="per_video: tune, then predict; causal: predict each frame before learning from it")
    g.add_argument("--tta", nargs="+", default=list(TTA_VIEWS), choices=TTA_VIEWS,
                   help="teacher views averaged into pseudo-masks ('--tta identity' is fastest)")

    g = p.add_argument_group("overlay")
    g.add_argument("--overlay", default="video", choices=["video", "frames", "none"],
                   help="video: <output_dir>/overlay.mp4; frames: <output_dir>/overlay/<frame>.jpg; none: skip")
    g.add_argument("--fps", type=float, default=None,
                   help=f"overlay video frame rate; default: the input's (divided by --stride), {DEFAULT_FPS:g} "
                        "for folders")
    g.add_argument("--overlay_color", type=int, nargs=3, default=(255, 40, 40), metavar=("R", "G", "B"),
                   help="mask fill and contour colour")
    g.add_argument("--overlay_alpha", type=float, default=0.45, help="opacity of the mask fill")
    g.add_argument("--clean_work", action="store_true",
                   help="delete <output_dir>/work (frames and flows) at the end; a rerun then starts over")


# --------------------------------------------------------------------------- frames
@dataclass
class ExtractedFrames:
    """What step 1 produced."""
    names: list[str]
    size: tuple[int, int]  # (H, W)
    fps: float | None  # of the input video (None for folders or when unknown)
    reused: bool = False


def video_name(path: Path, name: str | None = None) -> str:
    """A folder-safe name: ``name`` or the input's stem, other characters replaced by ``_``."""
    raw = name if name else (path.resolve().name if path.is_dir() else path.stem)
    clean = re.sub(r"[^\w.-]+", "_", raw).strip("._")
    return clean or "video"


def _check_input(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_file() and path.suffix.lower() in FRAME_EXTS:
        raise VideoInputError(f"{path} is a single image; pass a video file or a folder of frames")


def iter_input_frames(path: Path, stride: int = 1, max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(source, BGR frame)`` for every kept frame of a video file or frames folder.

    ``source`` names where the frame came from (input frame index or file name). Decoding
    stops once ``max_frames`` frames are kept, so long videos are not read to the end.
    """
    _check_input(path)
    if stride < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max_frames must be >= 1, got {max_frames}")
    kept = 0
    if path.is_dir():
        files = list_files(path)
        if not files:
            raise VideoInputError(f"{path}: no frames (.jpg/.jpeg/.png files) in this folder")
        for f in files[::stride]:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise VideoInputError(f"cannot read frame {f}")
            yield f.name, img
            kept += 1
            if max_frames is not None and kept >= max_frames:
                return
        return
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoInputError(f"cannot open video {path} (not a video file OpenCV can decode?)")
        index = 0
        while max_frames is None or kept < max_frames:
            if not cap.grab():  # grab without decoding: skipped frames cost no colour conversion
                break
            if index % stride == 0:
                ok, img = cap.retrieve()
                if not ok:
                    break
                yield str(index), img
                kept += 1
            index += 1
        if kept == 0:
            raise VideoInputError(f"video {path} has no readable frames")
    finally:
        cap.release()


def _input_fps(path: Path) -> float | None:
    if path.is_dir():
        return None
    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None


def _input_frame_count(path: Path, stride: int, max_frames: int | None) -> int | None:
    """Expected number of kept frames for the progress bar (containers may not know it)."""
    if path.is_dir():
        n = len(list_files(path))
    else:
        cap = cv2.VideoCapture(str(path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        cap.release()
        if n <= 0:
            return None
    n = -(-n // stride)
    return n if max_frames is None else min(n, max_frames)


def _signature(path: Path, stride: int, max_frames: int | None) -> dict:
    """Identifies an extraction: the input files (name, size, mtime) and the frame selection."""
    files = [path] if path.is_file() else list_files(path)
    return {"input": str(path.resolve()), "stride": stride, "max_frames": max_frames,
            "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}


def extract_frames(path: Path, work_root: Path, name: str, stride: int = 1, max_frames: int | None = None,
                   progress: bool = True) -> ExtractedFrames:
    """Write the kept frames as ``<work_root>/custom/val/images/<name>/00000.jpg ...`` (step 1).

    Frames are renamed to zero-padded indices so that sorting gives temporal order; the
    source of each (input frame index or file name) is kept in the ``.source.json`` record.
    """
    _check_input(path)
    split_root = work_root / WORK_DATASET / WORK_SPLIT
    images_dir, flows_dir = split_root / "images" / name, split_root / "flows" / name
    record = work_root / f"{name}.source.json"
    sig = _signature(path, stride, max_frames)
    if record.is_file() and images_dir.is_dir():
        try:
            old = json.loads(record.read_text())
        except (OSError, ValueError):
            old = {}
        names = [p.stem for p in list_files(images_dir)]
        if old.get("signature") == sig and names and names == old.get("frames"):
            _log.info("reusing %d frames extracted earlier in %s", len(names), images_dir)
            return ExtractedFrames(names, tuple(old["size"]), old.get("fps"), reused=True)
    # Another input or selection: frames and flows of an earlier run no longer match.
    for d in (images_dir, flows_dir):
        if d.exists():
            shutil.rmtree(d)
    record.unlink(missing_ok=True)
    images_dir.mkdir(parents=True)

    names, sources, size = [], [], None
    total = _input_frame_count(path, stride, max_frames)
    bar = tqdm(total=total, desc=f"frames {name}", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for source, img in iter_input_frames(path, stride, max_frames):
            hw = img.shape[:2]
            if size is None:
                size = hw
            elif hw != size:
                raise VideoInputError(f"{path}: frame {source} is {hw[1]}x{hw[0]} but the first frame is "
                                      f"{size[1]}x{size[0]}; all frames must have one size")
            frame = f"{len(names):05d}"
            out = images_dir / f"{frame}.jpg"
            if not cv2.imwrite(str(out), img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f"cannot write frame {out}")
            names.append(frame)
            sources.append(source)
            bar.update(1)
    finally:
        bar.close()
    fps = _input_fps(path)
    record.write_text(json.dumps({"signature": sig, "frames": names, "sources": sources, "size": list(size),
                                  "fps": fps}, indent=1))
    _log.info("extracted %d frames (%dx%d) from %s to %s", len(names), size[1], size[0], path, images_dir)
    return ExtractedFrames(names, size, fps)


# --------------------------------------------------------------------------- flow
def compute_flow(images_dir: Path, flows_dir: Path, method: str = "dis", progress: bool = True,
                 **options) -> FlowStats:
    """Flow images of one video (step 2); existing ones are reused. ``options`` go to ``make_estimator``."""
    n = len(list_files(images_dir))
    bar = tqdm(total=n, desc=f"flow ({method})", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        stats = compute_video_flow(images_dir, flows_dir, make_estimator(method, **options), on_frame=bar.update,
                                   name=images_dir.name)
    finally:
        bar.close()
    _log.info("flow: %d computed, %d reused, %d last-frame copies -> %s", stats.computed, stats.skipped,
              stats.copied, flows_dir)
    return stats


# --------------------------------------------------------------------------- masks
def _clear_old_masks(*dirs: Path | None) -> None:
    # Masks of an earlier run with more frames would otherwise sit next to the new ones.
    for d in dirs:
        if d is not None and d.is_dir():
            for p in d.glob("*.png"):
                p.unlink()


def predict_masks(args: argparse.Namespace, work_root: Path, name: str, writer: MaskWriter,
                  device: torch.device) -> int:
    """Plain inference with the checkpoint (step 3 without ``--online``); returns the frame count."""
    from datasets import FrameDataset
    from engine.inference import run_inference
    from models import build_model_from_checkpoint
    from utils.distributed import DistInfo

    model = build_model_from_checkpoint(args.weights, args.model_scale, args.backbone).to(device)
    data = FrameDataset(work_root, [WORK_DATASET], "test", WORK_SPLIT, tuple(args.size), with_labels=False,
                        videos=[name])
    return run_inference(model, data, writer, DistInfo(0, 1, 0, device), args.batch_size, args.workers, args.flip,
                         args.amp, args.amp_dtype, desc=f"segment {name}")


def online_args(args: argparse.Namespace, work_root: Path, name: str) -> argparse.Namespace:
    """The ``online_finetuning.py`` options for tuning on this one video."""
    import online_finetuning  # entry script at the repository root (on sys.path for scripts and tests)

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
    return online_finetuning.get_parser().parse_args(argv)


def online_masks(args: argparse.Namespace, work_root: Path, name: str, writer: MaskWriter) -> int:
    """OAST online self-tuning on this video, teacher predictions (step 3 with ``--online``)."""
    from engine.online import OnlineTuner

    tuner = OnlineTuner(online_args(args, work_root, name), writer=writer)
    timing = tuner.run()
    return int(timing["frames"])


# --------------------------------------------------------------------------- overlay
def overlay_frame(bgr: np.ndarray, mask: np.ndarray, color_rgb: Sequence[int] = (255, 40, 40),
                  alpha: float = 0.45) -> np.ndarray:
    """``bgr`` with ``mask`` (``H x W``, non-zero = object) as a translucent fill plus its contour."""
    if mask.shape[:2] != bgr.shape[:2]:
        raise ValueError(f"mask {mask.shape[:2]} and frame {bgr.shape[:2]} sizes differ")
    color = np.array(color_rgb[::-1], dtype=np.float32)  # OpenCV images are BGR
    fg = mask > 0
    out = bgr.copy()
    out[fg] = np.clip((1 - alpha) * bgr[fg].astype(np.float32) + alpha * color, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(min(bgr.shape[:2]) / 200))
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), thickness, lineType=cv2.LINE_AA)
    return out


def open_video_writer(stem: Path, fps: float, size_hw: tuple[int, int],
                      codecs: Sequence[tuple[str, str]] = VIDEO_CODECS) -> tuple[cv2.VideoWriter, Path] | None:
    """The first ``(fourcc, extension)`` writer that opens at ``stem + extension``; None if none does."""
    h, w = size_hw
    for fourcc, ext in codecs:
        path = stem.with_suffix(ext)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        if writer.isOpened():
            return writer, path
        writer.release()
        path.unlink(missing_ok=True)
        _log.warning("cannot open a %s video writer for %s; trying the next codec", fourcc, path)
    return None


def write_overlay(images_dir: Path, masks_dir: Path, frames: list[str], output_dir: Path, mode: str = "video",
                  fps: float = DEFAULT_FPS, color_rgb: Sequence[int] = (255, 40, 40), alpha: float = 0.45,
                  progress: bool = True) -> Path | None:
    """Step 4: ``<output_dir>/overlay.mp4`` (``mode="video"``) or ``<output_dir>/overlay/`` (``"frames"``).

    Returns the video file or the frames folder (None for ``"none"``). Video sizes are
    padded to even numbers by edge replication, since MPEG-4 crops odd ones.
    """
    if mode == "none":
        return None
    if mode not in ("video", "frames"):
        raise ValueError(f"overlay mode must be video, frames or none, got {mode!r}")
    first = cv2.imread(str(images_dir / f"{frames[0]}.jpg"), cv2.IMREAD_COLOR)
    if first is None:
        raise OSError(f"cannot read frame {images_dir / f'{frames[0]}.jpg'}")
    h, w = first.shape[:2]
    pad_h, pad_w = h % 2, w % 2
    writer = None
    if mode == "video":
        opened = open_video_writer(output_dir / "overlay", fps, (h + pad_h, w + pad_w))
        if opened is None:
            _log.warning("no video writer could be opened; writing overlay frames instead")
            mode = "frames"
        else:
            writer, target = opened
    if mode == "frames":
        target = output_dir / "overlay"
        target.mkdir(parents=True, exist_ok=True)
        for p in target.glob("*.jpg"):  # an earlier run may have had more frames
            p.unlink()
    try:
        for frame in tqdm(frames, desc="overlay", unit="frame", disable=not progress, dynamic_ncols=True):
            img = cv2.imread(str(images_dir / f"{frame}.jpg"), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(masks_dir / f"{frame}.png"), cv2.IMREAD_GRAYSCALE)
            if img is None or mask is None:
                raise OSError(f"cannot read frame {images_dir / f'{frame}.jpg'} or mask {masks_dir / f'{frame}.png'}")
            out = overlay_frame(img, mask, color_rgb, alpha)
            if writer is not None:
                if pad_h or pad_w:
                    out = cv2.copyMakeBorder(out, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
                writer.write(out)
            elif not cv2.imwrite(str(target / f"{frame}.jpg"), out, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f"cannot write overlay frame {target / f'{frame}.jpg'}")
    finally:
        if writer is not None:
            writer.release()
    return target


# --------------------------------------------------------------------------- pipeline
@dataclass
class SegmentResult:
    """Where everything went, and how long each step took (seconds)."""
    video: str
    frames: int
    size: tuple[int, int]
    masks_dir: Path
    prob_dir: Path | None
    overlay: Path | None
    work_dir: Path
    frames_reused: bool = False
    flow: FlowStats = field(default_factory=FlowStats)
    timing: dict[str, float] = field(default_factory=dict)


def segment_video(args: argparse.Namespace) -> SegmentResult:
    """Run the four steps of the module docstring for ``args`` (see :func:`add_video_args`)."""
    from utils.misc import resolve_device, seed_everything

    if args.online and args.online_epochs < 0:
        raise ValueError("--online_epochs must be >= 0")
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise ValueError(f"--overlay_alpha must be in [0, 1], got {args.overlay_alpha}")
    path = Path(args.input)
    _check_input(path)  # fail on a bad input before loading anything heavy
    out_dir = Path(args.output_dir)
    work_root = out_dir / "work"
    name = video_name(path, args.name)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    timing: dict[str, float] = {}

    t = time.perf_counter()
    frames = extract_frames(path, work_root, name, args.stride, args.max_frames)
    timing["frames_s"] = time.perf_counter() - t

    split_root = work_root / WORK_DATASET / WORK_SPLIT
    images_dir = split_root / "images" / name
    t = time.perf_counter()
    flow = compute_flow(images_dir, split_root / "flows" / name, args.flow, preset=args.dis_preset,
                 weights=args.raft_weights, device=None if args.device == "auto" else args.device,
                 batch_size=args.flow_batch_size, size=tuple(args.raft_size) if args.raft_size else None)
    timing["flow_s"] = time.perf_counter() - t

    masks_root = out_dir / "masks"
    prob_root = out_dir / "probs" if args.save_prob else None
    _clear_old_masks(masks_root / name, prob_root / name if prob_root else None)
    # One user video from a single working dataset: no <dataset> folder level in the output.
    writer = MaskWriter(masks_root, prob_root, args.threshold, per_dataset=False)
    t = time.perf_counter()
    if args.online:
        n = online_masks(args, work_root, name, writer)
    else:
        n = predict_masks(args, work_root, name, writer, device)
    timing["segment_s"] = time.perf_counter() - t
    if n != len(frames.names):
        raise RuntimeError(f"wrote {n} masks for {len(frames.names)} frames of {name}")
    _log.info("masks: %s (%d frames)%s", masks_root / name, n,
              f", probabilities: {prob_root / name}" if prob_root else "")

    fps = args.fps or ((frames.fps / args.stride) if frames.fps else DEFAULT_FPS)
    t = time.perf_counter()
    overlay = write_overlay(images_dir, masks_root / name, frames.names, out_dir, args.overlay, fps,
                            tuple(args.overlay_color), args.overlay_alpha)
    timing["overlay_s"] = time.perf_counter() - t
    if overlay is not None:
        _log.info("overlay: %s", overlay)

    if args.clean_work:
        shutil.rmtree(work_root, ignore_errors=True)
        _log.info("removed the work folder %s", work_root)
    else:
        _log.info("frames and flows kept in %s (reused by a rerun; --clean_work deletes them)", work_root)
    return SegmentResult(name, n, frames.size, masks_root / name, prob_root / name if prob_root else None, overlay,
                         work_root, frames.reused, flow, timing)
