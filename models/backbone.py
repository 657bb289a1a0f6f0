"""timm encoder wrapper and loading of ImageNet weights from a local file."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import timm
import torch
from torch import nn

from models.pretrained import classifier_state_dict, convert_by_order, is_efficientnet_pytorch
from utils.weights import load_state_dict_file

_log = logging.getLogger(__name__)

MODEL_SCALES = ("xxs", "xs", "s")


def backbone_name(model_scale: str, backbone: str | None = None) -> str:
    """timm model name: ``backbone`` if given, else ``mobilevit_<model_scale>``."""
    if backbone:
        return backbone
    if model_scale not in MODEL_SCALES:
        raise ValueError(f"model_scale must be one of {MODEL_SCALES}, got {model_scale!r}")
    return f"mobilevit_{model_scale}"


def read_imagenet_file(path: str | Path, backbone: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(``path``'s tensors under timm keys, timm's full classifier state dict for ``backbone``)."""
    src = load_state_dict_file(path)
    full = classifier_state_dict(backbone)
    if is_efficientnet_pytorch(src):
        src = convert_by_order(src, full, path)
    return src, full


class Encoder(nn.Module):
    """A timm ``features_only`` network returning all of its feature levels."""

    def __init__(self, name: str):
        super().__init__()
        try:
            self.body = timm.create_model(name, pretrained=False, features_only=True)
        except RuntimeError as e:  # timm raises RuntimeError for unknown names
            raise ValueError(f"timm backbone {name!r} cannot be created with features_only: {e}") from e
        self.name = name
        self.channels: list[int] = self.body.feature_info.channels()
        self.reductions: list[int] = self.body.feature_info.reduction()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)

    def load_imagenet(self, path: str | Path,
                      weights: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None) -> None:
        """Load an ImageNet classifier's weights into the encoder, strictly.

        ``path`` holds timm keys (.pth/.safetensors) or the ``efficientnet_pytorch`` layout,
        converted by order with shape checks. Keys are matched through timm's
        feature-wrapper renaming (``stages.0`` is stored as ``stages_0``). What to ignore is
        decided by timm's full classifier for this backbone: its layers that the
        ``features_only`` network lacks (head convolution, final norm, classifier) are
        skipped; anything else missing or unexpected is an error that lists the keys, because
        a silent partial load is worse than none. ``weights`` is what
        :func:`read_imagenet_file` returned for ``path``, when it was already read.
        """
        src, full = weights if weights is not None else read_imagenet_file(path, self.name)
        own = self.body.state_dict()
        loaded, missing = {}, []
        for key in own:
            for cand in (key, re.sub(r"^([A-Za-z]+)_(\d+)\.", r"\1.\2.", key)):
                if cand in src:
                    loaded[key] = src[cand]
                    break
            else:
                missing.append(key)
        used = {re.sub(r"^([A-Za-z]+)_(\d+)\.", r"\1.\2.", k) for k in loaded} | set(loaded)
        ignored = [k for k in src if k not in used and k in full]
        unexpected = [k for k in src if k not in used and k not in full]
        bad_shape = [k for k, v in loaded.items() if tuple(v.shape) != tuple(own[k].shape)]
        if missing or unexpected or bad_shape:
            raise ValueError(
                f"{path} does not hold ImageNet weights for timm model {self.name!r}: "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
                f"(e.g. {unexpected[:3]}), {len(bad_shape)} shape mismatches (e.g. {bad_shape[:3]})")
        self.body.load_state_dict(loaded, strict=True)
        _log.info("loaded %d tensors for %s from %s (ignored, not in the features_only network: %s)",
                  len(loaded), self.name, path, ignored or "none")
