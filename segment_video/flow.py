"""Flow for one user video: the estimator, flow at a reduced size, flow images at the network
size, and the work folder's flow images with the record of their settings."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from segment_video.config import VideoConfig
from segment_video.frames import JPEG_QUALITY, work_dirs, write_json
from utils.flow import flow_to_image
from utils.io import list_files, read_json
from utils.optical_flow import FlowStats, compute_video_flow, make_estimator

_log = logging.getLogger(__name__)

FlowEstimator = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list]


def resolve_flow_size(spec: str | Sequence[int] | None, network_hw: Sequence[int],
                      frame_hw: Sequence[int]) -> tuple[int, int] | None:
    """``(H, W)`` to compute flow at, or None for the frame size.

    ``spec``: ``frame``/None, ``network`` (``network_hw``) or ``(H, W)``. A size at least as
    large as the frame on both sides means the frame size: upscaling adds cost, no detail.
    """
    if spec is None or spec == "frame":
        return None
    hw = tuple(int(v) for v in (network_hw if spec == "network" else spec))
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"--flow_size must be frame, network or HxW, got {spec!r}")
    if hw[0] >= frame_hw[0] and hw[1] >= frame_hw[1]:
        return None
    return hw


def downscale(frame: np.ndarray, size_hw: tuple[int, int] | None) -> np.ndarray:
    """``frame`` resized to ``size_hw`` with area averaging (anti-aliased); None keeps it."""
    if size_hw is None or tuple(frame.shape[:2]) == tuple(size_hw):
        return frame
    return cv2.resize(frame, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)


def upscale_flow(flow: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Flow ``(h, w, 2)`` resized to ``size_hw`` with its vectors scaled to the new pixel size."""
    h, w = flow.shape[:2]
    if (h, w) == tuple(size_hw):
        return flow
    out = cv2.resize(flow, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= size_hw[1] / w
    out[..., 1] *= size_hw[0] / h
    return out


def jpeg_round_trip(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """``rgb`` after JPEG encoding and decoding at ``quality``."""
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def network_flow_image(flow: np.ndarray, frame_hw: tuple[int, int], network_hw: tuple[int, int],
                       jpeg: bool = True) -> np.ndarray:
    """The encoded flow image the network gets, made from flow ``(h, w, 2)`` estimated at any size.

    Vectors are first expressed in frame pixels (the stored flow images' convention), then
    the field is resized to ``network_hw`` and encoded there (the files pipeline encodes at
    the frame size and resizes the colour image instead, at several times the cost). The
    result is the 8-bit colour encoding of every stored flow image (:mod:`utils.flow`),
    exactly what the dataset code reads from a lossless (PNG) flow image of it. ``jpeg``
    also passes it through JPEG at the stored images' quality and back (``--flow_jpeg``):
    the training data's flow images are JPEGs at the frame size, resized to the network
    size by the data loader, and a JPEG at the network size does not bring the image closer
    to that (docs/video_tool.md), so by default the tool skips it.
    """
    h, w = flow.shape[:2]
    if (h, w) != tuple(frame_hw):
        flow = flow * np.array([frame_hw[1] / w, frame_hw[0] / h], np.float32)
    if (h, w) != tuple(network_hw):
        flow = cv2.resize(flow, (network_hw[1], network_hw[0]), interpolation=cv2.INTER_LINEAR)
    # float32 colour arithmetic: half of float64's time, one level off on a few pixels,
    # far below what the JPEG round trip changes.
    rgb = flow_to_image(flow, dtype=torch.float32)
    return jpeg_round_trip(rgb) if jpeg else rgb


class FlowAtSize:
    """Runs ``estimator`` on frames downscaled to ``size_hw`` and returns the flow at each
    frame's own size (vectors rescaled), as the work layout's flow images must be."""

    def __init__(self, estimator: FlowEstimator, size_hw: tuple[int, int]) -> None:
        self.estimator, self.size_hw = estimator, tuple(size_hw)
        self.batch_size = getattr(estimator, "batch_size", 1)

    def __call__(self, first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> list[np.ndarray]:
        flows = self.estimator([downscale(a, self.size_hw) for a in first],
                               [downscale(b, self.size_hw) for b in second])
        return [upscale_flow(f, a.shape[:2]) for f, a in zip(flows, first)]


def flow_estimator(cfg: VideoConfig) -> FlowEstimator:
    """The ``--flow`` back end with its options (DIS preset, RAFT weights, size, batch)."""
    return make_estimator(cfg.flow, preset=cfg.dis_preset, weights=cfg.raft_weights,
                          device=None if cfg.device == "auto" else cfg.device, batch_size=cfg.flow_batch_size,
                          size=cfg.raft_size)


def compute_flow(images_dir: Path, flows_dir: Path, method: str = "dis", progress: bool = True,
                 flow_size: tuple[int, int] | None = None, estimator: FlowEstimator | None = None,
                 **options: Any) -> FlowStats:
    """Flow images of one video in the work layout; existing ones are reused.

    ``estimator`` (default: ``make_estimator(method, **options)``) runs at ``flow_size``
    when given; the images keep the frame size.
    """
    n = len(list_files(images_dir))
    est = estimator if estimator is not None else make_estimator(method, **options)
    if flow_size is not None:
        est = FlowAtSize(est, flow_size)
    bar = tqdm(total=n, desc=f"flow ({method})", unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        stats = compute_video_flow(images_dir, flows_dir, est, on_frame=bar.update, name=images_dir.name)
    finally:
        bar.close()
    _log.info("flow: %d computed, %d reused, %d last-frame copies -> %s", stats.computed, stats.skipped,
              stats.copied, flows_dir)
    return stats


def flow_settings(cfg: VideoConfig, flow_hw: tuple[int, int] | None) -> dict:
    """What the flow images of the work folder depend on, besides the frames."""
    return {"method": cfg.flow, "dis_preset": cfg.dis_preset if cfg.flow == "dis" else None,
            "flow_size": list(flow_hw) if flow_hw else None,
            "raft_size": list(cfg.raft_size) if cfg.raft_size and cfg.flow != "dis" else None,
            "raft_weights": str(cfg.raft_weights) if cfg.raft_weights and cfg.flow != "dis" else None}


def reset_stale_flows(work_root: Path, name: str, settings: dict) -> None:
    """Delete the video's flow images when they were made with other ``settings``; record these."""
    # Flow images are reused by file name and frame content only: those of other settings (or of a
    # version that kept no record) would silently stand in for the requested ones.
    record = work_root / f"{name}.flow.json"
    _, flows_dir = work_dirs(work_root, name)
    old = read_json(record)
    if old != settings and flows_dir.exists():
        _log.info("flow settings changed (%s -> %s): recomputing the flow of %s", old, settings, name)
        shutil.rmtree(flows_dir)
    # Written before computing, so that an interrupted run resumes with the same settings.
    write_json(record, settings)
