"""Dataset conversion: tiny fake downloads in each official format -> project layout."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.prepare import DatasetLayoutError, prepare_dataset
from datasets.prepare.common import frame_number, name_frames

ROOT = Path(__file__).resolve().parents[1]
H, W = 24, 32


# --------------------------------------------------------------------------- fake downloads
def _jpg(path: Path, seed: int, size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(path, quality=90)


def _objects(seed: int, n_obj: int = 2, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """Index map with objects 1..n_obj as rectangles at seed-dependent places (0 = background)."""
    idx = np.zeros(size, np.uint8)
    for k in range(1, n_obj + 1):
        y, x = (3 * k + seed) % (size[0] - 6), (5 * k + 2 * seed) % (size[1] - 8)
        idx[y:y + 5, x:x + 7] = k
    return idx


def _palette_png(path: Path, idx: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(idx).convert("P")  # mode P keeps the index values
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 - 4) * 3)
    im.save(path)
    assert Image.open(path).mode == "P"


def _mask(path: Path) -> np.ndarray:
    im = Image.open(path)
    assert im.mode == "L", f"{path} is mode {im.mode}"
    a = np.array(im)
    assert set(np.unique(a)) <= {0, 255}, f"{path} has values {np.unique(a)}"
    return a


def make_davis2017(root: Path) -> Path:
    """DAVIS-2017 trainval: palette annotations with 2 objects, ImageSets/2016 lists."""
    src = root / "DAVIS"
    for s, seq in enumerate(("bear", "blackswan", "bike-packing")):
        for i in range(4):
            _jpg(src / "JPEGImages/480p" / seq / f"{i:05d}.jpg", 10 * s + i)
            _palette_png(src / "Annotations/480p" / seq / f"{i:05d}.png", _objects(10 * s + i))
    (src / "ImageSets/2016").mkdir(parents=True)
    (src / "ImageSets/2016/train.txt").write_text("bear\n")
    (src / "ImageSets/2016/val.txt").write_text("blackswan\n")
    (src / "ImageSets/2017").mkdir()
    (src / "ImageSets/2017/train.txt").write_text("bear\nbike-packing\n")
    return src


def make_davis2016(root: Path) -> Path:
    """DAVIS-2016 as first distributed: mode-L 0/255 masks, ImageSets/480p path lines."""
    src = root / "DAVIS2016"
    for s, seq in enumerate(("bear", "cows")):
        for i in range(3):
            _jpg(src / "JPEGImages/480p" / seq / f"{i:05d}.jpg", s + i)
            p = src / "Annotations/480p" / seq / f"{i:05d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.where(_objects(s + i, 1) > 0, 255, 0).astype(np.uint8)).save(p)
    (src / "ImageSets/480p").mkdir(parents=True)
    for split, seq in (("train", "bear"), ("val", "cows")):
        lines = [f"/JPEGImages/480p/{seq}/{i:05d}.jpg /Annotations/480p/{seq}/{i:05d}.png" for i in range(3)]
        (src / "ImageSets/480p" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return src


def make_ytvos(root: Path, all_frames: bool = False) -> Path:
    """YouTube-VOS 2018 train: 11 frames, palette annotations every 5th frame (3 objects)."""
    train = root / "train"
    for v, vid in enumerate(("003234408d", "0043f083b5")):
        for i in range(11):
            if all_frames:
                _jpg(root / "train_all_frames/JPEGImages" / vid / f"{i:05d}.jpg", i + 20 * v)
            if i % 5 == 0 or not all_frames:
                _jpg(train / "JPEGImages" / vid / f"{i:05d}.jpg", i + 20 * v)
            if i % 5 == 0:
                _palette_png(train / "Annotations" / vid / f"{i:05d}.png", _objects(i + v, 3))
    return root


def _grey_multi(seed: int, background: int, values: tuple[int, ...]) -> np.ndarray:
    idx = _objects(seed, len(values))
    out = np.full(idx.shape, background, np.uint8)
    for k, val in enumerate(values, 1):
        out[idx == k] = val
    return out


def make_fbms(root: Path) -> Path:
    """FBMS-59: frames ``<seq>_<n>.jpg``, sparse GroundTruth in three naming/format variants."""
    src = root / "FBMS59"
    # cars1: frames 01..08, colour PPM on WHITE background, GT named <n>_gt.ppm (2 objects).
    seq = src / "Testset/cars1"
    for n in range(1, 9):
        _jpg(seq / f"cars1_{n:02d}.jpg", n)
    for n in (1, 5):
        idx = _objects(n, 2)
        rgb = np.full(idx.shape + (3,), 255, np.uint8)
        rgb[idx == 1] = (255, 0, 0)
        rgb[idx == 2] = (0, 0, 255)
        (seq / "GroundTruth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(seq / "GroundTruth" / f"{n:02d}_gt.ppm")
    (seq / "GroundTruth/cars1Def.dat").write_text("region definitions, ignored\n")
    # marple2: frames 000..011 (3 digits), grey PGM on BLACK background, <seq>_<n>_gt.pgm.
    seq = src / "Testset/marple2"
    for n in range(12):
        _jpg(seq / f"marple2_{n:03d}.jpg", 100 + n)
    for n in (0, 10):
        (seq / "GroundTruth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_grey_multi(n, 0, (80, 200))).save(seq / "GroundTruth" / f"marple2_{n:03d}_gt.pgm")
    # tennis (no separator): tennis000..tennis004, PNG GT with bare numbers 001_gt.png.
    seq = src / "Testset/tennis"
    for n in range(5):
        _jpg(seq / f"tennis{n:03d}.jpg", 200 + n)
    (seq / "GroundTruth").mkdir(parents=True)
    Image.fromarray(_grey_multi(3, 0, (255,))).save(seq / "GroundTruth" / "003_gt.png")
    Image.fromarray(_grey_multi(4, 0, (255,))).save(seq / "GroundTruth" / "099_gt.png")  # matches no frame
    # Trainingset sequence, only used with trainingset=...
    seq = src / "Trainingset/bear01"
    for n in range(1, 4):
        _jpg(seq / f"bear01_{n:04d}.jpg", 300 + n)
    (seq / "GroundTruth").mkdir(parents=True)
    Image.fromarray(_grey_multi(1, 0, (255,))).save(seq / "GroundTruth" / "bear01_0001_gt.pgm")
    return src


def make_youtube_objects(root: Path) -> Path:
    """Youtube-objects: <class>/<video>/{images,frames}/ and {labels,GroundTruth}/ sparse masks."""
    src = root / "youtube_objects"
    for i in range(1, 7):
        _jpg(src / "aeroplane/0001/images" / f"{i:05d}.jpg", i)
    for i in (1, 4):
        p = src / "aeroplane/0001/labels" / f"{i:05d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(_objects(i, 1) > 0, 255, 0).astype(np.uint8)).save(p)
    for i in range(0, 4):
        _jpg(src / "cat/0002/frames" / f"{i:05d}.jpg", 50 + i)
    p = src / "cat/0002/GroundTruth/00002.png"
    p.parent.mkdir(parents=True)
    Image.fromarray((_objects(2, 2) > 0).astype(np.uint8)).save(p)  # 0/1 masks are accepted too
    (src / "cat/0003").mkdir(parents=True)  # no frame folder: skipped with a warning
    return src


# --------------------------------------------------------------------------- helpers
def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.lstat().st_mtime_ns for p in root.rglob("*")}


# --------------------------------------------------------------------------- unit tests
def test_frame_numbers_and_names():
    assert frame_number("cars1_01", "cars1") == 1
    assert frame_number("cars101", "cars1") == 1
    assert frame_number("001_gt") == 1
    assert frame_number("marple2_010_gt", "marple2") == 10
    assert frame_number("tennis000", "tennis") == 0
    assert frame_number("frame") is None
    paths = [Path(f"cars1_{n}.jpg") for n in (10, 2, 1)]
    assert [n for n, _ in name_frames(paths, "cars1")] == ["00000", "00001", "00002"]
    assert [p.name for _, p in name_frames(paths, "cars1")] == ["cars1_1.jpg", "cars1_2.jpg", "cars1_10.jpg"]
    kept = [Path("00005.jpg"), Path("00000.jpg")]
    assert [n for n, _ in name_frames(kept)] == ["00000", "00005"]


# --------------------------------------------------------------------------- DAVIS
def test_davis2017_palette_to_binary_union(tmp_path):
    src = make_davis2017(tmp_path)
    out = tmp_path / "data"
    s = prepare_dataset("DAVIS-2017", src, out, progress=False)
    assert (s.videos, s.frames, s.labels_written) == (2, 8, 8)
    root = out / "DAVIS-2016"
    assert _files(root / "train/images") == ["bear"] and _files(root / "val/images") == ["blackswan"]
    assert not (root / "train/images/bike-packing").exists()  # 2017-only sequence
    img = root / "val/images/blackswan/00002.jpg"
    assert img.is_symlink() and img.resolve() == (src / "JPEGImages/480p/blackswan/00002.jpg").resolve()
    for seq, split, s_off in (("bear", "train", 0), ("blackswan", "val", 10)):
        for i in range(4):
            m = _mask(root / split / "labels" / seq / f"{i:05d}.png")
            expected = _objects(s_off + i) > 0
            assert (_objects(s_off + i) == 2).any()  # the fixture really has a second object
            np.testing.assert_array_equal(m == 255, expected)


def test_davis2016_original_layout_and_copy(tmp_path):
    src = make_davis2016(tmp_path)
    out = tmp_path / "data"
    s = prepare_dataset("DAVIS-2016", src, out, link=False, progress=False)
    assert (s.videos, s.frames, s.labels) == (2, 6, 6)
    img = out / "DAVIS-2016/val/images/cows/00001.jpg"
    assert img.is_file() and not img.is_symlink()
    assert img.read_bytes() == (src / "JPEGImages/480p/cows/00001.jpg").read_bytes()
    m = _mask(out / "DAVIS-2016/train/labels/bear/00002.png")
    np.testing.assert_array_equal(m == 255, _objects(2, 1) > 0)


def test_idempotent_and_resumable(tmp_path):
    src = make_davis2017(tmp_path)
    out = tmp_path / "data"
    prepare_dataset("DAVIS-2017", src, out, progress=False)
    before = _snapshot(out)
    s = prepare_dataset("DAVIS-2017", src, out, progress=False)
    assert (s.frames_written, s.labels_written) == (0, 0)
    assert (s.frames_skipped, s.labels_skipped) == (8, 8)
    assert _snapshot(out) == before  # nothing rewritten
    # An interrupted run: one image and one label missing, a broken link left behind.
    (out / "DAVIS-2016/val/labels/blackswan/00003.png").unlink()
    (out / "DAVIS-2016/train/images/bear/00001.jpg").unlink()
    os.symlink(tmp_path / "gone.jpg", out / "DAVIS-2016/train/images/bear/00001.jpg")
    s = prepare_dataset("DAVIS-2017", src, out, progress=False)
    assert (s.frames_written, s.labels_written) == (1, 1)
    assert (out / "DAVIS-2016/train/images/bear/00001.jpg").exists()
    assert not list(out.rglob(".*.part"))


def _touch_later(path: Path, seconds: float = 5.0) -> None:
    """Move a file's modification time forward, as an editor or a re-download would."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(seconds * 1e9)))


@pytest.mark.parametrize("link", [False, True])
def test_changed_source_is_reconverted(tmp_path, link):
    """A source replaced since the last run (a corrupt frame or label fixed) is converted again;
    everything else is left as it is."""
    src = make_davis2016(tmp_path)
    out = tmp_path / "data"
    prepare_dataset("DAVIS-2016", src, out, link=link, progress=False)
    img_src = src / "JPEGImages/480p/cows/00001.jpg"
    lab_src = src / "Annotations/480p/cows/00002.png"
    img_out = out / "DAVIS-2016/val/images/cows/00001.jpg"
    lab_out = out / "DAVIS-2016/val/labels/cows/00002.png"
    before = _snapshot(out)
    # The fix: new pixels for the frame, a different object for the label.
    _jpg(img_src, seed=99)
    _touch_later(img_src)
    Image.fromarray(np.where(_objects(7, 1) > 0, 255, 0).astype(np.uint8)).save(lab_src)
    _touch_later(lab_src)
    s = prepare_dataset("DAVIS-2016", src, out, link=link, progress=False)
    assert (s.frames_written, s.labels_written) == ((0, 1) if link else (1, 1))  # a link shows the fix
    assert img_out.read_bytes() == img_src.read_bytes()
    np.testing.assert_array_equal(_mask(lab_out) == 255, _objects(7, 1) > 0)
    after = _snapshot(out)
    changed = {k for k in before if before[k] != after[k] and not Path(k).is_dir()}
    assert changed == ({str(lab_out)} if link else {str(img_out), str(lab_out)})
    # Up to date now: nothing is rewritten.
    s = prepare_dataset("DAVIS-2016", src, out, link=link, progress=False)
    assert (s.frames_written, s.labels_written) == (0, 0) and _snapshot(out) == after


def test_copy_with_same_size_but_new_time_is_reconverted(tmp_path):
    src = make_davis2016(tmp_path)
    out = tmp_path / "data"
    prepare_dataset("DAVIS-2016", src, out, link=False, progress=False)
    img_src = src / "JPEGImages/480p/bear/00000.jpg"
    data = bytearray(img_src.read_bytes())
    data[len(data) // 2] ^= 0x55  # one corrupted byte fixed in place: same size, new time
    img_src.write_bytes(bytes(data))
    _touch_later(img_src)
    s = prepare_dataset("DAVIS-2016", src, out, link=False, progress=False)
    assert s.frames_written == 1
    assert (out / "DAVIS-2016/train/images/bear/00000.jpg").read_bytes() == bytes(data)


def test_link_to_another_file_is_replaced(tmp_path):
    src = make_davis2016(tmp_path)
    out = tmp_path / "data"
    prepare_dataset("DAVIS-2016", src, out, progress=False)
    dst = out / "DAVIS-2016/val/images/cows/00000.jpg"
    elsewhere = tmp_path / "old_download.jpg"
    _jpg(elsewhere, seed=5)
    dst.unlink()
    dst.symlink_to(elsewhere)
    s = prepare_dataset("DAVIS-2016", src, out, progress=False)
    assert s.frames_written == 1 and dst.resolve() == (src / "JPEGImages/480p/cows/00000.jpg").resolve()
    assert elsewhere.is_file()  # the other file is not touched


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_corrupt_source_frame_names_the_file(tmp_path, damage):
    src = make_davis2016(tmp_path)
    bad = src / "JPEGImages/480p/cows/00001.jpg"
    good = bad.read_bytes()
    bad.write_bytes({"truncated": good[: len(good) // 2], "empty": b"", "garbage": b"not a jpeg" * 10}[damage])
    cmd = [sys.executable, str(ROOT / "scripts/prepare_data.py"), "--dataset", "DAVIS-2016", "--src", str(src),
           "--data_dir", str(tmp_path / "data"), "--quiet", "--workers", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and str(bad) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "data/DAVIS-2016/val/images/cows/00001.jpg").exists()
    bad.write_bytes(good)  # fixed: the next run completes
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data/DAVIS-2016/val/images/cows/00001.jpg").read_bytes() == good


def test_video_filter(tmp_path):
    src = make_davis2017(tmp_path)
    s = prepare_dataset("DAVIS-2017", src, tmp_path / "data", videos=["blackswan"], progress=False)
    assert s.videos == 1 and not (tmp_path / "data/DAVIS-2016/train").exists()
    with pytest.raises(DatasetLayoutError, match="nosuchvideo"):
        prepare_dataset("DAVIS-2017", src, tmp_path / "data", videos=["nosuchvideo"], progress=False)


@pytest.mark.parametrize("source", ["DAVIS-2017", "YouTubeVOS-2018", "FBMS", "Youtube-objects"])
def test_wrong_folder_names_the_path(tmp_path, source):
    wrong = tmp_path / "not_a_download"
    (wrong / "something").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset(source, wrong, tmp_path / "data", progress=False)
    assert str(wrong) in str(e.value)
    assert not (tmp_path / "data").exists()


def test_davis_missing_annotations_names_path(tmp_path):
    src = make_davis2017(tmp_path)
    os.rename(src / "Annotations", src / "Annotations_moved")
    with pytest.raises(DatasetLayoutError, match=str(src / "Annotations" / "480p")):
        prepare_dataset("DAVIS-2017", src, tmp_path / "data", progress=False)


def test_cli_summary_and_error(tmp_path):
    src = make_davis2017(tmp_path)
    cmd = [sys.executable, str(ROOT / "scripts/prepare_data.py"), "--dataset", "DAVIS-2017", "--src", str(src),
           "--data_dir", str(tmp_path / "data"), "--copy", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "8 found, 8 written" in r.stdout
    assert not (tmp_path / "data/DAVIS-2016/val/images/blackswan/00000.jpg").is_symlink()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert "0 written, 8 already present" in r.stdout
    bad = tmp_path / "empty"
    bad.mkdir()
    cmd[cmd.index("--src") + 1] = str(bad)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and str(bad) in r.stderr


# --------------------------------------------------------------------------- YouTube-VOS
def test_youtubevos_sparse_labels(tmp_path):
    src = make_ytvos(tmp_path / "ytvos")
    out = tmp_path / "data"
    s = prepare_dataset("YouTubeVOS-2018", src, out, progress=False)  # parent of train/ is accepted
    assert (s.videos, s.frames, s.labels) == (2, 22, 6)
    root = out / "YouTubeVOS-2018/train"
    vid = "003234408d"
    assert _files(root / "images" / vid) == [f"{i:05d}.jpg" for i in range(11)]
    assert _files(root / "labels" / vid) == ["00000.png", "00005.png", "00010.png"]
    for i in (0, 5, 10):
        np.testing.assert_array_equal(_mask(root / "labels" / vid / f"{i:05d}.png") == 255, _objects(i, 3) > 0)
    s = prepare_dataset("YouTubeVOS-2018", src / "train", out, progress=False)  # train/ itself too
    assert s.frames_written == 0 and s.labels_written == 0


def test_youtubevos_all_frames_folder(tmp_path):
    src = make_ytvos(tmp_path / "ytvos", all_frames=True)
    out = tmp_path / "data"
    s = prepare_dataset("YouTubeVOS-2018", src / "train", out, progress=False)
    assert s.frames == 22 and s.labels == 6  # frames from train_all_frames, labels from train
    img = out / "YouTubeVOS-2018/train/images/0043f083b5/00003.jpg"
    assert img.resolve() == (src / "train_all_frames/JPEGImages/0043f083b5/00003.jpg").resolve()


def test_youtubevos_missing_jpegimages(tmp_path):
    src = make_ytvos(tmp_path / "ytvos")
    os.rename(src / "train/JPEGImages", src / "train/frames")
    with pytest.raises(DatasetLayoutError, match="JPEGImages"):
        prepare_dataset("YouTubeVOS-2018", src / "train", tmp_path / "data", progress=False)


# --------------------------------------------------------------------------- FBMS
def test_fbms_renaming_sparse_labels_and_backgrounds(tmp_path):
    src = make_fbms(tmp_path)
    out = tmp_path / "data"
    s = prepare_dataset("FBMS", tmp_path, out, progress=False)  # parent of the download is accepted
    root = out / "FBMS/val"
    assert _files(root / "images") == ["cars1", "marple2", "tennis"]
    assert not (out / "FBMS/train").exists()
    assert _files(root / "images/cars1") == [f"{i:05d}.jpg" for i in range(8)]
    # cars1_01 is the first frame -> 00000; GT 01 and 05 -> frames 00000 and 00004.
    assert _files(root / "labels/cars1") == ["00000.png", "00004.png"]
    assert (root / "images/cars1/00004.jpg").resolve() == (src / "Testset/cars1/cars1_05.jpg").resolve()
    # White background with red and blue objects -> union of both objects.
    np.testing.assert_array_equal(_mask(root / "labels/cars1/00004.png") == 255, _objects(5, 2) > 0)
    # marple2 starts at 000: GT 000 and 010 -> 00000 and 00010; grey levels 80 and 200 -> one mask.
    assert _files(root / "labels/marple2") == ["00000.png", "00010.png"]
    np.testing.assert_array_equal(_mask(root / "labels/marple2/00010.png") == 255, _objects(10, 2) > 0)
    # tennis003 -> 00003; 099_gt matches no frame and is reported.
    assert _files(root / "labels/tennis") == ["00003.png"]
    assert any("099_gt.png" in w for w in s.warnings)
    assert s.labels == 5 and s.frames == 25


def test_fbms_forced_background_and_trainingset(tmp_path):
    src = make_fbms(tmp_path)
    out = tmp_path / "data"
    s = prepare_dataset("FBMS", src, out, progress=False, trainingset="train", background="black",
                        videos=["cars1", "bear01"])
    assert s.videos == 2
    assert _files(out / "FBMS/train/labels/bear01") == ["00000.png"]
    # Forcing black on a white-background annotation marks everything as object.
    assert (_mask(out / "FBMS/val/labels/cars1/00000.png") == 255).all()


# --------------------------------------------------------------------------- Youtube-objects
def test_youtube_objects(tmp_path):
    src = make_youtube_objects(tmp_path)
    out = tmp_path / "data"
    s = prepare_dataset("Youtube-objects", src, out, progress=False)
    root = out / "Youtube-objects/val"
    assert _files(root / "images") == ["aeroplane_0001", "cat_0002"]
    assert _files(root / "images/aeroplane_0001") == [f"{i:05d}.jpg" for i in range(1, 7)]
    assert _files(root / "labels/aeroplane_0001") == ["00001.png", "00004.png"]
    assert _files(root / "labels/cat_0002") == ["00002.png"]
    np.testing.assert_array_equal(_mask(root / "labels/cat_0002/00002.png") == 255, _objects(2, 2) > 0)
    assert any("cat/0003" in w for w in s.warnings)
    s = prepare_dataset("Youtube-objects", src, out, progress=False)
    assert s.frames_written == 0 and s.labels_skipped == 3


# --------------------------------------------------------------------------- real data
def test_real_davis2016(tmp_path, davis_root):
    """The shared DAVIS-2016 copy (conftest ``davis_root``; skipped when absent)."""
    src = davis_root
    out = tmp_path / "data"
    s = prepare_dataset("DAVIS-2016", src, out, videos=["blackswan"], progress=False)
    frames = sorted((src / "JPEGImages/480p/blackswan").glob("*.jpg"))
    assert s.frames == len(frames) == s.labels
    img_dir = out / "DAVIS-2016/val/images/blackswan"
    assert _files(img_dir) == [p.name for p in frames]
    assert all(p.is_symlink() for p in img_dir.iterdir())
    m = _mask(out / "DAVIS-2016/val/labels/blackswan/00000.png")
    assert m.shape == (480, 854) and 0.01 < (m > 0).mean() < 0.5
