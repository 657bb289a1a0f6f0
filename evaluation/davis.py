"""DAVIS-2016 measures: region similarity J, boundary accuracy F and sequence statistics.

Conventions (see ``docs/evaluation.md``):

* Masks are bool arrays; other dtypes count non-zero pixels as foreground (threshold
  probability maps before calling).
* J = |P & G| / |P | G|, and 1 when the union is empty.
* Boundary map: a pixel is a boundary pixel when it differs from its east, south or
  south-east neighbour. Pixels in the last column / last row have no east / south
  (nor south-east) neighbour and are compared only with the neighbours that exist;
  the bottom-right pixel is never a boundary pixel. Equivalently: pad the mask by
  replicating its last row and column, then compare with the three neighbours.
* Tolerance radius r = ceil(0.008 * sqrt(H^2 + W^2)) (8 px at 854x480); boundary
  maps are dilated with the disk {(x, y): x^2 + y^2 <= r^2} (a (2r+1)^2 kernel).
* F = 2PR / (P + R), 0 when P + R = 0; empty predicted boundary with a non-empty
  GT boundary gives P=1, R=0; the reverse gives P=0, R=1; both empty gives F=1.
* Statistics per sequence: mean, recall (fraction of frames with score > 0.5) and
  decay (see :func:`decay_bins`). Temporal stability T is not computed.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from typing import Iterable, Sequence

import cv2
import numpy as np

from .results import SequenceResult

logger = logging.getLogger(__name__)

BOUNDARY_TH = 0.008  # fraction of the image diagonal used as boundary tolerance
RECALL_TH = 0.5
N_DECAY_BINS = 4


def as_mask(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as a 2-D bool mask (non-zero is foreground)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {x.shape}")
    return x if x.dtype == bool else x != 0


def _check_shapes(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Region similarity |P & G| / |P | G| (1.0 when both masks are empty)."""
    pred, gt = as_mask(pred), as_mask(gt)
    _check_shapes(pred, gt)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & gt) / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a mask (east / south / south-east rule, see module docstring)."""
    m = as_mask(mask)
    b = np.zeros_like(m)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    b[:-1, :] |= m[:-1, :] != m[1:, :]
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]
    return b


def tolerance_radius(shape: tuple[int, ...], bound_th: float = BOUNDARY_TH) -> int:
    """Boundary tolerance in pixels: ``ceil(bound_th * diagonal)``; ``bound_th >= 1`` is taken as pixels."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


@lru_cache(maxsize=16)
def disk(radius: int) -> np.ndarray:
    """uint8 disk structuring element {x^2 + y^2 <= radius^2} of size (2r+1, 2r+1)."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    kernel = (x * x + y * y <= radius * radius).astype(np.uint8)
    kernel.setflags(write=False)
    return kernel


def _dilate(b: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return b
    # cv2 works on uint8; a bool array reinterprets as 0/1 bytes without a copy.
    out = cv2.dilate(np.ascontiguousarray(b).view(np.uint8), disk(radius))
    return out.view(bool)


def boundary_precision_recall(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUNDARY_TH
) -> tuple[float, float]:
    """Boundary precision and recall with the DAVIS tolerance and empty-boundary rules."""
    pred, gt = as_mask(pred), as_mask(gt)
    _check_shapes(pred, gt)
    bp, bg = boundary_map(pred), boundary_map(gt)
    n_p, n_g = np.count_nonzero(bp), np.count_nonzero(bg)
    if n_p == 0 and n_g == 0:
        return 1.0, 1.0
    if n_p == 0:
        return 1.0, 0.0
    if n_g == 0:
        return 0.0, 1.0
    r = tolerance_radius(gt.shape, bound_th)
    precision = np.count_nonzero(bp & _dilate(bg, r)) / n_p
    recall = np.count_nonzero(bg & _dilate(bp, r)) / n_g
    return float(precision), float(recall)


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = BOUNDARY_TH) -> float:
    """Boundary F-measure 2PR/(P+R) (0 when P+R = 0)."""
    p, r = boundary_precision_recall(pred, gt, bound_th)
    if p + r == 0:
        return 0.0
    return float(2 * p * r / (p + r))


def decay_bins(n: int, n_bins: int = N_DECAY_BINS) -> list[slice]:
    """0-based slices of the ``n_bins`` decay bins over ``n`` scored frames.

    Bin edges are the 1-based frame ids ``ids[k] = round(linspace(1, n, n_bins + 1))[k]``
    with ties rounded *up* (as the DAVIS-2016 toolkit, which nudges by 1e-10 before
    ``np.round``; numpy's plain ``np.round`` would round ties to even). They are
    computed in exact integer arithmetic as ``1 + (2 * k * (n - 1) + n_bins) // (2 * n_bins)``.
    Bin ``k`` holds frames ``ids[k] .. ids[k+1]`` inclusive (so neighbouring bins
    share their edge frame), i.e. the slice ``[ids[k] - 1 : ids[k+1]]``.
    Example: n = 47 gives ids 1, 13, 24, 36, 47.
    """
    if n < 1:
        raise ValueError("decay needs at least one frame")
    ids = [1 + (2 * k * (n - 1) + n_bins) // (2 * n_bins) for k in range(n_bins + 1)]
    return [slice(ids[k] - 1, ids[k + 1]) for k in range(n_bins)]


def sequence_stats(scores: Sequence[float] | np.ndarray, threshold: float = RECALL_TH) -> dict[str, float]:
    """Mean, recall (fraction of scores > ``threshold``) and decay of per-frame scores.

    Decay = mean of the first decay bin minus mean of the last (:func:`decay_bins`).
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no scores to summarise")
    bins = decay_bins(x.size)
    return {
        "mean": float(np.mean(x)),
        "recall": float(np.mean(x > threshold)),
        "decay": float(np.mean(x[bins[0]]) - np.mean(x[bins[-1]])),
    }


def scored_indices(n: int, skip_first_last: bool = True) -> range:
    """Indices of the frames scored by the DAVIS protocol.

    The DAVIS-2016 toolkit leaves out the first frame (given to semi-supervised
    methods) and the last; with ``skip_first_last=False`` all frames count. Sequences
    of one or two frames would keep nothing, so they fall back to all frames (warned).
    """
    if not skip_first_last:
        return range(n)
    if n <= 2:
        logger.warning("sequence has %d frame(s): scoring all of them instead of skipping first/last", n)
        return range(n)
    return range(1, n - 1)


def frame_scores(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], bound_th: float = BOUNDARY_TH
) -> tuple[list[float], list[float]]:
    """J and F for each (pred, gt) pair."""
    js, fs = [], []
    for pred, gt in pairs:
        js.append(jaccard(pred, gt))
        fs.append(boundary_f(pred, gt, bound_th))
    return js, fs


def davis_sequence_result(
    name: str, frames: list[str], js: list[float], fs: list[float], category: str | None = None
) -> SequenceResult:
    """Build a :class:`SequenceResult` with J/F statistics from per-frame scores."""
    j, f = sequence_stats(js), sequence_stats(fs)
    metrics = {
        "J_mean": j["mean"], "J_recall": j["recall"], "J_decay": j["decay"],
        "F_mean": f["mean"], "F_recall": f["recall"], "F_decay": f["decay"],
    }
    metrics["JF_mean"] = (metrics["J_mean"] + metrics["F_mean"]) / 2
    return SequenceResult(name=name, metrics=metrics, frames=frames, per_frame={"J": js, "F": fs}, category=category)


def evaluate_sequence_davis(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    *,
    skip_first_last: bool = True,
    name: str = "",
    frames: Sequence[str] | None = None,
    bound_th: float = BOUNDARY_TH,
) -> SequenceResult:
    """Score one sequence held in memory with the DAVIS protocol.

    Args:
        preds: predicted masks, one per frame (bool, or non-zero = foreground).
        gts: ground-truth masks, same length and shapes.
        skip_first_last: leave out the first and last frame (DAVIS-2016 toolkit).
        name: sequence name stored in the result.
        frames: frame names (default ``"00000"``, ``"00001"``, ...).
        bound_th: boundary tolerance as a fraction of the diagonal.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth frames")
    if len(gts) == 0:
        raise ValueError("empty sequence")
    frames = list(frames) if frames is not None else [f"{i:05d}" for i in range(len(gts))]
    idx = scored_indices(len(gts), skip_first_last)
    js, fs = frame_scores(((preds[i], gts[i]) for i in idx), bound_th)
    return davis_sequence_result(name, [frames[i] for i in idx], js, fs)


def summarise_davis(sequences: Sequence[SequenceResult]) -> dict[str, float]:
    """Dataset figures: mean over sequences of each statistic; JF_mean = (J_mean + F_mean) / 2."""
    keys = ["J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"]
    summary = {k: float(np.mean([s.metrics[k] for s in sequences])) for k in keys}
    summary["JF_mean"] = (summary["J_mean"] + summary["F_mean"]) / 2
    return summary
