"""Inference through ONNX Runtime on the CPU: the network exported once per checkpoint and
input size, cached beside the checkpoint, and checked against PyTorch before first use.

PyTorch stays the reference: :class:`OnnxNetwork` is called like the PyTorch network
(``net(image, flow)["logits"]``), so :func:`engine.inference.predict_probs` and its flip
test-time augmentation run unchanged on either. Needs the optional packages of
``requirements-onnx.txt`` (``onnxruntime``, and ``onnx`` + ``onnxscript`` for the export).

The cache file is ``<checkpoint>.<H>x<W>.<key>.onnx`` with a ``.json`` record beside it
(the key hashes the checkpoint bytes, the size and the exporter's versions, so a retrained
checkpoint at the same path is exported anew). Where the checkpoint's folder is not
writable the cache goes to ``$XDG_CACHE_HOME/oast/onnx`` (``~/.cache/oast/onnx``).
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
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, image: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        if tuple(image.shape[-2:]) != self.size or image.shape != flow.shape:
            raise ValueError(f"{self.path.name} was exported for inputs B x 3 x {self.size[0]} x {self.size[1]}; "
                             f"got image {tuple(image.shape)} and flow {tuple(flow.shape)}")
        feeds = {"image": np.ascontiguousarray(image.detach().float().cpu().numpy()),
                 "flow": np.ascontiguousarray(flow.detach().float().cpu().numpy())}
        return {"logits": torch.from_numpy(self.session.run(["logits"], feeds)[0])}

    def eval(self) -> "OnnxNetwork":
        return self  # always inference; here so callers may treat it as a module


def cache_key(weights: Sequence[str | Path], size_hw: Sequence[int]) -> str:
    """12 hex digits naming one export: the checkpoint bytes, the size and the exporter's versions."""
    import onnxruntime

    from engine.online_records import weights_identity  # checks each file exists, naming a missing one

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
        ref = model(image, flow)["logits"].float().sigmoid()
    got = net(image, flow)["logits"].float().sigmoid()
    diff = float((ref - got).abs().max())
    if not diff <= atol:
        raise RuntimeError(f"the ONNX export {net.path} differs from PyTorch by {diff:.2e} in probability "
                           f"(tolerance {atol:.0e}); use --runtime torch")
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
            # The dynamo exporter: the TorchScript one mistranslates this network (measured: logits off by up to 94).
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
