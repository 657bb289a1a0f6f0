"""Evaluation toolbox for unsupervised video object segmentation.

* :mod:`evaluation.davis`: J, F and per-sequence statistics (DAVIS-2016 protocol);
* :mod:`evaluation.sparse`: J over annotated frames (FBMS, Youtube-objects, ...);
* :mod:`evaluation.saliency`: MAE, S, F and E measures (DAVSOD) via pysodmetrics;
* :mod:`evaluation.evaluate`: dataset-level driver over the folder layout;
* :mod:`evaluation.files`, :mod:`evaluation.results`: I/O and result containers.
"""

from typing import Any

from .davis import (
    boundary_f,
    boundary_map,
    boundary_precision_recall,
    decay_bins,
    disk,
    evaluate_sequence_davis,
    jaccard,
    sequence_stats,
    summarise_davis,
    tolerance_radius,
)
from .evaluate import evaluate_dataset, evaluate_datasets, protocol_for
from .files import (
    EvaluationError,
    MissingDatasetError,
    MissingPredictionError,
    SizeMismatchError,
    UnreadableFileError,
    read_gt,
    read_pred,
    read_prob,
    read_saliency_gt,
)
from .results import DatasetResult, SequenceResult, format_table, write_csv, write_json
from .sparse import category_of, evaluate_sequence_sparse, summarise_sparse

__all__ = [
    "DatasetResult",
    "EvaluationError",
    "MissingDatasetError",
    "MissingPredictionError",
    "SaliencyMeter",
    "SequenceResult",
    "SizeMismatchError",
    "UnreadableFileError",
    "boundary_f",
    "boundary_map",
    "boundary_precision_recall",
    "category_of",
    "decay_bins",
    "disk",
    "evaluate_dataset",
    "evaluate_datasets",
    "evaluate_sequence_davis",
    "evaluate_sequence_saliency",
    "evaluate_sequence_sparse",
    "format_table",
    "jaccard",
    "protocol_for",
    "read_gt",
    "read_pred",
    "read_prob",
    "read_saliency_gt",
    "sequence_stats",
    "summarise_davis",
    "summarise_saliency",
    "summarise_sparse",
    "tolerance_radius",
    "write_csv",
    "write_json",
]

# pysodmetrics pulls in scikit-image (~0.6 s); load the saliency module only when used.
_LAZY_SALIENCY = {"SaliencyMeter", "evaluate_sequence_saliency", "summarise_saliency"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SALIENCY:
        from . import saliency

        return getattr(saliency, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
