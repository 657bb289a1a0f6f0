"""Faults around scripts/segment_video.py: a folder of the user's as its output folder, --clean_work, an input
inside its own output folder, bad weights, and a run killed mid-way."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.faults.common import (Case, KillAt, Outcome, error_names, last_error, lost_files, run_script, snapshot,
                                 synthetic_data, unreadable_outputs)

FRAMES = 20  # davis000 of the synthetic DAVIS-2016/val
# The PyTorch network (--runtime auto would export it to ONNX Runtime first, once per case and the
# dearest step of a run here; no case is about the runtime, and tests/test_onnx_runtime.py covers it).
TINY = ["--size", "64", "96", "--workers", "0", "--batch_size", "2", "--device", "cpu", "--runtime", "torch"]


def _setup(tmp: Path) -> tuple[Path, Path]:
    """(frames folder of one synthetic video, tiny checkpoint)."""
    import torch

    from models import build_model, model_config
    from utils.checkpoint import save_checkpoint

    frames = synthetic_data(tmp) / "DAVIS-2016" / "val" / "images" / "davis000"
    ckpt = tmp / "xxs.pth"
    torch.manual_seed(0)
    save_checkpoint(ckpt, {"model": build_model("xxs").state_dict(), "model_config": model_config("xxs")})
    return frames, ckpt


def _segment(frames: Path, ckpt: Path, out: Path, *extra: str, **kill) -> subprocess.CompletedProcess:
    return run_script(["scripts/segment_video.py", "--input", str(frames), "--weights", str(ckpt), "--output_dir",
                       str(out), *TINY, *extra], **kill)


def _png(path: Path, value: int) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 96), value, np.uint8)).save(path)


def user_files_in_output(tmp: Path) -> Outcome:
    """The user's own overlay.mp4, a hand-made mask and notes in the output folder: refuse, naming the folder."""
    frames, ckpt = _setup(tmp)
    out = tmp / "out"
    out.mkdir()
    (out / "overlay.mp4").write_bytes(b"the user's own video " * 100)
    _png(out / "masks" / "davis000" / "00000.png", 255)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    r = _segment(frames, ckpt, out)
    lost = lost_files(before, snapshot(out))
    if r.returncode == 0:
        return Outcome(f"ran over the user's files; {len(lost)} changed or lost", lost=len(lost))
    named = f"--output_dir {out}" in last_error(r.stderr)
    said = "--overwrite" in r.stderr
    return Outcome(f"refused, {'names' if named else 'does NOT name'} the folder"
                   f"{', suggests --overwrite' if said else ''}; {len(lost)} user files changed",
                   lost=len(lost), unnamed=0 if named else 1)


def clean_work_with_user_file(tmp: Path) -> Outcome:
    """--clean_work when the user keeps a file of theirs in <output_dir>/work: only the tool's files go."""
    frames, ckpt = _setup(tmp)
    out = tmp / "out"
    r = _segment(frames, ckpt, out, "--pipeline", "files")
    if r.returncode != 0:
        return Outcome(f"first run failed: {last_error(r.stderr)}", lost=1)
    notes = out / "work" / "notes.txt"
    notes.write_text("my notes about this video")
    before = snapshot(out / "work")
    r = _segment(frames, ckpt, out, "--pipeline", "files", "--clean_work")
    lost = [f for f in lost_files(before, snapshot(out / "work")) if f == "notes.txt"]
    if r.returncode != 0:
        return Outcome(f"failed: {last_error(r.stderr)}", lost=len(lost), unnamed=0 if "error:" in r.stderr else 1)
    left = sorted(str(p.relative_to(out)) for p in (out / "work").rglob("*")) if (out / "work").exists() else []
    masks = len(list((out / "masks" / "davis000").glob("*.png")))
    return Outcome(f"kept {', '.join(left) or 'nothing'} in work/; {masks} masks; {len(lost)} user files lost",
                   lost=len(lost))


def input_inside_output(tmp: Path) -> Outcome:
    """--input <output_dir>/overlay (frames of an earlier --overlay frames run): refuse, naming both paths."""
    frames, ckpt = _setup(tmp)
    out = tmp / "out"
    r = _segment(frames, ckpt, out, "--overlay", "frames", "--max_frames", "6")
    if r.returncode != 0:
        return Outcome(f"first run failed: {last_error(r.stderr)}", lost=1)
    inp = out / "overlay"
    before = snapshot(inp)
    r = _segment(inp, ckpt, out, "--overlay", "frames")
    lost = lost_files(before, snapshot(inp))
    if r.returncode == 0:
        return Outcome(f"segmented its own overlay into itself; {len(lost)} input frames changed", lost=len(lost))
    err = last_error(r.stderr)
    both = f"--input {inp}" in err and f"--output_dir {out}" in err  # both, said for what they are
    return Outcome(f"refused, {'names' if both else 'does NOT name'} --input and --output_dir; "
                   f"{len(lost)} input frames changed", lost=len(lost), unnamed=0 if both else 1)


def bad_weights(tmp: Path) -> Outcome:
    """A --weights that is no checkpoint: fail before extracting frames or computing flow, naming it."""
    frames, _ = _setup(tmp)
    bad = tmp / "model_final.pth"
    bad.write_bytes(b"<html>download quota exceeded</html>")
    out = tmp / "out"
    r = _segment(frames, bad, out, "--pipeline", "files")
    if r.returncode == 0:
        return Outcome("ran with a bad checkpoint", lost=1)
    flows = out / "work" / "custom" / "val" / "flows"
    n_flows = sum(1 for _ in flows.rglob("*.jpg")) if flows.exists() else 0
    wrote = sum(1 for p in out.rglob("*") if p.is_file()) if out.exists() else 0
    named = error_names(last_error(r.stderr), bad)
    when = "before any flow" if n_flows == 0 else f"after {n_flows} flow images"
    return Outcome(f"refused {when} ({wrote} files written), {'names' if named else 'does NOT name'} {bad.name}",
                   unnamed=0 if named else 1)


def _run_state(out: Path) -> str:
    """The manifest's state (``running`` until a run is complete), or why there is none."""
    manifest = out / ".segment_video.json"
    if not manifest.is_file():
        return "no manifest"
    try:
        return str(json.loads(manifest.read_text()).get("state"))
    except ValueError:
        return "unreadable manifest"


def _state(out: Path) -> str:
    def count(d: Path, pattern: str) -> int:
        return sum(1 for p in d.glob(pattern) if not p.name.startswith(".")) if d.exists() else 0
    split = out / "work" / "custom" / "val"
    return (f"{count(split / 'images' / 'davis000', '*.jpg')} frames, {count(split / 'flows' / 'davis000', '*.jpg')} "
            f"flows, {count(out / 'masks' / 'davis000', '*.png')} masks")


def killed_then_rerun(tmp: Path) -> Outcome:
    """SIGKILL once the third flow image is written, again once the third mask is (the rerun's own),
    then a full rerun: after each kill the manifest must say the run is incomplete, and the same
    command must finish it. Each kill must land (the run killing itself at that write: the flow
    stage lasts milliseconds here, too short for a kill from outside on a loaded machine)."""
    frames, ckpt = _setup(tmp)
    out = tmp / "out"
    args = ("--pipeline", "files", "--batch_size", "1", "--overlay", "frames", "--save_prob")
    flows = out / "work" / "custom" / "val" / "flows" / "davis000"
    masks = out / "masks" / "davis000"
    kills, not_marked = [], 0
    for at in (KillAt(flows, 3, ".jpg"), KillAt(masks, 3, ".png")):
        r = _segment(frames, ckpt, out, *args, kill_at=at)
        if r.returncode == -9:
            kills.append(_state(out))
            not_marked += _run_state(out) != "running"
        elif r.returncode != 0:
            return Outcome(f"run failed: {last_error(r.stderr)}", lost=1, unnamed=0 if "error:" in r.stderr else 1)
    r = _segment(frames, ckpt, out, *args)
    if r.returncode != 0:
        return Outcome(f"rerun failed: {last_error(r.stderr)}", lost=1, unnamed=0 if "error:" in r.stderr else 1)
    n = sum(1 for p in masks.glob("*.png") if not p.name.startswith("."))
    bad = [*unreadable_outputs(out), *unreadable_outputs(out, "*.jpg")]
    empty = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".") and p.stat().st_size == 0]
    parts = [p for p in out.rglob(".*.part")]
    state = _run_state(out)
    how = "; ".join(f"killed at {s}" for s in kills) or "NOT killed"
    return Outcome(f"{how}; {len(kills) - not_marked} of {len(kills)} kills left the manifest 'running'; rerun: "
                   f"{n}/{FRAMES} masks, {len(bad)} unreadable, {len(empty)} empty, {len(parts)} part files left, "
                   f"manifest '{state}'",
                   lost=(FRAMES - n) + len(bad) + len(empty) + not_marked + (state != "done") + (2 - len(kills)))


CASES = [
    Case("segment_video into a folder of the user's", user_files_in_output),
    Case("--clean_work with user file in work/", clean_work_with_user_file),
    Case("--input inside its own output folder", input_inside_output),
    Case("bad --weights (flow not started)", bad_weights),
    Case("SIGKILL mid-run then rerun", killed_then_rerun),
]
