"""Inference through OpenVINO on the CPU, from the ONNX files that :mod:`segment_video.onnx_runtime`
already caches beside the checkpoint.

``--runtime openvino`` compiles the float export with OpenVINO's CPU plugin; ``--runtime
openvino_int8`` compiles the int8 model of ``--runtime int8`` (the same file: the same cache,
calibration and agreement check). Nothing is exported or quantised here, so the ONNX packages of
``requirements-onnx.txt`` are needed as well (``requirements-openvino.txt`` installs both).

:class:`OpenVinoNetwork` has the contract of :class:`~segment_video.onnx_runtime.OnnxNetwork`:
``net(image, flow)`` takes ``B x 3 x H x W`` tensors and returns ``{"logits": B x 1 x H x W}`` on
the CPU. Each compiled network is compared with the ONNX Runtime network it was read from before
first use, on the fixed input of :func:`segment_video.onnx_runtime.check_equal`: the float network
must give the same probabilities (``onnx_runtime.ATOL``), the int8 one the same masks on at least
``onnx_runtime.INT8_MIN_AGREEMENT`` of the pixels (two int8 engines round differently).

``--runtime auto`` does not choose OpenVINO: it is to be adopted only where it is measured faster
than ONNX Runtime at equal masks (the OpenVINO configurations of ``benchmarks/segment_speed.py``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from segment_video import onnx_runtime
from segment_video.onnx_runtime import ATOL, INT8_MIN_AGREEMENT, OnnxNetwork

_log = logging.getLogger(__name__)

RUNTIMES = ("openvino", "openvino_int8")  # the --runtime values this module serves


def available() -> bool:
    """True when OpenVINO and the ONNX packages (the export it reads) can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return onnx_runtime.available()


def require(runtime: str = "openvino") -> None:
    """Raise a clear ``ImportError`` naming ``--runtime <runtime>`` and what to install when
    :func:`available` is False."""
    if not available():
        raise ImportError(f"--runtime {runtime} needs openvino, and onnxruntime, onnx and onnxscript for the ONNX "
                          "export it reads: pip install -r requirements-openvino.txt (or use --runtime onnx or "
                          "--runtime torch)")


class OpenVinoNetwork:
    """An ONNX file compiled by OpenVINO for the CPU, called like the PyTorch network, at one input size.

    ``net(image, flow)`` takes ``B x 3 x H x W`` tensors (any batch: the export's batch axis is
    dynamic) and returns ``{"logits": B x 1 x H x W}`` on the CPU.
    """

    def __init__(self, path: str | Path, size_hw: Sequence[int], threads: int | None = None):
        require()
        import openvino as ov

        self.path, self.size = Path(path), (int(size_hw[0]), int(size_hw[1]))
        config = {
            # As many threads as PyTorch was given (OMP_NUM_THREADS / torch.set_num_threads), as ONNX Runtime gets.
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
            # On a CPU with bf16 instructions the plugin would run float layers in bf16 by default, which
            # changes the masks; f32 keeps ONNX Runtime's and PyTorch's arithmetic (int8 layers stay int8).
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        # One request, used from one thread at a time (the pipeline calls the network from one thread).
        self.request = self.compiled.create_infer_request()

    def __call__(self, image: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        feeds = onnx_runtime.input_feeds(self.path, self.size, image, flow)
        # share_outputs=False copies the logits out: the request reuses its output buffer on the next call.
        out = self.request.infer(feeds, share_inputs=False, share_outputs=False)
        return {"logits": torch.from_numpy(np.asarray(out["logits"]))}

    def eval(self) -> "OpenVinoNetwork":
        return self  # always inference; here so callers may treat it as a module


def _check_input(size_hw: Sequence[int], batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed random input of :func:`segment_video.onnx_runtime.check_equal` (frames in [0, 1])."""
    g = torch.Generator().manual_seed(0)
    h, w = size_hw
    return torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 3, h, w, generator=g)


def check_float(reference: OnnxNetwork, net: OpenVinoNetwork, atol: float = ATOL) -> float:
    """Largest probability difference between ``net`` and the ONNX Runtime network ``reference``
    (itself checked against PyTorch) on the fixed input; raises ``RuntimeError`` above ``atol``."""
    image, flow = _check_input(net.size)
    return onnx_runtime.probability_gap(reference(image, flow)["logits"], net(image, flow)["logits"], atol,
                                        f"OpenVINO's network from {net.path} differs from ONNX Runtime's", "onnx")


def check_int8(reference: OnnxNetwork, net: OpenVinoNetwork, min_agreement: float = INT8_MIN_AGREEMENT) -> float:
    """Share of pixels whose mask ``net`` and the ONNX Runtime int8 network ``reference`` agree on
    over the fixed input; raises ``RuntimeError`` below ``min_agreement``."""
    image, flow = _check_input(net.size)
    agree = onnx_runtime.mask_agreement(reference, net, [(image.numpy(), flow.numpy())])
    if not agree >= min_agreement:
        raise RuntimeError(f"OpenVINO's int8 network from {net.path} agrees with ONNX Runtime's on "
                           f"{100 * agree:.1f} % of the check pixels (at least {100 * min_agreement:.0f} % "
                           "required); use --runtime int8")
    return agree


def load_openvino_network(onnx_net: OnnxNetwork, int8: bool = False) -> OpenVinoNetwork:
    """``onnx_net``'s file compiled by OpenVINO and checked against ``onnx_net``: the float export
    (``int8=False``) or the int8 model of :func:`segment_video.onnx_runtime.load_int8_network`."""
    require("openvino_int8" if int8 else "openvino")
    net = OpenVinoNetwork(onnx_net.path, onnx_net.size)
    if int8:
        agree = check_int8(onnx_net, net)
        _log.info("OpenVINO int8 network: %s (masks agree with ONNX Runtime int8 on %.2f %% of the check pixels)",
                  net.path, 100 * agree)
    else:
        diff = check_float(onnx_net, net)
        _log.info("OpenVINO network: %s (OpenVINO vs ONNX Runtime: max probability difference %.1e)", net.path,
                  diff)
    return net
