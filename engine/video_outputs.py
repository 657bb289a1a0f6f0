"""What one ``segment_video`` run may write and delete in its output folder (rules in
:mod:`engine.video`): input placement, the plan of every written place, cleaning the work folder."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from engine.video_io import VIDEO_CODECS, VideoInputError, overlay_video_paths, work_dirs
from engine.video_ledger import Ledger, OutputConflict
from utils.io import FRAME_EXTS


def check_paths(path: Path, out_dir: Path) -> None:
    """Refuse an input that is the output folder or lies where the tool writes and deletes files."""
    inp, out = path.resolve(), out_dir.resolve()
    places = [out / "masks", out / "probs", out / "overlay", out / "work",
              *(overlay_video_paths(out, ext)[0] for _, ext in VIDEO_CODECS)]
    if inp == out:
        raise VideoInputError(f"--input {path} is the --output_dir {out_dir} itself; segment_video writes its results "
                              "there: choose an --output_dir outside the input (a subfolder of it is fine)")
    for place in places:
        if inp == place or place in inp.parents:
            raise VideoInputError(f"--input {path} is inside --output_dir {out_dir} ({place}), where segment_video "
                                  "writes, replaces and deletes its own files: copy the input elsewhere, or choose "
                                  "another --output_dir")


def _visible_files(folder: Path, exts: Sequence[str] | None = None, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.is_file() and not p.name.startswith(".")
                  and (exts is None or p.suffix.lower() in exts))


def plan_outputs(ledger: Ledger, args: argparse.Namespace, out_dir: Path, name: str, pipeline: str) -> list[Path]:
    """Check every place this run writes; delete the tool's own results there that the run replaces.

    Raises :class:`OutputConflict` naming the first file that may not be touched (see the
    module docstring for the rules) and changes nothing then. Returns the user's files that
    ``--overwrite`` lets the run write next to (kept, to be named in a warning).
    """
    work_root = out_dir / "work"
    result_dirs = [(out_dir / "masks" / name, (".png",))]
    if args.save_prob:
        result_dirs.append((out_dir / "probs" / name, (".png",)))
    if args.overlay == "frames":
        result_dirs.append((out_dir / "overlay", (".jpg",)))
    result_files = [overlay_video_paths(out_dir, VIDEO_CODECS[0][1])[0]] if args.overlay == "video" else []
    work_files = [work_root / f"{name}.source.json"]
    strict_dirs, run_dirs = [], []
    if pipeline == "files":
        work_files.append(work_root / f"{name}.flow.json")
        strict_dirs += list(work_dirs(work_root, name))
    if args.online:
        run_dirs.append(work_root / "online")

    conflicts: list[tuple[Path, str]] = []
    remove: list[Path] = []
    kept: list[Path] = []
    how = "pass --overwrite to let this run replace it, or choose another --output_dir"
    for folder, exts in result_dirs:
        for p in sorted(set(_visible_files(folder, exts)) | set(ledger.entries_under(folder))):
            st = ledger.status(p)
            if st in ("own", "absent"):  # absent: a listed part file of a killed run
                remove.append(p)
            elif st == "other" and args.overwrite:
                remove.append(p)
            elif st == "other":
                conflicts.append((p, f"it holds the result of an earlier run ({ledger.describe(p)}), which this run "
                                     f"would replace; {how} (and that run's other results there)"))
            elif args.overwrite:
                kept.append(p)
            else:
                conflicts.append((p, f"it was {ledger.describe(p)}, and this run writes its results in {folder}; {how} "
                                     "(files of yours it does not replace are kept)"))
    for p in [*result_files, *work_files, *(f for d in run_dirs for f in _visible_files(d, recursive=True))]:
        st = ledger.status(p)
        if st in ("user", "other") and not args.overwrite:
            conflicts.append((p, f"it was {ledger.describe(p)}, and this run would overwrite it; {how}"))
    for folder in strict_dirs:
        for p in _visible_files(folder, FRAME_EXTS, recursive=True):
            if ledger.status(p) == "user":
                conflicts.append((p, f"it was {ledger.describe(p)}, but {folder} must hold only the frames or flow "
                                     "images segment_video made (they are read back as a data set): move it away, or "
                                     "choose another --output_dir"))
    if conflicts:
        p, why = conflicts[0]
        more = f" ({len(conflicts) - 1} more such files)" if len(conflicts) > 1 else ""
        raise OutputConflict(f"refusing to touch {p}: {why}{more}")
    for p in remove:
        ledger.remove(p)
    ledger.save()
    return kept


def clean_work(ledger: Ledger, work_root: Path) -> tuple[int, list[Path]]:
    """Delete the tool's files in the work folder, then the folders it created there.

    Returns (files deleted, files kept: the user's, and the tool's changed since).
    """
    removed = sum(ledger.remove(p) for p in ledger.entries_under(work_root))
    ledger.prune_dirs(work_root)
    ledger.save()
    kept = _visible_files(work_root, recursive=True)
    return removed, kept
