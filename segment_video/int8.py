"""Calibration inputs of the int8 network (``--runtime int8``): evenly spaced frames of a video
with their flow to the next frame, prepared exactly as the memory pipeline feeds the network.

The int8 network depends on its calibration inputs, so the cache key hashes what decides them:
the calibration source (its files, sizes and times), the frame selection, and the flow
settings. One ``--int8_calibration`` source for many videos gives one int8 network for all;
the default, each input video itself, quantises once per video (seconds; benchmarks/RESULTS.md, Speed).

A calibration source that cannot be read raises :class:`CalibrationInputError` naming it:
:func:`check_calibration_source` refuses an unreadable ``--int8_calibration`` before any
slow stage, and with several videos and no ``--int8_calibration`` the tool calibrates on
the first video that reads (:func:`segment_video.pipeline.segment_videos`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from segment_video.config import VideoConfig
from segment_video.flow import downscale, flow_estimator, network_flow_image, resolve_flow_size
from segment_video.frames import VideoInputError, input_frame_count, iter_input_frames, signature
from segment_video.network_input import to_network_batch
from segment_video.onnx_runtime import INT8_VERSION, Calibration


class CalibrationInputError(VideoInputError):
    """The int8 calibration frames cannot be read from their source; the message names it."""


def _unreadable(path: Path, e: Exception) -> CalibrationInputError:
    return CalibrationInputError(f"cannot read the int8 calibration frames from {path}: {e}")


def check_calibration_source(path: Path) -> None:
    """Raise :class:`CalibrationInputError` naming ``path`` unless its first frame can be read
    (a missing path, a file that is no video, a folder without frames); costs one decoded frame."""
    try:
        next(iter_input_frames(Path(path), 1, 1))
    except StopIteration:
        raise _unreadable(path, "no frames") from None
    except (OSError, ValueError) as e:
        raise _unreadable(path, e) from e


def calibration_source(cfg: VideoConfig) -> tuple[Path, int, int | None]:
    """``(path, stride, max_frames)`` of the calibration video: ``--int8_calibration`` (every
    frame), else the input with the run's own frame selection."""
    if cfg.int8_calibration is not None:
        return cfg.int8_calibration, 1, None
    return cfg.input, cfg.stride, cfg.max_frames


def calibration_key(cfg: VideoConfig) -> str:
    """12 hex digits naming the calibration inputs of ``cfg`` (see the module docstring)."""
    path, stride, max_frames = calibration_source(cfg)
    try:
        source = signature(path, stride, max_frames)
    except OSError as e:  # a missing input
        raise _unreadable(path, e) from e
    settings = {"source": source, "frames": cfg.int8_frames, "flow": cfg.flow, "dis_preset": cfg.dis_preset,
                "flow_size": str(cfg.flow_size), "flow_jpeg": cfg.flow_jpeg, "size": list(cfg.size),
                "version": INT8_VERSION}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def pick(n_frames: int | None, n: int) -> list[int]:
    """Indices of ``n`` evenly spaced frames that have a successor (the flow needs it); with an
    unknown count (a container that does not say), the first ``n``; with one frame, that one."""
    if n_frames is None:
        return list(range(n))
    if n_frames < 2:
        return [0]
    return sorted({int(round(v)) for v in np.linspace(0, n_frames - 2, min(n, n_frames - 1))})


def calibration_inputs(cfg: VideoConfig) -> Calibration:
    """(image, flow) network inputs of ``--int8_frames`` evenly spaced calibration frames, made as
    the memory pipeline makes them (``--flow_jpeg`` included). A source that cannot be read
    raises :class:`CalibrationInputError`."""
    path, stride, max_frames = calibration_source(cfg)
    net_hw = cfg.size
    chosen = pick(input_frame_count(path, stride, max_frames), cfg.int8_frames)
    wanted = set(chosen) | {i + 1 for i in chosen}
    frames: dict[int, np.ndarray] = {}
    try:
        for i, (_, bgr) in enumerate(iter_input_frames(path, stride, max_frames)):
            if i in wanted:
                frames[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if i >= max(wanted):
                break
    except (OSError, ValueError) as e:  # missing, not a video, a damaged frame, frames of two sizes
        raise _unreadable(path, e) from e
    if not frames:
        raise _unreadable(path, "no frames")
    estimator = flow_estimator(cfg)
    size = next(iter(frames.values())).shape[:2]
    flow_hw = resolve_flow_size(cfg.flow_size, net_hw, size)
    out = []
    for i in chosen:
        if i not in frames:
            continue
        a = frames[i]
        b = frames.get(i + 1, a)  # a one-frame video: no motion
        flow = estimator([downscale(a, flow_hw)], [downscale(b, flow_hw)])[0]
        flow_image = network_flow_image(flow, size, net_hw, cfg.flow_jpeg)
        out.append(tuple(to_network_batch([x], net_hw, torch.device("cpu")).numpy() for x in (a, flow_image)))
    return out
