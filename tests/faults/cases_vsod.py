"""Faults around the VSOD test sets: interrupted conversion, wrong download folders, missing results."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.faults.common import Case, KillAt, Outcome, error_names, last_error, run_script, unreadable_outputs

SIZE = 32


def _box(i: int) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    y, x = (3 * i) % (SIZE - 8), (5 * i) % (SIZE - 8)
    m[y:y + 8, x:x + 8] = True
    return m


def _davsod(root: Path, subset: str = "Easy-35", n_seq: int = 3, n_frames: int = 150) -> Path:
    """A DAVSOD release folder ``DAVSOD/Test Set/<subset>/<seq>/{Imgs,GT_object_level}`` (PNG frames)."""
    rng = np.random.default_rng(0)
    for s in range(n_seq):
        seq = root / "DAVSOD" / "Test Set" / subset / f"select_{600 + s:04d}"
        (seq / "Imgs").mkdir(parents=True)
        (seq / "GT_object_level").mkdir()
        for i in range(n_frames):
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(seq / "Imgs" / f"{i:04d}.png")
            Image.fromarray(_box(i).astype(np.uint8) * 255).save(seq / "GT_object_level" / f"{i:04d}.png")
    return root / "DAVSOD"


def _prepare(dataset: str, src: Path, data: Path) -> list[str]:
    return ["scripts/prepare_data.py", "--dataset", dataset, "--src", str(src), "--data_dir", str(data),
            "--quiet", "--workers", "1"]


def _wrong_labels(data: Path) -> int:
    """Frames and labels that are unreadable, and labels that are not the mask of their frame."""
    bad = len(unreadable_outputs(data)) + len(unreadable_outputs(data, "*.jpg"))
    for p in (data / "DAVSOD/val/labels").rglob("*.png"):
        if p.name.startswith("."):
            continue
        try:
            if not np.array_equal(np.array(Image.open(p)) == 255, _box(int(p.stem))):
                bad += 1
        except OSError:
            pass  # already counted as unreadable
    return bad


def killed_conversion(tmp: Path) -> Outcome:
    """SIGKILL prepare_data.py --dataset DAVSOD once it has written 20 labels (the kill must land),
    then run it again."""
    src, data = _davsod(tmp), tmp / "data"
    labels = data / "DAVSOD/val/labels"
    r = run_script(_prepare("DAVSOD", src, data), kill_at=KillAt(labels, 20, ".png"))
    killed = r.returncode == -9
    r = run_script(_prepare("DAVSOD", src, data))
    if r.returncode != 0:
        return Outcome(f"rerun failed: {last_error(r.stderr)}", lost=1, unnamed=0 if "error:" in r.stderr else 1)
    n = sum(1 for p in labels.rglob("*.png") if not p.name.startswith("."))
    bad = _wrong_labels(data) + (3 * 150 - n)
    how = "killed mid-run" if killed else "NOT killed"
    return Outcome(f"{how}; rerun resumed, {n} labels, {bad} missing/unreadable/wrong", lost=bad + (not killed))


def wrong_subset_folder(tmp: Path) -> Outcome:
    """--dataset DAVSOD (Easy-35) given the Normal-25 folder: must refuse, naming it, writing nothing."""
    src = _davsod(tmp, "Normal-25", n_seq=1, n_frames=3) / "Test Set" / "Normal-25"
    data = tmp / "data"
    r = run_script(_prepare("DAVSOD", src, data))
    wrote = sum(1 for p in data.rglob("*") if p.is_file()) if data.exists() else 0
    if r.returncode == 0:
        return Outcome(f"converted Normal-25 as DAVSOD ({wrote} files)", lost=max(wrote, 1))
    named = error_names(r.stderr, src)
    return Outcome(f"refused, {'names' if named else 'does NOT name'} {src.name}/ and says DAVSOD-Normal-25"
                   if "DAVSOD-Normal-25" in r.stderr else f"refused: {last_error(r.stderr)}",
                   lost=wrote, unnamed=0 if named else 1)


def visal_without_ground_truth(tmp: Path) -> Outcome:
    """ViSal sequences whose ground-truth folders were not unpacked: must refuse, naming a sequence."""
    src = tmp / "ViSal"
    for seq in ("aeroplane", "bird"):
        (src / seq / "Imgs").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(src / seq / "Imgs" / f"{seq}_{i:05d}.jpg")
    r = run_script(_prepare("ViSal", src, tmp / "data"))
    if r.returncode == 0:
        return Outcome("converted a ViSal copy with no ground truth", lost=1)
    named = error_names(r.stderr, src / "aeroplane", src / "bird")
    return Outcome(f"refused: {'names' if named else 'does NOT name'} the sequence folder",
                   unnamed=0 if named else 1)


def missing_results_json(tmp: Path) -> Outcome:
    """saliency_table.py pointed at an evaluation that never ran: must fail naming the file."""
    missing = tmp / "eval_online" / "results.json"
    r = run_script(["scripts/paper/saliency_table.py", "--datasets", "DAVSOD", "--results", f"online={missing}"])
    if r.returncode == 0:
        return Outcome("printed a table without results", lost=1)
    named = error_names(r.stderr, missing)
    return Outcome(f"refused, {'names' if named else 'does NOT name'} eval_online/results.json",
                   unnamed=0 if named else 1)


CASES = [
    Case("DAVSOD conversion SIGKILLed, rerun", killed_conversion),
    Case("DAVSOD given the Normal-25 folder", wrong_subset_folder),
    Case("ViSal copy without ground-truth folders", visal_without_ground_truth),
    Case("saliency table without results.json", missing_results_json),
]
