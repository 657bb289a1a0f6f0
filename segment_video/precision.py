"""The arithmetic of the network's plain inference on each device (the tool's GPU path).

On CUDA the network runs in PyTorch under fp16 autocast unless ``--cuda_precision fp32`` (the
setting ``accurate`` bundles fp32, ``test.py``'s arithmetic): the ONNX Runtime and OpenVINO
runtimes are CPU-only, and fp16 is what a GPU's tensor cores run fastest. On the CPU nothing changes: float32, or autocast as ``--amp``/``--amp_dtype`` ask
(:func:`utils.misc.autocast`). ``--amp`` keeps its project-wide meaning on either device:
autocast in ``--amp_dtype``. Online tuning (``--online``) keeps the online stage's own
``--amp`` setting: it trains, and its precision is the online stage's choice.
"""
from __future__ import annotations

CUDA_PRECISIONS = ("fp16", "fp32")


def network_precision(device_type: str, amp: bool, amp_dtype: str,
                      cuda_precision: str = "fp16") -> tuple[bool, str]:
    """``(autocast on, autocast dtype)`` for plain inference on ``device_type`` (``"cpu"``,
    ``"cuda"``, ...): ``--amp`` in ``--amp_dtype`` wherever it is given; otherwise fp16 autocast
    on CUDA (float32 with ``cuda_precision="fp32"``) and float32 elsewhere."""
    if cuda_precision not in CUDA_PRECISIONS:
        raise ValueError(f"unknown --cuda_precision {cuda_precision!r}; choose from {', '.join(CUDA_PRECISIONS)}")
    if amp:
        return True, amp_dtype
    if device_type == "cuda" and cuda_precision == "fp16":
        return True, "fp16"
    return False, amp_dtype


def describe(device_type: str, amp: bool, amp_dtype: str) -> str:
    """What :func:`utils.misc.autocast` runs with these values, in words (for the log)."""
    if amp and (device_type == "cuda" or (device_type == "cpu" and amp_dtype == "bf16")):
        return f"{amp_dtype} autocast"
    return "float32"
