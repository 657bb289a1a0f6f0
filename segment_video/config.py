"""The video tool's options as one typed value: what :func:`segment_video.segment_video` runs with.

``scripts/segment_video.py`` parses its command line (:func:`segment_video.cli.add_video_args`
and the shared model and runtime parsers) and :meth:`VideoConfig.from_args` turns the result
into this. The parser is the one place that holds the defaults and the help; the fields carry
the command line's option names (``--flow_size`` -> ``flow_size``), except ``--input``, whose
one or more paths are ``inputs``. The options a ``--quality`` setting bundles
(:mod:`segment_video.quality`) default to ``None`` in the parser and take the setting's value
here unless given.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segment_video.quality import BUNDLED, DEFAULT_QUALITY, resolve

# Options of the shared parsers that the tool does not use: the config file they came from and
# the legacy launcher's rank.
ENTRY_ONLY_OPTIONS = ("config", "local_rank")


@dataclass(frozen=True)
class VideoConfig:
    """Every option of ``scripts/segment_video.py`` (``--help`` describes each).

    Sequences are stored as tuples, files and folders as :class:`~pathlib.Path`. The options
    of the ``quality`` setting that are ``None`` are filled from it on construction.
    """

    # input
    inputs: tuple[Path, ...]  # video files, frames folders, or folders of either (several videos)
    name: str | None
    stride: int
    max_frames: int | None
    pipeline: str
    overlap: bool
    # optical flow
    flow: str
    dis_preset: str
    flow_size: str | tuple[int, int]  # "frame", "network" or (H, W)
    raft_weights: Path | None
    raft_size: tuple[int, int] | None
    flow_batch_size: int
    flow_jpeg: bool  # memory pipeline: flow images through JPEG and back (the former behaviour)
    # segmentation
    weights: tuple[str, ...]
    output_dir: Path
    overwrite: bool
    size: tuple[int, int] | None  # None: the checkpoint's training size (resolved by segment_video)
    batch_size: int
    memory_format: str
    runtime: str  # auto, onnx, int8, openvino, openvino_int8 or torch (segment_video.cli.RUNTIMES)
    cuda_precision: str  # the network's arithmetic on CUDA: fp16 (autocast) or fp32 (segment_video.precision)
    int8_calibration: Path | None
    int8_frames: int
    workers: int
    flip: bool
    temporal: tuple[int, ...]  # neighbour offsets of temporal fusion (test.py --temporal); () none
    threshold: float
    save_prob: bool
    # model (the checkpoint's unless given)
    arch: str | None
    model_scale: str | None
    backbone: str | None
    # runtime
    device: str
    amp: bool
    amp_dtype: str
    seed: int
    # online self-tuning
    online: bool
    online_epochs: int
    online_batch_size: int
    online_lr: float
    # overlay
    overlay: str
    fps: float | None
    overlay_color: tuple[int, int, int]
    overlay_alpha: float
    clean_work: bool
    # the named setting whose options fill those not given
    quality: str = DEFAULT_QUALITY

    def __post_init__(self) -> None:
        for key, value in resolve({k: getattr(self, k) for k in BUNDLED}, self.quality).items():
            object.__setattr__(self, key, value)
        inputs = [self.inputs] if isinstance(self.inputs, (str, Path)) else self.inputs
        norm: dict[str, Any] = {
            "inputs": tuple(map(Path, inputs)), "output_dir": Path(self.output_dir),
            "temporal": tuple(int(k) for k in self.temporal), "flip": bool(self.flip),
            "weights": tuple(map(str, [self.weights] if isinstance(self.weights, (str, Path)) else self.weights)),
            "overlay_color": tuple(int(v) for v in self.overlay_color),
            "flow_size": self.flow_size if isinstance(self.flow_size, str) else tuple(map(int, self.flow_size)),
        }
        for key in ("raft_weights", "int8_calibration"):
            norm[key] = None if getattr(self, key) is None else Path(getattr(self, key))
        for key in ("raft_size", "size"):
            norm[key] = None if getattr(self, key) is None else tuple(int(v) for v in getattr(self, key))
        for key, value in norm.items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "VideoConfig":
        """The parsed command line as a config; a missing or unknown option is named."""
        given = {k: v for k, v in vars(args).items() if k not in ENTRY_ONLY_OPTIONS}
        names = {f.name for f in dataclasses.fields(cls)}
        missing, unknown = sorted(names - given.keys()), sorted(given.keys() - names)
        if missing or unknown:
            raise ValueError("the video tool's options do not match its config: "
                             + "; ".join(f"{what}: {', '.join(keys)}" for what, keys in
                                         (("missing", missing), ("unknown", unknown)) if keys))
        return cls(**given)

    def replace(self, **changes: Any) -> "VideoConfig":
        """A copy with ``changes`` (the config is frozen)."""
        return dataclasses.replace(self, **changes)

    @property
    def input(self) -> Path:
        """The one input of a single-video config (raises when there are several)."""
        if len(self.inputs) != 1:
            raise ValueError(f"this config names {len(self.inputs)} inputs, not one")
        return self.inputs[0]

    def for_video(self, path: Path, output_dir: Path) -> "VideoConfig":
        """The config of one video of a many-video run: its input and output folder, its own name."""
        return self.replace(inputs=(Path(path),), output_dir=Path(output_dir), name=None)
