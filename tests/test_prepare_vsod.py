"""VSOD test sets (DAVSOD, ViSal, MCL): fake downloads in each layout -> project layout -> saliency scores."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.prepare import SOURCES, DatasetLayoutError, prepare_dataset

ROOT = Path(__file__).resolve().parents[1]
H = W = 16


# --------------------------------------------------------------------------- fake downloads
def _frame(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    im.save(path, **({"quality": 90} if path.suffix == ".jpg" else {}))


def _box(i: int) -> np.ndarray:
    """Frame i's object: a 4x4 square whose place depends on i, so a mask paired with the wrong
    frame is caught."""
    m = np.zeros((H, W), bool)
    y, x = (2 * i) % (H - 4), (3 * i) % (W - 4)
    m[y:y + 4, x:x + 4] = True
    return m


def _gt(path: Path, i: int, style: str = "L255") -> None:
    """Ground truth of frame i: L 0/255, L 0/1 or RGB white on black."""
    path.parent.mkdir(parents=True, exist_ok=True)
    m = _box(i)
    if style == "L255":
        im = Image.fromarray(m.astype(np.uint8) * 255)
    elif style == "L01":
        im = Image.fromarray(m.astype(np.uint8))
    else:
        im = Image.fromarray(np.repeat(m[..., None], 3, -1).astype(np.uint8) * 255)
    im.save(path)


def _label(path: Path) -> np.ndarray:
    im = Image.open(path)
    assert im.mode == "L", f"{path} is mode {im.mode}"
    a = np.array(im)
    assert set(np.unique(a)) <= {0, 255}, f"{path} has values {np.unique(a)}"
    return a == 255


def make_davsod_release(root: Path) -> Path:
    """DAVSOD/{Training Set,Test Set/{Easy-35,Normal-25}}/<seq>/{Imgs,GT_object_level,GT_instance_level}.

    Frames are PNGs named by source frame number (0390..0394); frame 0392 of select_0606 has
    no mask; GT_instance_level holds full-frame masks so that picking it would be caught.
    """
    src = root / "DAVSOD"
    layout = {"Test Set/Easy-35": ["select_0606", "select_0607"], "Test Set/Normal-25": ["select_0700"],
              "Training Set": ["select_0001"]}
    for part, seqs in layout.items():
        for s, seq in enumerate(seqs):
            d = src / part / seq
            for i in range(5):
                name = f"{390 + i:04d}"
                _frame(d / "Imgs" / f"{name}.png", 10 * s + i)
                if not (seq == "select_0606" and i == 2):
                    _gt(d / "GT_object_level" / f"{name}.png", i, "L01" if i == 4 else "L255")
                Image.fromarray(np.full((H, W), 1, np.uint8)).save(_mkdir(d / "GT_instance_level") / f"{name}.png")
            (_mkdir(d / "Fixation_maps") / "0390.png").write_bytes(b"")  # not an image: must not be read
    return src


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def make_toolbox(root: Path, dataset: str, seqs: dict[str, int], annotated: int = 1) -> Path:
    """The DAVSOD benchmark's unified copy: <dataset>/<seq>/Imgs/<seq>_00000.jpg, ground-truth/*.png.

    ``annotated``: every n-th frame has a mask (ViSal and MCL are sparse); masks are RGB.
    """
    src = root / "Datasets" / dataset
    for s, (seq, n) in enumerate(seqs.items()):
        for i in range(n):
            _frame(src / seq / "Imgs" / f"{seq}_{i:05d}.jpg", 10 * s + i)
            if i % annotated == 0:
                _gt(src / seq / "ground-truth" / f"{seq}_{i:05d}.png", i, "RGB")
    return root / "Datasets"


# --------------------------------------------------------------------------- DAVSOD
def test_davsod_release_easy35_by_default(tmp_path):
    src = make_davsod_release(tmp_path)
    data = tmp_path / "data"
    s = prepare_dataset("DAVSOD", src, data, progress=False)

    root = data / "DAVSOD" / "val"
    assert sorted(p.name for p in (root / "images").iterdir()) == ["select_0606", "select_0607"]
    assert not (data / "DAVSOD-Normal-25").exists() and not (data / "DAVSOD" / "train").exists()
    frames = sorted(p.name for p in (root / "images" / "select_0606").iterdir())
    assert frames == ["0390.jpg", "0391.jpg", "0392.jpg", "0393.jpg", "0394.jpg"]  # numbers kept, PNG -> JPEG
    with Image.open(root / "images" / "select_0606" / "0390.jpg") as im:
        assert im.format == "JPEG" and im.size == (W, H)
    labels = sorted(p.name for p in (root / "labels" / "select_0606").iterdir())
    assert labels == ["0390.png", "0391.png", "0393.png", "0394.png"]  # 0392 has no mask
    for name in labels:
        i = int(name[:4]) - 390
        # 0/255 and 0/1 masks both give the object; GT_instance_level (all 1) was not used
        assert np.array_equal(_label(root / "labels" / "select_0606" / name), _box(i)), name
    assert s.videos == 2 and s.labels == 9
    assert any("2 sequences" in w and "35" in w for w in s.warnings)


def test_davsod_other_subsets_get_their_own_folder(tmp_path):
    src = make_davsod_release(tmp_path)
    data = tmp_path / "data"
    prepare_dataset("DAVSOD-Normal-25", src / "Test Set", data, progress=False)
    assert [p.name for p in (data / "DAVSOD-Normal-25/val/images").iterdir()] == ["select_0700"]
    assert not (data / "DAVSOD").exists()
    # the subset folder itself is accepted too
    prepare_dataset("DAVSOD", src / "Test Set" / "Easy-35", data, progress=False)
    assert len(list((data / "DAVSOD/val/labels").iterdir())) == 2


def test_davsod_toolbox_copy_and_unzip_wrapper(tmp_path):
    datasets = make_toolbox(tmp_path / "tb", "DAVSOD", {"select0606": 4, "select0607": 3})
    data = tmp_path / "data"
    prepare_dataset("DAVSOD", datasets, data, progress=False)  # Datasets/ holding DAVSOD/
    root = data / "DAVSOD/val"
    assert sorted(p.name for p in (root / "images/select0606").iterdir()) == [f"{i:05d}.jpg" for i in range(4)]
    for i in range(4):
        assert np.array_equal(_label(root / f"labels/select0606/{i:05d}.png"), _box(i))
    # an archive unpacked into Easy-35/Easy-35/<seq>/
    inner = tmp_path / "zip" / "Easy-35" / "Easy-35"
    (tmp_path / "zip" / "Easy-35").mkdir(parents=True)
    os.rename(datasets / "DAVSOD", inner)
    prepare_dataset("DAVSOD", tmp_path / "zip", tmp_path / "data2", progress=False)
    assert len(list((tmp_path / "data2/DAVSOD/val/labels").iterdir())) == 2


def test_davsod_another_subset_folder_is_refused(tmp_path):
    src = make_davsod_release(tmp_path)
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset("DAVSOD", src / "Test Set" / "Normal-25", tmp_path / "data", progress=False)
    assert str(src / "Test Set" / "Normal-25") in str(e.value) and "DAVSOD-Normal-25" in str(e.value)


def test_davsod_missing_subset_names_the_folder(tmp_path):
    src = make_davsod_release(tmp_path)
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset("DAVSOD-Difficult-20", src, tmp_path / "data", progress=False)
    msg = str(e.value)
    assert str(src) in msg and "Difficult-20" in msg and "Test Set" in msg


def test_davsod_without_ground_truth_names_the_folder(tmp_path):
    seq = tmp_path / "Easy-35" / "select_0606"
    for i in range(3):
        _frame(seq / "Imgs" / f"{i:04d}.jpg", i)
        _gt(seq / "GT_instance_level" / f"{i:04d}.png", i)  # only the instance masks: not accepted
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset("DAVSOD", tmp_path / "Easy-35", tmp_path / "data", progress=False)
    assert str(seq) in str(e.value) and "GT_object_level" in str(e.value)
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------- ViSal / MCL
def test_visal_toolbox_copy_sparse_labels(tmp_path):
    datasets = make_toolbox(tmp_path, "ViSal", {"aeroplane": 6, "cow2": 5, "snow_leopards": 5}, annotated=2)
    data = tmp_path / "data"
    s = prepare_dataset("ViSal", datasets, data, progress=False)  # the folder holding ViSal/
    root = data / "ViSal/val"
    assert sorted(p.name for p in (root / "images").iterdir()) == ["aeroplane", "cow2", "snow_leopards"]
    for seq, n in (("aeroplane", 6), ("cow2", 5), ("snow_leopards", 5)):
        assert sorted(p.name for p in (root / "images" / seq).iterdir()) == [f"{i:05d}.jpg" for i in range(n)]
        labels = sorted(p.name for p in (root / "labels" / seq).iterdir())
        assert labels == [f"{i:05d}.png" for i in range(0, n, 2)]  # unannotated frames get no label
        for name in labels:
            assert np.array_equal(_label(root / "labels" / seq / name), _box(int(name[:5]))), f"{seq}/{name}"
    assert s.labels == 3 + 3 + 3
    assert any("3 sequences" in w and "17" in w for w in s.warnings)


def test_visal_per_kind_layout_and_mcl(tmp_path):
    src = tmp_path / "MCL"
    for i in range(4):
        _frame(src / "Imgs" / "Ball" / f"Ball_{i:05d}.jpg", i)
    for i in (0, 3):
        _gt(src / "GT" / "Ball" / f"Ball_{i:05d}.png", i)
    prepare_dataset("MCL", src, tmp_path / "data", progress=False)
    labels = tmp_path / "data/MCL/val/labels/Ball"
    assert sorted(p.name for p in labels.iterdir()) == ["00000.png", "00003.png"]
    assert np.array_equal(_label(labels / "00003.png"), _box(3))


def test_visal_wrong_layout_names_the_folder(tmp_path):
    src = tmp_path / "ViSal"
    (src / "aeroplane" / "frames_here").mkdir(parents=True)  # no Imgs/, no frames
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset("ViSal", src, tmp_path / "data", progress=False)
    assert str(src) in str(e.value) and "Imgs" in str(e.value)
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset("ViSal", tmp_path / "nowhere", tmp_path / "data", progress=False)
    assert str(tmp_path / "nowhere") in str(e.value)
    # frames but no ground-truth folder in any sequence
    _frame(src / "aeroplane" / "Imgs" / "aeroplane_00000.jpg", 0)
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset("ViSal", src, tmp_path / "data", progress=False)
    assert str(src / "aeroplane") in str(e.value) and "ground-truth" in str(e.value)


# --------------------------------------------------------------------------- command line and scoring
def test_cli_registry_and_flow(tmp_path):
    assert {"DAVSOD", "DAVSOD-Normal-25", "DAVSOD-Difficult-20", "ViSal", "MCL"} <= set(SOURCES)
    src = make_davsod_release(tmp_path)
    data = tmp_path / "data"
    cmd = [sys.executable, str(ROOT / "scripts/prepare_data.py"), "--dataset", "DAVSOD", "--src", str(src),
           "--data_dir", str(data), "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "DAVSOD: 2 videos" in r.stdout and "--dataset DAVSOD" in r.stdout
    r = subprocess.run(cmd[:4] + ["--src", str(src / "Training Set"), "--data_dir", str(data)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and str(src / "Training Set") in r.stderr and "training" in r.stderr

    # flow as for the other sets, then the test-time index finds every frame
    from datasets import scan_split
    from utils.optical_flow import compute_dataset_flow
    compute_dataset_flow(data, "DAVSOD", "dis", progress=False)
    vids = scan_split(data, "DAVSOD", "val", need_labels=False)
    assert [len(v.frames) for v in vids] == [5, 5]


def _write_predictions(data: Path, out: Path, dataset: str) -> None:
    """Perfect probability maps and masks (the ground truth) for every frame; empty where unannotated."""
    for vid in (data / dataset / "val/images").iterdir():
        for img in vid.iterdir():
            lab = data / dataset / "val/labels" / vid.name / f"{img.stem}.png"
            m = np.array(Image.open(lab)) if lab.exists() else np.zeros((H, W), np.uint8)
            for run in ("offline", "online"):
                for folder in (f"{run}_prob", run):
                    p = out / folder / dataset / vid.name / f"{img.stem}.png"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(m).save(p)


def test_paper_scripts_score_vsod_sets(tmp_path):
    make_davsod_release(tmp_path / "dl")
    make_toolbox(tmp_path / "dl", "ViSal", {"aeroplane": 8, "bird": 8}, annotated=2)
    data, out = tmp_path / "data", tmp_path / "out"
    prepare_dataset("DAVSOD", tmp_path / "dl/DAVSOD", data, progress=False)
    prepare_dataset("ViSal", tmp_path / "dl/Datasets", data, progress=False)
    for ds in ("DAVSOD", "ViSal"):
        _write_predictions(data, out, ds)

    env = {**os.environ, "DATA_DIR": str(data), "OUT": str(out), "RUNS": str(tmp_path / "runs"),
           "LAUNCH": "echo", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(ROOT / "scripts/paper/3_test.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "--test_datasets DAVIS-2016 FBMS Youtube-objects DAVSOD ViSal " in r.stdout and "--save_prob" in r.stdout

    env |= {"UVOS_SETS": "", "SALIENCY_SETS": "DAVSOD ViSal"}
    r = subprocess.run(["bash", str(ROOT / "scripts/paper/5_evaluate.sh"), "--workers", "1"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "eval_offline/results.json").read_text())
    # DAVSOD is scored with the saliency protocol by default, ViSal because of --saliency
    assert res["DAVSOD_saliency"]["summary"]["MAE"] == pytest.approx(0.0, abs=1e-9)
    assert res["ViSal_saliency"]["summary"]["S"] == pytest.approx(1.0, abs=1e-6)
    # sparse GT: the first and last *annotated* frames are skipped (frames 00000 and 00006 of 0, 2, 4, 6)
    seq = next(q for q in res["ViSal_saliency"]["sequences"] if q["name"] == "aeroplane")
    assert seq["frames"] == ["00002", "00004"]
    table = (out / "saliency_table.md").read_text().splitlines()
    assert table[0].startswith("| Dataset | offline S | offline max F | offline MAE | online S")
    assert table[2] == "| DAVSOD | 1.000 | 1.000 | 0.000 | 1.000 | 1.000 | 0.000 |"
    assert table[3].startswith("| ViSal | 1.000 |")
    assert "| ViSal |" in r.stdout
