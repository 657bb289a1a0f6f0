"""Computing the flow images of the project layout.

For every video under ``<data_dir>/<dataset>/<split>/images/<video>/`` this writes
``flows/<video>/<frame>.jpg`` with the encoding of :mod:`utils.flow`:

* frame ``t`` gets the **forward** flow ``t -> t+1`` (displacement in pixels, ``u`` right,
  ``v`` down), rendered with :func:`utils.flow.flow_to_image`, i.e. normalised by that
  frame's own largest vector length (scale free) and stored as JPEG (quality 95);
* the **last** frame has no successor and gets a byte copy of the previous frame's flow
  image (the motion of the previous step is the best cheap guess, and unlike the negated
  backward flow it needs no extra flow computation); a one-frame video gets a zero-flow
  (white) image;
* every flow image has exactly the size of its frame.

``camera="remove"`` takes the camera's motion out of each flow before it is encoded: a
homography fitted (RANSAC) to the whole flow, sampled on a stride, is the camera's motion
(:mod:`utils.camera_motion`), and the flow it induces is subtracted, so the static background
has about zero flow and a moving object keeps its motion relative to the background; the
result goes through the same encoding (normalised by its own largest vector). A frame whose
fit fails keeps its flow unchanged (counted in ``FlowStats.unfitted``). The record beside the
flow images says which kind each image is, and a folder of one kind is never reused as the
other (:class:`FlowComputationError` naming the file that says so; ``overwrite`` recomputes).

Back ends: ``dis`` (OpenCV DIS on grey frames, CPU, no weights; processes over videos) and
``raft_small`` / ``raft_large`` (torchvision RAFT, batched, GPU when available). Existing
outputs are skipped (resumable) unless ``overwrite`` or the frames they were made from have
changed (by content, see :func:`compute_video_flow`); failures name the video and frame.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from utils.camera_motion import remove_camera_motion
from utils.flow import flow_to_image, write_flow_image
from utils.io import atomic_write, list_files, read_json, read_rgb

logger = logging.getLogger(__name__)

METHODS = ("dis", "raft_small", "raft_large")
CAMERA = ("keep", "remove")  # the flow as estimated / with the camera's motion (a homography) removed
DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
MIN_RAFT_SIDE = 128  # torchvision RAFT: 4-level correlation pyramid on 1/8-resolution features


class FlowComputationError(RuntimeError):
    """Flow could not be computed or written; the message names the video and frame."""


# --------------------------------------------------------------------------- estimators
class DISFlow:
    """OpenCV's Dense Inverse Search flow on greyscale frames (CPU, deterministic)."""

    batch_size = 1

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {sorted(DIS_PRESETS)}, got {preset!r}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])

    def __call__(self, first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Forward flow ``(H, W, 2)`` float32 for each RGB pair."""
        out = []
        for a, b in zip(first, second):
            ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
            gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
            out.append(self._dis.calc(ga, gb, None))
        return out


def load_raft(model: str = "raft_small", weights: str | Path | None = None, device: str = "cpu") -> Any:
    """A torchvision RAFT in eval mode on ``device``.

    ``weights``: a local state-dict file (``torch.save(model.state_dict(), path)``); when
    None, torchvision's own pretrained weights are fetched (needs internet or the torch hub
    cache) and a failure raises :class:`RuntimeError` asking for ``--raft_weights``.
    """
    import torchvision.models.optical_flow as of

    if model not in ("raft_small", "raft_large"):
        raise ValueError(f"RAFT model must be raft_small or raft_large, got {model!r}")
    build = getattr(of, model)
    if weights is not None:
        from utils.weights import load_state_dict_file

        state = load_state_dict_file(weights)  # FileNotFoundError / ValueError naming the file
        net = build(weights=None, progress=False)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{weights} does not hold {model} weights: {str(e)[:500]}") from e
    else:
        enum = of.Raft_Small_Weights if model == "raft_small" else of.Raft_Large_Weights
        try:
            net = build(weights=enum.DEFAULT, progress=False)
        except Exception as e:  # URLError, OSError, hash mismatch: all mean "no usable download"
            raise RuntimeError(
                f"could not load torchvision's pretrained {model} weights ({type(e).__name__}: {e}). "
                f"This machine may be offline: download {enum.DEFAULT.url} elsewhere and pass it with "
                f"--raft_weights PATH (a state dict file).") from e
    return net.eval().to(device)


class RAFTFlow:
    """torchvision RAFT, batched; frames are scaled to [-1, 1] and padded to multiples of 8
    (at least 128 a side, RAFT's minimum), the flow is cropped back.

    ``size`` ``(H, W)`` resizes frames before RAFT (rounded to multiples of 8); the flow is
    resized back to the frame size and its vectors scaled by the resize ratios.
    """

    def __init__(self, model: str = "raft_small", weights: str | Path | None = None, device: str | None = None,
                 iters: int = 12, batch_size: int = 4, size: tuple[int, int] | None = None) -> None:
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net = load_raft(model, weights, self.device)
        self.iters, self.batch_size = iters, max(1, batch_size)
        self.size = None if size is None else (max(8, round(size[0] / 8) * 8), max(8, round(size[1] / 8) * 8))

    def __call__(self, first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        out: list[np.ndarray] = []
        for i in range(0, len(first), self.batch_size):
            a = self._to_tensor(first[i:i + self.batch_size])
            b = self._to_tensor(second[i:i + self.batch_size])
            h0, w0 = a.shape[-2:]
            if self.size is not None:
                a = F.interpolate(a, self.size, mode="bilinear", align_corners=False)
                b = F.interpolate(b, self.size, mode="bilinear", align_corners=False)
            h, w = a.shape[-2:]
            # RAFT works at 1/8 resolution and its correlation pyramid needs >= 16 cells a side:
            # pad bottom/right by edge replication to a multiple of 8 (>= 128), crop after.
            ph, pw = max(MIN_RAFT_SIDE, h + (-h) % 8) - h, max(MIN_RAFT_SIDE, w + (-w) % 8) - w
            if ph or pw:
                a = F.pad(a, (0, pw, 0, ph), mode="replicate")
                b = F.pad(b, (0, pw, 0, ph), mode="replicate")
            with torch.inference_mode():
                flow = self.net(a, b, num_flow_updates=self.iters)[-1][:, :, :h, :w]
            if (h, w) != (h0, w0):
                flow = F.interpolate(flow, (h0, w0), mode="bilinear", align_corners=False)
                scale = torch.tensor([w0 / w, h0 / h], device=flow.device).view(1, 2, 1, 1)
                flow = flow * scale
            out.extend(f for f in flow.permute(0, 2, 3, 1).float().cpu().numpy())
        return out

    def _to_tensor(self, frames: Sequence[np.ndarray]) -> Any:
        import torch

        x = torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2).float()
        return x / 127.5 - 1.0  # torchvision's RAFT transforms map [0, 255] to [-1, 1]


def make_estimator(method: str, **options: Any) -> Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list]:
    """``dis`` (options: ``preset``) or ``raft_small``/``raft_large`` (options of :class:`RAFTFlow`)."""
    if method == "dis":
        return DISFlow(options.get("preset", "medium"))
    if method in ("raft_small", "raft_large"):
        return RAFTFlow(method, options.get("weights"), options.get("device"), options.get("iters", 12),
                        options.get("batch_size", 4), options.get("size"))
    raise ValueError(f"unknown flow method {method!r}; choose one of {METHODS}")


# --------------------------------------------------------------------------- per video
@dataclass
class FlowStats:
    """Counts for one or more videos."""
    videos: int = 0
    frames: int = 0
    computed: int = 0
    copied: int = 0
    skipped: int = 0
    unfitted: int = 0  # camera="remove": computed flows whose homography fit failed (kept unchanged)

    def add(self, other: "FlowStats") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


SOURCES = ".flow_sources.json"  # beside a video's flow images: the content of the files each was made from
# Last item of a record entry of a flow image with the camera's motion removed; entries of the
# flow as estimated have none (as before the option existed).
CAMERA_TAG = {"keep": None, "remove": "camera:remove"}
# Beside the flow images of a folder that camera="remove" has written to: an image without a
# record entry there (written just before a kill; the record is saved at the end) is taken
# as made with the camera's motion removed. Without it, such an image is taken as "keep".
CAMERA_MARKER = ".flow_camera_removed"


def content_id(path: Path) -> str:
    """``<size>:<sha1>`` of a file's bytes; unlike a modification time, a copy keeps it."""
    data = path.read_bytes()  # follows prepare_data's links
    return f"{len(data)}:{hashlib.sha1(data).hexdigest()}"


def check_camera(camera: str) -> str:
    if camera not in CAMERA:
        raise ValueError(f"camera must be one of {CAMERA}, got {camera!r}")
    return camera


def compute_video_flow(images_dir: Path, flows_dir: Path, estimator: Callable, overwrite: bool = False,
                       max_frames: int | None = None, on_frame: Callable[[int], None] | None = None,
                       name: str | None = None, camera: str = "keep") -> FlowStats:
    """Write the flow images of one video (see the module docstring for the convention).

    A flow image is reused when the files it was made from (its frame and the next, or for
    the last frame the previous flow image) have the content recorded for it in
    ``flows_dir/.flow_sources.json``; a frame re-made by ``prepare_data.py`` thus gets new
    flow, and a copied data set (new modification times) none. A flow image without a record
    (written by an earlier version, or just before a kill) is reused unless it is older than
    those files. ``max_frames`` limits the output to the first N frames; frame N-1 then still
    gets its true forward flow to frame N, so a later full run just continues.

    ``camera``: ``keep`` the flow as estimated, ``remove`` the camera's motion (module
    docstring). Each record entry of a ``remove`` image ends with ``camera:remove``, and a
    folder ``remove`` has written to holds a ``.flow_camera_removed`` marker, which decides for
    an image without an entry (else it is ``keep``, as every image of an earlier version). An
    existing image made with the other setting raises :class:`FlowComputationError` naming the
    image and the file that says so, unless ``overwrite``.
    """
    check_camera(camera)
    tag = CAMERA_TAG[camera]
    name = name or images_dir.name
    frames = list_files(images_dir)
    if not frames:
        raise FlowComputationError(f"video {name}: no frames in {images_dir}")
    n_out = len(frames) if max_frames is None else min(len(frames), max_frames)
    stats = FlowStats(videos=1, frames=n_out)
    flows_dir.mkdir(parents=True, exist_ok=True)
    out = [flows_dir / f"{p.stem}.jpg" for p in frames]
    record_path = flows_dir / SOURCES
    # camera="remove" keeps the old entries under overwrite: an image it has not rewritten yet
    # (an error stopped it) is then still known to be "keep", whatever the folder's marker says.
    record = {} if overwrite and camera == "keep" else read_json(record_path) or {}
    recorded = dict(record)
    ids: dict[Path, str] = {}

    def sources(k: int) -> list[Path]:
        return frames[k:k + 2] if k + 1 < len(frames) else [frames[k], *out[k - 1:k]]

    def source_ids(k: int) -> list[str]:
        for f in sources(k):
            if f not in ids:
                ids[f] = content_id(f)
        return [ids[f] for f in sources(k)] + ([tag] if tag else [])

    marker = flows_dir / CAMERA_MARKER
    marked = marker.exists()

    def made_with(k: int) -> str:
        entry = record.get(out[k].name)
        if entry is None:
            return "remove" if marked else "keep"
        return "remove" if CAMERA_TAG["remove"] in entry else "keep"

    def check_kind(k: int) -> None:
        made = made_with(k)
        if made != camera:
            where = record_path if out[k].name in record else marker if marked else f"{record_path} (no entry)"
            raise FlowComputationError(
                f"video {name}: {out[k]} was made with camera={made} (see {where}), but this run asks for "
                f"camera={camera}; use a separate data folder for each kind, or overwrite")

    def stale(k: int) -> bool:
        if overwrite or not out[k].exists():
            return True
        check_kind(k)
        if out[k].name not in record:  # an earlier version's flow, or one written just before a kill
            if any(f.stat().st_mtime > out[k].stat().st_mtime for f in sources(k)):
                return True
            record[out[k].name] = source_ids(k)  # from now on its content decides
        return record[out[k].name] != source_ids(k)

    todo = [i for i in range(min(n_out, len(frames) - 1)) if stale(i)]
    if camera == "remove" and not marked:
        atomic_write(marker, lambda tmp: tmp.write_text("flow images here have the camera's motion removed\n"))
    stats.skipped = min(n_out, len(frames) - 1) - len(todo)
    if on_frame and stats.skipped:
        on_frame(stats.skipped)

    cache: dict[int, np.ndarray] = {}

    def load(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = read_rgb(frames[i], "frame")
        return cache[i]

    bs = getattr(estimator, "batch_size", 1)
    try:
        for start in range(0, len(todo), bs):
            idx = todo[start:start + bs]
            try:
                a = [load(i) for i in idx]
                b = [load(i + 1) for i in idx]
                for i, x, y in zip(idx, a, b):
                    if x.shape != y.shape:
                        raise ValueError(f"frame sizes differ: {frames[i].name} {x.shape[1]}x{x.shape[0]} vs "
                                         f"{frames[i + 1].name} {y.shape[1]}x{y.shape[0]}")
                flows = estimator(a, b)
                for i, x, f in zip(idx, a, flows):
                    if f.shape[:2] != x.shape[:2]:
                        raise ValueError(f"flow is {f.shape[1]}x{f.shape[0]} but the frame is "
                                         f"{x.shape[1]}x{x.shape[0]}")
                    if camera == "remove":
                        g, fitted = remove_camera_motion(f.transpose(2, 0, 1))
                        f = g.transpose(1, 2, 0)
                        stats.unfitted += not fitted
                    write_flow_image(out[i], flow_to_image(f))
                    record[out[i].name] = source_ids(i)
            except Exception as e:
                raise FlowComputationError(f"video {name}, frame {frames[idx[0]].name}: {type(e).__name__}: {e}") from e
            stats.computed += len(idx)
            # Keep only frames still needed by later pairs; long videos would fill memory.
            for k in [k for k in cache if k < idx[-1] + 1]:
                del cache[k]
            if on_frame:
                on_frame(len(idx))

        if n_out == len(frames):
            last = out[-1]
            # The last frame carries a copy of the previous flow, so it follows that file too.
            if stale(len(frames) - 1):
                try:
                    if len(frames) == 1:
                        img = read_rgb(frames[0], "frame")
                        write_flow_image(last, flow_to_image(np.zeros(img.shape[:2] + (2,), np.float32)))
                    else:
                        atomic_write(last, lambda tmp: shutil.copyfile(out[-2], tmp))
                except Exception as e:
                    raise FlowComputationError(f"video {name}, frame {frames[-1].name}: {type(e).__name__}: {e}") from e
                record[last.name] = source_ids(len(frames) - 1)
                stats.copied += 1
            else:
                stats.skipped += 1
            if on_frame:
                on_frame(1)
    finally:
        if stats.unfitted:
            logger.info("video %s: %d flows kept the camera's motion (no homography fit)", name, stats.unfitted)
        if record != recorded:
            text = json.dumps(record, indent=0, sort_keys=True)
            atomic_write(record_path, lambda tmp: tmp.write_text(text))
        if camera == "keep" and marked and all(p.name in record and made_with(k) == "keep"
                                               for k, p in enumerate(out) if p.exists()):
            marker.unlink()  # overwritten to the flow as estimated, every image recorded: no "remove" left
    return stats


# --------------------------------------------------------------------------- datasets
def find_videos(data_dir: str | Path, dataset: str, splits: Sequence[str] | None = None,
                videos: Sequence[str] | None = None) -> list[tuple[str, str, Path]]:
    """``(split, video, images_dir)`` for every video of ``dataset`` (all splits by default)."""
    root = Path(data_dir) / dataset
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found: run scripts/prepare_data.py first "
                                f"(expected <data_dir>/<dataset>/<split>/images/<video>/)")
    split_names = sorted(p.name for p in root.iterdir() if (p / "images").is_dir()) if splits is None else list(splits)
    if not split_names:
        raise FileNotFoundError(f"{root} holds no <split>/images folder")
    found = []
    for split in split_names:
        img_root = root / split / "images"
        if not img_root.is_dir():
            raise FileNotFoundError(f"{img_root} not found")
        for d in sorted(p for p in img_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if videos is None or d.name in videos:
                found.append((split, d.name, d))
    if videos is not None:
        missing = sorted(set(videos) - {v for _, v, _ in found})
        if missing:
            raise FileNotFoundError(f"videos {missing} not found under {root}/<split>/images")
    return found


def _count_frames(images_dir: Path, max_frames: int | None) -> int:
    n = len(list_files(images_dir))
    return n if max_frames is None else min(n, max_frames)


def _dis_worker(images_dir: str, flows_dir: str, preset: str, overwrite: bool, max_frames: int | None,
                name: str, camera: str = "keep") -> FlowStats:
    # One OpenCV / torch (flow colour encoding) thread per process: the parallelism comes
    # from the processes, and oversubscribed thread pools slow each other down badly.
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    return compute_video_flow(Path(images_dir), Path(flows_dir), DISFlow(preset), overwrite, max_frames, name=name,
                              camera=camera)


def compute_dataset_flow(data_dir: str | Path, dataset: str, method: str = "dis", splits: Sequence[str] | None = None,
                         videos: Sequence[str] | None = None, overwrite: bool = False, max_frames: int | None = None,
                         workers: int = 1, progress: bool = True, camera: str = "keep", **options: Any) -> FlowStats:
    """Flow images for every selected video of ``<data_dir>/<dataset>``.

    ``dis`` runs ``workers`` processes over videos; RAFT runs in this process (batched on
    its device). ``options`` go to :func:`make_estimator`. ``camera``: ``keep`` the flow as
    estimated, or ``remove`` the camera's motion from it (see the module docstring).
    """
    check_camera(camera)
    jobs = find_videos(data_dir, dataset, splits, videos)
    root = Path(data_dir) / dataset
    total = FlowStats()
    n_frames = sum(_count_frames(d, max_frames) for _, _, d in jobs)
    bar = tqdm(total=n_frames, desc=f"flow {dataset} ({method})", unit="frame", disable=not progress)
    try:
        if method == "dis" and workers > 1 and len(jobs) > 1:
            # spawn, not fork: the parent may hold torch/OpenMP threads that fork would corrupt.
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                futs = {pool.submit(_dis_worker, str(d), str(root / s / "flows" / v), options.get("preset", "medium"),
                                    overwrite, max_frames, f"{dataset}/{s}/{v}", camera): d for s, v, d in jobs}
                for fut in as_completed(futs):
                    st = fut.result()
                    total.add(st)
                    bar.update(st.frames)
        else:
            est = make_estimator(method, **options)
            for s, v, d in jobs:
                total.add(compute_video_flow(d, root / s / "flows" / v, est, overwrite, max_frames,
                                             on_frame=bar.update, name=f"{dataset}/{s}/{v}", camera=camera))
    finally:
        bar.close()
    return total
