"""The flow input with the camera's motion removed (utils.camera_motion, compute_dataset_flow's
``camera``, davis_real's ``--flow_camera``): exact homographies vanish, an object keeps its own
motion, the default writes what it always wrote, and the two kinds never share a cache."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from utils.camera_motion import homography_residual, remove_camera_motion
from utils.flow import flow_to_image, image_to_flow, read_flow_image, write_flow_image
from utils.optical_flow import (
    CAMERA_MARKER, SOURCES, DISFlow, FlowComputationError, compute_dataset_flow, compute_video_flow,
)


def _homography_flow(h: int, w: int, hom: np.ndarray) -> np.ndarray:
    """``2 x H x W``: the flow that ``hom`` induces, ``H(x) - x``."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    p = hom @ np.stack([xx.ravel(), yy.ravel(), np.ones(h * w)])
    return np.stack([p[0] / p[2] - xx.ravel(), p[1] / p[2] - yy.ravel()]).reshape(2, h, w).astype(np.float32)


# A zoom (2%) about the origin, a translation and a slight perspective: a camera moving forward and panning.
HOM = np.array([[1.02, 0.003, 3.0], [-0.002, 1.02, -2.0], [1e-5, -2e-5, 1.0]])


def test_a_pure_homography_flow_becomes_zero():
    flow = _homography_flow(120, 160, HOM)
    assert np.abs(flow).max() > 3  # a real camera motion to remove
    out, fitted = remove_camera_motion(flow)
    assert fitted and out.shape == flow.shape and out.dtype == np.float32
    assert np.abs(out).max() < 0.05


def test_a_moving_square_keeps_its_own_motion():
    h, w = 120, 160
    flow = _homography_flow(h, w, HOM)
    extra = np.array([2.5, -1.5], np.float32)
    sq = np.zeros((h, w), bool)
    sq[40:80, 60:100] = True  # 1/12 of the frame: RANSAC takes it for outliers
    flow[:, sq] += extra[:, None]
    out, fitted = remove_camera_motion(flow)
    assert fitted
    assert np.abs(out[:, sq] - extra[:, None]).max() < 0.1
    assert np.abs(out[:, ~sq]).max() < 0.05


def test_an_all_zero_flow_stays_zero():
    flow = np.zeros((2, 48, 64), np.float32)
    out, fitted = remove_camera_motion(flow)
    assert out.shape == flow.shape and np.isfinite(out).all() and np.abs(out).max() < 1e-6
    assert fitted  # the identity fits


def test_too_few_samples_leave_the_flow_unchanged():
    flow = _homography_flow(20, 24, HOM)  # 5 x 6 samples on the default stride: below the minimum
    out, fitted = remove_camera_motion(flow)
    assert not fitted and np.array_equal(out, flow)
    assert homography_residual(flow) is None


def test_pseudo_labels_use_the_shared_fit():
    """The motion veto's residual is the length of the shared helper's residual vector."""
    import torch

    from engine.pseudo_labels import background_residual

    flow = _homography_flow(64, 80, HOM)
    flow[:, 20:40, 20:40] += 3.0
    fit = np.ones((64, 80), bool)
    fit[20:40, 20:40] = False
    res = homography_residual(flow, fit)
    dist = background_residual(torch.from_numpy(flow), torch.from_numpy(fit))
    assert torch.equal(dist, torch.from_numpy(np.hypot(res[0], res[1]).astype(np.float32)))
    assert float(dist[25, 25]) == pytest.approx(3 * 2 ** 0.5, abs=0.05) and float(dist[:, 50:].max()) < 0.05


# --------------------------------------------------------------------------- compute_dataset_flow
def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for s in (2, 4, 8):
        img += cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), s) * s
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return np.repeat(img[..., None], 3, -1).astype(np.uint8)


def _video(folder: Path, n: int, h: int = 96, w: int = 128, square: bool = False, seed: int = 0) -> None:
    """``n`` frames, each the next one warped by a pan (+ a square moving on its own): frame t's
    forward flow is that field."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = np.full((h, w), 3.0, np.float32), np.full((h, w), -2.0, np.float32)
    if square:
        u[32:64, 48:80] -= 6.0
        v[32:64, 48:80] += 4.0
    frames = [_texture(h, w, seed)]
    for _ in range(n - 1):
        frames.insert(0, cv2.remap(frames[0], x + u, y + v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    for i, f in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])


def _dataset(root: Path, videos: dict[str, int], square: bool = False) -> Path:
    vdir = root / "DAVIS-2016" / "val"
    for i, (name, n) in enumerate(videos.items()):
        _video(vdir / "images" / name, n, square=square, seed=i)
    return vdir


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_keep_writes_what_the_default_always_wrote(tmp_path):
    """camera="keep" writes byte for byte what a call without the option writes, and that is the
    estimated flow's usual encoding, with the usual record and no marker."""
    _dataset(tmp_path / "a", {"v": 3, "w": 1})
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    compute_dataset_flow(tmp_path / "a", "DAVIS-2016", "dis", progress=False)
    s = compute_dataset_flow(tmp_path / "b", "DAVIS-2016", "dis", progress=False, camera="keep")
    assert s.unfitted == 0
    a, b = _files(tmp_path / "a/DAVIS-2016/val/flows"), _files(tmp_path / "b/DAVIS-2016/val/flows")
    assert a == b and not any(CAMERA_MARKER in k for k in a)

    vdir = tmp_path / "a/DAVIS-2016/val"
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((vdir / "images/v").glob("*.jpg"))]
    for i in range(2):
        write_flow_image(tmp_path / f"ref{i}.jpg", flow_to_image(DISFlow("medium")([frames[i]], [frames[i + 1]])[0]))
        assert (tmp_path / f"ref{i}.jpg").read_bytes() == a[f"v/{i:05d}.jpg"]
    record = json.loads(a[f"v/{SOURCES}"])
    assert all(all(":" in x and not x.startswith("camera") for x in ids) for ids in record.values())


def test_remove_keeps_the_object_and_stills_the_background(tmp_path):
    """End to end: a pan and a square moving against it; the flow image with the camera removed is
    about white (still) on the background and saturated on the square, through the same encoding."""
    vdir = _dataset(tmp_path, {"v": 3}, square=True)
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False, camera="remove")
    assert (s.computed, s.copied, s.unfitted) == (2, 1, 0)
    rad = np.hypot(*image_to_flow(read_flow_image(vdir / "flows/v/00000.jpg")).transpose(2, 0, 1))
    sq = np.zeros(rad.shape, bool)
    sq[36:60, 52:76] = True
    bg = np.ones(rad.shape, bool)
    bg[24:72, 40:88] = False
    bg[:8], bg[-8:], bg[:, :8], bg[:, -8:] = False, False, False, False
    assert np.median(rad[sq]) > 0.6 and np.median(rad[bg]) < 0.15
    keep = compute_video_flow(vdir / "images/v", tmp_path / "keep", DISFlow("medium"))
    assert keep.computed == 2
    rad_keep = np.hypot(*image_to_flow(read_flow_image(tmp_path / "keep/00000.jpg")).transpose(2, 0, 1))
    assert np.median(rad_keep[bg]) > 0.3  # as estimated, the pan moves the background too


def test_failed_fits_are_counted_and_left_unchanged(tmp_path):
    vdir = tmp_path / "DAVIS-2016/val"
    _video(vdir / "images/tiny", 3, h=20, w=24)  # too few samples for a fit
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False, camera="remove")
    assert (s.computed, s.unfitted) == (2, 2)
    compute_video_flow(vdir / "images/tiny", tmp_path / "keep", DISFlow("medium"))
    assert (vdir / "flows/tiny/00000.jpg").read_bytes() == (tmp_path / "keep/00000.jpg").read_bytes()


def test_a_cache_of_one_kind_is_never_reused_as_the_other(tmp_path):
    vdir = _dataset(tmp_path, {"v": 3})
    compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    with pytest.raises(FlowComputationError, match=r"camera=keep.*\.flow_sources\.json.*camera=remove"):
        compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False, camera="remove")
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False, camera="remove", overwrite=True)
    assert s.computed == 2 and (vdir / "flows/v" / CAMERA_MARKER).is_file()
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False, camera="remove")
    assert (s.computed, s.skipped) == (0, 3)  # its own kind: reused
    with pytest.raises(FlowComputationError, match=r"camera=remove.*\.flow_sources\.json"):
        compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    # An image written just before a kill has no record entry: the folder's marker says its kind.
    (vdir / "flows/v" / SOURCES).unlink()
    with pytest.raises(FlowComputationError, match=CAMERA_MARKER):
        compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False)
    s = compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False, overwrite=True)
    assert s.computed == 2 and not (vdir / "flows/v" / CAMERA_MARKER).exists()  # all "keep" again
    with pytest.raises(ValueError, match="camera"):
        compute_dataset_flow(tmp_path, "DAVIS-2016", "dis", progress=False, camera="off")


def test_cli_option(tmp_path, capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts/compute_flow.py"
    spec = importlib.util.spec_from_file_location("compute_flow_cli", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.build_parser().parse_args(["--data_dir", "d", "--dataset", "x"]).camera == "keep"
    _video(tmp_path / "DAVIS-2016/val/images/tiny", 2, h=20, w=24)
    assert cli.main(["--data_dir", str(tmp_path), "--dataset", "DAVIS-2016", "--camera", "remove", "--quiet"]) == 0
    assert "not removed from 1" in capsys.readouterr().out
    assert cli.main(["--data_dir", str(tmp_path), "--dataset", "DAVIS-2016", "--quiet"]) == 2  # the other kind


# --------------------------------------------------------------------------- davis_real
def test_davis_real_keeps_each_flow_kind_in_its_own_folder():
    from benchmarks import davis_real
    from benchmarks.ledger import setting_key, setting_of

    out = Path("/tmp/x")
    keep, remove = davis_real.data_folder(out), davis_real.data_folder(out, "medium", "remove")
    assert keep == out / "data" and remove != keep and remove.name == "data_medium_nocam"
    assert davis_real.data_folder(out, "fast") == out / "data_fast"
    assert davis_real.data_folder(out, "fast", "remove") not in (keep, remove, out / "data_fast")
    p = davis_real.get_parser()
    defaults = vars(p.parse_args([]))
    assert defaults["flow_camera"] == "keep"
    assert setting_key(setting_of(p.parse_args(["--flow_camera", "remove"]), defaults)) == "--flow_camera remove"
    assert setting_key(setting_of(p.parse_args(["--flow_camera", "keep"]), defaults)) == "recipe"
