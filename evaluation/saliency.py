"""Video salient object detection metrics (DAVSOD protocol) on top of pysodmetrics.

Per frame, the probability map (uint8, 0..255) is scaled to [0, 1] and min-max
normalised by pysodmetrics' own ``prepare_data`` (the MATLAB ``mapminmax(im2double)``
convention), once, and the normalised map is handed to every measure with
``normalize=False`` so nothing is normalised twice. Ground truth reaches this module
already binarised (see :func:`evaluation.files.read_saliency_gt`).

Measures: MAE, S-measure (alpha = 0.5), F-measure (beta^2 = 0.3) over 256 thresholds
and E-measure over 256 thresholds. One set of metric objects is kept per sequence:
a sequence scores the mean MAE / S over its frames, and the max / mean of its
frame-averaged F curve and the max of its frame-averaged E curve. The dataset
scores the mean over sequences of MAE and S, and maxF / meanF / maxE from the
curves averaged over sequences.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from py_sod_metrics import MAE, Emeasure, FmeasureHandler, FmeasureV2, Smeasure
from py_sod_metrics.utils import prepare_data

from .davis import as_mask, scored_indices
from .results import SequenceResult

S_ALPHA = 0.5
F_BETA2 = 0.3


def to_uint8_prob(prob: np.ndarray) -> np.ndarray:
    """Return a probability map as uint8 0..255 (float maps in [0, 1] are scaled and rounded)."""
    prob = np.asarray(prob)
    if prob.dtype == np.uint8:
        return prob
    if prob.dtype == bool:
        return prob.astype(np.uint8) * 255
    if np.issubdtype(prob.dtype, np.floating):
        if prob.size and (prob.min() < 0 or prob.max() > 1):
            raise ValueError("float probability maps must lie in [0, 1]")
        return np.round(prob * 255).astype(np.uint8)
    raise ValueError(f"unsupported probability-map dtype {prob.dtype}; use uint8 0..255 or float in [0, 1]")


class SaliencyMeter:
    """pysodmetrics measures accumulated over the frames of one sequence."""

    def __init__(self) -> None:
        self.mae = MAE()
        self.sm = Smeasure(alpha=S_ALPHA)
        self.fm = FmeasureV2({"fm": FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=F_BETA2)})
        self.em = Emeasure()

    def step(self, prob: np.ndarray, gt: np.ndarray) -> None:
        """Add one frame: ``prob`` uint8 0..255 (or float in [0, 1]), ``gt`` bool mask."""
        prob = to_uint8_prob(prob)
        gt = as_mask(gt)
        if prob.shape != gt.shape:
            raise ValueError(f"probability map shape {prob.shape} differs from ground-truth shape {gt.shape}")
        # prepare_data thresholds GT at > 128, so feed it 0/255.
        pred, gt_bool = prepare_data(prob, gt.astype(np.uint8) * 255)
        for metric in (self.mae, self.sm, self.fm, self.em):
            metric.step(pred, gt_bool, normalize=False)

    @property
    def n_frames(self) -> int:
        """Number of frames added so far."""
        return len(self.mae.maes)

    def results(self) -> dict[str, object]:
        """Per-sequence figures (MAE, S, maxF, meanF, maxE), curves and per-frame MAE / S."""
        if self.n_frames == 0:
            raise ValueError("no frames added")
        f_curve = np.asarray(self.fm.get_results()["fm"]["dynamic"], dtype=np.float64)
        e_curve = np.asarray(self.em.get_results()["em"]["curve"], dtype=np.float64)
        return {
            "metrics": {
                "MAE": float(self.mae.get_results()["mae"]),
                "S": float(self.sm.get_results()["sm"]),
                "maxF": float(f_curve.max()),
                "meanF": float(f_curve.mean()),
                "maxE": float(e_curve.max()),
            },
            "curves": {"F": f_curve, "E": e_curve},
            "per_frame": {"MAE": [float(v) for v in self.mae.maes], "S": [float(v) for v in self.sm.sms]},
        }


def saliency_sequence_result(
    name: str, frames: list[str], meter: SaliencyMeter, category: str | None = None
) -> SequenceResult:
    """Wrap a filled :class:`SaliencyMeter` into a :class:`SequenceResult`."""
    res = meter.results()
    return SequenceResult(
        name=name, metrics=res["metrics"], frames=frames, per_frame=res["per_frame"],
        category=category, curves=res["curves"],
    )


def evaluate_sequence_saliency(
    probs: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    *,
    skip_first_last: bool = True,
    name: str = "",
    frames: Sequence[str] | None = None,
) -> SequenceResult:
    """Saliency figures of one sequence held in memory.

    Args:
        probs: probability maps, uint8 0..255 or float in [0, 1].
        gts: ground-truth masks (bool, or non-zero = foreground).
        skip_first_last: leave out the first and last frame (DAVSOD convention).
        name: sequence name stored in the result.
        frames: frame names (default ``"00000"``, ``"00001"``, ...).
    """
    if len(probs) != len(gts):
        raise ValueError(f"{len(probs)} probability maps for {len(gts)} ground-truth frames")
    if len(gts) == 0:
        raise ValueError("empty sequence")
    frames = list(frames) if frames is not None else [f"{i:05d}" for i in range(len(gts))]
    idx = scored_indices(len(gts), skip_first_last)
    meter = SaliencyMeter()
    for i in idx:
        meter.step(probs[i], gts[i])
    return saliency_sequence_result(name, [frames[i] for i in idx], meter)


def summarise_saliency(sequences: Sequence[SequenceResult]) -> dict[str, float]:
    """Dataset figures: mean MAE / S over sequences; maxF, meanF, maxE from sequence-averaged curves."""
    f_curve = np.mean([s.curves["F"] for s in sequences], axis=0)
    e_curve = np.mean([s.curves["E"] for s in sequences], axis=0)
    return {
        "MAE": float(np.mean([s.metrics["MAE"] for s in sequences])),
        "S": float(np.mean([s.metrics["S"] for s in sequences])),
        "maxF": float(f_curve.max()),
        "meanF": float(f_curve.mean()),
        "maxE": float(e_curve.max()),
    }
