"""The video tool's options as one typed value: what :func:`segment_video.segment_video` runs with.

``scripts/segment_video.py`` parses its command line (:func:`segment_video.cli.add_video_args`
and the shared model and runtime parsers) and :meth:`VideoConfig.from_args` turns the result
into this. The parser is the one place that holds the defaults and the help; the fields carry
the command line's option names (``--flow_size`` -> ``flow_size``).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Options of the shared parsers that the tool does not use: the config file they came from and
# the legacy launcher's rank.
ENTRY_ONLY_OPTIONS = ("config", "local_rank")


@dataclass(frozen=True)
class VideoConfig:
    """Every option of ``scripts/segment_video.py`` (``--help`` describes each).

    Sequences are stored as tuples, files and folders as :class:`~pathlib.Path`.
    """

    # input
    input: Path
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
    # segmentation
    weights: tuple[str, ...]
    output_dir: Path
    overwrite: bool
    size: tuple[int, int] | None  # None: the checkpoint's training size (resolved by segment_video)
    batch_size: int
    memory_format: str
    runtime: str
    int8_calibration: Path | None
    int8_frames: int
    workers: int
    flip: bool
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
    online_mode: str
    tta: tuple[str, ...]
    # overlay
    overlay: str
    fps: float | None
    overlay_color: tuple[int, int, int]
    overlay_alpha: float
    clean_work: bool

    def __post_init__(self) -> None:
        norm: dict[str, Any] = {
            "input": Path(self.input), "output_dir": Path(self.output_dir),
            "weights": tuple(map(str, [self.weights] if isinstance(self.weights, (str, Path)) else self.weights)),
            "tta": tuple(self.tta), "overlay_color": tuple(int(v) for v in self.overlay_color),
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
