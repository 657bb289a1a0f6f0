"""scripts/segment_video.py and the segment_video package: video file and frames-folder inputs, online path,
overlays, errors, and the output folder contract."""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import segment_video.flow as video_flow
import segment_video.pipeline as video_method
from segment_video import VideoConfig, segment_video
from segment_video.flow import FlowAtSize, compute_flow, network_flow_image
from segment_video.frames import VideoInputError, extract_frames, iter_input_frames, video_name
from segment_video.online import online_config
from segment_video.overlay import open_video_writer, overlay_frame
from utils.flow import flow_to_image
from models import build_model, model_config
from utils.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
H, W, N = 64, 96, 8
# The PyTorch reference network (--runtime auto would use ONNX Runtime; tests/test_onnx_runtime.py covers it).
FAST = ["--size", str(H), str(W), "--workers", "0", "--batch_size", "4", "--flow", "dis", "--device", "cpu",
        "--runtime", "torch"]


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
    """One intra-op thread: on a small machine shared with other jobs, OpenMP threads waiting for
    each other make these tiny forward passes far slower (benchmarks/RESULTS.md, Speed)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST, "--pipeline", "files"]
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
                        "--overlay", "none", "--name", "clip"]) == 0
    masks = _masks(out / "masks/clip")
    assert len(masks) == 4 and all(m.shape == (H, W) for m in masks)
    assert not (out / "masks/custom").exists() and not (out / "overlay.mp4").exists()
    assert (out / "work/online/timing.json").is_file()
    assert "reused 0 finished earlier" in (out / "work/online/log.txt").read_text()  # the tuner's closing summary


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


# --------------------------------------------------------------------------- speed options
STAGE_KEYS = {"frames_s", "flow_s", "model_s", "network_s", "masks_s", "overlay_s", "total_s"}


def _probs(d: Path) -> np.ndarray:
    return np.stack([m.astype(np.float32) / 255 for m in _masks(d)])


def test_memory_pipeline_writes_no_frames_and_records_stage_timings(ckpt, video_file, tmp_path):
    out = tmp_path / "out"
    args = script.get_parser().parse_args(["--input", str(video_file), "--weights", str(ckpt), "--output_dir",
                                           str(out), *FAST])
    result = segment_video(args, progress=False)
    assert result.pipeline == "memory" and result.frames == N and result.size == (H, W)
    assert len(_masks(out / "masks/my_clip")) == N
    assert _count_video_frames(result.overlay) == (N, (H, W))
    # No JPEG round trip: the work folder holds only the record of where each frame came from.
    assert sorted(p.name for p in (out / "work").iterdir()) == ["my_clip.source.json"]
    assert json.loads((out / "work/my_clip.source.json").read_text())["sources"] == [str(i) for i in range(N)]
    assert result.flow.computed == N - 1 and result.flow.copied == 1
    t = result.timing
    assert set(t) == STAGE_KEYS and all(v > 0 for v in t.values())
    # Overlapping stages (the default) book more stage time than wall time; one after another they cannot.
    seq = segment_video(script.get_parser().parse_args(["--input", str(video_file), "--weights", str(ckpt),
                                                        "--output_dir", str(tmp_path / "seq"), *FAST, "--no_overlap"]),
                        progress=False)
    t = seq.timing
    assert set(t) == STAGE_KEYS and sum(v for k, v in t.items() if k != "total_s") <= t["total_s"]


def test_overlapped_stages_write_what_the_sequential_run_writes(ckpt, video_file, tmp_path):
    base = ["--input", str(video_file), "--weights", str(ckpt), *FAST, "--batch_size", "3", "--save_prob"]
    runs = {}
    for flag in ("--no_overlap", None):
        out = tmp_path / str(flag)
        runs[flag] = segment_video(script.get_parser().parse_args([*base, "--output_dir", str(out)]
                                                                  + ([flag] if flag else [])), progress=False)
    seq, over = runs["--no_overlap"], runs[None]
    assert seq.frames == over.frames == N
    for sub in ("masks", "probs"):
        a, b = _masks(seq.masks_dir.parents[1] / sub / "my_clip"), _masks(over.masks_dir.parents[1] / sub / "my_clip")
        assert len(a) == len(b) == N and all(np.array_equal(x, y) for x, y in zip(a, b))
    src = [json.loads((r.work_dir / "my_clip.source.json").read_text())["sources"] for r in (seq, over)]
    assert src[0] == src[1] == [str(i) for i in range(N)]
    assert _count_video_frames(over.overlay) == (N, (H, W))
    assert (over.flow.computed, over.flow.copied) == (seq.flow.computed, seq.flow.copied) == (N - 1, 1)


@pytest.mark.parametrize("frames, batch", [(1, 4), (2, 1), (5, 8)])
def test_overlapped_stages_on_short_videos(ckpt, video_file, tmp_path, frames, batch):
    """One frame (no flow pair: the still flow), one frame per batch, a batch larger than the video."""
    base = ["--input", str(video_file), "--weights", str(ckpt), *FAST, "--max_frames", str(frames),
            "--batch_size", str(batch), "--overlay", "none"]
    runs = [segment_video(script.get_parser().parse_args([*base, "--output_dir", str(tmp_path / str(k))] + flag),
                          progress=False) for k, flag in enumerate([[], ["--no_overlap"]])]
    assert [r.frames for r in runs] == [frames, frames] and runs[0].overlap and not runs[1].overlap
    masks = [_masks(r.masks_dir) for r in runs]
    assert len(masks[0]) == frames and all(np.array_equal(a, b) for a, b in zip(*masks))
    assert (runs[0].flow.computed, runs[0].flow.copied) == (frames - 1, 1)


@pytest.mark.parametrize("stage", ["write", "flow"])
def test_an_error_in_an_overlapped_stage_stops_the_run(ckpt, video_file, tmp_path, monkeypatch, stage):
    calls = {"n": 0}

    def failing(real):
        def wrapped(*a, **k):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(f"disk full in {stage}")
            return real(*a, **k)
        return wrapped

    if stage == "write":
        monkeypatch.setattr(video_method.TimedMaskWriter, "write", failing(video_method.TimedMaskWriter.write))
    else:
        monkeypatch.setattr(video_method, "network_flow_image", failing(video_method.network_flow_image))
    args = script.get_parser().parse_args(["--input", str(video_file), "--weights", str(ckpt), "--output_dir",
                                           str(tmp_path / "out"), *FAST, "--batch_size", "2"])
    with pytest.raises(OSError, match=f"disk full in {stage}"):
        segment_video(args, progress=False)


def test_files_pipeline_stage_timings_and_online_tuning_time(ckpt, video_file, tmp_path):
    base = ["--input", str(video_file), "--weights", str(ckpt), *FAST, "--max_frames", "4", "--overlay", "none"]
    files = segment_video(script.get_parser().parse_args([*base, "--output_dir", str(tmp_path / "f"),
                                                          "--pipeline", "files"]), progress=False)
    assert files.pipeline == "files" and set(files.timing) == STAGE_KEYS
    assert all(files.timing[k] > 0 for k in ("frames_s", "flow_s", "model_s", "network_s", "masks_s"))
    root = logging.getLogger()
    handlers = list(root.handlers)
    online = segment_video(script.get_parser().parse_args([*base, "--output_dir", str(tmp_path / "o"), "--online",
                                                           "--online_epochs", "1"]),
                           progress=False)
    assert list(root.handlers) == handlers  # the tuner's log file handler is gone again
    assert online.pipeline == "files"  # auto: the tuner reads the work folder
    assert set(online.timing) == STAGE_KEYS | {"tune_s"} and online.timing["tune_s"] > 0
    assert sum(v for k, v in online.timing.items() if k != "total_s") <= online.timing["total_s"]


def test_memory_and_files_pipelines_feed_the_network_alike(ckpt, video_file, tmp_path, monkeypatch):
    import engine.inference

    seen: dict[str, list[torch.Tensor]] = {"memory": [], "files": []}

    def recording(key, real):
        def predict(model, image, flow, *a, **k):
            seen[key].append(torch.cat([image, flow], 1).float())
            return real(model, image, flow, *a, **k)
        return predict

    monkeypatch.setattr(video_method, "predict_probs", recording("memory", video_method.predict_probs))
    monkeypatch.setattr(engine.inference, "predict_probs", recording("files", engine.inference.predict_probs))
    base = ["--input", str(video_file), "--weights", str(ckpt), *FAST, "--overlay", "none"]
    assert script.main([*base, "--output_dir", str(tmp_path / "m")]) == 0
    assert script.main([*base, "--output_dir", str(tmp_path / "f"), "--pipeline", "files"]) == 0
    mem, files = torch.cat(seen["memory"]), torch.cat(seen["files"])
    assert mem.shape == files.shape == (N, 6, H, W)
    # Same frames in the same order; they differ only by the files pipeline's JPEG copy of each frame
    # (and the flow computed from it), not in channel order, flow direction or alignment.
    # Measured: 0.013 and 0.004; swapped colour channels give 0.07, frames in reverse order 0.09 (flow).
    assert (mem[:, :3] - files[:, :3]).abs().mean() < 0.025
    assert (mem[:, 3:] - files[:, 3:]).abs().mean() < 0.02
    assert (mem[:, :3] - files[:, :3].flip(1)).abs().mean() > 0.05  # the bounds can tell such errors apart
    assert (mem[:, 3:] - files[:, 3:].flip(0)).abs().mean() > 0.05


@pytest.mark.parametrize("fmt", ["channels_last", "contiguous"])
def test_memory_format_option(ckpt, video_file, tmp_path, monkeypatch, fmt):
    seen = []
    real = video_method.predict_probs

    def predict(model, image, flow, *a, **k):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
        layouts = {t.is_contiguous(memory_format=torch.channels_last) for t in (image, flow, conv.weight)}
        seen.append(layouts)
        out = real(model, image, flow, *a, **k)
        # The same network in the other layout computes the same probabilities.
        other = torch.contiguous_format if fmt == "channels_last" else torch.channels_last
        ref = real(copy.deepcopy(model).to(memory_format=other), image.contiguous(memory_format=other),
                   flow.contiguous(memory_format=other), *a, **k)
        assert torch.allclose(out, ref, atol=1e-5)
        return out

    monkeypatch.setattr(video_method, "predict_probs", predict)
    assert script.main(["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(tmp_path), *FAST,
                        "--max_frames", "3", "--overlay", "none", "--memory_format", fmt]) == 0
    assert seen and all(s == {fmt == "channels_last"} for s in seen)


class _RecordingFlow:
    """DIS flow that records the size of the frames it is given."""

    def __init__(self, inner):
        self.inner, self.batch_size, self.sizes = inner, 1, set()

    def __call__(self, first, second):
        self.sizes |= {a.shape[:2] for a in first} | {b.shape[:2] for b in second}
        return self.inner(first, second)


@pytest.fixture
def recorded(monkeypatch):
    """Every flow estimator made by the tool records its input sizes; the network's flow
    inputs are recorded too."""
    made, net_flows = [], []
    real_make, real_predict = video_flow.make_estimator, video_method.predict_probs

    def make(method, **options):
        made.append(_RecordingFlow(real_make(method, **options)))
        return made[-1]

    def predict(model, image, flow, *a, **k):
        net_flows.append(tuple(flow.shape))
        return real_predict(model, image, flow, *a, **k)

    monkeypatch.setattr(video_flow, "make_estimator", make)
    monkeypatch.setattr(video_method, "predict_probs", predict)
    return made, net_flows


def test_reduced_flow_size_memory_pipeline(ckpt, video_file, tmp_path, recorded):
    made, net_flows = recorded
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(tmp_path / "o"), *FAST,
            "--size", "32", "64", "--flow_size", "16x24", "--overlay", "none"]
    result = segment_video(script.get_parser().parse_args(argv), progress=False)
    assert made[0].sizes == {(16, 24)}  # flow estimated on downscaled frames
    assert set(net_flows) == {(4, 3, 32, 64)}  # flow images reach the network at its input size
    assert result.flow_size == (16, 24) and len(_masks(tmp_path / "o/masks/my_clip")) == N
    assert all(m.shape == (H, W) for m in _masks(tmp_path / "o/masks/my_clip"))  # masks at the frame size

    # "network" means --size; a size above the frame's means the frame's (no upscaling).
    for spec, size, expected in (("network", ("32", "48"), (32, 48)), ("200x300", ("32", "48"), None)):
        made.clear()
        argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(tmp_path / spec), *FAST,
                "--size", *size, "--flow_size", spec, "--overlay", "none", "--max_frames", "3"]
        result = segment_video(script.get_parser().parse_args(argv), progress=False)
        assert result.flow_size == expected and made[0].sizes == {expected or (H, W)}


def test_reduced_flow_size_files_pipeline_and_flow_reuse(ckpt, video_file, tmp_path, recorded):
    made, _ = recorded
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(tmp_path / "o"), *FAST,
            "--pipeline", "files", "--overlay", "none"]
    parse = script.get_parser().parse_args
    first = segment_video(parse([*argv, "--flow_size", "32x48"]), progress=False)
    assert made[-1].sizes == {(32, 48)} and first.flow.computed == N - 1
    flows = sorted((tmp_path / "o/work/custom/val/flows/my_clip").glob("*.jpg"))
    # Stored flow images keep the frame size, as the dataset code requires.
    assert len(flows) == N and all(cv2.imread(str(f)).shape == (H, W, 3) for f in flows)
    again = segment_video(parse([*argv, "--flow_size", "32x48"]), progress=False)
    assert again.flow.computed == 0 and again.flow.skipped == N
    # Other flow settings: the stored flow images no longer apply and are recomputed.
    other = segment_video(parse([*argv, "--flow_size", "frame"]), progress=False)
    assert other.flow.computed == N - 1 and made[-1].sizes == {(H, W)}
    preset = segment_video(parse([*argv, "--dis_preset", "fast"]), progress=False)
    assert preset.flow.computed == N - 1


def test_flow_vectors_follow_the_resize():
    # Flow estimated at a quarter of the width and half the height: (1, 1) there is (4, 2) in frame pixels.
    small = np.ones((10, 20, 2), np.float32)
    expected = flow_to_image(np.broadcast_to(np.array([4.0, 2.0], np.float32), (10, 20, 2)).copy(),
                             dtype=torch.float32)
    assert np.array_equal(network_flow_image(small, (20, 80), (10, 20), jpeg=False), expected)
    assert not np.array_equal(flow_to_image(small), expected)  # the scaling is visible in the encoding
    with_jpeg = network_flow_image(small, (20, 80), (10, 20), jpeg=True)
    assert with_jpeg.shape == (10, 20, 3) and np.abs(with_jpeg.astype(int) - expected).max() <= 8

    class Constant:
        batch_size = 1

        def __call__(self, first, second):
            self.seen = first[0].shape[:2]
            return [np.ones((*a.shape[:2], 2), np.float32) for a in first]

    inner = Constant()
    frames = [np.zeros((20, 80, 3), np.uint8)] * 2
    out = FlowAtSize(inner, (10, 20))(frames[:1], frames[1:])[0]
    assert inner.seen == (10, 20) and out.shape == (20, 80, 2)
    assert np.allclose(out[..., 0], 4.0) and np.allclose(out[..., 1], 2.0)


@pytest.mark.parametrize("flow_jpeg", [False, True])
def test_memory_pipeline_flow_input_is_the_stored_flow_image_read_back(ckpt, tmp_path, monkeypatch, flow_jpeg):
    """The memory pipeline hands the network the flow image that the dataset code (test.py's
    input) reads back from a stored flow image of the same flow: stored as PNG (the 8-bit
    colour encoding itself, no JPEG in between) by default, as the files pipeline's JPEG
    (quality 95) with --flow_jpeg. Frames at the network size, so nothing is resized."""
    from datasets import FrameDataset
    from utils.flow import write_flow_image

    frames = tmp_path / "clip"
    frames.mkdir()
    for i, f in enumerate(_frames(5)):
        cv2.imwrite(str(frames / f"{i:05d}.png"), f)  # lossless: the pipeline decodes exactly these pixels
    fields, net_flows = [], []
    real_make, real_predict = video_flow.make_estimator, video_method.predict_probs

    def make(method, **options):
        inner = real_make(method, **options)

        def estimate(first, second):
            out = inner(first, second)
            fields.extend(f.copy() for f in out)
            return out
        return estimate

    def predict(model, image, flow, *a, **k):
        net_flows.append(flow.detach().clone().contiguous())
        return real_predict(model, image, flow, *a, **k)

    monkeypatch.setattr(video_flow, "make_estimator", make)
    monkeypatch.setattr(video_method, "predict_probs", predict)
    argv = ["--input", str(frames), "--weights", str(ckpt), "--output_dir", str(tmp_path / "o"), *FAST,
            "--flow_size", "frame", "--overlay", "none", "--pipeline", "memory", *(["--flow_jpeg"] * flow_jpeg)]
    assert segment_video(script.get_parser().parse_args(argv), progress=False).frames == 5
    got = torch.cat(net_flows)
    assert len(fields) == 4 and got.shape == (5, 3, H, W)

    # The same flow fields as stored flow images, read by the dataset code at the same size.
    data = tmp_path / "data" / "custom" / "val"
    (data / "images" / "clip").mkdir(parents=True)
    ext = ".jpg" if flow_jpeg else ".png"
    for i in range(5):
        cv2.imwrite(str(data / "images" / "clip" / f"{i:05d}.png"), _frames(5)[i])
        field = fields[min(i, 3)]  # the last frame: the previous frame's flow image, as in the work layout
        write_flow_image(data / "flows" / "clip" / f"{i:05d}{ext}", flow_to_image(field, dtype=torch.float32))
    dataset = FrameDataset(tmp_path / "data", ["custom"], "test", "val", (H, W), with_labels=False)
    want = torch.stack([dataset[i]["flow"] for i in range(5)])
    assert torch.equal(got, want)
    # The other encoding is a different input: the equality above is not one by accident.
    other = network_flow_image(fields[0], (H, W), (H, W), jpeg=not flow_jpeg)
    assert not np.array_equal(other, (want[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def test_bad_options(ckpt, video_file, tmp_path, capsys):
    base = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(tmp_path / "o"), *FAST]
    assert script.main([*base, "--online", "--pipeline", "memory"]) == 2
    assert "--online needs --pipeline files" in capsys.readouterr().err
    for bad in (["--flow_size", "half"], ["--overlay_alpha", "1.5"], ["--overlay_alpha", "x"]):
        with pytest.raises(SystemExit):
            script.get_parser().parse_args([*base, *bad])


def test_online_config_is_the_online_stage_defaults_but_the_tools_options(ckpt, tmp_path):
    import online_finetuning
    from engine.online_config import OnlineConfig
    from segment_video.frames import WORK_DATASET, WORK_SPLIT

    args = script.get_parser().parse_args(["--input", "x.mp4", "--weights", str(ckpt), "--output_dir",
                                           str(tmp_path), *FAST, "--online", "--online_epochs", "3", "--flip",
                                           "--online_lr", "3e-4"])
    config = online_config(VideoConfig.from_args(args), tmp_path / "work", "clip")
    defaults = OnlineConfig.from_args(online_finetuning.get_parser().parse_args(["--weights", str(ckpt)]))
    assert config == dataclasses.replace(
        defaults, data_dir=str(tmp_path / "work"), test_datasets=(WORK_DATASET,), split=WORK_SPLIT, videos=("clip",),
        size=(H, W), workers=0, device="cpu", epochs=3, lr=3e-4, flip=True,
        save_dir=str(tmp_path / "masks"), output_dir=str(tmp_path / "work" / "online"), no_tensorboard=True)
    # Without the tool's online options, the online stage's defaults.
    args = script.get_parser().parse_args(["--input", "x.mp4", "--weights", str(ckpt), "--output_dir",
                                           str(tmp_path), *FAST, "--online"])
    config = online_config(VideoConfig.from_args(args), tmp_path / "work", "clip")
    assert (config.epochs, config.lr, config.batch_size, config.mode, config.targets) == (
        defaults.epochs, defaults.lr, defaults.batch_size, "per_video", "cached")


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports, anywhere in the file)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_library_never_imports_the_tool():
    """The tool imports engine/, models/, datasets/, utils/; none of them (nor evaluation/) imports it."""
    library = [p for d in ("engine", "models", "datasets", "utils", "evaluation") for p in (ROOT / d).rglob("*.py")]
    assert len(library) > 20
    offenders = [p.relative_to(ROOT).as_posix() for p in library if "segment_video" in _imported_modules(p)]
    assert not offenders, f"library modules import segment_video: {offenders}"
    # Nor does the tool import an entry script (they parse sys.argv and set up logging).
    entry = {p.stem for p in ROOT.glob("*.py")}
    for path in (ROOT / "segment_video").glob("*.py"):
        assert not _imported_modules(path) & entry, f"{path.name} imports an entry script"


def test_benchmark_table_and_skip(ckpt, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("segment_speed", ROOT / "benchmarks" / "segment_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--weights", str(ckpt), "--input", str(tmp_path / "absent")]) == 0
    assert capsys.readouterr().out.startswith("skipped:")

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_frames(5)):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), f)
    assert bench.main(["--weights", str(ckpt), "--input", str(folder), "--size", str(H), str(W), "--repeat", "1",
                       "--configs", "old", "default", "--online_frames", "2"]) == 0
    out = capsys.readouterr().out
    table = out.split("seconds per stage")[1].split("\n\n")[0].splitlines()[2:]  # after the title and header
    rows = {line.split()[0]: line.split() for line in table}
    assert set(rows) == {"old", "default"}
    assert rows["old"][1] == "5" and rows["old"][-2] == "1.000"  # IoU of the reference with itself
    assert float(rows["default"][-2]) > 0.5
    online = [line.split() for line in out.splitlines() if line.startswith("online ") and "stage" not in line]
    assert len(online) == 1 and online[0][1] == "2" and float(online[0][-1]) > 0  # tuning s/frame


def test_benchmark_plan_and_several_videos(ckpt, tmp_path, capsys, monkeypatch):
    """segment_speed.py on two DAVIS-like sequences: --plan resolves every configuration and runs
    nothing; a run scores J per video and times one call on both videos against one call each."""
    spec = importlib.util.spec_from_file_location("segment_speed_multi", ROOT / "benchmarks" / "segment_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    davis = tmp_path / "DAVIS"
    for seq, n in (("c1", 4), ("c2", 3)):
        frames, annotations = davis / "JPEGImages/480p" / seq, davis / "Annotations/480p" / seq
        frames.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for i, f in enumerate(_frames(n)):
            cv2.imwrite(str(frames / f"{i:05d}.jpg"), f)
            gt = np.zeros((H, W), np.uint8)
            gt[20:40, 10 + 5 * i:30 + 5 * i] = 255
            cv2.imwrite(str(annotations / f"{i:05d}.png"), gt)
    common = ["--weights", str(ckpt), "--davis", str(davis), "--sequences", "c1", "c2", "--online_frames", "0"]

    import segment_video as tool

    monkeypatch.setattr(tool, "segment_video", lambda *a, **k: pytest.fail("--plan ran the tool"))
    assert bench.main([*common, "--plan"]) == 0
    out = capsys.readouterr().out
    assert "7 frames in all" in out and "dJ against torch_fast" in out
    assert "size 320x576, runtime torch, DIS medium at the frame size, flip on, temporal 1" in out  # accurate
    assert "runtime int8, DIS medium at 320x576" in out and "flow image through JPEG" in out  # int8, before_quality
    assert "one call on all 2 videos vs one call each: fast" in out and "OpenVINO" in out
    monkeypatch.undo()

    report = tmp_path / "figures.json"
    assert bench.main([*common, "--size", str(H), str(W), "--configs", "torch", "torch_batch1", "--repeat", "1",
                       "--batch_configs", "torch", "--extra", "--workers 0", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    figures = json.loads(report.read_text())
    rows = {r["name"]: r for r in figures["configs"]}
    assert figures["videos"] == ["c1", "c2"] and rows["torch"]["frames"] == 7
    assert set(rows["torch"]["j_per_video"]) == {"c1", "c2"} and 0 <= rows["torch"]["j"] <= 1
    assert rows["torch"]["iou"] == 1.0 and figures["reference"] == "torch"  # torch_fast not run: the first
    batch = figures["batch"]["torch"]
    assert batch["one_call"]["frames"] == batch["calls"]["frames"] == 7 and batch["iou"] == 1.0
    assert "2 videos in one call vs one call per video" in out and "J per video" in out


def test_video_online_benchmark_scores_resumes_and_skips(ckpt, tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("video_online", ROOT / "benchmarks" / "video_online.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--weights", str(ckpt), "--davis", str(tmp_path / "absent"), "--out_dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("skipped:")

    davis = tmp_path / "DAVIS"
    frames, annotations = davis / "JPEGImages/480p/clip", davis / "Annotations/480p/clip"
    frames.mkdir(parents=True)
    annotations.mkdir(parents=True)
    for i, f in enumerate(_frames(4)):
        cv2.imwrite(str(frames / f"{i:05d}.jpg"), f)
        gt = np.zeros((H, W), np.uint8)
        gt[20:40, 10 + 5 * i:30 + 5 * i] = 255
        cv2.imwrite(str(annotations / f"{i:05d}.png"), gt)
    argv = ["--weights", str(ckpt), "--davis", str(davis), "--sequences", "clip", "--out_dir", str(tmp_path / "r"),
            "--tool_args", f"--device cpu --workers 0 --size {H} {W}", "--online_args", "--online_epochs 1"]
    assert bench.main(argv) == 0
    saved = json.loads((tmp_path / "r" / "defaults" / "clip.json").read_text())
    assert saved["offline"]["frames"] == saved["online"]["frames"] == 4
    assert 0 <= saved["offline"]["J"] <= 1 and 0 <= saved["online"]["F"] <= 1 and saved["online_timing"]["tune_s"] >= 0
    first = capsys.readouterr().out

    def no_run(*a, **k):
        raise AssertionError("ran again although the result is saved")

    monkeypatch.setattr(bench, "run", no_run)
    assert bench.main(argv) == 0
    assert capsys.readouterr().out == first and "mean over 1 sequences" in first

    # score() against a hand-made case: half the object found, nothing else.
    masks, work = tmp_path / "m", tmp_path / "w"
    masks.mkdir()
    work.mkdir()
    gt = cv2.imread(str(annotations / "00000.png"), cv2.IMREAD_GRAYSCALE)
    half = gt.copy()
    half[:, 20:] = 0
    cv2.imwrite(str(masks / "00000.png"), half)
    (work / "v.source.json").write_text(json.dumps({"frames": ["00000"], "sources": ["00000.jpg"]}))
    assert bench.score(masks, work, "v", annotations)["J"] == pytest.approx(0.5)


def test_default_size_is_the_checkpoints_training_size(tmp_path):
    from segment_video.pipeline import training_size
    from utils.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "run.pth", {"model": {}, "args": {"size": [96, 160]}})
    save_checkpoint(tmp_path / "bare.pth", {"model": {}})
    assert training_size([str(tmp_path / "run.pth")]) == (96, 160)
    assert training_size(tmp_path / "bare.pth") == (384, 640)


# --------------------------------------------------------------------------- the output folder contract
def _tree(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``folder`` (hidden ones too)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _grey_png(path: Path, value: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((H, W), value, np.uint8))
    return path.read_bytes()


def _manifest(out: Path) -> dict:
    return json.loads((out / ".segment_video.json").read_text())


def test_a_folder_not_made_by_the_tool_is_refused_and_kept(ckpt, video_file, tmp_path, capsys):
    out = tmp_path / "out"
    _grey_png(out / "masks/my_clip/00000.png", 7)  # e.g. a mask drawn by hand
    (out / "overlay.mp4").write_bytes(b"the user's own video")
    (out / "notes.txt").write_text("notes")
    before = _tree(out)
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST]
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--output_dir {out}" in err and "not empty" in err and "--overwrite" in err
    assert _tree(out) == before  # refused before writing anything

    # --overwrite: the run takes the folder over; its own places are replaced, the user's other files kept.
    assert script.main([*argv, "--overwrite"]) == 0
    assert len(_masks(out / "masks/my_clip")) == N and (out / "notes.txt").read_text() == "notes"
    assert _count_video_frames(out / "overlay.mp4") == (N, (H, W))
    assert _manifest(out)["state"] == "done" and _manifest(out)["video"] == "my_clip"


def test_a_rerun_of_the_same_job_replaces_its_results_another_is_refused(ckpt, video_file, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--input", str(video_file), "--output_dir", str(out), *FAST, "--overlay", "none"]
    assert script.main([*base, "--weights", str(ckpt)]) == 0
    (out / "notes.txt").write_text("mine")
    # Same input and weights, other options: the same job; its results are replaced, none left over.
    assert script.main([*base, "--weights", str(ckpt), "--max_frames", "4"]) == 0
    assert [p.name for p in sorted((out / "masks/my_clip").iterdir())] == [f"0000{i}.png" for i in range(4)]
    assert _manifest(out)["options"]["max_frames"] == 4

    # Other weights (other content, whatever the path) or another video: refused, nothing changed.
    torch.manual_seed(1)
    ckpt2 = tmp_path / "other.pth"
    save_checkpoint(ckpt2, {"model": build_model("xxs").state_dict(), "model_config": model_config("xxs")})
    before = _tree(out)
    assert script.main([*base, "--weights", str(ckpt2)]) == 2
    err = capsys.readouterr().err
    assert f"--output_dir {out}" in err and str(ckpt) in err and str(ckpt2) in err and "--overwrite" in err
    assert script.main([*base, "--weights", str(ckpt), "--name", "second"]) == 2
    assert "'my_clip'" in capsys.readouterr().err
    assert _tree(out) == before

    # --overwrite: the folder is now the new job's; the user's file stays.
    assert script.main([*base, "--weights", str(ckpt2), "--overwrite"]) == 0
    assert [w["path"] for w in _manifest(out)["weights"]] == [str(ckpt2.resolve())]
    assert (out / "notes.txt").read_text() == "mine" and len(_masks(out / "masks/my_clip")) == N

    # A copy of the checkpoint and a copy of the output folder (new modification times) are the same job.
    import shutil
    copy_dir, ckpt3 = tmp_path / "copy", tmp_path / "same_as_other.pth"
    shutil.copytree(out, copy_dir, copy_function=shutil.copyfile)
    ckpt3.write_bytes(ckpt2.read_bytes())
    assert script.main(["--input", str(video_file), "--output_dir", str(copy_dir), *FAST, "--overlay", "none",
                        "--weights", str(ckpt3), "--max_frames", "2"]) == 0
    assert sorted(p.name for p in (copy_dir / "masks/my_clip").glob("*.png")) == ["00000.png", "00001.png"]


def test_unreadable_manifest_is_refused(ckpt, video_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".segment_video.json").write_text("{ not json")
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST]
    assert script.main(argv) == 2
    assert ".segment_video.json" in capsys.readouterr().err
    assert script.main([*argv, "--overwrite"]) == 0 and _manifest(out)["state"] == "done"


def test_clean_work_keeps_the_users_files(ckpt, video_file, tmp_path):
    out = tmp_path / "out"
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST,
            "--pipeline", "files", "--overlay", "none"]
    assert script.main(argv) == 0
    (out / "work/notes.txt").write_text("mine")
    (out / "work/custom/keep.jpg").write_bytes(b"not the tool's")
    assert script.main([*argv, "--clean_work"]) == 0
    assert (out / "work/notes.txt").read_text() == "mine" and (out / "work/custom/keep.jpg").exists()
    # The tool's frames, flows and records are gone, and the folders that are now empty.
    assert sorted(p.relative_to(out).as_posix() for p in (out / "work").rglob("*")) == [
        "work/custom", "work/custom/keep.jpg", "work/notes.txt"]
    assert len(_masks(out / "masks/my_clip")) == N


def test_input_inside_its_output_folder_is_refused(ckpt, video_file, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--weights", str(ckpt), "--output_dir", str(out), *FAST]
    assert script.main(["--input", str(video_file), *base, "--pipeline", "files", "--overlay", "frames"]) == 0
    before = _tree(out)
    for inp in (out / "overlay", out / "work/custom/val/images/my_clip", out):
        assert script.main(["--input", str(inp), *base, "--overlay", "frames", "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert f"--input {inp}" in err and f"--output_dir {out}" in err
    assert _tree(out) == before
    # A video file elsewhere in the output folder is fine: nothing there is replaced.
    (out / "clip.mp4").write_bytes(video_file.read_bytes())
    assert script.main(["--input", str(out / "clip.mp4"), *base, "--overlay", "none", "--overwrite"]) == 0
    assert len(_masks(out / "masks/clip")) == N and (out / "clip.mp4").read_bytes() == video_file.read_bytes()


@pytest.mark.parametrize("extra", [["--pipeline", "files"], ["--online", "--online_epochs", "1"]])
def test_bad_weights_fail_before_any_frame_or_flow(video_file, tmp_path, capsys, monkeypatch, extra):
    made = []
    monkeypatch.setattr(video_flow, "make_estimator", lambda *a, **k: made.append(a) or pytest.fail("flow"))
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"<html>quota exceeded</html>")
    out = tmp_path / "out"
    assert script.main(["--input", str(video_file), "--weights", str(bad), "--output_dir", str(out), *FAST,
                        *extra]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not made and not out.exists()  # no flow estimator built, no frame extracted, nothing written


def test_a_killed_run_is_marked_running_and_the_same_command_finishes(ckpt, video_file, tmp_path, monkeypatch):
    real, calls = video_method.predict_probs, []

    def dies_on_third_batch(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands in for a kill mid-run
        return real(*a, **k)

    out = tmp_path / "out"
    argv = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST, "--batch_size", "2",
            "--save_prob", "--overlay", "frames"]
    monkeypatch.setattr(video_method, "predict_probs", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        segment_video(script.get_parser().parse_args(argv), progress=False)
    assert _manifest(out)["state"] == "running" and len(_masks(out / "masks/my_clip")) == 4
    monkeypatch.setattr(video_method, "predict_probs", real)
    assert script.main(argv) == 0
    assert len(_masks(out / "masks/my_clip")) == N and len(list((out / "overlay").glob("*.jpg"))) == N
    assert _manifest(out)["state"] == "done" and _manifest(out)["frames"] == N
    assert not list(out.rglob(".*.part")) and not list(out.glob(".overlay-part*"))

    # A kill during the very first write of the manifest leaves only its hidden part file: still the tool's.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    from utils.io import part_path
    part_path(fresh / ".segment_video.json").write_text('{"tool": "segm')
    assert script.main([*argv[:5], str(fresh), *argv[6:]]) == 0 and _manifest(fresh)["state"] == "done"


def test_another_video_in_the_folder_needs_overwrite_and_keeps_the_first_videos_masks(ckpt, video_file, tmp_path,
                                                                                     capsys):
    out = tmp_path / "out"
    base = ["--input", str(video_file), "--weights", str(ckpt), "--output_dir", str(out), *FAST, "--max_frames", "3"]
    assert script.main(base) == 0
    first = (out / "overlay.mp4").read_bytes()
    assert script.main([*base, "--name", "second"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "'my_clip'" in err and "'second'" in err and "--overwrite" in err
    assert (out / "overlay.mp4").read_bytes() == first and not (out / "masks/second").exists()
    assert script.main([*base, "--name", "second", "--overwrite"]) == 0
    assert _manifest(out)["video"] == "second" and len(_masks(out / "masks/second")) == 3
    assert len(_masks(out / "masks/my_clip")) == 3  # not a place of this run


def test_video_config_is_the_command_line_typed(tmp_path):
    """Every option of the script becomes a field (lists as tuples, paths as Paths); the parser
    keeps the defaults; an option the config does not know is named, as is a missing one."""
    import argparse

    args = script.get_parser().parse_args(["--input", "clip.mp4", "--weights", "a.pth", "b.pth", "--output_dir",
                                           str(tmp_path), "--size", "64", "96", "--flow_size", "32x48",
                                           "--temporal", "1", "2", "--config", "c.yaml"])
    cfg = VideoConfig.from_args(args)
    assert cfg.input == Path("clip.mp4") and cfg.output_dir == tmp_path and cfg.weights == ("a.pth", "b.pth")
    assert (cfg.size, cfg.flow_size, cfg.temporal, cfg.overlay_color) == ((64, 96), (32, 48), (1, 2), (255, 40, 40))
    assert cfg.runtime == "auto" and cfg.stride == 1 and cfg.overlap  # the parser's defaults
    assert cfg.replace(size=[32, 48]).size == (32, 48) and cfg.size == (64, 96)  # frozen: replace copies
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.size = (1, 1)
    with pytest.raises(ValueError, match="unknown: colour"):
        VideoConfig.from_args(argparse.Namespace(**vars(args), colour="red"))
    del args.stride
    with pytest.raises(ValueError, match="missing: stride"):
        VideoConfig.from_args(args)
