"""DAVSOD (Fan et al., CVPR 2019) test subsets -> ``DAVSOD/val`` (Easy-35) and ``DAVSOD-<subset>/val``.

The release (README of github.com/DengPingFan/DAVSOD, archives updated 2021-02-18) has a
Training Set (61 sequences), a Validation Set (46) and a Test Set of 80 sequences split by
difficulty into ``Easy-35``, ``Normal-25`` and ``Difficult-20``, one archive each. Every
sequence folder (``select_0606``, ...) holds ``Imgs/`` (frames), ``GT_object_level/``
(binary masks, same file names) and fixation / instance folders that are not used here.

``--dataset DAVSOD`` converts **Easy-35**: it is the subset the CVPR 2019 benchmark was
tested on, the one the DAVSOD toolbox scores as "DAVSOD" (its ``txt/DAVSOD_test.txt`` and
published results list exactly these 35 sequences) and the one VSOD papers report as
"DAVSOD". ``DAVSOD-Normal-25`` and ``DAVSOD-Difficult-20`` convert the other two into their
own dataset folders, so their scores are never mixed with Easy-35.

Accepted ``--src`` (folder names matched ignoring case, ``-`` and ``_``):

* the subset folder itself (``.../Easy-35``), or any folder holding it within three levels
  (``DAVSOD/``, ``DAVSOD/Test Set/``, an unzip folder ``Easy-35/Easy-35/``);
* the DAVSOD toolbox copy ``Datasets/DAVSOD/<seq>/{Imgs,ground-truth}/`` (Easy-35);
* sequences as ``<seq>/{Imgs,GT_object_level}`` or per-kind ``Imgs/<seq>/`` + ``GT_object_level/<seq>/``.

Pointing ``--dataset DAVSOD`` at another subset's folder is refused, naming the folder.
"""
from __future__ import annotations

import logging
import re
from collections import deque
from pathlib import Path
from typing import Sequence

from datasets.prepare.common import DatasetLayoutError, VideoJob, list_dirs, require_dir
from datasets.prepare.vsod_layout import (
    IMAGE_DIRS, SequenceFolders, build_jobs, child_dir, find_sequences, find_sequences_by_kind,
)

logger = logging.getLogger(__name__)

SUBSETS = {"Easy-35": 35, "Normal-25": 25, "Difficult-20": 20}
DEFAULT_SUBSET = "Easy-35"
# --dataset name -> test subset; the output folder is the --dataset name.
SOURCES = {"DAVSOD": "Easy-35", "DAVSOD-Normal-25": "Normal-25", "DAVSOD-Difficult-20": "Difficult-20"}
SOURCE_OF = {subset: source for source, subset in SOURCES.items()}
SEARCH_DEPTH = 3
EXPECTED = ("<subset>/<seq>/Imgs/*.jpg|png with <subset>/<seq>/GT_object_level/*.png, "
            "<subset> one of Easy-35, Normal-25, Difficult-20 (e.g. DAVSOD/Test Set/Easy-35)")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def subset_of(folder_name: str) -> str | None:
    """The test subset a folder name denotes (``Easy-35``, ``davsod_easy35``, ...), or None."""
    key = _norm(folder_name)
    for subset in SUBSETS:
        if key.endswith(_norm(subset)):
            return subset
    return None


def _sequences(root: Path) -> list[SequenceFolders]:
    return find_sequences(root) or find_sequences_by_kind(root)


def _subset_sequences(folder: Path, subset: str) -> tuple[Path, list[SequenceFolders]]:
    """Sequences of a subset folder, looking one level deeper for an unzip wrapper folder."""
    seqs = _sequences(folder)
    if seqs:
        return folder, seqs
    inner = list_dirs(folder)
    if len(inner) == 1 and _sequences(inner[0]):
        return inner[0], _sequences(inner[0])
    raise DatasetLayoutError(f"DAVSOD: the {subset} folder {folder} holds no sequence folders "
                             f"<seq>/Imgs/ (expected {EXPECTED})")


def _search_subset(src: Path, subset: str) -> Path | None:
    """The shallowest folder under ``src`` (at most SEARCH_DEPTH levels) named after ``subset``."""
    queue = deque([(src, 0)])
    while queue:
        folder, depth = queue.popleft()
        for d in list_dirs(folder):
            if subset_of(d.name) == subset:
                return d
            # Sequence folders and their Imgs/ cannot hold a subset: do not walk into them.
            if depth + 1 < SEARCH_DEPTH and child_dir(d, IMAGE_DIRS) is None \
                    and d.name.lower() not in {n.lower() for n in IMAGE_DIRS}:
                queue.append((d, depth + 1))
    return None


def find_subset(src: str | Path, subset: str = DEFAULT_SUBSET) -> tuple[Path, list[SequenceFolders]]:
    """Locate ``subset`` in the download at ``src``; return its folder and sequences.

    Raises :class:`DatasetLayoutError` naming the folder when ``src`` is another subset or
    when no folder for ``subset`` (and no sequence folders) can be found.
    """
    if subset not in SUBSETS:
        raise ValueError(f"DAVSOD subset must be one of {list(SUBSETS)}, got {subset!r}")
    src = require_dir(Path(src), "DAVSOD", EXPECTED)
    named = subset_of(src.name)
    if named is not None and named != subset:
        raise DatasetLayoutError(f"DAVSOD: {src} is the {named} test subset, not {subset}; "
                                 f"convert it with --dataset {SOURCE_OF[named]}")
    if named == subset:
        return _subset_sequences(src, subset)
    if "train" in _norm(src.name) or "valid" in _norm(src.name):
        # Its sequence folders look like a test subset's; converting them would be silently wrong.
        raise DatasetLayoutError(f"DAVSOD: {src} is the training or validation set, not the {subset} test "
                                 f"subset; point --src at the test subset (expected {EXPECTED})")
    found = _search_subset(src, subset)
    if found is not None:
        return _subset_sequences(found, subset)
    seqs = _sequences(src)
    toolbox = child_dir(src, ["DAVSOD"])
    if not seqs and toolbox is not None and _sequences(toolbox):  # the toolbox's Datasets/ folder
        src, seqs = toolbox, _sequences(toolbox)
    if seqs:
        # A bare folder of sequences (the toolbox's Datasets/DAVSOD): taken as the requested
        # subset; build_jobs warns when the sequence count does not match it.
        logger.info("DAVSOD: %s holds sequence folders directly; converting them as %s", src, subset)
        return src, seqs
    others = ", ".join(d.name for d in list_dirs(src)[:8]) or "no sub-folders"
    raise DatasetLayoutError(f"DAVSOD: no {subset} folder under {src} (searched {SEARCH_DEPTH} levels; "
                             f"it holds: {others}); expected {EXPECTED}")


def collect_jobs(src: str | Path, videos: Sequence[str] | None = None, subset: str = DEFAULT_SUBSET,
                 out_name: str | None = None, warnings: list[str] | None = None) -> list[VideoJob]:
    """One job per sequence of ``subset``, written to ``<out_name>/val`` (default: its --dataset name)."""
    warnings = [] if warnings is None else warnings
    root, seqs = find_subset(src, subset)
    logger.info("DAVSOD %s: %d sequences in %s", subset, len(seqs), root)
    return build_jobs(out_name or SOURCE_OF[subset], seqs, root, videos, warnings, EXPECTED,
                      expected_count=SUBSETS[subset])
