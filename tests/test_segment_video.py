"""scripts/segment_video.py: video file and frames-folder inputs, online path, overlays, errors."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.video import (VideoInputError, compute_flow, extract_frames, iter_input_frames, open_video_writer,
                          overlay_frame, segment_video, video_name)
from models import build_model, model_config
from utils.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
H, W, N = 64, 96, 8
FAST = ["--size", str(H), str(W), "--workers", "0", "--batch_size", "4", "--flow", "dis", "--device", "cpu"]


def _load_script():
    spec = importlib.util.spec_from_file_location("segment_video_script", ROOT / "scripts" / "segment_video.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


script = _load_script()


def _frames(n: int = N, h: int = H, w: int = W) -> list[np.ndarray]:
    """A bright square moving right over a smooth random texture (BGR)."""
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (7, 7), 0)
    out = []
    for i in range(n):
        img = tex.copy()
        x = 10 + 5 * i
        img[20:40, x:x + 20] = (30, 200, 240)
        out.append(img)
    return out


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on 2 cores shared with other jobs, OpenMP threads waiting for each
    other made these tiny forward passes up to ~100x slower (seconds instead of milliseconds)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("video_ckpt") / "xxs.pth"
    save_checkpoint(path, {"model": build_model("xxs").state_dict(), "model_config": model_config("xxs")})
    return path


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "my clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    assert writer.isOpened()
    for f in _frames():
        writer.write(f)
    writer.release()
    return path


def _masks(d: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(d.glob("*.png"))]


def _count_video_frames(path: Path) -> tuple[int, tuple[int, int] | None]:
    cap = cv2.VideoCapture(str(path))
    n, shape = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n, shape = n + 1, f.shape[:2]
    cap.release()
    return n, shape


def test_video_file_masks_overlay_video_and_resume(ckpt, video_file, tmp_path):
    out = tmp_path / "out"
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST]
    assert script.main(argv) == 0
    name = "my_clip"  # the file name, made folder-safe
    masks = _masks(out / "masks" / name)
    assert len(masks) == N
    assert all(m.shape == (H, W) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255} for m in masks)
    assert not (out / "masks" / "custom").exists()  # no dataset level in the output
    overlay = out / "overlay.mp4" if (out / "overlay.mp4").exists() else out / "overlay.avi"
    assert _count_video_frames(overlay) == (N, (H, W))
    flows = sorted((out / "work/custom/val/flows" / name).glob("*.jpg"))
    assert len(flows) == N
    record = json.loads((out / "work" / f"{name}.source.json").read_text())
    assert record["fps"] == pytest.approx(10.0) and record["frames"][0] == "00000"

    # A rerun reuses frames and flows (see test_flows_are_reused); --clean_work removes them at the end.
    args = script.get_parser().parse_args([*argv, "--overlay", "none", "--clean_work"])
    result = segment_video(args)
    assert result.frames == N and result.overlay is None and result.masks_dir == out / "masks" / name
    assert result.frames_reused and result.flow.computed == 0 and result.flow.skipped == N
    assert not (out / "work").exists()


def test_flows_are_reused(ckpt, video_file, tmp_path):
    work = tmp_path / "work"
    frames = extract_frames(video_file, work, "v", max_frames=3, progress=False)
    assert frames.names == ["00000", "00001", "00002"] and frames.size == (H, W)
    images, flows = work / "custom/val/images/v", work / "custom/val/flows/v"
    first = compute_flow(images, flows, "dis", progress=False)
    second = compute_flow(images, flows, "dis", progress=False)
    assert first.computed == 2 and second.computed == 0 and second.skipped == 3
    # Same input and selection: frames are reused; another selection starts afresh.
    assert extract_frames(video_file, work, "v", max_frames=3, progress=False).reused
    again = extract_frames(video_file, work, "v", max_frames=2, progress=False)
    assert not again.reused and again.names == ["00000", "00001"] and not flows.exists()


def test_frames_folder_stride_max_frames_and_overlay_frames(ckpt, tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, f in enumerate(_frames(7)):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), f)
    out = tmp_path / "out"
    argv = ["--input", str(folder), "--weights", str(ckpt), "--output_dir", str(out), *FAST,
            "--stride", "2", "--max_frames", "3", "--overlay", "frames", "--save_prob"]
    assert script.main(argv) == 0
    assert len(_masks(out / "masks/shots")) == 3 and len(_masks(out / "probs/shots")) == 3
    ov = sorted((out / "overlay").glob("*.jpg"))
    assert [p.stem for p in ov] == ["00000", "00001", "00002"]
    assert cv2.imread(str(ov[0])).shape == (H, W, 3)
    record = json.loads((out / "work/shots.source.json").read_text())
    assert record["sources"] == ["img_000.png", "img_002.png", "img_004.png"] and record["fps"] is None
    # Fewer frames on a rerun: stale masks and overlay frames of the first run are gone.
    assert script.main([*argv[:-5], "--max_frames", "2", "--overlay", "frames"]) == 0
    assert len(_masks(out / "masks/shots")) == 2 and len(list((out / "overlay").glob("*.jpg"))) == 2


def test_online_path(ckpt, video_file, tmp_path):
    out = tmp_path / "out"
    assert script.main(["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST,
                        "--max_frames", "4", "--online", "--online_epochs", "1", "--online_batch_size", "2",
                        "--tta", "identity", "--overlay", "none", "--name", "clip"]) == 0
    masks = _masks(out / "masks/clip")
    assert len(masks) == 4 and all(m.shape == (H, W) for m in masks)
    assert not (out / "masks/custom").exists() and not (out / "overlay.mp4").exists()
    assert (out / "work/online/timing.json").is_file()


def test_missing_and_unreadable_inputs(ckpt, tmp_path, capsys):
    missing = tmp_path / "nope.mp4"
    argv = ["--weights", str(ckpt), "--output_dir", str(tmp_path / "o"), *FAST]
    assert script.main(["--input", str(missing), *argv]) == 2
    assert str(missing) in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        next(iter_input_frames(missing))

    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"this is not a video" * 20)
    assert script.main(["--input", str(garbage), *argv]) == 2
    assert str(garbage) in capsys.readouterr().err
    with pytest.raises(VideoInputError, match="broken.mp4"):
        list(iter_input_frames(garbage))

    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(VideoInputError, match="empty_folder"):
        list(iter_input_frames(empty))
    with pytest.raises(ValueError, match="stride"):
        list(iter_input_frames(empty, stride=0))


def test_overlay_frame_and_writer_fallback(tmp_path):
    img = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 10:20] = 255
    out = overlay_frame(img, mask, (255, 0, 0), alpha=0.5)
    assert np.array_equal(out[0, 0], img[0, 0])  # background untouched
    assert tuple(out[10, 15]) == (50, 50, 177)  # BGR: half grey, half red
    assert not np.array_equal(out[5, 12], out[10, 15])  # contour drawn at the border
    # An extension no writer accepts makes the next codec (MJPG .avi) take over.
    writer, path = open_video_writer(tmp_path / "ov", 10, (20, 30), (("mp4v", ".unknownext"), ("MJPG", ".avi")))
    writer.release()
    assert path.suffix == ".avi"
    assert video_name(Path("/x/My Video (1).mp4")) == "My_Video_1"


def test_video_stride_and_max_frames(video_file):
    assert [s for s, _ in iter_input_frames(video_file, stride=3)] == ["0", "3", "6"]
    frames = list(iter_input_frames(video_file, stride=3, max_frames=2))
    assert [s for s, _ in frames] == ["0", "3"] and frames[0][1].shape == (H, W, 3)


def test_every_option_has_help():
    parser = script.get_parser()
    missing = [a.dest for a in parser._actions if not a.help]
    assert not missing
    text = " ".join(parser.format_help().split())  # independent of the terminal width
    assert "--online_epochs" in text and "(default: dis)" in text
