"""The tool's two named settings (``--quality``): each a bundle of existing options.

A bundle gives the *defaults* of the options it names; an option given on the command line
wins over its bundle's value. The parser therefore leaves those options at ``None`` ("not
given"), and :func:`resolve` fills each ``None`` from the chosen bundle when the
:class:`~segment_video.config.VideoConfig` is built.

* ``fast`` (the default): the tool's defaults before the settings existed: the network in
  ONNX Runtime where installed, DIS ``medium`` at the frame size, the checkpoint's training
  size, no flip, no temporal fusion (the flow image's JPEG round trip of those days is
  ``--flow_jpeg`` now, outside the bundles); on CUDA, fp16 autocast.
* ``accurate``: the benchmark's best offline inference, ``test.py --flip --temporal 1`` at
  the recipe's test size (:data:`RECIPE_TEST_SIZE`), in PyTorch with its default tensor
  layout, on frames and DIS ``medium`` flow images at the frame size as the benchmark's data
  preparation writes them (``scripts/compute_flow.py``). Temporal fusion needs the whole
  video, so it runs the files pipeline (``--pipeline auto`` picks it). On CUDA it stays in
  float32, as ``test.py`` runs without ``--amp``.

``--online`` goes on top of either: the tuner then runs at the bundle's size with its flip;
it writes its masks with the online stage's own temporal fusion (``engine/online_config.py``),
so the bundle's ``temporal`` applies to plain inference only.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

# benchmarks/davis_real.py RECIPE["test_size"]: the input size of test.py and the online stage
# in every figure of the README (a test checks the two agree).
RECIPE_TEST_SIZE = (320, 576)

QUALITIES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "fast": MappingProxyType({
        "runtime": "auto", "dis_preset": "medium", "flow_size": "frame", "size": None, "flip": False,
        "temporal": (), "memory_format": "channels_last", "cuda_precision": "fp16"}),
    "accurate": MappingProxyType({
        # PyTorch in test.py's (contiguous) layout and, on CUDA, its float32: channels_last, ONNX Runtime or fp16
        # would round differently.
        "runtime": "torch", "dis_preset": "medium", "flow_size": "frame", "size": RECIPE_TEST_SIZE, "flip": True,
        "temporal": (1,), "memory_format": "contiguous", "cuda_precision": "fp32"}),
})
DEFAULT_QUALITY = "fast"
BUNDLED = tuple(QUALITIES[DEFAULT_QUALITY])  # the options a setting decides unless given


def describe(quality: str) -> str:
    """One line naming every option value of ``quality`` (for ``--help``)."""
    def show(key: str, value: Any) -> str:
        if key == "size" and value is None:
            return "size: the checkpoint's training size"
        if key == "temporal":
            return f"temporal: {' '.join(map(str, value)) or 'none'}"
        if isinstance(value, tuple):
            return f"{key}: {'x'.join(map(str, value))}"
        return f"{key}: {value}"

    return ", ".join(show(k, v) for k, v in QUALITIES[quality].items())


def resolve(options: Mapping[str, Any], quality: str) -> dict[str, Any]:
    """``options`` with every bundled option left at ``None`` set to ``quality``'s value."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown --quality {quality!r}; choose from {', '.join(QUALITIES)}")
    bundle = QUALITIES[quality]
    return {**options, **{k: bundle[k] for k in BUNDLED if options.get(k) is None}}
