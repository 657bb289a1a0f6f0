"""segment_video.onnx_runtime: the ONNX Runtime network equals PyTorch's, is exported once and cached
beside the checkpoint, and fails clearly; the video tool's --runtime onnx gives PyTorch's masks."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import segment_video.onnx_runtime as onnx_rt  # noqa: E402
from models import build_model_from_checkpoint  # noqa: E402
from tests.video_clips import check_network_probabilities, load_video_script, write_moving_square  # noqa: E402

H, W = 64, 96


class Tiny(torch.nn.Module):
    """A two-input network that exports in a second (tests of the cache and the checks)."""

    def __init__(self, offset_outside_export: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(6, 1, 3, padding=1)
        self.offset = offset_outside_export

    def forward(self, image, flow):
        logits = self.conv(torch.cat([image, flow], 1))
        return {"logits": logits + (0.0 if torch.compiler.is_exporting() else self.offset)}


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    """(checkpoint copy, its model, the exported network): one export for the module."""
    folder = tmp_path_factory.mktemp("onnx_ckpt")
    weights = folder / "model.pth"
    shutil.copy(ckpt, weights)
    model = build_model_from_checkpoint(weights).eval()
    return weights, model, onnx_rt.load_onnx_network(model, [weights], (H, W))


def test_onnx_network_equals_pytorch_with_flip_and_any_batch(exported):
    weights, model, net = exported
    check_network_probabilities(net, [model], H, W)


def test_cached_beside_the_checkpoint_with_a_record_and_reused(exported, monkeypatch):
    weights, model, net = exported
    assert net.path.parent == weights.parent and net.path.name.startswith(f"model.pth.{H}x{W}.")
    record = json.loads(net.path.with_suffix(".json").read_text())
    assert record["size"] == [H, W] and record["max_prob_diff"] <= onnx_rt.ATOL
    assert not list(weights.parent.glob(".*.part"))  # atomic writes left nothing behind

    def no_export(*a, **k):
        raise AssertionError("exported again although the cache holds this checkpoint and size")

    def no_build():
        raise AssertionError("built the PyTorch network although the export is cached")

    monkeypatch.setattr(onnx_rt, "export", no_export)
    assert onnx_rt.load_onnx_network(model, [weights], (H, W)).path == net.path
    assert onnx_rt.load_onnx_network(no_build, [weights], (H, W)).path == net.path
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pth"):
        onnx_rt.load_onnx_network(no_build, [weights.parent / "missing.pth"], (H, W))


def test_key_follows_the_checkpoint_bytes_and_the_size(exported, tmp_path):
    weights, _, _ = exported
    other = tmp_path / "model.pth"
    shutil.copy(weights, other)
    assert onnx_rt.cache_key([other], (H, W)) == onnx_rt.cache_key([weights], (H, W))
    assert onnx_rt.cache_key([weights], (H, W + 32)) != onnx_rt.cache_key([weights], (H, W))
    with open(other, "ab") as f:  # a retrained checkpoint at the same path
        f.write(b"\0")
    assert onnx_rt.cache_key([other], (H, W)) != onnx_rt.cache_key([weights], (H, W))


def test_damaged_cache_is_exported_again_and_named(exported, tmp_path, caplog):
    weights, _, _ = exported
    model = Tiny().eval()
    folder = tmp_path / "cache"
    path = onnx_rt.cache_path([weights], (H, W), folder)
    folder.mkdir()
    path.write_bytes(b"not an onnx file")
    path.with_suffix(".json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="segment_video.onnx_runtime"):
        fresh = onnx_rt.load_onnx_network(model, [weights], (H, W), cache_dir=folder)
    assert str(path) in caplog.text
    assert fresh.path == path and path.stat().st_size > 100
    image = torch.rand(1, 3, H, W)
    assert torch.allclose(fresh(image, image)["logits"], model(image, image)["logits"], atol=1e-5)


def test_unwritable_checkpoint_folder_uses_the_user_cache(exported, tmp_path, monkeypatch):
    weights, _, _ = exported
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(onnx_rt, "_writable", lambda folder: False)
    assert onnx_rt.cache_path([weights], (H, W)).parent == tmp_path / "xdg" / "oast" / "onnx"


def test_wrong_input_size_and_a_failed_check_are_clear_errors(exported, tmp_path):
    _, _, net = exported
    with pytest.raises(ValueError, match=f"exported for inputs B x 3 x {H} x {W}"):
        net(torch.rand(1, 3, H, W + 32), torch.rand(1, 3, H, W + 32))

    path = tmp_path / "off.onnx"
    with pytest.raises(RuntimeError, match="differs from PyTorch.*--runtime torch"):
        onnx_rt.export(Tiny(offset_outside_export=5.0).eval(), path, (H, W))
    assert not path.exists() and not path.with_suffix(".json").exists() and not list(tmp_path.glob(".*.part"))


def test_missing_packages_say_what_to_install(monkeypatch):
    monkeypatch.setattr(onnx_rt, "available", lambda: False)
    with pytest.raises(ImportError, match="requirements-onnx.txt"):
        onnx_rt.require()


# --------------------------------------------------------------------------- the video tool
def _script():
    return load_video_script()


def _write_frames(folder: Path, n: int = 5) -> Path:
    return write_moving_square(folder, n, H, W)


def test_segment_video_runtime_onnx_gives_the_pytorch_masks(exported, tmp_path):
    import cv2
    from segment_video import segment_video

    weights, _, _ = exported
    script, frames = _script(), _write_frames(tmp_path / "clip")
    common = ["--input", str(frames), "--weights", str(weights), "--size", str(H), str(W), "--device", "cpu",
              "--flip", "--save_prob", "--overlay", "none", "--workers", "0"]
    probs = {}
    for runtime in ("torch", "onnx"):
        args = script.get_parser().parse_args([*common, "--output_dir", str(tmp_path / runtime), "--runtime", runtime])
        result = segment_video(args, progress=False)
        assert result.frames == 5
        probs[runtime] = np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.int32)
                                   for p in sorted(result.prob_dir.glob("*.png"))])
    assert probs["onnx"].shape == probs["torch"].shape == (5, H, W)
    assert np.abs(probs["onnx"] - probs["torch"]).max() <= 1  # 8-bit probability maps, rounding only


@pytest.mark.parametrize("extra, message", [(["--online"], "--runtime onnx runs a fixed network"),
                                            (["--device", "cuda"], "--runtime onnx runs on the CPU")])
def test_segment_video_runtime_onnx_refuses_what_it_cannot_do(exported, tmp_path, extra, message):
    from segment_video import segment_video

    weights, _, _ = exported
    frames = _write_frames(tmp_path / "clip", 2)
    args = _script().get_parser().parse_args(["--input", str(frames), "--weights", str(weights), "--output_dir",
                                              str(tmp_path / "out"), "--runtime", "onnx", *extra])
    with pytest.raises(ValueError, match=message):
        segment_video(args, progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_segment_video_runtime_auto_uses_onnx_falls_back_to_pytorch_and_says_so(exported, tmp_path, monkeypatch,
                                                                             caplog):
    from segment_video import segment_video

    weights, _, _ = exported
    frames = _write_frames(tmp_path / "clip", 3)
    parser = _script().get_parser()

    def run(out: str, *extra: str):
        args = parser.parse_args(["--input", str(frames), "--weights", str(weights), "--output_dir",
                                  str(tmp_path / out), "--size", str(H), str(W), "--device", "cpu", "--overlay",
                                  "none", *extra])
        return segment_video(args, progress=False)

    from segment_video import VideoConfig

    # The default setting (--quality fast) runs auto; the parser leaves the bundled option unset.
    assert VideoConfig.from_args(parser.parse_args(["--input", "x", "--weights", "w", "--output_dir", "o"])).runtime \
        == "auto"
    assert run("auto").runtime == "onnx"  # the export is cached beside the checkpoint: no new export here
    assert run("torch", "--runtime", "torch").runtime == "torch"
    assert run("online", "--online", "--online_epochs", "0").runtime == "torch"  # tuning runs in PyTorch

    def failing(*a, **k):
        raise RuntimeError("could not export the network to ONNX (test)")

    monkeypatch.setattr(onnx_rt, "load_onnx_network", failing)
    with caplog.at_level(logging.WARNING, logger="segment_video.pipeline"):
        assert run("fallback").runtime == "torch"
    assert "could not export the network to ONNX (test); running the network in PyTorch instead" in caplog.text
    with pytest.raises(RuntimeError, match="could not export"):
        run("explicit", "--runtime", "onnx")  # asked for explicitly: no silent fallback
    monkeypatch.setattr(onnx_rt, "available", lambda: False)
    assert run("missing").runtime == "torch"


# --------------------------------------------------------------------------- int8
def _calibration(n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    g = np.random.default_rng(1)
    return [(g.random((1, 3, H, W), dtype=np.float32), g.random((1, 3, H, W), dtype=np.float32)) for _ in range(n)]


def test_int8_is_quantised_once_per_calibration_key_checked_and_recorded(exported, monkeypatch):
    _, _, net = exported
    calls = []

    def calibration():
        calls.append(1)
        return _calibration()

    q = onnx_rt.load_int8_network(net, "key1", calibration)
    assert calls == [1] and q.path == onnx_rt.int8_path(net, "key1") and q.path.is_file()
    record = json.loads(q.path.with_suffix(".json").read_text())
    assert record["calibration_inputs"] == 4 and record["from"] == net.path.name
    assert onnx_rt.INT8_MIN_AGREEMENT <= record["mask_agreement"] <= 1
    assert record["mask_agreement"] == pytest.approx(onnx_rt.mask_agreement(net, q, _calibration()))
    # int8 weights: a smaller file, and a network that still follows the float one.
    assert q.path.stat().st_size < 0.5 * net.path.stat().st_size
    x = [torch.from_numpy(a) for a in _calibration(1)[0]]
    ref, got = net(*x)["logits"].sigmoid(), q(*x)["logits"].sigmoid()
    assert got.shape == ref.shape and float((got - ref).abs().mean()) < 0.05
    # Cached: the calibration inputs are not even made again; another key quantises anew.
    monkeypatch.setattr(onnx_rt, "quantize_int8", lambda *a, **k: pytest.fail("quantised again"))
    assert onnx_rt.load_int8_network(net, "key1", calibration).path == q.path and calls == [1]
    monkeypatch.undo()
    other = onnx_rt.load_int8_network(net, "key2", calibration)
    assert other.path != q.path and calls == [1, 1]


def test_int8_that_disagrees_with_float_is_refused_and_leaves_no_file(exported, tmp_path):
    _, _, net = exported
    path = tmp_path / "bad.int8.onnx"
    with pytest.raises(RuntimeError, match="agrees with the float one on .* use --runtime onnx"):
        onnx_rt.quantize_int8(net, path, _calibration(2), min_agreement=1.01)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="at least one"):
        onnx_rt.quantize_int8(net, path, [])


def test_int8_calibration_frames_and_inputs(tmp_path):
    from segment_video import VideoConfig
    from segment_video.int8 import calibration_inputs, calibration_key, pick

    assert pick(50, 16)[0] == 0 and pick(50, 16)[-1] == 48 and len(pick(50, 16)) == 16
    assert pick(3, 16) == [0, 1] and pick(1, 16) == [0] and pick(None, 4) == [0, 1, 2, 3]
    frames = _write_frames(tmp_path / "clip", 5)
    args = VideoConfig.from_args(_script().get_parser().parse_args(
        ["--input", str(frames), "--weights", "w.pth", "--output_dir", str(tmp_path / "o"), "--size", str(H), str(W),
         "--runtime", "int8", "--int8_frames", "2"]))
    samples = calibration_inputs(args)
    assert [(a.shape, b.shape) for a, b in samples] == [((1, 3, H, W), (1, 3, H, W))] * 2
    import cv2

    first = cv2.cvtColor(cv2.imread(str(frames / "00000.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(samples[0][0][0], first.transpose(2, 0, 1).astype(np.float32) / 255)
    assert samples[0][1].std() > 0  # the square moves: the flow image is not flat
    key = calibration_key(args)
    # The input named as its own calibration source: the same inputs, the same key.
    assert calibration_key(args.replace(int8_calibration=frames)) == key
    assert calibration_key(args.replace(int8_calibration=_write_frames(tmp_path / "other", 4))) != key
    assert calibration_key(args.replace(max_frames=4)) != key
    assert calibration_key(args.replace(dis_preset="fast")) != key


def test_segment_video_runtime_int8(exported, tmp_path, monkeypatch):
    import cv2
    from segment_video import segment_video

    weights, _, _ = exported
    script, frames = _script(), _write_frames(tmp_path / "clip")
    common = ["--input", str(frames), "--weights", str(weights), "--size", str(H), str(W), "--device", "cpu",
              "--overlay", "none", "--runtime", "int8", "--int8_frames", "3"]
    before = set(weights.parent.glob("*.int8-*.onnx"))
    result = segment_video(script.get_parser().parse_args([*common, "--output_dir", str(tmp_path / "a")]),
                           progress=False)
    assert result.frames == 5 and result.runtime == "int8"
    assert len(list(result.masks_dir.glob("*.png"))) == 5
    made = set(weights.parent.glob("*.int8-*.onnx")) - before
    assert len(made) == 1
    # The same input again: the cached int8 network, no new calibration.
    monkeypatch.setattr(onnx_rt, "quantize_int8", lambda *a, **k: pytest.fail("quantised again"))
    again = segment_video(script.get_parser().parse_args([*common, "--output_dir", str(tmp_path / "b")]),
                          progress=False)
    masks = [[cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(r.masks_dir.glob("*.png"))]
             for r in (result, again)]
    assert all(np.array_equal(x, y) for x, y in zip(*masks))
    # A calibration input that does not exist is named before anything is written.
    from segment_video.int8 import CalibrationInputError

    with pytest.raises(CalibrationInputError, match="int8 calibration frames from .*nowhere"):
        segment_video(script.get_parser().parse_args([*common, "--output_dir", str(tmp_path / "c"),
                                                      "--int8_calibration", str(tmp_path / "nowhere")]),
                      progress=False)
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- int8 with several videos
def _not_a_video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a video at all" * 20)
    return path


def _int8_batch_args(weights: Path, inputs: list[Path], out: Path, *extra: str) -> list[str]:
    return ["--input", *map(str, inputs), "--weights", str(weights), "--output_dir", str(out), "--size", str(H),
            str(W), "--device", "cpu", "--overlay", "none", "--runtime", "int8", "--int8_frames", "2", *extra]


def test_int8_batch_calibrates_on_the_first_video_that_reads(exported, tmp_path, capsys, monkeypatch):
    """Several videos, --runtime int8, no --int8_calibration, the first video unreadable: it fails as
    any video would, the int8 network is calibrated on the next one, and the others are written."""
    from segment_video import VideoConfig
    from segment_video.int8 import calibration_key

    weights, _, net = exported
    broken = _not_a_video(tmp_path / "in" / "a_broken.mp4")
    walk, run = _write_frames(tmp_path / "in" / "b_walk", 3), _write_frames(tmp_path / "in" / "c_run", 4)
    quantised = []
    real = onnx_rt.quantize_int8
    monkeypatch.setattr(onnx_rt, "quantize_int8", lambda *a, **k: quantised.append(1) or real(*a, **k))
    out = tmp_path / "out"
    argv = _int8_batch_args(weights, [broken, walk, run], out)
    assert _script().main(argv) == 1
    err = capsys.readouterr().err
    assert f"video a_broken failed: {broken}" in err and "1 of 3 videos failed" in err
    assert [len(list((out / v / "masks" / v).glob("*.png"))) for v in ("b_walk", "c_run")] == [3, 4]
    assert not (out / "a_broken").exists()  # failed before its output folder was claimed
    # One calibration, on b_walk's frames (its key names the int8 file), used for both videos.
    cfg = VideoConfig.from_args(_script().get_parser().parse_args(argv))
    assert quantised == [1] and onnx_rt.int8_path(net, calibration_key(cfg.for_video(walk, out / "b_walk"))).is_file()
    manifest = json.loads((out / "c_run" / ".segment_video.json").read_text())
    assert manifest["state"] == "done" and manifest["options"]["runtime"] == "int8"

    # No video reads: each is named, nothing is loaded, exit status 1.
    other = _not_a_video(tmp_path / "in2" / "x.mp4")
    assert _script().main(_int8_batch_args(weights, [broken, other, tmp_path / "missing.mp4"], tmp_path / "o2")) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and str(other) in err and "missing.mp4" in err and "3 of 3 videos failed" in err
    assert quantised == [1]


def test_unreadable_int8_calibration_is_refused_before_any_video(exported, tmp_path, capsys, monkeypatch):
    import segment_video.pipeline as video_method
    from segment_video import segment_video
    from segment_video.int8 import CalibrationInputError

    weights, _, _ = exported
    walk, run = _write_frames(tmp_path / "walk", 2), _write_frames(tmp_path / "run", 2)
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(video_method, "load_model", lambda *a, **k: pytest.fail("loaded the network"))
    for calibration in (_not_a_video(tmp_path / "calib.mp4"), tmp_path / "empty", tmp_path / "nowhere"):
        out = tmp_path / f"out_{calibration.name}"
        argv = _int8_batch_args(weights, [walk, run], out, "--int8_calibration", str(calibration))
        assert _script().main(argv) == 2
        err = capsys.readouterr().err
        assert f"cannot read the int8 calibration frames from {calibration}" in err and "failed" not in err
        assert not out.exists()
        # One video: the same refusal.
        with pytest.raises(CalibrationInputError, match=str(calibration)):
            segment_video(_script().get_parser().parse_args(
                _int8_batch_args(weights, [walk], out, "--int8_calibration", str(calibration))), progress=False)
        assert not out.exists()
