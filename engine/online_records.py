"""What the online stage's ``--resume`` may reuse: records keyed by everything that made the masks.

A finished video leaves ``<output_dir>/done/<dataset>/<video>.json``, naming

* the weights: sha1 of each checkpoint file (about 10 ms for 20 MB, so no size/mtime
  shortcut is needed: a retrained checkpoint at the same path is always told apart);
* every option of :class:`~engine.online_config.OnlineConfig` but those that cannot change a
  mask (:data:`NOT_IN_KEY`), plus the video's seed: a new option is part of the key unless it
  is added there;
* the inputs: name, size and mtime of each frame and flow image of the video;
* the save folder(s), as resolved absolute paths;
* each mask (and probability) file it wrote, with its size and mtime.

``--resume`` reuses a video only when the record matches on all of these and every file
it lists is still there unchanged (a file rewritten by another run has another mtime).
The transductive state file carries the same key (without the save folders: its masks are
always written afresh from it).

Planning a run is here too (:func:`plan_videos`, :func:`transductive_key`,
:func:`state_mismatches`): functions of the run folder, config, weights and videos, so that
they are tested without a network or a data loader; the tuner keeps the logging and the
gathering across ranks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from engine.online_config import OnlineConfig
from utils.io import atomic_write

if TYPE_CHECKING:
    from datasets.index import Video

FORMAT = 1

# The OnlineConfig fields that cannot change what a video's masks hold: every other field is
# part of the records' key (key_fields), so that an option added later re-tunes when it changes
# unless it is named here.
NOT_IN_KEY = (
    "weights",  # keyed by each checkpoint file's sha1 instead: a retrained file keeps its path
    "data_dir", "test_datasets", "videos",  # which videos: each has its own record, its frames in the inputs digest
    "save_dir", "prob_dir",  # where the masks go: keyed as resolved folders (save_roots), files by size and mtime
    "output_dir",  # where the records themselves are
    "workers", "device",  # how fast: data loading, and where the network runs (the previous key's choice)
    "resume", "no_tensorboard",  # whether records are read, and what is logged
    "preset",  # the name the options started from: the options themselves are keyed
)
# Key fields that only matter when the masks are written (not for a tuned transductive state).
OUTPUT_ONLY = ("predict_with", "flip", "save_prob", "scales", "write_temporal")


def key_fields(config_type: type = OnlineConfig) -> tuple[str, ...]:
    """The fields of ``config_type`` (an :class:`OnlineConfig`) that a record's options hold: all
    but :data:`NOT_IN_KEY`, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(config_type) if f.name not in NOT_IN_KEY)


def mask_options(config: OnlineConfig, **extra: Any) -> dict[str, Any]:
    """The mask-affecting options of ``config`` (:func:`key_fields`, plus ``extra``), as they read
    back from JSON."""
    opts = {k: getattr(config, k) for k in key_fields(type(config))}
    if not opts["amp"]:
        opts["amp_dtype"] = None  # unused without --amp: changing it must not re-tune anything
    opts.update(extra)
    return json.loads(json.dumps(opts))  # tuples become lists, as in a record read back


def inputs_digest(files: Iterable[str | Path]) -> str:
    """sha1 over (name, size, mtime) of each input file: changes when a frame or flow is replaced."""
    h = hashlib.sha1()
    for p in files:
        st = os.stat(p)
        h.update(f"{Path(p).name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def save_roots(save_dir: str | Path, prob_dir: str | Path | None) -> dict[str, str | None]:
    """The save folders as resolved absolute paths (``probs`` None when no probability maps)."""
    return {"masks": str(Path(save_dir).resolve()), "probs": str(Path(prob_dir).resolve()) if prob_dir else None}


def file_stats(root: str | Path, rels: Iterable[str | Path]) -> list[list]:
    """``[relative path, size, mtime_ns]`` of each file; ``None, None`` for one that is not there
    (a writer that keeps masks elsewhere): such a record is never reused."""
    out = []
    for rel in rels:
        try:
            st = os.stat(Path(root) / rel)
            out.append([str(rel), st.st_size, st.st_mtime_ns])
        except FileNotFoundError:
            out.append([str(rel), None, None])
    return out


def write_record(path: str | Path, key: dict[str, Any], files: dict[str, list[list]], timing: dict) -> None:
    """Write a finished video's record (atomically: a killed run leaves none or a whole one)."""
    rec = {"format": FORMAT, **key, "files": files, "timing": timing}
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(rec, indent=1)))


def read_record(path: str | Path) -> tuple[dict | None, str | None]:
    """``(record, None)``, or ``(None, why)`` when missing, unreadable or of an older format."""
    path = Path(path)
    if not path.is_file():
        return None, "no record"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"unreadable record ({type(e).__name__})"
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        return None, "record of an older version (does not name its weights and options)"
    return rec, None


def _option_changes(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def key_mismatches(rec: dict, key: dict[str, Any]) -> list[tuple[str, str]]:
    """``(reason, detail)`` for each part of ``key`` the record does not match (empty: matches).

    ``reason`` is the same phrase for the same cause in every record, so callers count
    videos per reason; ``detail`` shows one example.
    """
    out = []
    if "weights" in key:
        old = [w.get("sha1") for w in rec.get("weights") or []]
        new = [w["sha1"] for w in key["weights"]]
        if old != new:
            out.append(("weights changed", f"sha1 {','.join(s[:10] for s in old if s) or 'none'} -> "
                                           f"{','.join(s[:10] for s in new)}"))
    if "options" in key and rec.get("options") != key["options"]:
        out.append(("mask-affecting options changed", _option_changes(rec.get("options") or {}, key["options"])))
    if "inputs" in key and rec.get("inputs") != key["inputs"]:
        out.append(("input frames or flows changed", "name, size or mtime of a frame or flow image differs"))
    for name in ("videos", "world_size"):
        if name in key and rec.get(name) != key[name]:
            out.append((f"{name.replace('_', ' ')} changed", f"{rec.get(name)!r} -> {key[name]!r}"))
    if "save_dirs" in key and rec.get("save_dirs") != key["save_dirs"]:
        old, new = rec.get("save_dirs") or {}, key["save_dirs"]
        out.append(("save folder changed", "; ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in new
                                                     if old.get(k) != new.get(k))))
    return out


def file_mismatches(rec: dict) -> list[tuple[str, str]]:
    """``(reason, detail)`` when a listed mask/probability file is gone or was rewritten since."""
    out = []
    roots = rec.get("save_dirs") or {}
    for kind, entries in (rec.get("files") or {}).items():
        root = roots.get(kind)
        missing, changed = [], []
        for rel, size, mtime in entries:
            p = Path(root, rel)
            try:
                st = os.stat(p)
            except OSError:
                missing.append(p)
                continue
            if st.st_size != size or st.st_mtime_ns != mtime:
                changed.append(p)
        word = "masks" if kind == "masks" else "probability maps"
        if missing:
            out.append((f"{word} missing", f"{len(missing)} of {len(entries)}, e.g. {missing[0]}"))
        if changed:
            out.append((f"{word} rewritten by something else", f"{len(changed)} of {len(entries)}, e.g. {changed[0]}"))
    if not rec.get("files", {}).get("masks"):
        out.append(("record lists no masks", "nothing to reuse"))
    return out


def check_record(path: str | Path, key: dict[str, Any]) -> tuple[dict | None, list[tuple[str, str]]]:
    """``(record, [])`` when the record at ``path`` may be reused; ``(None, reasons)`` otherwise."""
    rec, why = read_record(path)
    if rec is None:
        return None, [(why, "")]
    reasons = key_mismatches(rec, key)
    if not reasons:  # files are only worth checking where they are supposed to be
        reasons = file_mismatches(rec)
    return (rec, []) if not reasons else (None, reasons)


def resume_messages(stale: list[tuple[str, str, str, str]], action: str = "re-tuning") -> list[str]:
    """One log line per reason from ``(reason, detail, record path, video)`` entries."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for reason, detail, record, video in stale:
        groups.setdefault(reason, []).append((detail, record, video))
    lines = []
    for reason, items in groups.items():
        n = len({v for _, _, v in items})
        videos = ", ".join(sorted({v for _, _, v in items})[:3]) + (", ..." if n > 3 else "")
        detail, record, _ = items[0]
        if reason == "no record":
            lines.append(f"not finished in an earlier run (no record in {Path(record).parent.parent}): "
                         f"tuning {n} video(s) ({videos})")
            continue
        more = f" and {len(items) - 1} more record(s)" if len(items) > 1 else ""
        lines.append(f"{reason}{f' ({detail})' if detail else ''} since {record}{more}: {action} {n} video(s) "
                     f"({videos})")
    return lines


# Planning a run -------------------------------------------------------------------------------
def record_path(run_dir: str | Path, dataset: str, video: str) -> Path:
    """Where a finished video's record is: ``<run_dir>/done/<dataset>/<video>.json``."""
    return Path(run_dir) / "done" / dataset / f"{video}.json"


def video_inputs(videos: Iterable[Video]) -> str:
    """:func:`inputs_digest` of these videos' frame and flow images, frame by frame."""
    return inputs_digest([f for v in videos for fr in v.frames for f in (v.image_paths[fr], v.flow_paths[fr])])


def video_key(video: tuple[str, str], weights: list[dict], config: OnlineConfig, video_seed: int, inputs: str,
              save_dirs: dict[str, str | None]) -> dict[str, Any]:
    """Everything that made one video's masks: its record's key. ``video`` is ``(dataset, name)``,
    ``weights`` :func:`~utils.io.weights_identity`'s list, ``inputs`` :func:`video_inputs`' digest,
    ``save_dirs`` :func:`save_roots`'."""
    return {"video": "/".join(video), "weights": weights, "options": mask_options(config, video_seed=video_seed),
            "inputs": inputs, "save_dirs": save_dirs}


def written_files(save_dirs: dict[str, str | None], names: Iterable[str | Path]) -> dict[str, list[list]]:
    """:func:`file_stats` of a video's mask files (``names`` relative to each save folder) in every
    folder it was written to, for its record."""
    names = list(names)
    return {kind: file_stats(root, names) for kind, root in save_dirs.items() if root is not None}


class Planned(NamedTuple):
    """A video to tune and write."""
    index: int  # its place in the sorted set: its seed is ``config.seed + index``
    video: tuple[str, str]  # (dataset, name)
    indices: list[int]  # its frames' indices in the data set, in temporal order
    key: dict[str, Any]  # its record's key (video_key), written once its masks are


class ResumePlan(NamedTuple):
    """What :func:`plan_videos` found: the videos to tune, and what the reused ones leave."""
    todo: list[Planned]
    reused: list[dict]  # the timing each reused record holds, so that the run's totals cover them
    stale: list[tuple[str, str, str, str]]  # (reason, detail, record path, video) for resume_messages


def _by_name(videos: Iterable[Video]) -> dict[tuple[str, str], Video]:
    return {(v.dataset, v.name): v for v in videos}


def plan_videos(run_dir: str | Path, config: OnlineConfig, weights: list[dict], save_dirs: dict[str, str | None],
                mine: Iterable[tuple[int, tuple[str, str], list[int]]], videos: Iterable[Video]) -> ResumePlan:
    """Split ``mine`` (``(index, (dataset, name), frame indices)`` per video, as
    :func:`~engine.inference.rank_videos` gives them) into the videos to tune and those whose
    records ``config.resume`` may reuse. ``videos``: the set's :class:`~datasets.index.Video`
    entries (their frame and flow files are part of each key)."""
    todo, reused, stale = [], [], []
    by_name = _by_name(videos)
    for index, video, indices in mine:
        key = video_key(video, weights, config, config.seed + index, video_inputs([by_name[video]]), save_dirs)
        if config.resume:
            path = record_path(run_dir, *video)
            rec, reasons = check_record(path, key)
            if rec is not None:
                reused.append(rec.get("timing") or {})
                continue
            stale += [(r, d, str(path), "/".join(video)) for r, d in reasons]
        todo.append(Planned(index, video, indices, key))
    return ResumePlan(todo, reused, stale)


def transductive_key(config: OnlineConfig, weights: list[dict], names: Iterable[tuple[str, str]],
                     videos: Iterable[Video], world_size: int) -> dict[str, Any]:
    """What the transductive state depends on: as a video's key, for the whole set (``names``:
    each video's ``(dataset, name)``; ``videos``: their :class:`~datasets.index.Video` entries),
    minus the save folders and :data:`OUTPUT_ONLY` options (its masks are always written afresh),
    plus the number of processes (the steps depend on how the frames are split between them)."""
    names, by_name = sorted(names), _by_name(videos)
    opts = {k: v for k, v in mask_options(config).items() if k not in OUTPUT_ONLY}
    return {"weights": weights, "options": opts, "inputs": video_inputs(by_name[n] for n in names),
            "videos": ["/".join(n) for n in names], "world_size": world_size}


def state_mismatches(state: dict, key: dict[str, Any]) -> list[tuple[str, str]]:
    """``(reason, detail)`` for each way a saved transductive ``state`` (the checkpoint's dict)
    was tuned under other conditions than ``key`` (empty: it may be continued)."""
    if "resume_key" not in state:
        return [("state of an older version (does not name its weights and options)", "")]
    return key_mismatches(state["resume_key"], key)
