"""Scanning the project's folder layout.

``<data_dir>/<dataset>/<split>/{images,flows,labels}/<video>/<frame>.jpg|png``: frames and
flow images are ``.jpg`` (``.png`` accepted), labels ``.png``. Frame names sort in temporal
order (zero-padded). Labels may cover only some frames (FBMS, YouTube-Objects).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.io import FRAME_EXTS, list_files

DATASETS = ("YouTubeVOS-2018", "DAVIS-2016", "FBMS", "Youtube-objects")


@dataclass
class Video:
    """One video: its frame names and where each file lives."""
    dataset: str
    name: str
    frames: list[str]
    image_paths: dict[str, Path]
    flow_paths: dict[str, Path]
    label_paths: dict[str, Path] = field(default_factory=dict)


def _by_stem(folder: Path, exts: tuple[str, ...]) -> dict[str, Path]:
    return {p.stem: p for p in list_files(folder, exts)}


def scan_split(data_dir: str | Path, dataset: str, split: str, need_labels: bool = False,
               read_labels: bool = True, videos: list[str] | None = None) -> list[Video]:
    """Index every video of ``<data_dir>/<dataset>/<split>``; validate flows and labels.

    ``read_labels=False`` never looks at the label folder (the online stage must not see
    ground truth). Raises ``FileNotFoundError``/``ValueError`` naming the folder, video and
    frame for missing folders, empty videos, or frames without flow.
    """
    root = Path(data_dir) / dataset / split
    img_root = root / "images"
    if not img_root.is_dir():
        raise FileNotFoundError(
            f"{img_root} not found: expected <data_dir>/<dataset>/<split>/images/<video>/<frame>.jpg "
            f"(see docs/data_preparation.md, 'Layout')")
    names = sorted(p.name for p in img_root.iterdir() if p.is_dir())
    if videos is not None:
        unknown = sorted(set(videos) - set(names))
        if unknown:
            raise FileNotFoundError(f"videos {unknown} not found under {img_root}")
        names = [n for n in names if n in set(videos)]
    if not names:
        raise FileNotFoundError(f"{img_root} contains no video folders")
    out = []
    for name in names:
        images = _by_stem(img_root / name, FRAME_EXTS)
        if not images:
            raise FileNotFoundError(f"{dataset}/{split}: video {name!r} has no frames in {img_root / name}")
        flow_dir = root / "flows" / name
        if not flow_dir.is_dir():
            raise FileNotFoundError(
                f"{dataset}/{split}: video {name!r} has no flow folder {flow_dir}; "
                f"run scripts/compute_flow.py --data_dir {data_dir} --datasets {dataset}")
        flows = _by_stem(flow_dir, FRAME_EXTS)
        missing = [f for f in images if f not in flows]
        if missing:
            raise FileNotFoundError(
                f"{dataset}/{split}: video {name!r} frame {missing[0]!r} has no flow image in {flow_dir} "
                f"({len(missing)} of {len(images)} frames missing)")
        labels: dict[str, Path] = {}
        if read_labels:
            label_dir = root / "labels" / name
            if label_dir.is_dir():
                labels = {k: v for k, v in _by_stem(label_dir, (".png",)).items() if k in images}
            if need_labels and not labels:
                raise FileNotFoundError(f"{dataset}/{split}: video {name!r} has no label files in {label_dir}")
        out.append(Video(dataset, name, sorted(images), images, flows, labels))
    return out


def labeled_frames(video: Video, stride: int = 1) -> list[str]:
    """Annotated frames of a video, keeping every ``stride``-th one (temporal order)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return [f for f in video.frames if f in video.label_paths][::stride]


def check_sizes(video: Video, frame: str, *arrays: np.ndarray) -> None:
    """Raise naming the video and frame if the image, flow and mask sizes differ."""
    shapes = [a.shape[:2] for a in arrays]
    if len(set(shapes)) > 1:
        raise ValueError(f"{video.dataset}: video {video.name!r} frame {frame!r}: image/flow/mask sizes differ "
                         f"{shapes} ({video.image_paths[frame]}, {video.flow_paths[frame]})")
