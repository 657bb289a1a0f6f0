"""Model factory: every script builds networks through these functions."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models.backbone import MODEL_SCALES, backbone_name
from models.decoder import HEADS
from models.discriminators import FeatureDiscriminator, MaskDiscriminator
from models.oast3d import OAST3D, pretrained_blocks
from models.oast3d_layers import BLOCKS
from models.pretrained import IMAGENET_MEAN, IMAGENET_STD, input_normalisation, pip_weights, resolve_pretrained
from models.two_stream import TwoStreamNet

__all__ = ["build_model", "build_model_from_checkpoint", "build_feature_discriminator", "build_mask_discriminator",
           "model_config", "add_blocks_arg", "TwoStreamNet", "OAST3D", "FeatureDiscriminator", "MaskDiscriminator",
           "MODEL_SCALES"]

_log = logging.getLogger(__name__)


ARCHS = ("two_stream", "oast3d")
DEFAULT_HEAD = "linear"  # decoder head of new two_stream models (``--decoder_head``); benchmarks/RESULTS.md, Decoder head


def model_config(model_scale: str = "xxs", backbone: str | None = None,
                 pretrained: str | Path | None = None, arch: str = "two_stream", blocks: str | None = None,
                 head: str | None = None) -> dict:
    """The architecture description stored in every checkpoint.

    A weight package named by ``pretrained`` implies its backbone; ``mean``/``std`` are the
    input normalisation of the encoders' weights (timm's ``pretrained_cfg`` otherwise).
    ``arch="oast3d"`` (the authors' network, always on ``mobilevit_<model_scale>``) also
    records ``blocks`` (see :func:`oast3d_config`); the two-stream network has no such choice
    and ignores it with a warning (``--preset authors`` sets it, and ``--arch two_stream``
    may override the preset's ``oast3d``). ``head``: the two-stream decoder's head
    (:data:`models.decoder.HEADS`; default ``DEFAULT_HEAD``).
    """
    if arch == "oast3d":
        if head is not None:
            raise ValueError("--decoder_head is an option of --arch two_stream; oast3d has the authors' head")
        return oast3d_config(model_scale, backbone, pretrained, blocks)
    if blocks is not None:
        _log.warning("--blocks %s is an option of --arch oast3d; ignored for --arch %s", blocks, arch)
    entry = pip_weights(pretrained)
    if entry is not None:
        if backbone not in (None, entry.backbone):
            raise ValueError(f"--pretrained {pretrained} holds {entry.backbone} weights, not --backbone {backbone}")
        backbone = entry.backbone
    name = backbone_name(model_scale, backbone)
    mean, std = input_normalisation(name, pretrained)
    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}; choose from {ARCHS}")
    head = DEFAULT_HEAD if head is None else head
    if head not in HEADS:
        raise ValueError(f"unknown --decoder_head {head!r}; choose from {HEADS}")
    return {"arch": arch, "model_scale": model_scale, "backbone": name, "mean": list(mean), "std": list(std),
            "head": head}


def oast3d_config(model_scale: str = "xxs", backbone: str | None = None, pretrained: str | Path | None = None,
                  blocks: str | None = None, dropout: float = 0.0) -> dict:
    """``model_config`` of the authors' network (``--arch oast3d``).

    ``blocks`` is ``"timm"`` (timm's MobileViT internals, initialised from timm's
    ``mobilevit_<scale>`` ImageNet file) or ``"authors"`` (the internals of the authors'
    MobileViT, initialised from their backbone file, or loaded from their checkpoints); by
    default it follows the ``pretrained`` file's format, else ``"timm"``. The frame is
    normalised as the weights expect (timm's MobileViT: none, i.e. mean 0 and std 1; the
    authors': ImageNet's); the flow image is not normalised (``flow_mean`` 0, ``flow_std`` 1),
    as in the authors' code. ``dropout`` is the authors' dropout before the head.
    """
    name = backbone_name(model_scale)
    if backbone not in (None, name):
        raise ValueError(f"--arch oast3d is built on {name} (from --model_scale), not --backbone {backbone}")
    if pip_weights(pretrained) is not None:
        raise ValueError(f"--pretrained {pretrained} holds {pip_weights(pretrained).backbone} weights; --arch oast3d "
                         f"needs timm's {name} file or the authors' MobileViT backbone file")
    found = pretrained_blocks(resolve_pretrained(pretrained)) if pretrained else None
    if blocks is None:
        blocks = found or "timm"
    elif found not in (None, blocks):
        raise ValueError(f"--pretrained {pretrained} is for {found!r} blocks, not --blocks {blocks}; pass --blocks "
                         f"{found} to build that network, or the other flavour's file")
    mean, std = input_normalisation(name) if blocks == "timm" else (IMAGENET_MEAN, IMAGENET_STD)
    return {"arch": "oast3d", "model_scale": model_scale, "backbone": name, "blocks": blocks,
            "mean": list(mean), "std": list(std), "flow_mean": [0.0, 0.0, 0.0], "flow_std": [1.0, 1.0, 1.0],
            "dropout": float(dropout)}


def build_model(model_scale: str = "xxs", backbone: str | None = None,
                pretrained: str | Path | None = None, config: dict | None = None,
                arch: str = "two_stream", head: str | None = None, blocks: str | None = None) -> TwoStreamNet | OAST3D:
    """Two-stream network on ``mobilevit_<model_scale>`` (or any timm ``backbone``), or with
    ``arch="oast3d"`` the authors' 3D MobileViT (:class:`models.oast3d.OAST3D`, whose encoder
    ``pretrained`` initialises by inflation).

    ``pretrained`` is a local ImageNet state dict for the backbone, or the short name of an
    installed weight package (``models.pretrained.PIP_WEIGHTS``); nothing is downloaded.
    Without it the network is randomly initialised. ``blocks``: oast3d's block flavour
    (:func:`oast3d_config`). ``config`` (a checkpoint's ``model_config``) replaces the other
    arguments. The result's ``config`` attribute is the ``model_config`` to store with its weights.
    """
    cfg = (dict(config) if config is not None
           else model_config(model_scale, backbone, pretrained, arch, blocks=blocks, head=head))
    if cfg.get("arch", "two_stream") == "oast3d":
        return _build_oast3d(cfg, pretrained)
    if cfg.get("arch", "two_stream") != "two_stream":
        raise ValueError(f"unknown arch {cfg['arch']!r} in the model config; choose from {ARCHS}")
    # Checkpoints written before the normalisation was recorded used ImageNet's.
    # Checkpoints written before the head was an option have the ReLU head.
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    head = cfg.get("head", "relu")
    net = TwoStreamNet(cfg["backbone"], mean=mean, std=std, head=head)
    net.config = {**cfg, "mean": list(mean), "std": list(std), "head": head}
    if pretrained:
        net.load_backbone_weights(str(resolve_pretrained(pretrained)))
    return net


def _build_oast3d(cfg: dict, pretrained: str | Path | None) -> OAST3D:
    # Fields a (hand-written) config leaves out take oast3d_config's defaults for its blocks.
    cfg = {**oast3d_config(cfg["model_scale"], blocks=cfg.get("blocks", "timm")), **cfg}
    net = OAST3D(cfg["model_scale"], cfg["blocks"], tuple(cfg["mean"]), tuple(cfg["std"]), tuple(cfg["flow_mean"]),
                 tuple(cfg["flow_std"]), float(cfg["dropout"]))
    net.config = cfg
    if pretrained:
        net.load_backbone_weights(resolve_pretrained(pretrained))
    return net


def add_blocks_arg(group: argparse._ActionsContainer) -> None:
    """``--blocks`` (``args.blocks``): the MobileViT block flavour of ``--arch oast3d``, for
    :func:`build_model`; ``None`` (the default) lets :func:`oast3d_config` choose."""
    group.add_argument("--blocks", default=None, choices=BLOCKS,
                       help="--arch oast3d's block internals: timm (timm's MobileViT; initialised from timm's "
                            "mobilevit_<scale> file) or authors (the MobileViT of the authors' code and files: "
                            "their parameter counts; initialised from their backbone file); default: the "
                            "--pretrained file's flavour, else timm")


def build_feature_discriminator(model: TwoStreamNet | OAST3D, width: int = 64) -> FeatureDiscriminator:
    """Feature discriminator sized for ``model``'s deepest features (``model.feature_channels``:
    the fused level of the two-stream network, the time-averaged encoder output of oast3d)."""
    return FeatureDiscriminator(model.feature_channels, width)


def build_mask_discriminator(width: int = 32, size: tuple[int, int] = (128, 224),
                             with_image: bool = True) -> MaskDiscriminator:
    """Mask discriminator for the online stage."""
    return MaskDiscriminator(width, size, with_image)


def build_model_from_checkpoint(weights: str | Path | list[str | Path], model_scale: str | None = None,
                                backbone: str | None = None, arch: str | None = None) -> TwoStreamNet | OAST3D:
    """Model with the checkpoint's architecture (unless given) and its weights (averaged if several).

    A ``model_scale``/``backbone``/``arch`` that contradicts the checkpoint fails with a clear message.
    The authors' released checkpoints are recognised by their keys and load into ``oast3d``
    with the authors' blocks (:mod:`models.authors_keys`).
    """
    from models import authors_keys
    from models.loading import load_model_weights
    from utils.checkpoint import checkpoint_config

    paths = [weights] if isinstance(weights, (str, Path)) else list(weights)
    if paths and authors_keys.is_authors_checkpoint(paths[0]):
        if arch not in (None, "oast3d"):
            raise ValueError(f"{paths[0]} holds the authors' network (--arch oast3d), not --arch {arch}")
        return _build_from_authors(paths, model_scale, backbone)
    ckpt_cfg = checkpoint_config(paths) or {}
    if arch not in (None, ckpt_cfg.get("arch", "two_stream")):
        raise ValueError(f"{paths[0]} holds a model with arch={ckpt_cfg.get('arch', 'two_stream')!r}, not --arch "
                         f"{arch}; leave --arch unset to use the checkpoint's")
    scale = model_scale or ckpt_cfg.get("model_scale", "s")
    if backbone is None and model_scale is None:
        backbone = ckpt_cfg.get("backbone")
    cfg = {**ckpt_cfg, "model_scale": scale, "backbone": backbone_name(scale, backbone)}
    model = build_model(config=cfg)
    load_model_weights(model, paths, cfg)
    return model


def _build_from_authors(paths: list[str | Path], model_scale: str | None, backbone: str | None) -> OAST3D:
    """``oast3d`` (authors' blocks) holding the authors' checkpoint(s), averaged if several."""
    from models import authors_keys

    sd, scale, info = authors_keys.read_authors_checkpoints(paths)
    if model_scale not in (None, scale):
        raise ValueError(f"{paths[0]} holds the authors' network at model_scale={scale!r}, not --model_scale "
                         f"{model_scale}; leave --model_scale unset")
    if backbone not in (None, backbone_name(scale)):
        raise ValueError(f"{paths[0]} holds the authors' network on {backbone_name(scale)}, not --backbone {backbone}")
    cfg = oast3d_config(scale, blocks="authors", dropout=info.get("dropout", 0.0))
    cfg.update({k: info[k] for k in ("mean", "std") if k in info})
    model = build_model(config=cfg)
    model.load_state_dict(authors_keys.map_authors_state_dict(sd, model, paths[0]), strict=True)
    return model
