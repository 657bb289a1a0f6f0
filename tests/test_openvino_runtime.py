"""segment_video.openvino_runtime: OpenVINO runs the cached ONNX files with the masks of ONNX Runtime
and PyTorch, is never picked by --runtime auto, and a missing package is an error naming the option.

The tests that run OpenVINO skip, saying why, when it (or the ONNX packages whose export it reads)
is not installed; the error and refusal tests run either way."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import segment_video.onnx_runtime as onnx_rt
import segment_video.openvino_runtime as ov_rt
from tests.video_clips import check_network_probabilities, load_video_script, write_moving_square

ROOT = Path(__file__).resolve().parents[1]
H, W = 64, 96

needs_openvino = pytest.mark.skipif(
    not ov_rt.available(), reason="openvino (or the ONNX packages whose export it reads) is not installed: "
                                  "pip install -r requirements-openvino.txt")


def _script():
    return load_video_script()


def _write_frames(folder: Path, n: int = 5) -> Path:
    return write_moving_square(folder, n, H, W)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    """(checkpoint copy, its PyTorch model, the ONNX Runtime network, the OpenVINO network): the
    project's xxs network with seeded random weights, exported once for the module."""
    if not ov_rt.available():
        pytest.skip("openvino (or the ONNX packages) is not installed: pip install -r requirements-openvino.txt")
    from models import build_model_from_checkpoint

    folder = tmp_path_factory.mktemp("openvino_ckpt")
    weights = folder / "model.pth"
    shutil.copy(ckpt, weights)
    model = build_model_from_checkpoint(weights).eval()
    onnx_net = onnx_rt.load_onnx_network(model, [weights], (H, W))
    return weights, model, onnx_net, ov_rt.load_openvino_network(onnx_net)


# --------------------------------------------------------------------------- the network
@needs_openvino
def test_openvino_network_equals_onnx_runtime_and_pytorch_with_flip_and_any_batch(exported):
    _, model, onnx_net, net = exported
    assert net.path == onnx_net.path  # the cached export itself, nothing converted or stored beside it
    check_network_probabilities(net, [model, onnx_net], H, W)
    # Each call returns its own logits (the request's output buffer is not handed out).
    g = torch.Generator().manual_seed(4)
    image, flow = torch.rand(3, 3, H, W, generator=g), torch.rand(3, 3, H, W, generator=g)
    first = net(image, flow)["logits"]
    net(torch.zeros_like(image), torch.zeros_like(flow))
    assert torch.equal(first, net(image, flow)["logits"])


@needs_openvino
def test_wrong_input_size_and_a_network_that_differs_are_clear_errors(exported):
    _, _, onnx_net, net = exported
    with pytest.raises(ValueError, match=f"exported for inputs B x 3 x {H} x {W}"):
        net(torch.rand(1, 3, H, W + 32), torch.rand(1, 3, H, W + 32))
    assert ov_rt.check_float(onnx_net, net) <= onnx_rt.ATOL

    def shifted(image, flow):  # a reference the OpenVINO network does not follow
        return {"logits": onnx_net(image, flow)["logits"] + 3.0}

    with pytest.raises(RuntimeError, match="differs from ONNX Runtime's .* use --runtime onnx"):
        ov_rt.check_float(shifted, net)
    with pytest.raises(RuntimeError, match="agrees with ONNX Runtime's .* use --runtime int8"):
        ov_rt.check_int8(lambda image, flow: {"logits": -onnx_net(image, flow)["logits"]}, net)


# --------------------------------------------------------------------------- the video tool
def _probs_and_masks(result) -> tuple[np.ndarray, np.ndarray]:
    probs = np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.int32)
                      for p in sorted(result.prob_dir.glob("*.png"))])
    masks = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0 for p in sorted(result.masks_dir.glob("*.png"))])
    return probs, masks


@needs_openvino
@pytest.mark.parametrize("pipeline", ["memory", "files"])
def test_segment_video_runtime_openvino_gives_the_onnx_runtime_and_pytorch_masks(exported, tmp_path, pipeline):
    from segment_video import segment_video

    weights = exported[0]
    script, frames = _script(), _write_frames(tmp_path / "clip")
    common = ["--input", str(frames), "--weights", str(weights), "--size", str(H), str(W), "--device", "cpu",
              "--flip", "--save_prob", "--overlay", "none", "--workers", "0", "--pipeline", pipeline]
    out = {}
    for runtime in ("torch", "onnx", "openvino"):
        args = script.get_parser().parse_args([*common, "--output_dir", str(tmp_path / runtime), "--runtime", runtime])
        result = segment_video(args, progress=False)
        assert result.frames == 5 and result.runtime == runtime
        out[runtime] = _probs_and_masks(result)
    probs, masks = out["openvino"]
    assert probs.shape == (5, H, W) and masks.any()
    for ref in ("torch", "onnx"):
        assert np.abs(probs - out[ref][0]).max() <= 1  # 8-bit probability maps: rounding only
        assert min(_mask_iou(a, b) for a, b in zip(masks, out[ref][1])) >= 0.99


@needs_openvino
def test_segment_video_runtime_openvino_int8_runs_the_int8_file_of_runtime_int8(exported, tmp_path, monkeypatch):
    from segment_video import segment_video

    weights = exported[0]
    script, frames = _script(), _write_frames(tmp_path / "clip")
    common = ["--input", str(frames), "--weights", str(weights), "--size", str(H), str(W), "--device", "cpu",
              "--overlay", "none", "--int8_frames", "3"]
    parse = script.get_parser().parse_args
    ort = segment_video(parse([*common, "--output_dir", str(tmp_path / "ort"), "--runtime", "int8"]), progress=False)
    # The int8 file made by --runtime int8 is reused: no second calibration or quantisation.
    monkeypatch.setattr(onnx_rt, "quantize_int8", lambda *a, **k: pytest.fail("quantised again"))
    ov = segment_video(parse([*common, "--output_dir", str(tmp_path / "ov"), "--runtime", "openvino_int8"]),
                       progress=False)
    assert (ort.runtime, ov.runtime, ov.frames) == ("int8", "openvino_int8", 5)
    a = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0 for p in sorted(ort.masks_dir.glob("*.png"))])
    b = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0 for p in sorted(ov.masks_dir.glob("*.png"))])
    assert a.shape == b.shape == (5, H, W)
    assert (a == b).mean() >= onnx_rt.INT8_MIN_AGREEMENT  # two int8 engines: rounding may flip a few pixels


@needs_openvino
def test_runtime_auto_does_not_pick_openvino(exported, tmp_path):
    from segment_video import segment_video

    weights = exported[0]
    frames = _write_frames(tmp_path / "clip", 2)
    args = _script().get_parser().parse_args(["--input", str(frames), "--weights", str(weights), "--output_dir",
                                              str(tmp_path / "out"), "--size", str(H), str(W), "--device", "cpu",
                                              "--overlay", "none"])
    assert segment_video(args, progress=False).runtime == "onnx"


# --------------------------------------------------------------------------- without OpenVINO
@pytest.mark.parametrize("runtime", ["openvino", "openvino_int8"])
def test_missing_openvino_is_an_error_naming_the_option(tmp_path, monkeypatch, capsys, ckpt, runtime):
    monkeypatch.setattr(ov_rt, "available", lambda: False)
    with pytest.raises(ImportError, match=f"--runtime {runtime} needs openvino.*requirements-openvino.txt"):
        ov_rt.require(runtime)
    # Through the script: exit status 2 and the message, before any file is read or written.
    frames = _write_frames(tmp_path / "clip", 2)
    out = tmp_path / "out"
    argv = ["--input", str(frames), "--weights", str(ckpt), "--output_dir", str(out), "--runtime", runtime]
    assert _script().main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: --runtime {runtime} needs openvino" in err and "pip install -r requirements-openvino.txt" in err
    assert not out.exists()


@pytest.mark.parametrize("runtime", ["openvino", "openvino_int8"])
@pytest.mark.parametrize("extra, message", [(["--online"], "runs a fixed network; --online tunes it in PyTorch"),
                                            (["--device", "cuda"], "runs on the CPU; got --device cuda")])
def test_openvino_runtimes_refuse_what_they_cannot_do(tmp_path, runtime, extra, message):
    from segment_video import segment_video

    frames = _write_frames(tmp_path / "clip", 2)
    args = _script().get_parser().parse_args(["--input", str(frames), "--weights", "w.pth", "--output_dir",
                                              str(tmp_path / "out"), "--runtime", runtime, *extra])
    with pytest.raises(ValueError, match=f"--runtime {runtime} {message}"):
        segment_video(args, progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written


# --------------------------------------------------------------------------- the benchmark
def test_benchmark_sets_each_openvino_configuration_beside_its_onnx_runtime_one(capsys):
    """benchmarks/segment_speed.py: the OpenVINO configurations are its counterparts' options but the
    runtime, run by default, and compared with them (frames/s, J, per-frame mask IoU, the rule)."""
    import shlex

    spec = importlib.util.spec_from_file_location("segment_speed_ov", ROOT / "benchmarks" / "segment_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    def split_runtime(options: str) -> tuple[str, list[str]]:
        """(the --runtime value or auto, the other options)."""
        words = shlex.split(options)
        if "--runtime" not in words:
            return "auto", words
        i = words.index("--runtime")
        return words[i + 1], words[:i] + words[i + 2:]

    for ov, ort in bench.OPENVINO_PAIRS.items():
        assert ov in bench.DEFAULT_CONFIGS and ort in bench.DEFAULT_CONFIGS
        (ov_runtime, ov_rest), (ort_runtime, ort_rest) = split_runtime(bench.CONFIGS[ov]), split_runtime(
            bench.CONFIGS[ort])
        assert ov_runtime in ov_rt.RUNTIMES and ort_runtime in ("auto", "int8") and ov_rest == ort_rest

    class R:  # a configuration's run on one video: its masks
        def __init__(self, masks):
            self.masks = masks

    full, half = np.ones((4, 4), bool), np.zeros((4, 4), bool)
    half[:2] = True
    rows = [{"name": "fast", "fps": 10.0, "j": 0.7}, {"name": "openvino_fast", "fps": 12.0, "j": 0.7},
            {"name": "int8_320x576", "fps": 20.0, "j": 0.6}, {"name": "openvino_int8_320x576", "fps": 25.0, "j": 0.5}]
    runs = {"fast": {"a": R({"0": full, "1": full})}, "openvino_fast": {"a": R({"0": full, "1": full})},
            "int8_320x576": {"a": R({"0": full, "1": full})},
            "openvino_int8_320x576": {"a": R({"0": full, "1": half})}}
    pairs = bench.openvino_pairs(rows, runs)
    assert pairs["openvino_fast"]["mask_iou"] == 1.0 and pairs["openvino_fast"]["faster_at_equal_masks"]
    p = pairs["openvino_int8_320x576"]  # faster, but its masks differ
    assert (p["mask_iou"], p["min_mask_iou"], p["faster_at_equal_masks"]) == (0.75, 0.5, False)
    bench.print_openvino_pairs(pairs)
    out = capsys.readouterr().out
    assert "openvino_fast vs fast: 12.0 vs 10.0 frames/s (1.20x)" in out and "not faster at equal masks" in out
    assert bench.openvino_pairs(rows[:1], runs) == {}  # a pair that did not run both: nothing to compare
