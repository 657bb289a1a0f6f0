"""The video tool's GPU path, checked without a GPU: on CUDA the network runs in PyTorch under fp16
autocast (``--cuda_precision fp32``: float32), the CPU-only runtimes are refused or moved to the
CPU with a message, and on the CPU the arithmetic is what it was (float32 unless ``--amp``)."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import segment_video.pipeline as video_method
from segment_video import VideoConfig
from segment_video.precision import describe, network_precision

ROOT = Path(__file__).resolve().parents[1]
H, W = 64, 96


def _config(*argv: str) -> VideoConfig:
    spec = importlib.util.spec_from_file_location("segment_video_script", ROOT / "scripts" / "segment_video.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return VideoConfig.from_args(script.get_parser().parse_args(
        ["--input", "clip", "--weights", "w.pth", "--output_dir", "out", *argv]))


def test_precision_is_fp16_autocast_on_cuda_and_float32_on_the_cpu():
    cfg = _config()  # the defaults: no --amp, --amp_dtype bf16, --quality fast's --cuda_precision fp16
    assert (cfg.amp, cfg.amp_dtype, cfg.cuda_precision) == (False, "bf16", "fp16")
    assert network_precision("cuda", cfg.amp, cfg.amp_dtype, cfg.cuda_precision) == (True, "fp16")
    # accurate keeps test.py's float32 on CUDA too (its masks are test.py's); an option given wins.
    assert _config("--quality", "accurate").cuda_precision == "fp32"
    assert _config("--quality", "accurate", "--cuda_precision", "fp16").cuda_precision == "fp16"
    cpu = network_precision("cpu", cfg.amp, cfg.amp_dtype, cfg.cuda_precision)
    assert cpu[0] is False and describe("cpu", *cpu) == "float32"
    assert describe("cuda", True, "fp16") == "fp16 autocast"
    # --cuda_precision fp32: float32 on CUDA; it changes nothing on the CPU.
    assert network_precision("cuda", False, "bf16", "fp32")[0] is False
    assert network_precision("cpu", False, "bf16", "fp32") == cpu
    # --amp keeps its meaning on either device: autocast in --amp_dtype (on a CPU, fp16 is float32).
    assert network_precision("cuda", True, "bf16") == (True, "bf16")
    assert network_precision("cpu", True, "bf16") == (True, "bf16") and describe("cpu", True, "bf16") == "bf16 autocast"
    assert describe("cpu", *network_precision("cpu", True, "fp16")) == "float32"
    with pytest.raises(ValueError, match="--cuda_precision"):
        network_precision("cuda", False, "bf16", "fp8")


def test_auto_runs_pytorch_on_cuda(monkeypatch):
    import segment_video.onnx_runtime as onnx_rt

    monkeypatch.setattr(onnx_rt, "available", lambda: True)
    cfg = _config()
    assert cfg.runtime == "auto"
    assert video_method._onnx_by_default(cfg, torch.device("cpu"))
    assert not video_method._onnx_by_default(cfg, torch.device("cuda"))


@pytest.mark.parametrize("runtime", ["onnx", "int8", "openvino", "openvino_int8"])
def test_cpu_runtimes_refuse_cuda_and_say_so_when_cuda_is_there(runtime, monkeypatch, caplog):
    import segment_video.onnx_runtime as onnx_rt
    import segment_video.openvino_runtime as ov_rt

    monkeypatch.setattr(onnx_rt, "available", lambda: True)
    monkeypatch.setattr(ov_rt, "available", lambda: True)
    with pytest.raises(ValueError, match=f"--runtime {runtime} runs on the CPU; got --device cuda"):
        video_method._checked(_config("--runtime", runtime, "--device", "cuda"))
    # --device auto on a machine with CUDA: the runtime asked for runs on the CPU, with a warning saying so.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.WARNING, logger="segment_video.pipeline"):
        cfg, _ = video_method._checked(_config("--runtime", runtime))
    assert cfg.device == "cpu"
    assert f"--runtime {runtime} runs on the CPU, although CUDA is available" in caplog.text


def _clip(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    return folder


@pytest.mark.parametrize("device, cuda_precision, expected", [
    ("cuda", "fp16", (True, "fp16")), ("cuda", "fp32", (False, "bf16")), ("cpu", "fp16", (False, "bf16"))])
def test_both_pipelines_hand_the_network_the_selected_precision(tmp_path, monkeypatch, device, cuda_precision,
                                                                expected):
    """The memory pipeline's and the files pipeline's inference get the selection's autocast
    arguments (built on a CUDA device object; nothing runs on a GPU)."""
    clip = _clip(tmp_path / "clip")
    cfg = _config("--size", str(H), str(W), "--cuda_precision", cuda_precision, "--runtime", "torch").replace(
        inputs=(clip,), output_dir=tmp_path / "out", workers=0)
    memory = video_method._MemoryPipeline(cfg, clip, "clip", torch.device(device), None, None,
                                          video_method.StageClock(), torch.nn.Identity())
    assert memory.amp == expected

    seen = {}

    def fake_inference(model, data, writer, info, batch_size, workers, flip, amp, amp_dtype, **kwargs):
        seen["amp"] = (amp, amp_dtype)
        return 0

    import engine.inference

    monkeypatch.setattr(engine.inference, "run_inference", fake_inference)
    video_method._segment_with_files(cfg, clip, "clip", torch.device(device), None, video_method.StageClock(),
                                     progress=False, model=torch.nn.Identity())
    assert seen["amp"] == expected
