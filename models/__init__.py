"""Model factory: every script builds networks through these functions."""
from __future__ import annotations

from pathlib import Path

from models.backbone import MODEL_SCALES, backbone_name
from models.discriminators import FeatureDiscriminator, MaskDiscriminator
from models.pretrained import IMAGENET_MEAN, IMAGENET_STD, input_normalisation, pip_weights, resolve_pretrained
from models.two_stream import TwoStreamNet

__all__ = ["build_model", "build_model_from_checkpoint", "build_feature_discriminator", "build_mask_discriminator",
           "model_config", "TwoStreamNet", "FeatureDiscriminator", "MaskDiscriminator", "MODEL_SCALES"]


ARCHS = ("two_stream", "oast3d")


def model_config(model_scale: str = "xxs", backbone: str | None = None,
                 pretrained: str | Path | None = None, arch: str = "two_stream") -> dict:
    """The architecture description stored in every checkpoint.

    A weight package named by ``pretrained`` implies its backbone; ``mean``/``std`` are the
    input normalisation of the encoders' weights (timm's ``pretrained_cfg`` otherwise).
    """
    entry = pip_weights(pretrained)
    if entry is not None:
        if backbone not in (None, entry.backbone):
            raise ValueError(f"--pretrained {pretrained} holds {entry.backbone} weights, not --backbone {backbone}")
        backbone = entry.backbone
    name = backbone_name(model_scale, backbone)
    mean, std = input_normalisation(name, pretrained)
    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}; choose from {ARCHS}")
    return {"arch": arch, "model_scale": model_scale, "backbone": name, "mean": list(mean), "std": list(std)}


def build_model(model_scale: str = "xxs", backbone: str | None = None,
                pretrained: str | Path | None = None, config: dict | None = None,
                arch: str = "two_stream") -> TwoStreamNet:
    """Two-stream network on ``mobilevit_<model_scale>`` (or any timm ``backbone``).

    ``pretrained`` is a local ImageNet state dict for the backbone, or the short name of an
    installed weight package (``models.pretrained.PIP_WEIGHTS``); nothing is downloaded.
    Without it the network is randomly initialised. ``config`` (a checkpoint's
    ``model_config``) replaces the other arguments. The result's ``config`` attribute is the
    ``model_config`` to store with its weights.
    """
    cfg = dict(config) if config is not None else model_config(model_scale, backbone, pretrained, arch)
    if cfg.get("arch", "two_stream") != "two_stream":
        raise NotImplementedError(f"--arch {cfg['arch']} is not built yet")  # models/oast3d.py (issue 13)
    # Checkpoints written before the normalisation was recorded used ImageNet's.
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    net = TwoStreamNet(cfg["backbone"], mean=mean, std=std)
    net.config = {**cfg, "mean": list(mean), "std": list(std)}
    if pretrained:
        net.load_backbone_weights(str(resolve_pretrained(pretrained)))
    return net


def build_feature_discriminator(model: TwoStreamNet, width: int = 64) -> FeatureDiscriminator:
    """Feature discriminator sized for ``model``'s fused deepest features."""
    return FeatureDiscriminator(model.feature_channels, width)


def build_mask_discriminator(width: int = 32, size: tuple[int, int] = (128, 224),
                             with_image: bool = True) -> MaskDiscriminator:
    """Mask discriminator for the online stage."""
    return MaskDiscriminator(width, size, with_image)


def build_model_from_checkpoint(weights: str | Path | list[str | Path], model_scale: str | None = None,
                                backbone: str | None = None) -> TwoStreamNet:
    """Model with the checkpoint's architecture (unless given) and its weights (averaged if several).

    A ``model_scale``/``backbone`` that contradicts the checkpoint fails with a clear message.
    """
    from utils.checkpoint import checkpoint_config, load_model_weights

    paths = [weights] if isinstance(weights, (str, Path)) else list(weights)
    ckpt_cfg = checkpoint_config(paths) or {}
    scale = model_scale or ckpt_cfg.get("model_scale", "s")
    if backbone is None and model_scale is None:
        backbone = ckpt_cfg.get("backbone")
    cfg = {**ckpt_cfg, "model_scale": scale, "backbone": backbone_name(scale, backbone)}
    model = build_model(config=cfg)
    load_model_weights(model, paths, cfg)
    return model
