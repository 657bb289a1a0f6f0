"""scripts/segment_video.py: the named settings (``--quality fast|accurate``), the accurate one against
``test.py --flip --temporal 1``, and several videos in one call."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import segment_video.pipeline as video_method
import test as test_script
from datasets.synthetic import DOMAINS, render_video
from segment_video import VideoConfig
from segment_video.quality import QUALITIES, RECIPE_TEST_SIZE

ROOT = Path(__file__).resolve().parents[1]
H, W = 64, 96
# Plain PyTorch at a tiny size for the many-videos tests (the settings' own sizes are tested below).
SMALL = ["--size", str(H), str(W), "--workers", "0", "--device", "cpu", "--runtime", "torch", "--overlay", "none"]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


script = _load(ROOT / "scripts" / "segment_video.py", "segment_video_script_settings")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: the machine is small and shared (see tests/test_segment_video.py)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _clip_frames(seed: int, n: int, hw: tuple[int, int] = (H, W)) -> list[np.ndarray]:
    """A short synthetic clip (BGR): one object moving over a panning background."""
    frames, _, _ = render_video(np.random.default_rng(seed), n, hw, DOMAINS["target"], distractor=False)
    return [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]


def _frames_folder(folder: Path, seed: int, n: int, hw: tuple[int, int] = (H, W)) -> Path:
    folder.mkdir(parents=True)
    for i, f in enumerate(_clip_frames(seed, n, hw)):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), f)
    return folder


def _video_file(path: Path, seed: int, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    assert writer.isOpened()
    for f in _clip_frames(seed, n):
        writer.write(f)
    writer.release()
    return path


def _pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))}


def _config(*extra: str) -> VideoConfig:
    return VideoConfig.from_args(script.get_parser().parse_args(
        ["--input", "clip.mp4", "--weights", "w.pth", "--output_dir", "out", *extra]))


# --------------------------------------------------------------------------- the two settings
def test_fast_is_the_former_defaults_and_accurate_the_benchmarks_inference():
    fast, accurate = _config(), _config("--quality", "accurate")
    assert fast.quality == "fast"
    # The tool's defaults before the settings existed.
    assert (fast.runtime, fast.dis_preset, fast.flow_size, fast.size, fast.flip, fast.temporal, fast.memory_format) == (
        "auto", "medium", "frame", None, False, (), "channels_last")
    # test.py --flip --temporal 1 at the recipe's test size, in PyTorch's default layout.
    assert (accurate.runtime, accurate.dis_preset, accurate.flow_size, accurate.size, accurate.flip,
            accurate.temporal, accurate.memory_format) == ("torch", "medium", "frame", (320, 576), True, (1,),
                                                           "contiguous")
    recipe = _load(ROOT / "benchmarks" / "davis_real.py", "davis_real_settings").RECIPE
    assert RECIPE_TEST_SIZE == tuple(recipe["test_size"])
    # The options outside the bundles keep the parser's defaults whatever the setting.
    assert accurate.replace(**{k: getattr(fast, k) for k in QUALITIES["fast"]}, quality="fast") == fast
    assert "accurate: runtime: torch" in " ".join(script.get_parser().format_help().split())


def test_an_option_given_wins_over_its_setting():
    cfg = _config("--quality", "accurate", "--no_flip", "--temporal", "--size", "64", "96", "--runtime", "onnx",
                  "--dis_preset", "fast", "--flow_size", "network", "--memory_format", "channels_last")
    assert (cfg.flip, cfg.temporal, cfg.size, cfg.runtime, cfg.dis_preset, cfg.flow_size, cfg.memory_format) == (
        False, (), (64, 96), "onnx", "fast", "network", "channels_last")
    cfg = _config("--flip", "--temporal", "1", "2", "--runtime", "torch")
    assert (cfg.quality, cfg.flip, cfg.temporal, cfg.runtime, cfg.size) == ("fast", True, (1, 2), "torch", None)
    # --online goes on top of either: the tuner runs at the setting's size with its flip.
    from segment_video.online import online_config

    tuned = online_config(_config("--quality", "accurate", "--online"), Path("work"), "clip")
    assert (tuned.size, tuned.flip) == (RECIPE_TEST_SIZE, True)
    with pytest.raises(SystemExit):
        script.get_parser().parse_args(["--input", "a.mp4", "--weights", "w", "--output_dir", "o", "--quality", "x"])


def test_temporal_fusion_needs_the_files_pipeline(ckpt, tmp_path, capsys):
    clip = _frames_folder(tmp_path / "clip", 0, 3)
    argv = ["--input", str(clip), "--weights", str(ckpt), "--output_dir", str(tmp_path / "o"), *SMALL]
    assert script.main([*argv, "--temporal", "1", "--pipeline", "memory"]) == 2
    assert "--temporal needs --pipeline files" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_accurate_gives_the_masks_of_test_py_flip_temporal(ckpt, tmp_path):
    """``--quality accurate`` and ``test.py --flip --temporal 1`` at 320x576 on the same frames and
    flow images (the tool's work folder, read by test.py as a dataset): equal masks and probabilities."""
    clip = _frames_folder(tmp_path / "clip", 3, 5, (72, 128))
    out, ref = tmp_path / "out", tmp_path / "ref"
    assert script.main(["--input", str(clip), "--weights", str(ckpt), "--output_dir", str(out), "--quality",
                        "accurate", "--device", "cpu", "--workers", "0", "--overlay", "none", "--save_prob"]) == 0
    options = json.loads((out / ".segment_video.json").read_text())["options"]
    assert (options["quality"], options["size"], options["flip"], options["temporal"], options["runtime"],
            options["pipeline"]) == ("accurate", [320, 576], True, [1], "torch", "files")
    reference = ["--weights", str(ckpt), "--data_dir", str(out / "work"), "--test_datasets", "custom", "--split",
                 "val", "--size", "320", "576", "--workers", "0", "--device", "cpu", "--save_prob"]
    test_script.main([*reference, "--flip", "--temporal", "1", "--save_dir", str(ref)])
    masks, probs = _pngs(out / "masks/clip"), _pngs(out / "probs/clip")
    want_masks, want_probs = _pngs(ref / "custom/clip"), _pngs(tmp_path / "ref_prob/custom/clip")
    assert len(masks) == 5 and masks.keys() == want_masks.keys() == probs.keys() == want_probs.keys()
    assert all(np.array_equal(masks[k], want_masks[k]) for k in masks)
    assert all(np.array_equal(probs[k], want_probs[k]) for k in probs)
    # Not equal by accident: without flip and fusion test.py writes other probabilities.
    test_script.main([*reference, "--save_dir", str(tmp_path / "plain")])
    plain = _pngs(tmp_path / "plain_prob/custom/clip")
    assert any(not np.array_equal(plain[k], probs[k]) for k in probs)


# --------------------------------------------------------------------------- several videos per call
@pytest.fixture
def clips(tmp_path) -> Path:
    """A folder of two videos: a frames folder and a video file (and a file that is no video)."""
    folder = tmp_path / "clips"
    _frames_folder(folder / "walk", 1, 4)
    _video_file(folder / "run.mp4", 2, 5)
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_two_videos_in_one_call_match_two_calls(ckpt, clips, tmp_path, monkeypatch):
    loads = []
    real = video_method.load_model
    monkeypatch.setattr(video_method, "load_model", lambda *a, **k: loads.append(1) or real(*a, **k))
    out = tmp_path / "out"
    assert script.main(["--input", str(clips), "--weights", str(ckpt), "--output_dir", str(out), *SMALL]) == 0
    assert len(loads) == 1  # the network is loaded once for both videos
    assert sorted(p.name for p in out.iterdir()) == ["run", "walk"]
    for name, path, n in (("walk", clips / "walk", 4), ("run", clips / "run.mp4", 5)):
        manifest = json.loads((out / name / ".segment_video.json").read_text())
        assert manifest["state"] == "done" and manifest["video"] == name and manifest["frames"] == n
        alone = tmp_path / f"alone_{name}"
        assert script.main(["--input", str(path), "--weights", str(ckpt), "--output_dir", str(alone), *SMALL]) == 0
        got, want = _pngs(out / name / "masks" / name), _pngs(alone / "masks" / name)
        assert len(got) == n and got.keys() == want.keys()
        assert all(np.array_equal(got[k], want[k]) for k in got)
    # Several --input paths are the same call; a rerun is the same job in each sub-folder.
    assert script.main(["--input", str(clips / "walk"), str(clips / "run.mp4"), "--weights", str(ckpt),
                        "--output_dir", str(out), *SMALL, "--max_frames", "2"]) == 0
    assert [len(_pngs(out / v / "masks" / v)) for v in ("run", "walk")] == [2, 2]
    # A one-video run's folder does not take sub-folders of several videos.
    assert script.main(["--input", str(clips), "--weights", str(ckpt), "--output_dir",
                        str(tmp_path / "alone_walk"), *SMALL]) == 2


def test_a_broken_video_is_named_and_the_others_are_written(ckpt, clips, tmp_path, capsys):
    broken = clips / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 20)
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "out"
    assert script.main(["--input", str(clips), str(missing), "--weights", str(ckpt), "--output_dir", str(out),
                        *SMALL]) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and str(missing) in err and "2 of 4 videos failed" in err
    assert len(_pngs(out / "walk/masks/walk")) == 4 and len(_pngs(out / "run/masks/run")) == 5
    assert not (out / "broken/masks/broken").exists() or not _pngs(out / "broken/masks/broken")


def test_two_videos_of_one_name_are_refused_before_any_work(ckpt, tmp_path, capsys):
    a = _video_file(tmp_path / "a" / "clip.mp4", 0, 2)
    b = _frames_folder(tmp_path / "b" / "clip", 0, 2)
    out = tmp_path / "out"
    assert script.main(["--input", str(a), str(b), "--weights", str(ckpt), "--output_dir", str(out), *SMALL]) == 2
    err = capsys.readouterr().err
    assert str(a) in err and str(b) in err and not out.exists()
