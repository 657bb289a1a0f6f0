"""Inference through ONNX Runtime on the CPU: the network exported once per checkpoint and
input size, cached beside the checkpoint, and checked against PyTorch before first use.

PyTorch stays the reference: :class:`OnnxNetwork` is called like the PyTorch network
(``net(image, flow)["logits"]``), so :func:`engine.views.predict_probs` and its flip
test-time augmentation run unchanged on either. Needs the optional packages of
``requirements-onnx.txt`` (``onnxruntime``, and ``onnx`` + ``onnxscript`` for the export).

The cache file is ``<checkpoint>.<H>x<W>.<key>.onnx`` with a ``.json`` record beside it
(the key hashes the checkpoint bytes, the size and the exporter's versions, so a retrained
checkpoint at the same path is exported anew). Where the checkpoint's folder is not
writable the cache goes to ``$XDG_CACHE_HOME/oast/onnx`` (``~/.cache/oast/onnx``).

:func:`load_int8_network` quantises that export to int8 (ONNX Runtime static quantisation:
QDQ, per-channel int8 weights, uint8 activations with min/max ranges from calibration
inputs), cached beside it as ``<export>.int8-<calibration key>.onnx``, and refuses a result
whose masks agree with the float network's on fewer than ``INT8_MIN_AGREEMENT`` of the
calibration pixels.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from utils.io import atomic_write

_log = logging.getLogger(__name__)

OPSET = 18
EXPORT_VERSION = 1  # bump when the exported graph changes for the same checkpoint
ATOL = 1e-3  # largest accepted |probability(ONNX) - probability(PyTorch)| on the check input
INT8_VERSION = 1  # bump when the quantisation recipe changes
# Smallest accepted share of calibration pixels whose mask (p >= 0.5) int8 and float agree on.
# A sound quantisation agrees on nearly every pixel (benchmarks/RESULTS.md, Speed); a broken one
# (wrong ranges, a mistranslated layer) falls far below this bound.
INT8_MIN_AGREEMENT = 0.98


def available() -> bool:
    """True when ONNX Runtime (and the exporter's packages) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    """Raise a clear ``ImportError`` (what to install) when :func:`available` is False."""
    if not available():
        raise ImportError("--runtime onnx needs onnxruntime, onnx and onnxscript: "
                          "pip install -r requirements-onnx.txt (or use --runtime torch)")


class _Logits(torch.nn.Module):
    """The network with the logits as its only output (the graph ONNX Runtime runs)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.model(image, flow)["logits"]


class OnnxNetwork:
    """An ONNX Runtime session called like the PyTorch network, at one input size.

    ``net(image, flow)`` takes ``B x 3 x H x W`` tensors (any batch) and returns
    ``{"logits": B x 1 x H x W}`` on the CPU.
    """

    def __init__(self, path: str | Path, size_hw: Sequence[int], threads: int | None = None):
        require()
        import onnxruntime as ort

        self.path, self.size = Path(path), (int(size_hw[0]), int(size_hw[1]))
        opts = ort.SessionOptions()
        # As many threads as PyTorch was given (OMP_NUM_THREADS / torch.set_num_threads).
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: spinning takes the cores that the video tool's
        # decoding, flow and writing threads need, which undoes most of what overlapping the stages
        # gains (benchmarks/RESULTS.md, Speed).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, image: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        feeds = input_feeds(self.path, self.size, image, flow)
        return {"logits": torch.from_numpy(self.session.run(["logits"], feeds)[0])}

    def eval(self) -> "OnnxNetwork":
        return self  # always inference; here so callers may treat it as a module


def cache_key(weights: Sequence[str | Path], size_hw: Sequence[int]) -> str:
    """12 hex digits naming one export: the checkpoint bytes, the size and the exporter's versions."""
    import onnxruntime

    from utils.io import weights_identity  # checks each file exists, naming a missing one

    shas = [w["sha1"] for w in weights_identity(weights)]
    return hashlib.sha1(json.dumps([shas, list(map(int, size_hw)), OPSET, EXPORT_VERSION, torch.__version__,
                                    onnxruntime.__version__]).encode()).hexdigest()[:12]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".oast-write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oast" / "onnx"


def cache_path(weights: Sequence[str | Path], size_hw: Sequence[int], cache_dir: str | Path | None = None) -> Path:
    """Where the export of ``weights`` at ``size_hw`` lives: beside the first checkpoint, or
    in ``cache_dir`` / the user cache when that folder is not writable."""
    first = Path(weights[0])
    folder = Path(cache_dir) if cache_dir is not None else first.parent
    if cache_dir is None and not _writable(folder):
        folder = default_cache_dir()
    h, w = int(size_hw[0]), int(size_hw[1])
    return folder / f"{first.name}.{h}x{w}.{cache_key(weights, size_hw)}.onnx"


def check_equal(model: torch.nn.Module, net: OnnxNetwork, atol: float = ATOL, batch: int = 2) -> float:
    """Largest probability difference between ``net`` and ``model`` on a fixed random input
    (frames in [0, 1]); raises ``RuntimeError`` above ``atol``."""
    g = torch.Generator().manual_seed(0)
    h, w = net.size
    image, flow = torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 3, h, w, generator=g)
    with torch.inference_mode():
        ref = model(image, flow)["logits"]
    return probability_gap(ref, net(image, flow)["logits"], atol, f"the ONNX export {net.path} differs from PyTorch",
                           "torch")


def input_feeds(path: Path, size: tuple[int, int], image: torch.Tensor, flow: torch.Tensor) -> dict[str, np.ndarray]:
    """The exported network's two inputs as contiguous float32 arrays; a ``ValueError`` naming the
    file ``path`` when they are not ``B x 3 x size``."""
    if tuple(image.shape[-2:]) != tuple(size) or image.shape != flow.shape:
        raise ValueError(f"{path.name} was exported for inputs B x 3 x {size[0]} x {size[1]}; "
                         f"got image {tuple(image.shape)} and flow {tuple(flow.shape)}")
    return {"image": np.ascontiguousarray(image.detach().float().cpu().numpy()),
            "flow": np.ascontiguousarray(flow.detach().float().cpu().numpy())}


def probability_gap(reference: torch.Tensor, logits: torch.Tensor, atol: float, what: str, instead: str) -> float:
    """Largest difference between the probabilities of two logits tensors; above ``atol`` a
    ``RuntimeError`` says ``what`` differs and names ``--runtime instead``."""
    diff = float((reference.float().sigmoid() - logits.float().sigmoid()).abs().max())
    if not diff <= atol:
        raise RuntimeError(f"{what} by {diff:.2e} in probability (tolerance {atol:.0e}); use --runtime {instead}")
    return diff


def export(model: torch.nn.Module, path: str | Path, size_hw: Sequence[int], atol: float = ATOL) -> dict:
    """Export ``model`` (eval mode, CPU) to ``path`` with a dynamic batch axis, check it
    against PyTorch, then write the ``.json`` record; returns the record. Both files are
    written atomically; a failed check leaves neither."""
    require()
    path = Path(path)
    model = model.cpu().eval()
    h, w = int(size_hw[0]), int(size_hw[1])
    t = time.perf_counter()
    example = (torch.rand(2, 3, h, w), torch.rand(2, 3, h, w))
    batch = torch.export.Dim("batch", min=1, max=1024)

    def write(tmp: Path) -> None:
        try:
            # The dynamo exporter: the TorchScript one mistranslates this network (its logits are far off).
            torch.onnx.export(_Logits(model).eval(), example, str(tmp), dynamo=True, external_data=False, verbose=False,
                              input_names=["image", "flow"], output_names=["logits"], opset_version=OPSET,
                              dynamic_shapes={"image": {0: batch}, "flow": {0: batch}})
        except Exception as e:  # the exporter's many error types: name the cause and the fallback
            raise RuntimeError(f"could not export the network to ONNX ({type(e).__name__}: {e}); "
                               "use --runtime torch") from e
        checked["diff"] = check_equal(model, OnnxNetwork(tmp, (h, w)), atol)  # before it takes its real name

    checked: dict[str, float] = {}
    atomic_write(path, write)
    diff = checked["diff"]
    import onnxruntime

    record = {"size": [h, w], "max_prob_diff": diff, "atol": atol, "opset": OPSET, "torch": torch.__version__,
              "onnxruntime": onnxruntime.__version__, "export_s": round(time.perf_counter() - t, 1)}
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    return record


def load_onnx_network(model: torch.nn.Module | Callable[[], torch.nn.Module], weights: Sequence[str | Path],
                      size_hw: Sequence[int], cache_dir: str | Path | None = None, atol: float = ATOL) -> OnnxNetwork:
    """The ONNX Runtime version of ``model`` (built from ``weights``) at ``size_hw``: read
    from the cache, else exported, checked and cached (a few tens of seconds, once).

    ``model`` may be a function that builds it: it is then called only when an export is
    needed (building the PyTorch network costs about half a second that a cache hit saves).
    """
    require()
    weights = [weights] if isinstance(weights, (str, Path)) else list(weights)
    path = cache_path(weights, size_hw, cache_dir)
    record = path.with_suffix(".json")
    if path.is_file() and record.is_file():
        try:
            net = OnnxNetwork(path, size_hw)
            _log.info("ONNX Runtime network: %s (cached)", path)
            return net
        except Exception as e:  # a damaged cache file is replaced, not trusted
            _log.warning("cached ONNX file %s cannot be loaded (%s); exporting it again", path, e)
    _log.info("exporting the network to ONNX for %s at %dx%d (once; cached at %s)", weights[0], *size_hw, path)
    if not isinstance(model, torch.nn.Module):
        model = model()
    rec = export(model, path, size_hw, atol)
    _log.info("exported in %.0f s; ONNX Runtime vs PyTorch: max probability difference %.1e", rec["export_s"],
              rec["max_prob_diff"])
    return OnnxNetwork(path, size_hw)


class _DropMessages(logging.Filter):
    """Drops log records containing ``text``: ONNX Runtime's quantiser warns once per call on the
    root logger for each 1-D norm weight that per-channel quantisation leaves per-tensor
    (hundreds of lines that say nothing to the user)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


Calibration = Sequence[tuple[np.ndarray, np.ndarray]]  # (image, flow) pairs, float32 1 x 3 x H x W in [0, 1]


def int8_path(fp32: OnnxNetwork, calibration_key: str) -> Path:
    """Where the int8 version of ``fp32`` calibrated on ``calibration_key`` is cached."""
    return fp32.path.with_name(f"{fp32.path.stem}.int8-{calibration_key}.onnx")


def mask_agreement(a: OnnxNetwork, b: OnnxNetwork, samples: Calibration) -> float:
    """Share of pixels whose mask (probability >= 0.5) ``a`` and ``b`` agree on, over ``samples``."""
    same = total = 0
    for image, flow in samples:
        x = torch.from_numpy(image), torch.from_numpy(flow)
        ma, mb = a(*x)["logits"] >= 0, b(*x)["logits"] >= 0  # logit 0 is probability 0.5
        same += int((ma == mb).sum())
        total += ma.numel()
    return same / max(total, 1)


def quantize_int8(fp32: OnnxNetwork, path: str | Path, samples: Calibration,
                  min_agreement: float = INT8_MIN_AGREEMENT) -> dict:
    """Quantise ``fp32``'s graph to int8 calibrated on ``samples``, check it, write it to ``path``
    with a ``.json`` record; returns the record. Both files are written atomically; a result
    that fails the check (``RuntimeError``) leaves neither."""
    require()
    import onnxruntime
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not samples:
        raise ValueError("int8 calibration needs at least one (image, flow) input")
    path = Path(path)
    t = time.perf_counter()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(samples)

        def get_next(self) -> dict | None:
            item = next(self.items, None)
            return None if item is None else {"image": item[0], "flow": item[1]}

    checked: dict[str, float] = {}

    def write(tmp: Path) -> None:
        pre = tmp.with_name(tmp.name + ".pre.onnx")
        quiet = _DropMessages("is out-of-range for weight")
        logging.getLogger().addFilter(quiet)
        try:
            # Shape inference and graph clean-up first, as ONNX Runtime's quantisation guide asks.
            quant_pre_process(str(fp32.path), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        finally:
            logging.getLogger().removeFilter(quiet)
            pre.unlink(missing_ok=True)
        agree = mask_agreement(fp32, OnnxNetwork(tmp, fp32.size), samples)
        if not agree >= min_agreement:
            raise RuntimeError(f"the int8 network agrees with the float one on {100 * agree:.1f} % of the "
                               f"calibration pixels (at least {100 * min_agreement:.0f} % required); "
                               "use --runtime onnx")
        checked["agreement"] = agree

    atomic_write(path, write)
    record = {"from": fp32.path.name, "size": list(fp32.size), "calibration_inputs": len(samples),
              "mask_agreement": checked["agreement"], "min_agreement": min_agreement, "version": INT8_VERSION,
              "onnxruntime": onnxruntime.__version__, "quantize_s": round(time.perf_counter() - t, 1)}
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    return record


def load_int8_network(fp32: OnnxNetwork, calibration_key: str, calibration: Callable[[], Calibration]) -> OnnxNetwork:
    """The int8 version of ``fp32``: read from the cache, else quantised on ``calibration()``
    (called only then) and cached. ``calibration_key`` names the calibration inputs: the
    same key must mean the same inputs."""
    path = int8_path(fp32, calibration_key)
    if path.is_file() and path.with_suffix(".json").is_file():
        try:
            net = OnnxNetwork(path, fp32.size)
            _log.info("ONNX Runtime int8 network: %s (cached)", path)
            return net
        except Exception as e:  # a damaged cache file is replaced, not trusted
            _log.warning("cached int8 file %s cannot be loaded (%s); quantising again", path, e)
    samples = calibration()
    rec = quantize_int8(fp32, path, samples)
    _log.info("quantised to int8 in %.0f s on %d calibration inputs (masks agree with float on %.2f %% of "
              "their pixels): %s", rec["quantize_s"], rec["calibration_inputs"], 100 * rec["mask_agreement"], path)
    return OnnxNetwork(path, fp32.size)
