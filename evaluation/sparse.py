"""Sparse-annotation protocol (FBMS, Youtube-objects, ...): J over the annotated frames.

A sequence scores the mean J over its annotated frames (every annotated frame
counts, no first/last skipping); the dataset scores the mean over sequences. For
category datasets (Youtube-objects) the per-category means and their mean (the
"mean of class means") are reported as well.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

import numpy as np

from .davis import jaccard
from .results import SequenceResult

_LEADING_ALPHA = re.compile(r"[A-Za-z]+")


def category_of(video: str) -> str:
    """Category of a video folder named ``<class>_<id>``: the part before the last ``_``.

    Without an ``_`` (or with nothing before it) the leading alphabetic run is used,
    and failing that the whole name.
    """
    head, sep, _ = video.rpartition("_")
    if sep and head:
        return head
    match = _LEADING_ALPHA.match(video)
    return match.group(0) if match else video


def sparse_sequence_result(
    name: str, frames: list[str], js: list[float], category: str | None = None
) -> SequenceResult:
    """Build a :class:`SequenceResult` holding the mean J of the annotated frames."""
    if not js:
        raise ValueError(f"sequence {name!r} has no annotated frames")
    return SequenceResult(
        name=name, metrics={"J_mean": float(np.mean(js))}, frames=frames, per_frame={"J": js}, category=category
    )


def evaluate_sequence_sparse(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    *,
    name: str = "",
    frames: Sequence[str] | None = None,
    category: str | None = None,
) -> SequenceResult:
    """Mean J of one sequence held in memory (``preds``/``gts``: the annotated frames only)."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} annotated frames")
    frames = list(frames) if frames is not None else [f"{i:05d}" for i in range(len(gts))]
    js = [jaccard(p, g) for p, g in zip(preds, gts)]
    return sparse_sequence_result(name, frames, js, category)


def summarise_sparse(sequences: Sequence[SequenceResult]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Dataset figures and per-category means.

    Returns ``(summary, categories)``: ``summary['J_mean']`` is the mean over
    sequences; when the sequences carry categories, ``categories[c]`` holds
    ``J_mean`` and ``n_sequences`` of category ``c`` (sorted by name) and
    ``summary['J_class_mean']`` is the mean of the category means.
    """
    summary = {"J_mean": float(np.mean([s.metrics["J_mean"] for s in sequences]))}
    groups: dict[str, list[float]] = defaultdict(list)
    for s in sequences:
        if s.category is not None:
            groups[s.category].append(s.metrics["J_mean"])
    categories = {
        cat: {"J_mean": float(np.mean(vals)), "n_sequences": len(vals)} for cat, vals in sorted(groups.items())
    }
    if categories:
        summary["J_class_mean"] = float(np.mean([c["J_mean"] for c in categories.values()]))
    return summary, categories
