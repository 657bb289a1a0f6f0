"""The output contract: ``segment_video`` owns its output folder, marked by one small manifest.

``<output_dir>/.segment_video.json`` names the tool, the input, the video name, the weights
(path and sha1 of each file) and the options, and whether the run is ``running`` or
``done``. The rules:

* a new or empty folder becomes the tool's;
* a folder the tool owns for the same input, video name and weights is the same job: a rerun
  replaces its results (whatever the other options) and reuses its work folder;
* any other folder that is not empty (not made by the tool, or made for another input,
  video or weights) is refused before anything is written, naming the folder and the
  reason, unless ``--overwrite``.

Several videos in one call go to ``<output_dir>/<video>/``, each sub-folder under these rules
on its own; an ``<output_dir>`` that holds a one-video run is refused (:func:`check_batch_folder`).

The manifest is written first (``running``) and marked ``done`` last, so a run killed at any
point leaves a folder the same command takes up and finishes. Within the folder the tool
replaces only its own places (:func:`result_places`, :func:`work_places`); other files there
are never touched.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Sequence

from segment_video.frames import VideoInputError, work_dirs, write_json
from segment_video.overlay import STREAM_STEM, VIDEO_CODECS
from utils.io import part_path, read_json

MANIFEST = ".segment_video.json"
TOOL = "segment_video"
IDENTITY = ("input", "video", "weights")  # what makes two runs the same job


class OutputConflict(ValueError):
    """The output folder is not this run's to write; the message names it, why, and how to proceed."""


def result_places(out_dir: Path, name: str) -> list[Path]:
    """What a run of video ``name`` replaces: its masks and probabilities, and the overlay."""
    return [out_dir / "masks" / name, out_dir / "probs" / name, out_dir / "overlay",
            *(out_dir / f"overlay{ext}" for _, ext in VIDEO_CODECS),
            *(out_dir / f"{STREAM_STEM}{ext}" for _, ext in VIDEO_CODECS)]


def work_places(work_root: Path, name: str) -> list[Path]:
    """The tool's files and folders of video ``name`` in the work folder."""
    return [*work_dirs(work_root, name), work_root / f"{name}.source.json", work_root / f"{name}.flow.json",
            work_root / "online"]


def check_input_placement(path: Path, out_dir: Path) -> None:
    """Refuse an input that is the output folder or lies in a place the tool replaces."""
    inp, out = path.resolve(), out_dir.resolve()
    if inp == out:
        raise VideoInputError(f"--input {path} is the --output_dir {out_dir} itself; segment_video writes its results "
                              "there: choose an --output_dir outside the input (a subfolder of it is fine)")
    for place in [out / "masks", out / "probs", out / "overlay", out / "work",
                  *(out / f"overlay{ext}" for _, ext in VIDEO_CODECS)]:
        if inp == place or place in inp.parents:
            raise VideoInputError(f"--input {path} is inside --output_dir {out_dir} ({place}), where segment_video "
                                  "replaces its own results: copy the input elsewhere, or choose another --output_dir")


def check_batch_folder(out_dir: Path) -> None:
    """Refuse a many-video ``out_dir`` that holds a one-video run: its sub-folders would mix with that
    run's places. Each video's sub-folder then follows the rules above on its own."""
    if (out_dir / MANIFEST).exists() or part_path(out_dir / MANIFEST).exists():
        raise OutputConflict(f"refusing to write several videos into --output_dir {out_dir}: it holds a one-video "
                             f"segment_video run ({MANIFEST}); choose another --output_dir")


def remove(paths: Sequence[Path]) -> None:
    """Delete files and folders (a missing one is fine)."""
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _same_job(manifest: dict) -> dict:
    """The identity fields of a manifest; weights compare by content (sha1), not by path."""
    weights = manifest.get("weights") if isinstance(manifest.get("weights"), list) else []
    return {"input": manifest.get("input"), "video": manifest.get("video"),
            "weights": [w.get("sha1") if isinstance(w, dict) else w for w in weights]}


def _show(value: object) -> str:
    if isinstance(value, list):  # weights
        return " ".join(f"{w.get('path')} (sha1 {str(w.get('sha1'))[:10]})" if isinstance(w, dict) else str(w)
                        for w in value) or "none"
    return repr(value)


def _refusal(out_dir: Path, identity: dict) -> str | None:
    """Why this run may not write into the existing folder ``out_dir`` without ``--overwrite``; None when it may."""
    manifest = read_json(out_dir / MANIFEST)
    if manifest is not None and manifest.get("tool") == TOOL:
        theirs, ours = _same_job(manifest), _same_job(identity)
        other = [k for k in IDENTITY if theirs[k] != ours[k]]
        if not other:
            return None
        was = "; ".join(f"{k} {_show(manifest.get(k))} (this run: {_show(identity[k])})" for k in other)
        return f"it holds the results of another segment_video run: {was}"
    # The manifest's own part file is what a kill during the very first write leaves.
    entries = sorted(p.name for p in out_dir.iterdir() if p != part_path(out_dir / MANIFEST))
    if not entries:
        return None
    if (out_dir / MANIFEST).exists():
        return f"its {MANIFEST} is not a manifest of this version of segment_video"
    more = f" and {len(entries) - 1} more" if len(entries) > 1 else ""
    return f"it is not empty ({entries[0]}{more}) and was not made by segment_video"


def claim(out_dir: Path, identity: dict, options: dict, overwrite: bool = False) -> Path:
    """Make ``out_dir`` this run's (manifest state ``running``) and clear the results it replaces.

    ``identity``: the run's ``input`` (resolved path), ``video`` name and ``weights``
    (``[{"path", "sha1"}]``). Raises :class:`OutputConflict` before writing anything when the
    folder is not this job's and ``overwrite`` is off. Returns the manifest's path.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--output_dir {out_dir} is a file, not a folder")
    why = _refusal(out_dir, identity) if out_dir.exists() else None
    if why is not None and not overwrite:
        raise OutputConflict(f"refusing to write into --output_dir {out_dir}: {why}. Pass --overwrite to let this "
                             "run take the folder over (it replaces only its own masks, probabilities, overlay and "
                             "work files there), or choose another --output_dir")
    path = write_json(out_dir / MANIFEST, {"tool": TOOL, **identity, "options": options, "state": "running",
                                           "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    # Results of an earlier run (more frames, another overlay mode) must not mix with this run's.
    remove(result_places(out_dir, identity["video"]))
    return path


def finish(manifest: Path, frames: int) -> None:
    """Mark the run ``done``: from now on the folder holds its complete results."""
    data = read_json(manifest) or {}
    write_json(manifest, {**data, "state": "done", "frames": frames, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})


def clean_work(work_root: Path, name: str) -> list[Path]:
    """Delete the tool's work files of video ``name``, then the folders left empty; returns the files kept."""
    remove(work_places(work_root, name))
    images_dir, flows_dir = work_dirs(work_root, name)
    for d in (images_dir.parent, flows_dir.parent, images_dir.parents[1], images_dir.parents[2], work_root):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return sorted(p for p in work_root.rglob("*") if p.is_file()) if work_root.is_dir() else []
