"""Converting official dataset downloads into the project layout.

``<data_dir>/<dataset>/<split>/{images,labels}/<video>/<frame>.jpg|png``: images are
symlinked (``link=True``) or copied JPEGs, labels binary mode-"L" PNGs (0/255, union of all
objects) for annotated frames only. Flow images are made afterwards by
:mod:`utils.optical_flow` (``scripts/compute_flow.py``).

=====================  ==========================  =====================================
``--dataset``          output                      module
=====================  ==========================  =====================================
DAVIS-2016             DAVIS-2016/{train,val}      :mod:`datasets.prepare.davis`
DAVIS-2017             DAVIS-2016/{train,val}      :mod:`datasets.prepare.davis`
YouTubeVOS-2018        YouTubeVOS-2018/train       :mod:`datasets.prepare.youtubevos`
FBMS                   FBMS/val                    :mod:`datasets.prepare.fbms`
Youtube-objects        Youtube-objects/val         :mod:`datasets.prepare.youtube_objects`
DAVSOD                 DAVSOD/val (Easy-35)        :mod:`datasets.prepare.davsod`
DAVSOD-Normal-25       DAVSOD-Normal-25/val        :mod:`datasets.prepare.davsod`
DAVSOD-Difficult-20    DAVSOD-Difficult-20/val     :mod:`datasets.prepare.davsod`
ViSal                  ViSal/val                   :mod:`datasets.prepare.visal`
MCL                    MCL/val                     :mod:`datasets.prepare.visal`
=====================  ==========================  =====================================
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from datasets.prepare import davis, davsod, fbms, visal, youtube_objects, youtubevos
from datasets.prepare.common import DatasetLayoutError, PrepareSummary, VideoJob, run_jobs

logger = logging.getLogger(__name__)

SOURCES = ("DAVIS-2016", "DAVIS-2017", "YouTubeVOS-2018", "FBMS", "Youtube-objects", *davsod.SOURCES,
           *visal.SOURCES)
OUTPUT_NAME = {"DAVIS-2016": davis.OUT_NAME, "DAVIS-2017": davis.OUT_NAME, "YouTubeVOS-2018": youtubevos.OUT_NAME,
               "FBMS": fbms.OUT_NAME, "Youtube-objects": youtube_objects.OUT_NAME,
               **{name: name for name in (*davsod.SOURCES, *visal.SOURCES)}}

__all__ = ["SOURCES", "OUTPUT_NAME", "DatasetLayoutError", "PrepareSummary", "collect_jobs", "prepare_dataset"]


def collect_jobs(source: str, src: str | Path, videos: Sequence[str] | None = None,
                 warnings: list[str] | None = None, **options) -> list[VideoJob]:
    """Scan a download and plan its conversion; raises :class:`DatasetLayoutError` naming the path.

    ``options``: ``resolution`` (DAVIS), ``all_frames`` (YouTube-VOS), ``trainingset`` and
    ``background`` (FBMS).
    """
    warnings = [] if warnings is None else warnings
    if source in ("DAVIS-2016", "DAVIS-2017"):
        return davis.collect_jobs(src, videos, resolution=options.get("resolution", "480p"), warnings=warnings)
    if source == "YouTubeVOS-2018":
        return youtubevos.collect_jobs(src, videos, all_frames=options.get("all_frames"), warnings=warnings)
    if source == "FBMS":
        return fbms.collect_jobs(src, videos, trainingset=options.get("trainingset", "skip"),
                                 background=options.get("background", "auto"), warnings=warnings)
    if source == "Youtube-objects":
        return youtube_objects.collect_jobs(src, videos, warnings=warnings)
    if source in davsod.SOURCES:
        return davsod.collect_jobs(src, videos, subset=davsod.SOURCES[source], out_name=source, warnings=warnings)
    if source in visal.SOURCES:
        return visal.collect_jobs(src, videos, dataset=source, warnings=warnings)
    raise ValueError(f"unknown dataset {source!r}; choose one of {SOURCES}")


def prepare_dataset(source: str, src: str | Path, data_dir: str | Path, link: bool = True,
                    videos: Sequence[str] | None = None, overwrite: bool = False, workers: int = 1,
                    progress: bool = True, **options) -> PrepareSummary:
    """Convert the download at ``src`` into ``data_dir``; re-running skips existing outputs."""
    warnings: list[str] = []
    jobs = collect_jobs(source, src, videos, warnings, **options)
    summary = run_jobs(jobs, data_dir, OUTPUT_NAME[source], link=link, overwrite=overwrite, workers=workers,
                       progress=progress)
    summary.warnings[:0] = warnings
    return summary
