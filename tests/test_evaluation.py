"""Tests of the evaluation toolbox: hand-computed cases, file layouts, saliency, real DAVIS data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import distance_transform_edt

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from evaluation import (  # noqa: E402
    MissingDatasetError,
    MissingPredictionError,
    SizeMismatchError,
    boundary_f,
    boundary_map,
    boundary_precision_recall,
    category_of,
    decay_bins,
    disk,
    evaluate_dataset,
    evaluate_datasets,
    evaluate_sequence_davis,
    evaluate_sequence_saliency,
    evaluate_sequence_sparse,
    format_table,
    jaccard,
    read_gt,
    read_pred,
    read_saliency_gt,
    sequence_stats,
    tolerance_radius,
    write_csv,
    write_json,
)


def square(shape: tuple[int, int], y0: int, x0: int, side: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


def save_png(path: Path, arr: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        im = Image.fromarray(arr.astype(np.uint8), mode="P")
        # Index 0 deliberately not black: binarisation must use the index, not the colour.
        im.putpalette([255, 255, 255, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 253)
        im.save(path)
    else:
        Image.fromarray(arr.astype(np.uint8)).save(path)


# --------------------------------------------------------------------------- J and F by hand


def test_identical_masks():
    m = square((100, 100), 30, 30, 40)
    assert jaccard(m, m) == 1.0
    assert boundary_f(m, m) == 1.0


def test_disjoint_masks_far_apart():
    a, b = square((100, 100), 5, 5, 20), square((100, 100), 70, 70, 20)
    assert jaccard(a, b) == 0.0
    assert boundary_f(a, b) == 0.0


def test_empty_prediction_nonempty_gt():
    gt, pred = square((100, 100), 30, 30, 40), np.zeros((100, 100), bool)
    assert jaccard(pred, gt) == 0.0
    assert boundary_precision_recall(pred, gt) == (1.0, 0.0)
    assert boundary_f(pred, gt) == 0.0


def test_both_empty():
    z = np.zeros((100, 100), bool)
    assert jaccard(z, z) == 1.0
    assert boundary_precision_recall(z, z) == (1.0, 1.0)
    assert boundary_f(z, z) == 1.0


def test_empty_gt_nonempty_prediction():
    pred, gt = square((100, 100), 30, 30, 40), np.zeros((100, 100), bool)
    assert jaccard(pred, gt) == 0.0
    assert boundary_precision_recall(pred, gt) == (0.0, 1.0)
    assert boundary_f(pred, gt) == 0.0


def test_non_bool_inputs_use_nonzero():
    gt = square((20, 20), 5, 5, 10).astype(np.uint8) * 255
    pred = square((20, 20), 5, 5, 10).astype(np.uint8)  # 0/1
    assert jaccard(pred, gt) == 1.0


def test_tolerance_radius():
    assert tolerance_radius((480, 854)) == 8
    assert tolerance_radius((100, 100)) == 2  # ceil(0.008 * 141.42) = ceil(1.13)


def test_disk_kernel():
    expected = np.array(
        [[0, 0, 1, 0, 0],
         [0, 1, 1, 1, 0],
         [1, 1, 1, 1, 1],
         [0, 1, 1, 1, 0],
         [0, 0, 1, 0, 0]], np.uint8)
    np.testing.assert_array_equal(disk(2), expected)


def test_boundary_map_rule():
    m = np.zeros((5, 5), bool)
    m[1:3, 1:3] = True
    expected = np.array(
        [[1, 1, 1, 0, 0],   # row 0: south / south-east neighbours are foreground
         [1, 0, 1, 0, 0],   # (1,2) differs from its east neighbour
         [1, 1, 1, 0, 0],   # (2,0) differs from east; (2,1), (2,2) from south
         [0, 0, 0, 0, 0],
         [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(boundary_map(m), expected)
    # Last column / row compare only with the neighbours that exist: a full mask has no boundary,
    # an object touching the right edge has none along that edge.
    assert not boundary_map(np.ones((6, 7), bool)).any()
    edge = np.zeros((4, 4), bool)
    edge[:, 2:] = True
    np.testing.assert_array_equal(boundary_map(edge), np.tile([0, 1, 0, 0], (4, 1)).astype(bool))


def test_square_boundary_has_4_side_pixels():
    assert np.count_nonzero(boundary_map(square((100, 100), 30, 30, 40))) == 4 * 40


@pytest.mark.parametrize("shift", [1, 2, 3, 5, 10])
def test_shifted_square(shift):
    side = 40
    gt = square((100, 100), 30, 30, side)
    pred = square((100, 100), 30, 30 + shift, side)
    assert jaccard(pred, gt) == pytest.approx((side - shift) / (side + shift))
    f = boundary_f(pred, gt)
    if shift <= 2:  # tolerance radius at 100x100
        assert f == 1.0
    else:
        assert f < 1.0


def test_shift_three_hand_computed():
    # Square side 40 at rows/cols 30..69, shifted 3 px right, r = 2. Of the 160 predicted
    # boundary pixels, 40 (top) + 5 (left) + 39 (bottom) + 0 (right) lie within 2 px of the
    # GT boundary; by the same count 84 of the GT ones are matched: P = R = F = 84/160.
    gt = square((100, 100), 30, 30, 40)
    pred = square((100, 100), 30, 33, 40)
    p, r = boundary_precision_recall(pred, gt)
    assert p == pytest.approx(84 / 160)
    assert r == pytest.approx(84 / 160)
    assert boundary_f(pred, gt) == pytest.approx(84 / 160)


def test_size_mismatch_in_memory():
    with pytest.raises(ValueError):
        jaccard(np.zeros((10, 10), bool), np.zeros((10, 11), bool))


# --------------------------------------------------------------------------- statistics


def test_sequence_stats_hand_computed():
    stats = sequence_stats([0.9, 0.8, 0.4, 0.6, 0.2])
    assert stats["mean"] == pytest.approx(0.58)
    assert stats["recall"] == pytest.approx(0.6)  # 0.9, 0.8, 0.6 exceed 0.5
    # N=5: ids 1,2,3,4,5 -> first bin frames 1-2, last bin frames 4-5.
    assert stats["decay"] == pytest.approx((0.9 + 0.8) / 2 - (0.6 + 0.2) / 2)


def test_recall_is_strictly_greater_than_half():
    assert sequence_stats([0.5, 0.5, 0.51, 0.49])["recall"] == pytest.approx(0.25)


def test_decay_ties_round_up():
    # N=47: linspace(1, 47, 5) = 1, 12.5, 24, 35.5, 47 -> ids 1, 13, 24, 36, 47.
    bins = decay_bins(47)
    assert [(b.start, b.stop) for b in bins] == [(0, 13), (12, 24), (23, 36), (35, 47)]
    stats = sequence_stats(np.arange(47, dtype=float))
    assert stats["decay"] == pytest.approx(np.mean(np.arange(0, 13)) - np.mean(np.arange(35, 47)))


def test_decay_long_sequence_no_overflow():
    n = 300  # ids 1, 76, 151, 225, 300
    x = np.arange(n, dtype=float)
    assert [(b.start, b.stop) for b in decay_bins(n)] == [(0, 76), (75, 151), (150, 225), (224, 300)]
    assert sequence_stats(x)["decay"] == pytest.approx(np.mean(x[:76]) - np.mean(x[224:]))


def test_first_last_skipping():
    gts = [square((50, 50), 10, 10, 20)] * 5
    preds = [np.zeros((50, 50), bool)] + gts[1:4] + [np.zeros((50, 50), bool)]
    res = evaluate_sequence_davis(preds, gts, name="toy")
    assert res.frames == ["00001", "00002", "00003"]
    assert res.metrics["J_mean"] == 1.0 and res.metrics["F_mean"] == 1.0
    assert res.metrics["JF_mean"] == 1.0
    res_all = evaluate_sequence_davis(preds, gts, skip_first_last=False)
    assert len(res_all.frames) == 5
    assert res_all.metrics["J_mean"] == pytest.approx(0.6)
    assert res_all.metrics["J_recall"] == pytest.approx(0.6)
    assert res_all.metrics["J_decay"] == pytest.approx(0.5 - 0.5)  # bins {1,2} and {4,5}


def test_two_frame_sequence_falls_back_to_all_frames():
    gts = [square((30, 30), 5, 5, 10)] * 2
    res = evaluate_sequence_davis([gts[0], np.zeros((30, 30), bool)], gts)
    assert res.metrics["J_mean"] == pytest.approx(0.5)


def test_sparse_in_memory():
    gt = square((20, 20), 4, 4, 4)
    half = np.zeros_like(gt)
    half[4:8, 4:6] = True
    res = evaluate_sequence_sparse([gt, half], [gt, gt], name="x")
    assert res.metrics["J_mean"] == pytest.approx(0.75)


# --------------------------------------------------------------------------- file reading


def test_mask_reading_conventions(tmp_path):
    arr = np.array([[0, 1, 2], [127, 128, 255]], np.uint8)
    save_png(tmp_path / "grey.png", arr)
    save_png(tmp_path / "pal.png", np.array([[0, 1, 2], [0, 0, 1]]), palette=True)
    np.testing.assert_array_equal(read_gt(tmp_path / "grey.png"), arr > 0)
    np.testing.assert_array_equal(read_pred(tmp_path / "grey.png"), arr >= 128)
    np.testing.assert_array_equal(read_saliency_gt(tmp_path / "grey.png"), arr > 128)
    pal = np.array([[0, 1, 1], [0, 0, 1]], bool)
    np.testing.assert_array_equal(read_gt(tmp_path / "pal.png"), pal)
    np.testing.assert_array_equal(read_pred(tmp_path / "pal.png"), pal)
    np.testing.assert_array_equal(read_saliency_gt(tmp_path / "pal.png"), pal)
    save_png(tmp_path / "01.png", np.array([[0, 1], [1, 0]]))
    np.testing.assert_array_equal(read_saliency_gt(tmp_path / "01.png"), [[False, True], [True, False]])


# --------------------------------------------------------------------------- sparse datasets on disk


def _sparse_layout(root: Path, dataset: str) -> None:
    """Three videos, labels on some frames only; predictions for every image frame.

    GT is a 4x4 square (16 px); predictions cover 16, 8, 4 or 0 of its pixels
    (J = 1, 0.5, 0.25, 0). GT files mix 0/255 grey, 0/1 grey and palette PNGs.
    """
    gt = square((20, 30), 4, 4, 4)
    preds = {1.0: gt, 0.5: np.zeros_like(gt), 0.25: np.zeros_like(gt), 0.0: square((20, 30), 12, 20, 4)}
    preds[0.5][4:8, 4:6] = True
    preds[0.25][4:6, 4:6] = True
    plan = {  # video -> {annotated frame: J}
        "aeroplane_0001": {"00000": 1.0, "00010": 0.5},
        "aeroplane_0002": {"00005": 0.25},
        "cat_0001": {"00000": 1.0, "00003": 1.0},
    }
    for k, (video, frames) in enumerate(plan.items()):
        for i in range(12):
            name = f"{i:05d}"
            save_png(root / "data" / dataset / "val/images" / video / f"{name}.png", np.zeros((20, 30)))
            pred = preds[frames[name]] if name in frames else ~gt  # unannotated: ignored
            save_png(root / "pred" / dataset / video / f"{name}.png", pred.astype(np.uint8) * 255)
            if name in frames:
                label = root / "data" / dataset / "val/labels" / video / f"{name}.png"
                if k == 0:
                    save_png(label, gt.astype(np.uint8) * 255)
                elif k == 1:
                    save_png(label, gt.astype(np.uint8))
                else:
                    save_png(label, gt.astype(np.uint8), palette=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_youtube_objects_per_sequence_and_category(tmp_path, workers):
    _sparse_layout(tmp_path, "Youtube-objects")
    res = evaluate_dataset(tmp_path / "pred", tmp_path / "data", "Youtube-objects", workers=workers)
    assert res.protocol == "sparse"
    per_seq = {s.name: s.metrics["J_mean"] for s in res.sequences}
    assert per_seq == pytest.approx({"aeroplane_0001": 0.75, "aeroplane_0002": 0.25, "cat_0001": 1.0})
    assert [s.category for s in res.sequences] == ["aeroplane", "aeroplane", "cat"]
    assert [len(s.frames) for s in res.sequences] == [2, 1, 2]
    assert res.summary["J_mean"] == pytest.approx((0.75 + 0.25 + 1.0) / 3)
    assert res.categories["aeroplane"]["J_mean"] == pytest.approx(0.5)
    assert res.categories["cat"]["J_mean"] == pytest.approx(1.0)
    assert res.summary["J_class_mean"] == pytest.approx(0.75)


def test_workers_start_fresh_not_forked(tmp_path, monkeypatch):
    """Pool workers are spawned: they do not inherit the parent's state (with fork, a lock held
    by one of the parent's threads at fork time can block a worker forever; CI hung on that)."""
    import evaluation.evaluate as ev

    _sparse_layout(tmp_path, "Youtube-objects")
    ref = evaluate_dataset(tmp_path / "pred", tmp_path / "data", "Youtube-objects", workers=1).summary

    def inherited(*a, **k):
        raise RuntimeError("a worker ran the parent's copy of the module")

    monkeypatch.setattr(ev, "read_gt", inherited)
    with pytest.raises(RuntimeError, match="parent's copy"):
        evaluate_dataset(tmp_path / "pred", tmp_path / "data", "Youtube-objects", workers=1)
    assert evaluate_dataset(tmp_path / "pred", tmp_path / "data", "Youtube-objects", workers=2).summary == ref


def test_fbms_has_no_categories(tmp_path):
    _sparse_layout(tmp_path, "FBMS")
    res = evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", workers=1)
    assert res.categories == {} and "J_class_mean" not in res.summary
    assert res.summary["J_mean"] == pytest.approx(2 / 3)


def test_category_of():
    assert category_of("aeroplane_0001") == "aeroplane"
    assert category_of("motor_bike_0003") == "motor_bike"
    assert category_of("cat01") == "cat"


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_prediction_names_file(tmp_path, workers):
    _sparse_layout(tmp_path, "FBMS")
    missing = tmp_path / "pred/FBMS/cat_0001/00003.png"
    missing.unlink()
    with pytest.raises(MissingPredictionError) as err:
        evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", workers=workers)
    assert str(missing.resolve()) in str(err.value)


def test_missing_unannotated_prediction_is_fine(tmp_path):
    _sparse_layout(tmp_path, "FBMS")
    (tmp_path / "pred/FBMS/cat_0001/00004.png").unlink()
    assert evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", workers=1).summary["J_mean"] > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_size_mismatch_names_file(tmp_path, workers):
    _sparse_layout(tmp_path, "FBMS")
    bad = tmp_path / "pred/FBMS/aeroplane_0001/00010.png"
    save_png(bad, np.zeros((21, 30)))
    with pytest.raises(SizeMismatchError) as err:
        evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", workers=workers)
    assert str(bad.resolve()) in str(err.value)


def test_missing_dataset_folder(tmp_path):
    _sparse_layout(tmp_path, "FBMS")
    with pytest.raises(MissingDatasetError, match="FBMS"):
        evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", split="test")
    with pytest.raises(MissingDatasetError, match=str((tmp_path / "nopred/FBMS").resolve())):
        evaluate_dataset(tmp_path / "nopred", tmp_path / "data", "FBMS")


def test_reports(tmp_path):
    _sparse_layout(tmp_path, "Youtube-objects")
    res = evaluate_dataset(tmp_path / "pred", tmp_path / "data", "Youtube-objects", workers=1)
    paths = write_csv(res, tmp_path / "out")
    assert [p.name for p in paths] == [
        "Youtube-objects_sparse_per_sequence.csv",
        "Youtube-objects_sparse_per_category.csv",
    ]
    rows = paths[0].read_text().splitlines()
    assert rows[0].startswith("sequence,category,n_frames,J_mean") and rows[-1].startswith("MEAN,")
    assert paths[1].read_text().splitlines()[-1] == "MEAN_OF_CLASSES,2,0.75"
    data = json.loads(write_json([res], tmp_path / "out/results.json").read_text())
    assert data["Youtube-objects_sparse"]["summary"]["J_class_mean"] == pytest.approx(0.75)
    table = format_table(res)
    assert "mean of the per-category means" in table and "MEAN OF CLASSES" in table


def test_cli(tmp_path):
    _sparse_layout(tmp_path, "Youtube-objects")
    cmd = [sys.executable, str(REPO / "scripts/evaluate.py"), "--pred_dir", "pred", "--data_dir", "data",
           "--datasets", "Youtube-objects", "--workers", "1", "--out_dir", "out"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "MEAN OF CLASSES" in proc.stdout and (tmp_path / "out/results.json").is_file()
    proc = subprocess.run(cmd[:-2] + ["--split", "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nope" in proc.stderr


def _damage(path: Path, how: str) -> None:
    """Leave ``path`` as a killed writer would: 0 bytes, or cut in half."""
    data = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else data[: len(data) // 2])


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_unreadable_mask_readers_name_file(tmp_path, how):
    from evaluation import UnreadableFileError, read_prob

    path = tmp_path / "m.png"
    save_png(path, square((60, 80), 10, 10, 30).astype(np.uint8) * 255)
    _damage(path, how)
    for reader in (read_gt, read_pred, read_prob, read_saliency_gt):
        with pytest.raises(UnreadableFileError) as err:  # an OSError and an EvaluationError
            reader(path)
        assert isinstance(err.value, OSError) and str(path.resolve()) in str(err.value)
        assert ("empty" if how == "empty" else "truncated") in str(err.value)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("which", ["pred", "gt"])
def test_unreadable_file_in_dataset_names_it(tmp_path, workers, which):
    _sparse_layout(tmp_path, "FBMS")
    bad = tmp_path / ("pred/FBMS" if which == "pred" else "data/FBMS/val/labels") / "aeroplane_0001/00010.png"
    _damage(bad, "truncated")
    with pytest.raises(OSError) as err:
        evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", workers=workers)
    assert str(bad.resolve()) in str(err.value)


def test_cli_empty_prediction_is_a_named_error(tmp_path):
    """A 0-byte PNG (left by a killed writer) ends the CLI with its path and exit code 2, no traceback."""
    _sparse_layout(tmp_path, "FBMS")
    bad = tmp_path / "pred/FBMS/cat_0001/00003.png"
    _damage(bad, "empty")
    cmd = [sys.executable, str(REPO / "scripts/evaluate.py"), "--pred_dir", "pred", "--data_dir", "data",
           "--datasets", "FBMS", "--workers", "2"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert str(bad.resolve()) in proc.stderr and "empty" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_hidden_files_are_not_frames(tmp_path):
    _sparse_layout(tmp_path, "FBMS")
    ref = evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", workers=1).summary
    # A killed prepare_data leaves hidden part files; macOS copies leave ._ files.
    (tmp_path / "data/FBMS/val/labels/cat_0001/._00000.png").write_bytes(b"\x00\x05")
    (tmp_path / "data/FBMS/val/labels/cat_0001/.00003.png.part").write_bytes(b"")
    assert evaluate_dataset(tmp_path / "pred", tmp_path / "data", "FBMS", workers=1).summary == ref


def test_reports_are_written_atomically(tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous report, not a cut one."""
    _sparse_layout(tmp_path, "Youtube-objects")
    res = evaluate_dataset(tmp_path / "pred", tmp_path / "data", "Youtube-objects", workers=1)
    out = tmp_path / "out"
    old = {p.name: p.read_text() for p in [*write_csv(res, out), write_json([res], out / "results.json")]}
    res.summary["J_mean"] = 0.123  # so that a new file would differ

    def cut_write(self, data, *a, **k):
        with open(self, "w") as f:
            f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", cut_write)
    with pytest.raises(OSError):
        write_json([res], out / "results.json")
    with pytest.raises(OSError):
        write_csv(res, out)
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in out.iterdir()} == old  # no part files either


# --------------------------------------------------------------------------- saliency


def test_saliency_perfect_map():
    gts = [square((40, 40), 10, 10, 15)] * 3
    res = evaluate_sequence_saliency([g.astype(np.uint8) * 255 for g in gts], gts, skip_first_last=False)
    assert res.metrics["MAE"] == 0.0
    assert res.metrics["S"] == pytest.approx(1.0, abs=1e-6)
    assert res.metrics["maxF"] == pytest.approx(1.0)
    assert res.metrics["maxE"] == pytest.approx(1.0, abs=1e-3)


def test_saliency_mae_and_fmeasure_hand_computed():
    gt = square((10, 10), 0, 0, 5)  # 25 foreground pixels of 100
    # Frame 1: fg 200, bg 0, a 2x2 background patch at 100 -> min-max gives 0.5 there.
    p1 = np.where(gt, 200, 0).astype(np.uint8)
    p1[8:10, 8:10] = 100
    # Frame 2: fg 220, bg 20 -> min-max makes it perfect.
    p2 = np.where(gt, 220, 20).astype(np.uint8)
    res = evaluate_sequence_saliency([p1, p2], [gt, gt], skip_first_last=False)
    assert res.per_frame["MAE"] == pytest.approx([4 * 0.5 / 100, 0.0])
    assert res.metrics["MAE"] == pytest.approx(0.01)

    # Binary map predicting 50 px that include all 25 GT pixels: P = 0.5, R = 1 for every
    # threshold in 1..255; threshold 0 predicts everything: P = 0.25, R = 1.
    pred = np.zeros((10, 10), np.uint8)
    pred[0:5, 0:10] = 255
    res = evaluate_sequence_saliency([pred], [gt], skip_first_last=False)

    def fb(p: float, r: float) -> float:
        return 1.3 * p * r / (0.3 * p + r)

    assert res.metrics["maxF"] == pytest.approx(fb(0.5, 1.0))
    assert res.metrics["meanF"] == pytest.approx((255 * fb(0.5, 1.0) + fb(0.25, 1.0)) / 256)


def test_saliency_dataset_skips_first_last(tmp_path):
    for v, shift in (("seq_a", 0), ("seq_b", 2)):
        for i in range(4):
            gt = square((30, 30), 5, 5, 10)
            save_png(tmp_path / "data/DAVSOD/val/labels" / v / f"{i:05d}.png", gt.astype(np.uint8) * 255)
            prob = np.roll(gt, shift, axis=1).astype(np.uint8) * 255
            if i in (0, 3):
                prob = 255 - prob  # first/last frames are wrong on purpose: must be ignored
            save_png(tmp_path / "probs/DAVSOD" / v / f"{i:05d}.png", prob)
    results = evaluate_datasets(tmp_path / "pred", tmp_path / "data", ["DAVSOD"], prob_dir=tmp_path / "probs",
                                workers=1)
    (res,) = results
    assert res.protocol == "saliency"
    a, b = res.sequences
    assert a.frames == ["00001", "00002"] and a.metrics["MAE"] == 0.0
    assert b.metrics["MAE"] == pytest.approx(2 * 10 * 2 / 900)  # 20 px wrong on each side of the shift
    assert res.summary["MAE"] == pytest.approx((a.metrics["MAE"] + b.metrics["MAE"]) / 2)
    assert res.summary["maxF"] == pytest.approx(np.max((a.curves["F"] + b.curves["F"]) / 2))


# --------------------------------------------------------------------------- real DAVIS data


def davis_dir() -> Path:
    env = os.environ.get("OAST_DAVIS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared/data/DAVIS"


def _require_davis() -> Path:
    root = davis_dir()
    if not (root / "ImageSets/2016/val.txt").is_file():
        pytest.skip(f"DAVIS data not found at {root} (set OAST_DAVIS_DIR)")
    return root


def _perturb(mask: np.ndarray, i: int, seed: int) -> np.ndarray:
    m = mask.astype(np.uint8)
    kind = (i + seed) % 5
    if kind == 0:
        m = cv2.erode(m, np.ones((7, 7), np.uint8))
    elif kind == 1:
        m = cv2.dilate(m, np.ones((9, 9), np.uint8))
    elif kind == 2:
        m = np.roll(m, (4 + seed, -(6 + i % 7)), axis=(0, 1))
    elif kind == 3 and i % 10 == 3:
        m = np.zeros_like(m)
    return m.astype(bool)


def _real_layout(tmp: Path, seqs: list[str]) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Symlink GT of ``seqs`` into tmp and write perturbed predictions; return the arrays."""
    root = _require_davis()
    arrays = {}
    for k, seq in enumerate(seqs):
        src = root / "Annotations/480p" / seq
        dst = tmp / "data/DAVIS-2016/val/labels" / seq
        dst.mkdir(parents=True)
        gts, preds = [], []
        for i, png in enumerate(sorted(src.glob("*.png"))):
            (dst / png.name).symlink_to(png.resolve())
            gt = np.asarray(Image.open(png)) > 0
            pred = _perturb(gt, i, k)
            save_png(tmp / "pred/DAVIS-2016" / seq / png.name, pred.astype(np.uint8) * 255)
            gts.append(gt)
            preds.append(pred)
        arrays[seq] = (preds, gts)
    return arrays


def _reference_sequence(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    """Straightforward re-implementation of the DAVIS-2016 formulas, independent of the library."""

    def iou(p, g):
        union = np.logical_or(p, g).sum()
        return 1.0 if union == 0 else np.logical_and(p, g).sum() / union

    def boundary(m):
        # Replicating the last row/column makes missing neighbours compare equal.
        pad = np.pad(m, ((0, 1), (0, 1)), mode="edge")
        h, w = m.shape
        return (pad[:h, :w] != pad[:h, 1:]) | (pad[:h, :w] != pad[1:, :w]) | (pad[:h, :w] != pad[1:, 1:])

    def fmeasure(p, g):
        bp, bg = boundary(p), boundary(g)
        r = math.ceil(0.008 * math.sqrt(g.shape[0] ** 2 + g.shape[1] ** 2))
        if bp.sum() == 0 and bg.sum() == 0:
            return 1.0
        if bp.sum() == 0 or bg.sum() == 0:
            return 0.0
        # Within the disk of radius r of a boundary pixel <=> Euclidean distance <= r.
        near_g = distance_transform_edt(~bg) <= r
        near_p = distance_transform_edt(~bp) <= r
        prec = (bp & near_g).sum() / bp.sum()
        rec = (bg & near_p).sum() / bg.sum()
        return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)

    def stats(x):
        n = len(x)
        edges = [math.floor(1 + k * (n - 1) / 4 + 0.5) for k in range(5)]  # 1-based, ties up
        first = [x[i - 1] for i in range(edges[0], edges[1] + 1)]
        last = [x[i - 1] for i in range(edges[3], edges[4] + 1)]
        return sum(x) / n, sum(v > 0.5 for v in x) / n, sum(first) / len(first) - sum(last) / len(last)

    js = [iou(preds[i], gts[i]) for i in range(1, len(gts) - 1)]
    fs = [fmeasure(preds[i], gts[i]) for i in range(1, len(gts) - 1)]
    out = {}
    for name, x in (("J", js), ("F", fs)):
        out[f"{name}_mean"], out[f"{name}_recall"], out[f"{name}_decay"] = stats(x)
    return out


def _check_against_reference(tmp_path: Path, seqs: list[str], workers: int) -> None:
    arrays = _real_layout(tmp_path, seqs)
    res = evaluate_dataset(tmp_path / "pred", tmp_path / "data", "DAVIS-2016", workers=workers)
    assert [s.name for s in res.sequences] == sorted(seqs)
    refs = {}
    for s in res.sequences:
        ref = _reference_sequence(*arrays[s.name])
        refs[s.name] = ref
        for key, val in ref.items():
            assert s.metrics[key] == pytest.approx(val, abs=1e-6), (s.name, key)
        # The in-memory API must agree with the file-based one.
        mem = evaluate_sequence_davis(*arrays[s.name])
        assert mem.metrics == pytest.approx(s.metrics, abs=1e-12)
    for key in ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
        assert res.summary[key] == pytest.approx(np.mean([r[key] for r in refs.values()]), abs=1e-6)
    assert res.summary["JF_mean"] == pytest.approx((res.summary["J_mean"] + res.summary["F_mean"]) / 2)
    assert 0.3 < res.summary["JF_mean"] < 0.99  # perturbed, so neither trivial nor broken


def test_real_davis_matches_reference(tmp_path):
    # libby has 49 frames (47 scored): a tie in the decay bin edges.
    _check_against_reference(tmp_path, ["scooter-black", "libby"], workers=2)


def test_real_davis_dropped_frame(tmp_path):
    _real_layout(tmp_path, ["scooter-black"])
    dropped = tmp_path / "pred/DAVIS-2016/scooter-black/00020.png"
    dropped.unlink()
    with pytest.raises(MissingPredictionError) as err:
        evaluate_dataset(tmp_path / "pred", tmp_path / "data", "DAVIS-2016", workers=2)
    assert str(dropped.resolve()) in str(err.value)


@pytest.mark.slow
def test_real_davis_full_val_matches_reference(tmp_path):
    root = _require_davis()
    _check_against_reference(tmp_path, (root / "ImageSets/2016/val.txt").read_text().split(), workers=2)
