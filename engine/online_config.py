"""The online stage's options as one typed value: what :class:`engine.online.OnlineTuner` runs with.

``online_finetuning.py`` builds it from its command line (:meth:`OnlineConfig.from_args`);
the video tool (``segment_video/online.py``) builds it directly. Field names are the
command line's option names (``--lr`` -> ``lr``), and the field defaults are the command
line's (``engine.online.add_online_args`` reads them from here; the options shared with the
other stages, data and runtime, take the shared parsers' defaults), so the resolved config,
written to ``<output_dir>/args.yaml``, reads back with ``--config``.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.tta import TTA_VIEWS
from models.losses import IOU_SMOOTH
from utils.config import DEFAULT_TEST_DATASETS, data_parser, runtime_parser

# Options of online_finetuning.py that are not the tuner's: the config file they came from,
# the legacy launcher's rank, and the authors' options that are accepted and reported unused.
ENTRY_ONLY_OPTIONS = ("config", "local_rank", "pretrained", "sync_bn")
_PATHS = ("data_dir", "save_dir", "prob_dir", "output_dir")
MODES = ("per_video", "transductive")  # --mode
TARGETS = ("per_step", "cached")  # --targets
# The data and runtime options are every stage's (utils/config.py): their defaults come from there.
_SHARED = {**vars(data_parser().parse_args([])), **vars(runtime_parser().parse_args([]))}


@dataclass(frozen=True)
class OnlineConfig:
    """Every option of the online stage (``python online_finetuning.py --help`` describes each).

    Sequences are stored as tuples and paths as strings, whatever the caller passes.
    """

    weights: tuple[str, ...]  # offline checkpoint(s); several are averaged
    # model: the checkpoint's unless given
    arch: str | None = None
    model_scale: str | None = None
    backbone: str | None = None
    # data
    data_dir: str = _SHARED["data_dir"]
    test_datasets: tuple[str, ...] = tuple(DEFAULT_TEST_DATASETS)
    split: str = "val"
    videos: tuple[str, ...] | None = None
    size: tuple[int, int] = tuple(_SHARED["size"])
    workers: int = _SHARED["workers"]
    # runtime
    device: str = _SHARED["device"]
    amp: bool = _SHARED["amp"]
    amp_dtype: str = _SHARED["amp_dtype"]
    seed: int = _SHARED["seed"]
    # tuning
    mode: str = "per_video"
    epochs: int = 1
    batch_size: int = 2
    lr: float = 1e-4
    lr_d: float = 1e-5
    weight_decay: float = 1e-2
    ema: float = 0.99
    lambda_adv: float = 0.0  # the mask discriminator is off; the authors' setting is 1e-4 (benchmarks/RESULTS.md)
    d_loss_weight: float = 1.0
    iou_smooth: float = IOU_SMOOTH
    tta: tuple[str, ...] = TTA_VIEWS
    tta_average: str = "probs"
    tta_scale: tuple[float, float] = (0.5, 1.5)
    sharpen: float = 0.5
    targets: str = "cached"
    temporal: tuple[int, ...] = (1,)
    confidence: tuple[float, float] = (0.1, 0.9)
    motion_veto: float = 0.25  # drop background labels that move on their own (benchmarks/RESULTS.md)
    iou_weight: float = 1.0  # of the soft IoU term of the cached targets' loss (BCE + this x IoU)
    # > 0: the band between the thresholds learns the teacher's probability; auto: per video, from
    # the share of its pixels in the band (band_share: 0 at LO or less, 1 at HI or more); the range
    # was set between a confident and a less confident model's shares (benchmarks/RESULTS.md).
    band_weight: float | str = "auto"
    band_share: tuple[float, float] = (0.2, 0.4)
    min_cover: float = 0.3  # a confident model's frames pass it; a weak model's, labelled on one side only, do not
    mask_disc: str = "ours"
    d_width: int = 32
    d_size: tuple[int, int] = (128, 224)
    clip_grad: float | None = None
    transductive_order: str = "shuffled"
    # masks
    predict_with: str = "student"
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    write_temporal: tuple[int, ...] = (1,)  # fused as test.py --temporal 1
    save_dir: str = "outputs/online_masks"
    save_prob: bool = False
    prob_dir: str | None = None
    # run folder
    output_dir: str = "runs/online"
    resume: bool = False
    no_tensorboard: bool = False
    preset: str = "ours"  # the preset the options started from; recorded in args.yaml only

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
            elif isinstance(value, Path) and f.name in _PATHS:
                object.__setattr__(self, f.name, str(value))
        if isinstance(self.weights, (str, Path)):
            object.__setattr__(self, "weights", (self.weights,))
        object.__setattr__(self, "weights", tuple(str(w) for w in self.weights))
        # Refused here, before any file is read or written (argparse checks choices on the command
        # line only; the video tool builds the config directly).
        for name, allowed in (("mode", MODES), ("targets", TARGETS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {list(allowed)}, not {getattr(self, name)!r}")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("--epochs must be >= 0 and --batch_size >= 1")
        if self.band_weight != "auto" and not (isinstance(self.band_weight, (int, float)) and self.band_weight >= 0):
            raise ValueError(f"--band_weight must be a weight >= 0 or 'auto', not {self.band_weight!r}")
        if not 0 <= self.band_share[0] < self.band_share[1] <= 1:
            raise ValueError(f"--band_share LO HI needs 0 <= LO < HI <= 1, not {list(self.band_share)}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OnlineConfig:
        """The config of ``online_finetuning.py``'s parsed options (each field from the option of its name)."""
        missing = [f.name for f in dataclasses.fields(cls) if not hasattr(args, f.name)]
        if missing:
            raise ValueError(f"the options lack {missing}: parse them with online_finetuning.get_parser()")
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        """The options by name, sequences as lists (as ``args.yaml`` holds them)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}
