"""Faults around ``online_finetuning.py --resume``: a new save folder, retrained weights at the
same path, and the paper script's fixed folders rerun after retraining.

A mask is "lost" when it is missing, does not decode, or differs from what a fresh run with
the same weights and options writes (a stale mask from an earlier model).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.faults.common import (ROOT, Case, KillAt, Outcome, last_error, run_script, synthetic_data,
                                 unreadable_outputs)

VIDEOS = ["davis000", "davis001"]  # of the synthetic DAVIS-2016/val, cut to their first FRAMES frames
FRAMES = 10
N_MASKS = len(VIDEOS) * FRAMES
TINY = ["--test_datasets", "DAVIS-2016", "--videos", *VIDEOS, "--size", "64", "96", "--workers", "0",
        "--batch_size", "2", "--epochs", "1", "--lr", "1e-4", "--tta", "identity", "flip", "--device", "cpu",
        "--no_tensorboard"]


def _data(tmp: Path) -> Path:
    """The synthetic data with VIDEOS cut to FRAMES frames (of 20): the tuning and the masks take
    half the time, and nothing a case checks needs more frames (the kill still lands mid-video)."""
    data = synthetic_data(tmp)
    val = data / "DAVIS-2016" / "val"
    for kind in ("images", "flows", "labels"):
        for video in VIDEOS:
            for p in sorted((val / kind / video).iterdir())[FRAMES:]:
                p.unlink()
    return data


def _weights(path: Path, seed: int) -> Path:
    """An untrained xxs model; another ``seed`` stands for a retrained checkpoint."""
    import torch

    from models import build_model
    from utils.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    m = build_model("xxs")
    save_checkpoint(path, {"model": m.state_dict(), "model_config": m.config})
    return path


def _online(data: Path, weights: Path, save: Path, run: Path, *extra: str, **kill) -> subprocess.CompletedProcess:
    return run_script(["online_finetuning.py", "--weights", str(weights), "--data_dir", str(data), *TINY,
                       "--save_dir", str(save), "--output_dir", str(run), *extra], **kill)


def _pngs(folder: Path) -> dict[str, bytes]:
    """Visible PNGs under ``folder`` by relative path (decoded pixels, so equal masks compare equal)."""
    import numpy as np
    from PIL import Image

    out = {}
    for p in sorted(folder.rglob("*.png")) if folder.exists() else []:
        if not p.name.startswith("."):
            try:
                out[str(p.relative_to(folder))] = np.asarray(Image.open(p)).tobytes()
            except Exception:
                out[str(p.relative_to(folder))] = b"unreadable"
    return out


def _wrong(got: Path, ref: Path) -> tuple[int, int, int]:
    """(missing or unreadable, stale: differ from the reference, reference count)."""
    g, r = _pngs(got), _pngs(ref)
    missing = sum(1 for k in r if k not in g) + len(unreadable_outputs(got))
    stale = sum(1 for k in r if k in g and g[k] != r[k] and g[k] != b"unreadable")
    return missing, stale, len(r)


def _failed(r: subprocess.CompletedProcess) -> Outcome | None:
    if r.returncode != 0:
        return Outcome(f"run failed: {last_error(r.stderr)}", lost=N_MASKS)
    return None


def resume_into_new_save_dir(tmp: Path) -> Outcome:
    """Finish a run, then --resume it with another --save_dir: the new folder must get every mask
    (before: every video was skipped, nothing written, exit 0)."""
    data, w = _data(tmp), _weights(tmp / "w.pth", 0)
    for save in ("m1", "m2"):
        r = _online(data, w, tmp / save, tmp / "run", *(["--resume"] if save == "m2" else []))
        if bad := _failed(r):
            return bad
    missing, stale, n = _wrong(tmp / "m2", tmp / "m1")
    said = "save folder changed" in r.stderr
    did = "re-tuned into the new folder" if missing < n else "NOTHING written to the new folder"
    return Outcome(f"{did}: {n - missing}/{n} masks, {stale} differ from the first run"
                   f"{'; log names the reason' if said else '; NO reason logged'}",
                   lost=missing + stale + (n != N_MASKS), unnamed=0 if said else 1)


def resume_after_retraining(tmp: Path) -> Outcome:
    """Run, retrain (other weights at the same checkpoint path), --resume the same command:
    every mask must be the new model's (before: the old model's masks were kept)."""
    data, w = _data(tmp), _weights(tmp / "checkpoint_last.pth", 0)
    if bad := _failed(_online(data, w, tmp / "m", tmp / "run")):
        return bad
    _weights(w, 1)
    r = _online(data, w, tmp / "m", tmp / "run", "--resume")
    if bad := _failed(r):
        return bad
    if bad := _failed(_online(data, w, tmp / "ref", tmp / "ref_run")):
        return bad
    missing, stale, n = _wrong(tmp / "m", tmp / "ref")
    said = "weights changed" in r.stderr
    return Outcome(f"{'re-tuned' if stale == 0 else 'kept old masks'}; {stale} stale masks, {missing} missing of {n}"
                   f"{'; log says weights changed' if said else '; NO reason logged'}",
                   lost=missing + stale + (n != N_MASKS), unnamed=0 if said else 1)


def kill_mid_video_then_resume(tmp: Path) -> Outcome:
    """SIGKILL once the second video's sixth mask is written (of 10, after the first video was
    re-tuned and recorded), after a first run with other weights filled the folder; then --resume."""
    data, w = _data(tmp), _weights(tmp / "w.pth", 0)
    if bad := _failed(_online(data, w, tmp / "m", tmp / "run")):
        return bad
    _weights(w, 1)
    # The run kills itself at the sixth mask it writes for the second video (the first run's are
    # already there: a count of the folder would not tell them apart).
    k = _online(data, w, tmp / "m", tmp / "run", "--resume",
                kill_at=KillAt(tmp / "m" / "DAVIS-2016" / VIDEOS[1], 6, ".png"))
    killed = k.returncode == -9
    r = _online(data, w, tmp / "m", tmp / "run", "--resume")
    if bad := _failed(r):
        return bad
    if bad := _failed(_online(data, w, tmp / "ref", tmp / "ref_run")):
        return bad
    missing, stale, n = _wrong(tmp / "m", tmp / "ref")
    reused = "reused 1 finished earlier" in r.stderr
    return Outcome(f"{'killed mid-video' if killed else 'NOT killed'}; resume "
                   f"{'reused the finished video' if reused else 'did not report reusing the finished video'}; "
                   f"{n - missing}/{n} masks decode, {stale} stale",
                   lost=missing + stale + (n != N_MASKS) + (not killed))


def _paper_online(tmp: Path, data: Path) -> subprocess.CompletedProcess:
    """``scripts/paper/4_online.sh`` as the authors' pipeline runs it, one process, tiny settings."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "LAUNCH": "python",
           "DATA_DIR": str(data), "RUNS": str(tmp / "runs"), "OUT": str(tmp / "outputs")}
    return subprocess.run(["bash", "scripts/paper/4_online.sh", *TINY], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def paper_script_rerun(tmp: Path) -> Outcome:
    """Run 4_online.sh (fixed folders, --resume), retrain stage 2 (new checkpoint_last.pth), run it
    again: masks and probability maps must be the new model's; a third run must reuse everything."""
    data = _data(tmp)
    w = _weights(tmp / "runs" / "stage2" / "checkpoint_last.pth", 0)
    if bad := _failed(_paper_online(tmp, data)):
        return bad
    _weights(w, 1)
    r = _paper_online(tmp, data)
    if bad := _failed(r):
        return bad
    if bad := _failed(_online(data, w, tmp / "ref", tmp / "ref_run", "--save_prob")):
        return bad
    out = tmp / "outputs"
    m_missing, m_stale, n = _wrong(out / "online", tmp / "ref")
    p_missing, p_stale, n_p = _wrong(out / "online_prob", tmp / "ref_prob")
    again = _paper_online(tmp, data)
    all_done = again.returncode == 0 and "were already done" in again.stderr
    return Outcome(f"rerun after retraining: {m_stale + p_stale} stale, {m_missing + p_missing} missing of {n + n_p} "
                   f"masks+probs; third run {'reused all (summary line)' if all_done else 'DID NOT say all done'}",
                   lost=m_missing + m_stale + p_missing + p_stale + (n != N_MASKS) + (n_p != N_MASKS),
                   unnamed=0 if all_done else 1)


CASES = [
    Case("online --resume into new --save_dir", resume_into_new_save_dir),
    Case("online --resume after retraining (new weights)", resume_after_retraining),
    Case("SIGKILL online stage mid-video then --resume", kill_mid_video_then_resume),
    Case("authors-style rerun of 4_online.sh args", paper_script_rerun),
]
