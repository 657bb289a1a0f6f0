"""Dataset-level driver: walk the folder layout, score sequences in parallel, write reports.

Protocols by dataset name (case-insensitive):

* ``DAVIS-2016``: full DAVIS protocol (J and F statistics, first/last frame skipped);
* ``DAVSOD``: saliency metrics from probability maps;
* any other name (``FBMS``, ``Youtube-objects``, ``YouTubeVOS-2018``, ...): mean J over
  annotated frames; ``Youtube-objects`` also gets per-category means.

Any dataset can additionally be scored with the saliency metrics
(``evaluate_datasets(..., saliency=[...])`` / ``--saliency``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from utils.io import IN_PROGRESS
from utils.paths import mask_path

from .davis import BOUNDARY_TH, davis_sequence_result, frame_scores, jaccard, scored_indices, summarise_davis
from .files import (
    EvaluationError,
    check_same_size,
    frame_paths,
    labels_root,
    list_frames,
    list_videos,
    prediction_root,
    read_gt,
    read_pred,
    read_prob,
    read_saliency_gt,
)
from .results import DatasetResult, SequenceResult, format_table, write_csv, write_json
from .sparse import category_of, sparse_sequence_result, summarise_sparse

logger = logging.getLogger(__name__)

PROTOCOLS = ("davis", "sparse", "saliency")
DAVIS_DATASETS = {"davis-2016"}
SALIENCY_DATASETS = {"davsod", "davsod-normal-25", "davsod-difficult-20", "visal", "mcl"}  # VSOD sets: no mean J
CATEGORY_DATASETS = {"youtube-objects"}


def protocol_for(dataset: str) -> str:
    """Default protocol of a dataset name: ``davis``, ``saliency`` or ``sparse``."""
    key = dataset.lower()
    if key in DAVIS_DATASETS:
        return "davis"
    if key in SALIENCY_DATASETS:
        return "saliency"
    return "sparse"


@dataclass(frozen=True)
class SequenceJob:
    """Everything a worker needs to score one sequence from files (picklable)."""

    protocol: str
    name: str
    frames: tuple[str, ...]
    gt_paths: tuple[Path, ...]
    pred_paths: tuple[Path, ...]
    skip_first_last: bool = True
    category: str | None = None
    bound_th: float = BOUNDARY_TH


def _load_pairs(
    job: SequenceJob, indices: Iterable[int], read_p: Callable[[Path], np.ndarray], read_g: Callable[[Path], np.ndarray]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in indices:
        gt = read_g(job.gt_paths[i])
        pred = read_p(job.pred_paths[i])
        check_same_size(pred, gt, job.pred_paths[i], job.gt_paths[i])
        yield pred, gt


def run_job(job: SequenceJob) -> SequenceResult:
    """Score one sequence from its files (runs inside worker processes)."""
    n = len(job.frames)
    if job.protocol == "davis":
        idx = scored_indices(n, job.skip_first_last)
        js, fs = frame_scores(_load_pairs(job, idx, read_pred, read_gt), job.bound_th)
        return davis_sequence_result(job.name, [job.frames[i] for i in idx], js, fs, job.category)
    if job.protocol == "sparse":
        js = [jaccard(p, g) for p, g in _load_pairs(job, range(n), read_pred, read_gt)]
        return sparse_sequence_result(job.name, list(job.frames), js, job.category)
    if job.protocol == "saliency":
        from .saliency import SaliencyMeter, saliency_sequence_result

        idx = scored_indices(n, job.skip_first_last)
        meter = SaliencyMeter()
        for prob, gt in _load_pairs(job, idx, read_prob, read_saliency_gt):
            meter.step(prob, gt)
        return saliency_sequence_result(job.name, [job.frames[i] for i in idx], meter, job.category)
    raise ValueError(f"unknown protocol {job.protocol!r}; expected one of {PROTOCOLS}")


def run_jobs(jobs: Sequence[SequenceJob], workers: int | None = None, progress: bool = False) -> list[SequenceResult]:
    """Score jobs, in a process pool when ``workers > 1``; results come back in job order."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    n_proc = max(1, min(workers, len(jobs)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="seq", leave=False)
    results: dict[int, SequenceResult] = {}
    try:
        if n_proc == 1:
            for i, job in enumerate(jobs):
                results[i] = run_job(job)
                if bar is not None:
                    bar.update()
        else:
            # Longest sequences first so that no worker is left with a long tail.
            order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].frames))
            # Spawn, not fork: a forked child inherits the locks of the parent's other threads
            # (torch's and OpenCV's pools, a caller's tqdm monitor) and can block on one forever.
            with mp.get_context("spawn").Pool(n_proc) as pool:
                for i, res in zip(order, pool.imap(run_job, [jobs[i] for i in order], chunksize=1)):
                    results[i] = res
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    return [results[i] for i in range(len(jobs))]


def build_jobs(
    pred_dir: str | Path,
    data_dir: str | Path,
    dataset: str,
    protocol: str,
    *,
    split: str = "val",
    skip_first_last: bool = True,
    sequences: Sequence[str] | None = None,
    category_fn: Callable[[str], str] | None = None,
    bound_th: float = BOUNDARY_TH,
) -> list[SequenceJob]:
    """One job per ground-truth video; raises when a folder or a prediction file is missing."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    gt_root = labels_root(data_dir, dataset, split)
    pr_root = prediction_root(pred_dir, dataset)
    videos = list_videos(gt_root)
    if sequences is not None:
        unknown = sorted(set(sequences) - set(videos))
        if unknown:
            raise EvaluationError(f"sequences not found in {gt_root.resolve()}: {unknown}")
        videos = [v for v in videos if v in set(sequences)]
    what = "probability map" if protocol == "saliency" else "prediction"
    jobs = []
    for video in videos:
        frames = list_frames(gt_root / video)
        if not frames:
            logger.warning("no annotated frames in %s; sequence skipped", (gt_root / video).resolve())
            continue
        jobs.append(
            SequenceJob(
                protocol=protocol,
                name=video,
                frames=tuple(frames),
                gt_paths=tuple(mask_path(gt_root, video, f) for f in frames),
                pred_paths=tuple(frame_paths(pr_root, video, frames, what)),
                skip_first_last=skip_first_last,
                category=category_fn(video) if category_fn else None,
                bound_th=bound_th,
            )
        )
    if not jobs:
        raise EvaluationError(f"no annotated sequences found in {gt_root.resolve()}")
    return jobs


def check_complete(pred_dir: str | Path) -> None:
    """Refuse a prediction folder that a run is writing, or that a killed run left half written
    (a mix of old and new masks), naming the writer and what it was writing."""
    marker = Path(pred_dir) / IN_PROGRESS
    if not marker.is_file():
        return
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        info = {}
    items = info.get("items") or []
    listed = ", ".join(map(str, items[:10])) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
    raise EvaluationError(f"{Path(pred_dir).resolve()} is incomplete: {info.get('writer', 'a run')} was writing "
                          f"{listed or 'it'} and has not finished ({marker} is still there); rerun it "
                          f"(online_finetuning.py: --resume) before scoring")


def evaluate_dataset(
    pred_dir: str | Path,
    data_dir: str | Path,
    dataset: str,
    *,
    split: str = "val",
    protocol: str | None = None,
    prob_dir: str | Path | None = None,
    workers: int | None = None,
    skip_first_last: bool = True,
    sequences: Sequence[str] | None = None,
    progress: bool = False,
) -> DatasetResult:
    """Score one dataset from files.

    Args:
        pred_dir: root of binary predictions ``<pred_dir>/<dataset>/<video>/<frame>.png``.
        data_dir: root of the data ``<data_dir>/<dataset>/<split>/labels/...``.
        dataset: dataset folder name, e.g. ``DAVIS-2016``.
        split: data split folder.
        protocol: ``davis``, ``sparse`` or ``saliency``; default from :func:`protocol_for`.
        prob_dir: root of probability maps for the saliency protocol (default ``pred_dir``).
        workers: worker processes (default ``os.cpu_count()``; 1 runs in-process).
        skip_first_last: DAVIS / saliency protocols leave out the first and last frame.
        sequences: restrict to these video names (default: every folder in labels/).
        progress: show a tqdm progress bar.
    """
    protocol = protocol or protocol_for(dataset)
    source = (prob_dir or pred_dir) if protocol == "saliency" else pred_dir
    check_complete(source)
    category_fn = category_of if dataset.lower() in CATEGORY_DATASETS else None
    jobs = build_jobs(
        source, data_dir, dataset, protocol, split=split, skip_first_last=skip_first_last,
        sequences=sequences, category_fn=category_fn,
    )
    logger.info("%s [%s]: %d sequences, %d annotated frames", dataset, protocol, len(jobs),
                sum(len(j.frames) for j in jobs))
    if protocol == "saliency":
        # Import pysodmetrics once here so that forked workers inherit it.
        from . import saliency  # noqa: F401
    seqs = run_jobs(jobs, workers, progress)
    categories: dict[str, dict[str, float]] = {}
    if protocol == "davis":
        summary = summarise_davis(seqs)
    elif protocol == "sparse":
        summary, categories = summarise_sparse(seqs)
    else:
        from .saliency import summarise_saliency

        summary = summarise_saliency(seqs)
    settings = {"split": split, "skip_first_last": skip_first_last if protocol != "sparse" else False}
    return DatasetResult(dataset=dataset, protocol=protocol, sequences=seqs, summary=summary,
                         categories=categories, settings=settings)


def evaluate_datasets(
    pred_dir: str | Path,
    data_dir: str | Path,
    datasets: Sequence[str],
    *,
    split: str = "val",
    prob_dir: str | Path | None = None,
    saliency: Sequence[str] = (),
    workers: int | None = None,
    skip_first_last: bool = True,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> list[DatasetResult]:
    """Score several datasets; optionally write CSV files and ``results.json`` to ``out_dir``.

    Each dataset gets its default protocol; datasets also named in ``saliency``
    (and not saliency by default) get an extra saliency result from ``prob_dir``.
    """
    extra = {s.lower() for s in saliency}
    results = []
    for dataset in datasets:
        protocol = protocol_for(dataset)
        kwargs = dict(split=split, prob_dir=prob_dir, workers=workers, skip_first_last=skip_first_last,
                      progress=progress)
        results.append(evaluate_dataset(pred_dir, data_dir, dataset, protocol=protocol, **kwargs))
        if dataset.lower() in extra and protocol != "saliency":
            results.append(evaluate_dataset(pred_dir, data_dir, dataset, protocol="saliency", **kwargs))
    if out_dir is not None:
        for res in results:
            for path in write_csv(res, out_dir):
                logger.info("wrote %s", path)
        logger.info("wrote %s", write_json(results, Path(out_dir) / "results.json"))
    return results


__all__ = [
    "SequenceJob",
    "build_jobs",
    "evaluate_dataset",
    "evaluate_datasets",
    "format_table",
    "protocol_for",
    "run_job",
    "run_jobs",
]
