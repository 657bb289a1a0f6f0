"""Result containers and their CSV / JSON / text-table output."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from utils.io import atomic_write

# Column order of the per-sequence tables, per protocol.
METRIC_COLUMNS: dict[str, list[str]] = {
    "davis": ["JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"],
    "sparse": ["J_mean"],
    "saliency": ["MAE", "S", "maxF", "meanF", "maxE"],
}

# Metrics shown as percentages in text tables (CSV/JSON keep raw fractions).
_PERCENT_PROTOCOLS = {"davis", "sparse"}


@dataclass
class SequenceResult:
    """Scores of one video.

    ``metrics`` holds the per-sequence statistics (e.g. ``J_mean``); ``per_frame``
    the per-frame scores of the frames listed in ``frames`` (only the scored ones);
    ``curves`` the per-sequence threshold curves of the saliency protocol.
    """

    name: str
    metrics: dict[str, float]
    frames: list[str] = field(default_factory=list)
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    category: str | None = None
    curves: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self, with_frames: bool = True) -> dict[str, Any]:
        """JSON-ready dictionary (curves are left out: they are 256 values each)."""
        out: dict[str, Any] = {"name": self.name, "metrics": _floats(self.metrics)}
        if self.category is not None:
            out["category"] = self.category
        if with_frames:
            out["frames"] = list(self.frames)
            out["per_frame"] = {k: [float(v) for v in vals] for k, vals in self.per_frame.items()}
        return out


@dataclass
class DatasetResult:
    """Scores of one dataset under one protocol (``davis``, ``sparse`` or ``saliency``).

    ``summary`` holds the dataset-level figures; ``categories`` the per-category
    means (only for category datasets such as Youtube-objects); ``settings`` the
    options the figures depend on (e.g. ``split``, ``skip_first_last``).
    """

    dataset: str
    protocol: str
    sequences: list[SequenceResult]
    summary: dict[str, float]
    categories: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of scored frames over all sequences."""
        return sum(len(s.frames) for s in self.sequences)

    def to_dict(self, with_frames: bool = True) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "settings": dict(self.settings),
            "summary": _floats(self.summary),
            "categories": {k: _floats(v) for k, v in self.categories.items()},
            "sequences": [s.to_dict(with_frames) for s in self.sequences],
        }


def _floats(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in d.items()}


def result_stem(result: DatasetResult) -> str:
    """File-name stem for a result, e.g. ``DAVIS-2016_davis``."""
    return f"{result.dataset}_{result.protocol}"


def write_csv(result: DatasetResult, out_dir: str | Path) -> list[Path]:
    """Write ``<stem>_per_sequence.csv`` (+ ``<stem>_per_category.csv``); return the paths.

    The last row of each file is the dataset-level figure (``name`` = ``MEAN``, or
    ``MEAN_OF_CLASSES`` for the per-category file). Files are written atomically.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = METRIC_COLUMNS[result.protocol]
    written = []

    path = out_dir / f"{result_stem(result)}_per_sequence.csv"
    with _CsvFile(path) as f:
        writer = csv.writer(f)
        has_cat = any(s.category is not None for s in result.sequences)
        writer.writerow(["sequence"] + (["category"] if has_cat else []) + ["n_frames"] + columns)
        for s in result.sequences:
            writer.writerow(
                [s.name]
                + ([s.category or ""] if has_cat else [])
                + [len(s.frames)]
                + [_fmt_csv(s.metrics.get(c)) for c in columns]
            )
        writer.writerow(
            ["MEAN"] + ([""] if has_cat else []) + [result.n_frames]
            + [_fmt_csv(result.summary.get(c)) for c in columns]
        )
    written.append(path)

    if result.categories:
        path = out_dir / f"{result_stem(result)}_per_category.csv"
        with _CsvFile(path) as f:
            writer = csv.writer(f)
            writer.writerow(["category", "n_sequences", "J_mean"])
            for cat, vals in result.categories.items():
                writer.writerow([cat, int(vals["n_sequences"]), _fmt_csv(vals["J_mean"])])
            writer.writerow(["MEAN_OF_CLASSES", len(result.categories), _fmt_csv(result.summary["J_class_mean"])])
        written.append(path)
    return written


class _CsvFile(io.StringIO):
    """In-memory text file that lands atomically at ``path`` when its ``with`` block succeeds."""

    def __init__(self, path: Path):
        super().__init__(newline="")
        self.path = path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            text = self.getvalue()
            atomic_write(self.path, lambda tmp: tmp.write_text(text, newline=""))
        super().__exit__(exc_type, exc, tb)


def _fmt_csv(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def write_json(results: Iterable[DatasetResult], path: str | Path, with_frames: bool = True) -> Path:
    """Write all results into one JSON file keyed by ``<dataset>_<protocol>`` (atomically)."""
    payload = {result_stem(r): r.to_dict(with_frames) for r in results}
    text = json.dumps(payload, indent=2, allow_nan=True)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def format_table(result: DatasetResult, per_sequence: bool = True) -> str:
    """Render a plain-text table (title, header, one row per sequence, mean row)."""
    columns = METRIC_COLUMNS[result.protocol]
    percent = result.protocol in _PERCENT_PROTOCOLS
    unit = " (%)" if percent else ""
    skip = result.settings.get("skip_first_last", True)
    frames = "first/last frame of each sequence skipped" if skip else "all frames scored"
    titles = {
        "davis": f"DAVIS-2016 protocol, {frames}; dataset row = mean over sequences",
        "sparse": "J over annotated frames, mean per sequence; dataset row = mean over sequences",
        "saliency": f"saliency metrics, {frames}; MAE/S = mean over sequences, "
                    "maxF/meanF/maxE from the curves averaged per sequence then over sequences",
    }
    lines = [f"== {result.dataset} [{result.protocol}]{unit}: {titles[result.protocol]} =="]

    def fmt(v: float | None) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{100 * v:.1f}" if percent else f"{v:.3f}"

    name_w = max([len("Sequence"), len("MEAN")] + [len(s.name) for s in result.sequences]) if per_sequence else 8
    col_w = max(8, max(len(c) for c in columns) + 1)
    header = "Sequence".ljust(name_w) + "".join(c.rjust(col_w) for c in columns)
    lines.append(header)
    lines.append("-" * len(header))
    if per_sequence:
        for s in result.sequences:
            lines.append(s.name.ljust(name_w) + "".join(fmt(s.metrics.get(c)).rjust(col_w) for c in columns))
        lines.append("-" * len(header))
    lines.append("MEAN".ljust(name_w) + "".join(fmt(result.summary.get(c)).rjust(col_w) for c in columns))

    if result.categories:
        lines.append("")
        lines.append(f"-- {result.dataset}: J per category{unit}; MEAN OF CLASSES = mean of the per-category means --")
        cat_w = max([len("MEAN OF SEQUENCES")] + [len(c) for c in result.categories])
        lines.append("Category".ljust(cat_w) + "count".rjust(6) + "J_mean".rjust(col_w))
        for cat, vals in result.categories.items():
            lines.append(cat.ljust(cat_w) + str(int(vals["n_sequences"])).rjust(6) + fmt(vals["J_mean"]).rjust(col_w))
        lines.append(
            "MEAN OF CLASSES".ljust(cat_w) + str(len(result.categories)).rjust(6)
            + fmt(result.summary.get("J_class_mean")).rjust(col_w)
        )
        lines.append(
            "MEAN OF SEQUENCES".ljust(cat_w) + str(len(result.sequences)).rjust(6)
            + fmt(result.summary.get("J_mean")).rjust(col_w)
        )
    return "\n".join(lines)
