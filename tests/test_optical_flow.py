"""Flow computation: DIS accuracy through the encoding, layout/resume behaviour, RAFT plumbing."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest

from utils.flow import image_to_flow, read_flow_image
from utils.optical_flow import (
    DISFlow, FlowComputationError, RAFTFlow, compute_dataset_flow, compute_video_flow, load_raft,
)

ROOT = Path(__file__).resolve().parents[1]

# Documented bound (docs/data_preparation.md): DIS "medium" through the JPEG flow image and
# image_to_flow, compared with the true flow divided by the true max vector length, has a
# mean end-point error below 0.1 (measured: 0.044 translation, 0.012 smooth field).
EPE_BOUND = 0.1
MARGIN = 12  # border pixels whose warp source lies outside the frame are not scored


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth multi-scale random texture, RGB uint8 (DIS needs gradients at several scales)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for s in (2, 4, 8, 16):
        img += cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), s) * s
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return np.repeat(img[..., None], 3, -1).astype(np.uint8)


def _field(h: int, w: int, kind: str) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "translate":
        u, v = np.full((h, w), 3.0), np.full((h, w), -2.0)
    else:
        u, v = 3.0 + 2.0 * np.sin(2 * np.pi * y / h), -2.0 + 1.5 * np.cos(2 * np.pi * x / w)
    return np.stack([u, v], -1).astype(np.float32)


def _pair(h: int, w: int, flow: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames (f1, f2) whose forward flow f1 -> f2 is exactly ``flow``: f1(x) = f2(x + flow(x))."""
    f2 = _texture(h, w, seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f1 = cv2.remap(f2, x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return f1, f2


def _write_video(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])


def _flow_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _make_dataset(data_dir: Path, videos: dict[str, int], size: tuple[int, int] = (48, 64),
                  dataset: str = "DAVIS-2016", split: str = "val") -> Path:
    for v, (name, n) in enumerate(videos.items()):
        flow = _field(*size, "translate")
        f = [_texture(*size, seed=v)]
        y, x = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
        for _ in range(n - 1):  # each frame moves by the same flow
            f.append(cv2.remap(f[-1], x - flow[..., 0], y - flow[..., 1], cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT))
        _write_video(data_dir / dataset / split / "images" / name, f)
    return data_dir / dataset / split


# --------------------------------------------------------------------------- DIS accuracy
@pytest.mark.parametrize("kind", ["translate", "smooth"])
def test_dis_round_trip_epe(tmp_path, kind):
    h, w = 240, 320
    truth = _field(h, w, kind)
    f1, f2 = _pair(h, w, truth)
    _write_video(tmp_path / "images", [f1, f2])
    stats = compute_video_flow(tmp_path / "images", tmp_path / "flows", DISFlow("medium"))
    assert (stats.computed, stats.copied) == (1, 1)
    decoded = image_to_flow(read_flow_image(tmp_path / "flows/00000.jpg"))
    true_max = np.linalg.norm(truth, axis=-1).max()
    epe = np.linalg.norm(decoded - truth / true_max, axis=-1)[MARGIN:-MARGIN, MARGIN:-MARGIN]
    assert epe.mean() < EPE_BOUND, f"{kind}: mean normalised EPE {epe.mean():.3f} (pixels ~{epe.mean() * true_max:.2f})"
    # Backward flow or swapped (u, v) would be off by ~1-2 normalised units, far over the bound.
    assert np.linalg.norm(decoded + truth / true_max, axis=-1).mean() > 1.0


def test_every_frame_gets_a_flow_of_its_size(tmp_path):
    vdir = _make_dataset(tmp_path, {"clip": 4}, size=(50, 70))
    stats = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    assert (stats.videos, stats.frames, stats.computed, stats.copied) == (1, 4, 3, 1)
    flows = vdir / "flows/clip"
    assert _flow_files(flows) == [f"{i:05d}.jpg" for i in range(4)]
    for p in _flow_files(flows):
        assert read_flow_image(flows / p).shape == (50, 70, 3)
    # The last frame carries the previous frame's flow (documented convention).
    assert (flows / "00003.jpg").read_bytes() == (flows / "00002.jpg").read_bytes()
    # Forward flow: the scene moves by (+3, -2) -> mean decoded direction points right/up.
    mean = image_to_flow(read_flow_image(flows / "00000.jpg"))[8:-8, 8:-8].mean((0, 1))
    assert mean[0] > 0.5 and mean[1] < -0.3


def test_resume_overwrite_filters_and_workers(tmp_path):
    vdir = _make_dataset(tmp_path, {"a": 5, "b": 3, "single": 1})
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", videos=["a"], max_frames=2, progress=False)
    # First 2 frames only; frame 00001 still gets its true forward flow to 00002.
    assert _flow_files(vdir / "flows/a") == ["00000.jpg", "00001.jpg"] and s.copied == 0
    assert not (vdir / "flows/b").exists()
    before = (vdir / "flows/a/00000.jpg").stat().st_mtime_ns
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", workers=2, progress=False)  # processes
    assert (s.videos, s.frames, s.skipped, s.computed, s.copied) == (3, 9, 2, 4, 3)
    assert (vdir / "flows/a/00000.jpg").stat().st_mtime_ns == before
    for name, n in (("a", 5), ("b", 3), ("single", 1)):
        assert _flow_files(vdir / f"flows/{name}") == [f"{i:05d}.jpg" for i in range(n)]
    # One-frame video: zero flow renders white.
    assert read_flow_image(vdir / "flows/single/00000.jpg").min() >= 250
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    assert (s.computed, s.copied, s.skipped) == (0, 0, 9)
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", videos=["b"], overwrite=True, progress=False)
    assert (s.computed, s.copied) == (2, 1)
    with pytest.raises(FileNotFoundError, match="nosuch"):
        compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", videos=["nosuch"], progress=False)


def _mtimes(flows: Path) -> dict[str, int]:
    return {n: (flows / n).stat().st_mtime_ns for n in _flow_files(flows)}


def _age(paths, seconds: float) -> None:
    """Set the modification time of ``paths`` to ``seconds`` ago."""
    import os
    import time
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t))


def test_flow_of_a_replaced_frame_is_recomputed(tmp_path):
    """prepare_data.py re-makes a frame whose source was fixed; the flows it feeds must follow,
    whatever the frame's modification time (prepare_data gives it the source's)."""
    vdir = _make_dataset(tmp_path, {"a": 4})
    compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    flows = vdir / "flows/a"
    old = _mtimes(flows)
    frame = vdir / "images/a/00002.jpg"
    assert cv2.imwrite(str(frame), _texture(48, 64, seed=7))
    _age([frame], 1000)  # older than its flows: only the content tells
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    # Flows 1 (1->2) and 2 (2->3) read the frame, and the last is a copy of flow 2; flow 0 stays.
    assert (s.computed, s.copied, s.skipped) == (2, 1, 1)
    new = _mtimes(flows)
    assert [n for n in sorted(old) if new[n] != old[n]] == ["00001.jpg", "00002.jpg", "00003.jpg"]
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    assert (s.computed, s.copied, s.skipped) == (0, 0, 4)


def test_a_copied_data_set_keeps_its_flow(tmp_path):
    """A copy has new modification times (frames may come out newer than their flows) but the same
    bytes: nothing is recomputed. Flow without a record (an earlier version) falls back to the times."""
    import shutil

    _make_dataset(tmp_path / "a", {"v": 4})
    compute_dataset_flow(tmp_path / "a", "DAVIS-2016", "dis", progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b", copy_function=shutil.copyfile)
    vdir = tmp_path / "b/DAVIS-2016/val"
    flows = vdir / "flows/v"
    _age((flows / n for n in _flow_files(flows)), 1000)
    s = compute_dataset_flow(tmp_path / "b", "DAVIS-2016", "dis", progress=False)
    assert (s.computed, s.copied, s.skipped) == (0, 0, 4)

    record = flows / ".flow_sources.json"
    record.unlink()
    s = compute_dataset_flow(tmp_path / "b", "DAVIS-2016", "dis", progress=False)
    assert (s.computed, s.copied, s.skipped) == (3, 1, 0)  # older than the frames, no record: redone
    record.unlink()
    _age((vdir / "images/v" / n for n in _flow_files(vdir / "images/v")), 2000)
    s = compute_dataset_flow(tmp_path / "b", "DAVIS-2016", "dis", progress=False)
    assert (s.computed, s.copied, s.skipped) == (0, 0, 4) and record.is_file()  # newer: kept, and now recorded


def test_output_accepted_by_dataset_index(tmp_path):
    """The flows written here satisfy the loaders' layout check (datasets.index.scan_split)."""
    from datasets.index import scan_split

    _make_dataset(tmp_path, {"a": 3, "b": 2})
    compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    videos = scan_split(tmp_path, "DAVIS-2016", "val")
    assert [v.name for v in videos] == ["a", "b"] and all(set(v.flow_paths) == set(v.frames) for v in videos)


def test_errors_name_video_and_frame(tmp_path):
    vdir = _make_dataset(tmp_path, {"clip": 3})
    (vdir / "images/clip/00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FlowComputationError, match=r"clip.*00000\.jpg|00001\.jpg"):
        compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    _write_video(vdir / "images/clip", [_texture(48, 64), _texture(40, 64)])
    with pytest.raises(FlowComputationError, match="clip.*sizes differ"):
        compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", overwrite=True, progress=False)
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        compute_dataset_flow(tmp_path, "FBMS", "dis", progress=False)
    assert not list(tmp_path.rglob(".*.part"))


def test_cli_dis(tmp_path):
    vdir = _make_dataset(tmp_path, {"a": 3, "b": 2})
    cmd = [sys.executable, str(ROOT / "scripts/compute_flow.py"), "--data_dir", str(tmp_path),
           "--datasets", "DAVIS-2016", "--method", "dis", "--dis_preset", "fast", "--videos", "a", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 flows computed, 1 last-frame copies" in r.stdout
    assert _flow_files(vdir / "flows/a") == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert not (vdir / "flows/b").exists()


# --------------------------------------------------------------------------- RAFT
@pytest.fixture(scope="module")
def raft_small_weights(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / "raft_small_random.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    return path


def test_raft_small_random_weights(tmp_path, raft_small_weights):
    vdir = _make_dataset(tmp_path, {"clip": 3}, size=(64, 96))
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "raft_small", weights=raft_small_weights, device="cpu",
                             iters=2, batch_size=2, progress=False)
    assert (s.computed, s.copied) == (2, 1)
    for p in _flow_files(vdir / "flows/clip"):
        assert read_flow_image(vdir / "flows/clip" / p).shape == (64, 96, 3)


def test_raft_odd_size_and_resize(raft_small_weights):
    est = RAFTFlow("raft_small", raft_small_weights, "cpu", iters=1, batch_size=2, size=(60, 90))
    assert est.size == (64, 88)  # rounded to multiples of 8
    a = [np.zeros((45, 70, 3), np.uint8) + 40 * i for i in range(3)]
    flows = est(a[:2], a[1:])
    assert [f.shape for f in flows] == [(45, 70, 2)] * 2 and all(np.isfinite(f).all() for f in flows)


def test_raft_weights_errors(tmp_path, raft_small_weights, monkeypatch):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_raft("raft_small", missing)
    with pytest.raises(ValueError, match="raft_large"):
        load_raft("raft_large", raft_small_weights)  # wrong architecture names the file and model
    import torchvision.models.optical_flow as of

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(of, "raft_small", offline)
    with pytest.raises(RuntimeError, match="--raft_weights"):
        load_raft("raft_small", None)


def test_cli_raft_missing_weights(tmp_path):
    _make_dataset(tmp_path, {"clip": 2})
    missing = tmp_path / "weights/raft.pth"
    r = subprocess.run([sys.executable, str(ROOT / "scripts/compute_flow.py"), "--data_dir", str(tmp_path),
                        "--dataset", "DAVIS-2016", "--method", "raft_small", "--raft_weights", str(missing),
                        "--device", "cpu", "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and str(missing) in r.stderr


# --------------------------------------------------------------------------- real data
def _prepared_real_davis(tmp_path: Path, davis_root: Path) -> Path:
    """blackswan of the shared DAVIS copy converted into tmp_path (symlinked frames)."""
    from datasets.prepare import prepare_dataset

    if not (davis_root / "JPEGImages/480p/blackswan").is_dir():
        pytest.skip(f"blackswan not found under {davis_root}")
    prepare_dataset("DAVIS-2016", davis_root, tmp_path / "data", videos=["blackswan"], progress=False)
    return tmp_path / "data"


def test_real_davis_dis_first_frames(tmp_path, davis_root):
    data = _prepared_real_davis(tmp_path, davis_root)
    s = compute_dataset_flow(data, "DAVIS-2016", "dis", videos=["blackswan"], max_frames=4, progress=False)
    assert s.computed == 4
    flows = data / "DAVIS-2016/val/flows/blackswan"
    assert _flow_files(flows) == [f"{i:05d}.jpg" for i in range(4)]
    img = read_flow_image(flows / "00000.jpg")
    assert img.shape == (480, 854, 3)
    assert img.std() > 5  # real motion, not a blank image


@pytest.mark.slow
def test_real_davis_dis_whole_sequence_cli(tmp_path, davis_root):
    data = _prepared_real_davis(tmp_path, davis_root)
    r = subprocess.run([sys.executable, str(ROOT / "scripts/compute_flow.py"), "--data_dir", str(data),
                        "--dataset", "DAVIS-2016", "--videos", "blackswan", "--workers", "2", "--quiet"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    images = sorted(p.name for p in (data / "DAVIS-2016/val/images/blackswan").iterdir())
    flows = data / "DAVIS-2016/val/flows/blackswan"
    assert _flow_files(flows) == images
    assert all(read_flow_image(flows / n).shape == (480, 854, 3) for n in images[::7] + images[-1:])
