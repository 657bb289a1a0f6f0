"""Model factory: every script builds networks through these functions."""
from __future__ import annotations

from pathlib import Path

from models.backbone import MODEL_SCALES, backbone_name
from models.discriminators import FeatureDiscriminator, MaskDiscriminator
from models.two_stream import TwoStreamNet

__all__ = ["build_model", "build_model_from_checkpoint", "build_feature_discriminator", "build_mask_discriminator",
           "model_config", "TwoStreamNet", "FeatureDiscriminator", "MaskDiscriminator", "MODEL_SCALES"]


def model_config(model_scale: str = "xxs", backbone: str | None = None) -> dict:
    """The architecture description stored in every checkpoint."""
    return {"model_scale": model_scale, "backbone": backbone_name(model_scale, backbone)}


def build_model(model_scale: str = "xxs", backbone: str | None = None,
                pretrained: str | Path | None = None) -> TwoStreamNet:
    """Two-stream network on ``mobilevit_<model_scale>`` (or any timm ``backbone``).

    ``pretrained`` is a local timm ImageNet state dict for the backbone; nothing is
    downloaded. Without it the network is randomly initialised.
    """
    net = TwoStreamNet(backbone_name(model_scale, backbone))
    if pretrained:
        if not Path(pretrained).is_file():
            raise FileNotFoundError(
                f"--pretrained {pretrained}: file not found. Download the timm ImageNet weights for "
                f"{net.rgb_encoder.name} once (see README, 'Pretrained weights') and pass the local path.")
        net.load_backbone_weights(str(pretrained))
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
    model = build_model(model_scale=scale, backbone=backbone)
    load_model_weights(model, paths, model_config(scale, backbone))
    return model
