"""ViSal (Wang et al., TIP 2015) -> ``ViSal/val``; MCL (Kim et al., TIP 2015) -> ``MCL/val``.

Both are small VSOD test sets with **sparse** ground truth (a mask every few frames). They
are usually obtained as the unified copies of the DAVSOD benchmark ("Popular Existing
Datasets" in github.com/DengPingFan/DAVSOD: frames ``.jpg`` indexed from zero, masks
``.png``), whose layout its ``txt/ViSal_test.txt`` confirms::

    ViSal/<seq>/Imgs/<seq>_00000.jpg ...        every frame (e.g. aeroplane_00000.jpg)
    ViSal/<seq>/ground-truth/<seq>_<n>.png      annotated frames only

ViSal has 17 sequences (aeroplane, bird, boat, boat2, car, cat, cow, cow2, gokart, horse,
horse2, lion, man, motorbike, panda, rider, snow_leopards), MCL 9. Also accepted: ``GT``,
``GroundTruth``, ``GT_object_level`` (any case) for the mask folder, frames directly in
``<seq>/``, and the per-kind layout ``Imgs/<seq>/`` + ``ground-truth/<seq>/``. ``--src`` is
the folder holding the sequences or its parent (e.g. the folder the archive was unpacked in).

A mask annotates the frame with the same file stem, else the same frame number (trailing
digits after the sequence name); frames are renamed to ``00000, 00001, ...`` in frame-number
order. Masks are objects on black (value > 0 is the object). Scoring follows the DAVSOD
toolbox, which walks the ground-truth files: the first and last *annotated* frame of each
sequence are skipped (docs/evaluation.md).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from datasets.prepare.common import DatasetLayoutError, VideoJob, list_dirs, require_dir
from datasets.prepare.vsod_layout import SequenceFolders, build_jobs, find_sequences, find_sequences_by_kind

logger = logging.getLogger(__name__)

SEQUENCE_COUNT = {"ViSal": 17, "MCL": 9}
SOURCES = tuple(SEQUENCE_COUNT)
EXPECTED = "<seq>/Imgs/<seq>_00000.jpg with <seq>/ground-truth/*.png (or Imgs/<seq>/ with ground-truth/<seq>/)"


def find_root(src: str | Path, dataset: str = "ViSal") -> tuple[Path, list[SequenceFolders]]:
    """The folder holding the sequences (``src`` or one sub-folder of it) and its sequences."""
    src = require_dir(Path(src), dataset, EXPECTED)
    # src itself, else one level down (the archive's own folder: ViSal/, MCL/, DataViSal/),
    # preferring a folder named after the dataset. A folder whose sequences have no
    # ground-truth folder at all is passed over (e.g. a stray folder of photos next to ViSal/).
    subs = sorted(list_dirs(src), key=lambda d: dataset.lower() not in d.name.lower())
    first: tuple[Path, list[SequenceFolders]] | None = None
    for cand in [src, *subs]:
        seqs = find_sequences_by_kind(cand) or find_sequences(cand)
        if seqs and any(s.labels is not None for s in seqs):
            return cand, seqs
        if seqs and first is None:
            first = (cand, seqs)
    if first is not None:
        return first  # build_jobs names the missing ground-truth folder
    others = ", ".join(d.name for d in list_dirs(src)[:8]) or "no sub-folders"
    raise DatasetLayoutError(f"{dataset}: no sequence folders with an Imgs/ folder (or frames) in {src} "
                             f"or its sub-folders (it holds: {others}); expected {EXPECTED}")


def collect_jobs(src: str | Path, videos: Sequence[str] | None = None, dataset: str = "ViSal",
                 warnings: list[str] | None = None) -> list[VideoJob]:
    """One job per sequence, written to ``<dataset>/val``; labels only for annotated frames."""
    if dataset not in SEQUENCE_COUNT:
        raise ValueError(f"dataset must be one of {SOURCES}, got {dataset!r}")
    warnings = [] if warnings is None else warnings
    root, seqs = find_root(src, dataset)
    logger.info("%s: %d sequences in %s", dataset, len(seqs), root)
    return build_jobs(dataset, seqs, root, videos, warnings, EXPECTED, expected_count=SEQUENCE_COUNT[dataset])
