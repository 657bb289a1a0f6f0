"""Faults around the files of inference, evaluation and data preparation: masks cut by a kill,
truncated or empty images, a fixed download after a conversion, and a random file given as weights."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.faults.common import (Case, KillAt, Outcome, error_names, last_error, run_script, synthetic_data,
                                 unreadable_outputs)
from utils.io import IN_PROGRESS

DATASET = "DAVIS-2016"  # synthetic DAVIS-2016/val: 4 videos x 20 frames, every frame labelled
TINY = ["--size", "64", "96", "--workers", "0", "--batch_size", "4", "--device", "cpu"]


def _checkpoint(tmp: Path) -> Path:
    """An untrained xxs model: enough for test.py to write masks."""
    import torch

    from models import build_model
    from utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    m = build_model("xxs")
    path = tmp / "xxs.pth"
    save_checkpoint(path, {"model": m.state_dict(), "model_config": m.config})
    return path


def _test(data: Path, weights: Path, save_dir: Path, **kill) -> subprocess.CompletedProcess:
    return run_script(["test.py", "--weights", str(weights), "--data_dir", str(data), "--test_datasets", DATASET,
                       "--save_dir", str(save_dir), "--save_prob", *TINY], **kill)


def _evaluate(data: Path, preds: Path) -> subprocess.CompletedProcess:
    return run_script(["scripts/evaluate.py", "--pred_dir", str(preds), "--data_dir", str(data), "--datasets",
                       DATASET, "--workers", "1", "--summary_only"])


def _expected_preds(data: Path, preds: Path) -> list[Path]:
    """Prediction paths evaluate.py reads: one per ground-truth label."""
    labels = data / DATASET / "val" / "labels"
    return [preds / DATASET / p.parent.name / p.name for p in sorted(labels.rglob("*.png"))]


def _named_failure(r: subprocess.CompletedProcess, *paths: Path) -> bool:
    """A failed run whose last error line names one of ``paths`` (not a bare traceback)."""
    return r.returncode != 0 and error_names(last_error(r.stderr), *paths)


# Kill points of test.py --save_prob: (n, before its rename) of its 160 files (80 masks, each followed
# by its probability map): right after the n-th file is in place (odd n: a frame's mask without its
# probability map), or with the n-th written to its hidden part file but not yet renamed (what a
# kill in the middle of a write leaves).
KILLS = ((3, False), (17, True), (41, False), (77, False), (121, True))


def kill_test_then_evaluate(tmp: Path) -> Outcome:
    """SIGKILL test.py --save_prob while it writes masks (5 kill points, each must land); each time
    count masks and probability maps under their final names that do not decode, and run
    evaluate.py (it must succeed, name the missing file, or refuse the unfinished folder naming its
    in-progress marker); then a full re-run (over the last kill's part file) and evaluate.py must succeed."""
    data = synthetic_data(tmp)
    weights = _checkpoint(tmp)
    lost = unnamed = kills = parts = 0
    save_dir = tmp / "masks"
    for target, before_rename in KILLS:
        shutil.rmtree(save_dir, ignore_errors=True)
        shutil.rmtree(tmp / "masks_prob", ignore_errors=True)
        # The run kills itself at its target-th PNG (masks/ and masks_prob/ are the PNGs it writes under tmp).
        r = _test(data, weights, save_dir, kill_at=KillAt(tmp, target, ".png", before_rename))
        kills += r.returncode == -9
        lost += len(unreadable_outputs(save_dir)) + len(unreadable_outputs(tmp / "masks_prob"))
        parts += sum(1 for d in (save_dir, tmp / "masks_prob") if d.exists() for _ in d.rglob(".*.part"))
        ev = _evaluate(data, save_dir)
        if ev.returncode != 0 and not _named_failure(ev, *_expected_preds(data, save_dir), save_dir / IN_PROGRESS):
            unnamed += 1
    r = _test(data, weights, save_dir)  # the user re-runs into the same folder
    ev = _evaluate(data, save_dir) if r.returncode == 0 else None
    ok = ev is not None and ev.returncode == 0
    lost += 0 if ok else 1
    return Outcome(f"{kills} kills: {lost} broken masks under final names ({parts} hidden part files); "
                   f"re-run + evaluate {'ok' if ok else 'FAILED: ' + last_error((ev or r).stderr)}",
                   lost=lost + len(KILLS) - kills, unnamed=unnamed)


def truncated_jpeg_in_test_set(tmp: Path) -> Outcome:
    """A test frame cut in half (OpenCV would decode it with a grey bottom half): test.py must refuse,
    naming the frame, rather than write a mask of the grey frame."""
    data = synthetic_data(tmp)
    weights = _checkpoint(tmp)
    bad = data / DATASET / "val" / "images" / "davis001" / "00007.jpg"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    r = _test(data, weights, tmp / "masks")
    mask = tmp / "masks" / DATASET / "davis001" / "00007.png"
    if r.returncode == 0:
        return Outcome(f"ran; mask of the grey frame written ({mask.exists()})", lost=1)
    named = _named_failure(r, bad)
    return Outcome(f"refused, {'names' if named else 'does NOT name'} {bad.relative_to(tmp)}: "
                   f"{last_error(r.stderr)[:90]}", lost=int(mask.exists()), unnamed=0 if named else 1)


def broken_prediction_in_evaluate(tmp: Path) -> Outcome:
    """A 0-byte prediction PNG, then a truncated one: evaluate.py must exit non-zero naming the file,
    without a traceback."""
    data = synthetic_data(tmp)
    preds = tmp / "preds" / DATASET
    shutil.copytree(data / DATASET / "val" / "labels", preds)  # perfect predictions
    bad = preds / "davis002" / "00005.png"
    raw = bad.read_bytes()
    results, unnamed, lost = [], 0, 0
    for how, content in (("0-byte", b""), ("truncated", raw[: len(raw) // 2])):
        bad.write_bytes(content)
        r = _evaluate(data, tmp / "preds")
        if r.returncode == 0:
            lost += 1  # scored a broken file
            results.append(f"{how}: scored")
            continue
        named = _named_failure(r, bad)
        unnamed += not named
        results.append(f"{how}: exit {r.returncode}, {'names' if named else 'does NOT name'} the file"
                       f"{', traceback' if 'Traceback' in r.stderr else ''}")
    return Outcome("; ".join(results), lost=lost, unnamed=unnamed)


def _davis_download(tmp: Path, data: Path) -> Path:
    """A DAVIS-2016 download (JPEGImages/Annotations/ImageSets) made from the synthetic val videos."""
    src = tmp / "DAVIS"
    val = data / DATASET / "val"
    names = sorted(p.name for p in (val / "images").iterdir())
    for name in names:
        shutil.copytree(val / "images" / name, src / "JPEGImages" / "480p" / name)
        shutil.copytree(val / "labels" / name, src / "Annotations" / "480p" / name)
    (src / "ImageSets" / "2016").mkdir(parents=True)
    (src / "ImageSets" / "2016" / "train.txt").write_text(names[0] + "\n")
    (src / "ImageSets" / "2016" / "val.txt").write_text("\n".join(names[1:]) + "\n")
    return src


def _prepare(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_script(["scripts/prepare_data.py", "--dataset", "DAVIS-2016", "--src", str(src), "--data_dir",
                       str(out), "--quiet", "--workers", "1", *extra])


def corrupt_jpeg_in_prepare_source(tmp: Path) -> Outcome:
    """A truncated JPEG in the download: prepare_data.py must refuse naming it (not link it for
    training to find later), and succeed once the file is restored."""
    src = _davis_download(tmp, synthetic_data(tmp))
    bad = src / "JPEGImages" / "480p" / "davis002" / "00004.jpg"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    r = _prepare(src, tmp / "out")
    if r.returncode == 0:
        return Outcome("converted the truncated frame silently", lost=1)
    named = _named_failure(r, bad)
    bad.write_bytes(raw)
    r2 = _prepare(src, tmp / "out")
    return Outcome(f"refused (exit {r.returncode}), {'names' if named else 'does NOT name'} the file"
                   f"{', traceback' if 'Traceback' in r.stderr else ''}; after the fix "
                   f"{'converted' if r2.returncode == 0 else 'FAILED: ' + last_error(r2.stderr)}",
                   lost=int(r2.returncode != 0), unnamed=0 if named else 1)


def stale_copy_after_source_fixed(tmp: Path) -> Outcome:
    """A frame that decodes but is wrong (grey bottom half) and a wrong label are converted with
    --copy; the download is then fixed and prepare_data.py re-run: the copies must follow."""
    import cv2
    import numpy as np

    src = _davis_download(tmp, synthetic_data(tmp))
    img = src / "JPEGImages" / "480p" / "davis001" / "00003.jpg"
    lab = src / "Annotations" / "480p" / "davis001" / "00003.png"
    good_img, good_lab = img.read_bytes(), lab.read_bytes()
    grey = cv2.imdecode(np.frombuffer(good_img, np.uint8), cv2.IMREAD_COLOR)
    grey[grey.shape[0] // 2:] = 128  # what a once-truncated frame re-saved by some tool looks like
    cv2.imwrite(str(img), grey)
    cv2.imwrite(str(lab), np.zeros((64, 96), np.uint8))
    out = tmp / "out"
    r = _prepare(src, out, "--copy")
    if r.returncode != 0:
        return Outcome(f"first conversion failed: {last_error(r.stderr)}", lost=1)
    img.write_bytes(good_img)  # the fixed download
    lab.write_bytes(good_lab)
    r = _prepare(src, out, "--copy")
    if r.returncode != 0:
        return Outcome(f"re-run failed: {last_error(r.stderr)}", lost=1)
    conv_img = out / DATASET / "val" / "images" / "davis001" / "00003.jpg"
    conv_lab = out / DATASET / "val" / "labels" / "davis001" / "00003.png"
    want = cv2.imdecode(np.frombuffer(good_lab, np.uint8), cv2.IMREAD_GRAYSCALE) > 0
    stale = int(conv_img.read_bytes() != good_img) + int(not np.array_equal(cv2.imread(str(conv_lab), 0) > 0, want))
    return Outcome(f"re-run: {2 - stale} of 2 fixed sources re-converted, {stale} stale copies kept", lost=stale)


def random_pth_as_weights(tmp: Path) -> Outcome:
    """Random files given as --weights to test.py: an int, a dict of ints, a 'model' of ints (random
    bytes were named before; tests/test_models.py covers them). Each must be refused naming the file."""
    import torch

    data = synthetic_data(tmp)
    files = {"int": 123, "dict_of_ints": {"a": 1, "b": 2}, "model_of_ints": {"model": {"w": 1}}}
    named = 0
    worst = ""
    for name, content in files.items():
        path = tmp / f"{name}.pth"
        torch.save(content, path)
        r = run_script(["test.py", "--weights", str(path), "--data_dir", str(data), "--test_datasets", DATASET,
                        "--save_dir", str(tmp / "masks"), *TINY])
        if _named_failure(r, path):
            named += 1
        else:
            worst = f"; {name}: {last_error(r.stderr)[:80] or 'exit 0'}"
    return Outcome(f"{named} of {len(files)} refused naming the file{worst}", unnamed=len(files) - named)


CASES = [
    Case("SIGKILL test.py --save_prob mid-write then evaluate", kill_test_then_evaluate),
    Case("truncated JPEG frame in test set", truncated_jpeg_in_test_set),
    Case("0-byte prediction PNG in evaluate", broken_prediction_in_evaluate),
    Case("corrupt JPEG in prepare_data source", corrupt_jpeg_in_prepare_source),
    Case("stale converted copy after the source is fixed", stale_copy_after_source_fixed),
    Case("random .pth as --weights", random_pth_as_weights),
]
