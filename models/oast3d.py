"""The authors' network (``--arch oast3d``): one MobileViT made 3D over the clip (frame, flow).

Written from the behaviour of the published OAST code. RGB frame and flow image are the two
time steps of one clip. The encoder is MobileViT with every convolution inflated to a
temporal kernel of 3; its transformers attend over the patches of both time steps together.
The decoder has three stages, each a MobileViT block on the coarser map and a 1x1
conv-BN-SiLU, upsampled 2x (trilinear, ``align_corners=True``) and added to a 3x3 conv-BN-SiLU
of the encoder's skip; a 3x3x3 head gives one logit map per time step at stride 4, and the
frame's time step, upsampled to the input, is the output. The flow image enters in [0, 1],
without normalisation; the frame is normalised as the ImageNet weights expect.

See :mod:`models.oast3d_layers` for the two flavours of block internals (``blocks``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.oast3d_layers import (ConvNormAct3d, InvertedResidual3d, MobileViTBlock3d, centre_init_, check_blocks,
                                  conv3d, inflate_kernel)

_log = logging.getLogger(__name__)

STRIDE = 64  # the deepest MobileViT blocks (stride 32) need even sizes: inputs are padded to 64


@dataclass(frozen=True)
class Scale:
    """Widths of one MobileViT scale (timm's and the authors' agree on all of them)."""
    stem: int
    stages: tuple[int, int, int, int, int]  # outputs of stages 0..4 (strides 2, 4, 8, 16, 32)
    dims: tuple[int, int, int]  # transformer widths of stages 2..4
    final: int  # the 1x1 convolution after stage 4
    expansion: float


SCALES = {
    "xxs": Scale(16, (16, 24, 48, 64, 80), (64, 80, 96), 320, 2.0),
    "xs": Scale(16, (32, 48, 64, 80, 96), (96, 120, 144), 384, 4.0),
    "s": Scale(16, (32, 64, 96, 128, 160), (144, 192, 240), 640, 4.0),
}
DEPTHS = (2, 4, 3)  # transformer layers in stages 2..4
# MLP width / token width of the encoder's transformers (stages 2..4): timm's MobileViT uses 2
# throughout, the authors' 2, 4, 4. Their decoder uses 4 in all three stages.
ENCODER_MLP = {"timm": (2.0, 2.0, 2.0), "authors": (2.0, 4.0, 4.0)}
DECODER_MLP = 4.0


def scale_spec(model_scale: str) -> Scale:
    if model_scale not in SCALES:
        raise ValueError(f"--arch oast3d supports --model_scale {tuple(SCALES)}, got {model_scale!r}")
    return SCALES[model_scale]


class Encoder3d(nn.Module):
    """MobileViT over (B, 3, T, H, W); returns the outputs of stages 1, 2, 3 and of 4 + final conv."""

    def __init__(self, spec: Scale, blocks: str):
        super().__init__()
        timm_blocks = blocks == "timm"
        # The authors' stem and final convolutions are plain (bias, no BN, no activation).
        self.stem = ConvNormAct3d(3, spec.stem, 3, stride=2, norm=timm_blocks, act=timm_blocks)
        c, e = spec.stages, spec.expansion
        mlp = ENCODER_MLP[blocks]
        self.stages = nn.Sequential(
            nn.Sequential(InvertedResidual3d(spec.stem, c[0], 1, e, blocks)),
            nn.Sequential(InvertedResidual3d(c[0], c[1], 2, e, blocks),
                          InvertedResidual3d(c[1], c[1], 1, e, blocks),
                          InvertedResidual3d(c[1], c[1], 1, e, blocks)),
            *[nn.Sequential(InvertedResidual3d(c[i + 1], c[i + 2], 2, e, blocks),
                            MobileViTBlock3d(c[i + 2], spec.dims[i], DEPTHS[i], mlp[i], blocks))
              for i in range(3)])
        self.final_conv = ConvNormAct3d(c[4], spec.final, 1, norm=timm_blocks, act=timm_blocks)
        self.channels = [c[1], c[2], c[3], spec.final]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stages[0](self.stem(x))
        feats = []
        for stage in self.stages[1:]:
            x = stage(x)
            feats.append(x)
        feats[-1] = self.final_conv(feats[-1])
        return feats


class Decoder3d(nn.Module):
    """Three MobileViT stages from the deepest features up to stride 4, then the 3x3x3 head."""

    def __init__(self, spec: Scale, blocks: str, dropout: float = 0.0):
        super().__init__()
        ch = [spec.stages[1], spec.stages[2], spec.stages[3], spec.final]  # encoder outputs, finest first
        self.stages = nn.ModuleList(
            nn.Sequential(MobileViTBlock3d(ch[3 - i], spec.dims[2 - i], DEPTHS[2 - i], DECODER_MLP, blocks),
                          ConvNormAct3d(ch[3 - i], ch[2 - i], 1))
            for i in range(3))
        self.skips = nn.ModuleList(ConvNormAct3d(ch[2 - i], ch[2 - i], 3) for i in range(3))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = conv3d(ch[0], 1, 3, bias=True)  # 3x3x3

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for stage, skip, f in zip(self.stages, self.skips, reversed(feats[:-1])):
            x = upsample2x(stage(x)) + skip(f)
        return self.head(self.dropout(x))  # B x 1 x T x H/4 x W/4


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """The authors' trilinear ``scale_factor=(1, 2, 2)``, ``align_corners=True``: time is left
    as it is, so it is bilinear on the time steps folded into the channels (a faster kernel)."""
    b, c, t, h, w = x.shape
    y = F.interpolate(x.reshape(b, c * t, h, w), scale_factor=2, mode="bilinear", align_corners=True)
    return y.reshape(b, c, t, *y.shape[-2:])


def _init_decoder(decoder: nn.Module) -> None:
    """The authors' decoder initialisation: Xavier-normal 3D kernels (every temporal tap),
    Kaiming-normal (fan-out) linear layers, BN 1/0, and pre-norms at 0 so that each
    transformer layer starts as the identity plus a constant."""
    for name, m in decoder.named_modules():
        if isinstance(m, nn.Conv3d):
            nn.init.xavier_normal_(m.weight)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_out")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and not name.endswith(".norm"):
            # timm's blocks also have a LayerNorm after the transformer (``.norm``), which the
            # authors' lack: it keeps its identity initialisation rather than silencing the path.
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)


class OAST3D(nn.Module):
    """The authors' 3D MobileViT segmentation network (``--arch oast3d``).

    ``forward(image, flow)`` takes frames and flow images in [0, 1] (``B x 3 x H x W``, any H,
    W: padded to a multiple of 64 by replication, logits cropped) and returns ``{"logits":
    B x 1 x H x W, "features": B x C x H'/32 x W'/32, "feature_map": B x 1 x H x W}``:
    ``features`` are the deepest encoder features averaged over the two time steps (for the
    feature discriminators), ``feature_map`` their channel mean at the input size, which is
    what the authors' network returns beside its logits. The frame is normalised with
    ``mean``/``std``, the flow image with ``flow_mean``/``flow_std`` (0 and 1 per the authors:
    flow unnormalised). ``blocks`` picks the block internals (see :mod:`models.oast3d_layers`).
    """

    def __init__(self, model_scale: str = "xxs", blocks: str = "timm",
                 mean: tuple = (0.0, 0.0, 0.0), std: tuple = (1.0, 1.0, 1.0),
                 flow_mean: tuple = (0.0, 0.0, 0.0), flow_std: tuple = (1.0, 1.0, 1.0), dropout: float = 0.0):
        super().__init__()
        spec = scale_spec(model_scale)
        self.model_scale, self.blocks = model_scale, check_blocks(blocks)
        self.encoder = Encoder3d(spec, blocks)
        self.decoder = Decoder3d(spec, blocks, dropout)
        for m in self.encoder.modules():
            if isinstance(m, nn.Conv3d):
                centre_init_(m)
        _init_decoder(self.decoder)
        self.stride = STRIDE  # inputs are padded to a multiple of this
        self.feature_channels, self.feature_stride = spec.final, 32
        for name, v in (("mean", mean), ("std", std), ("flow_mean", flow_mean), ("flow_std", flow_std)):
            self.register_buffer(name, torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.shape != flow.shape or image.dim() != 4:
            raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} must both be B x 3 x H x W")
        h, w = image.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        x = torch.cat([(image - self.mean) / self.std, (flow - self.flow_mean) / self.flow_std], 1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = torch.stack(x.chunk(2, 1), 2)  # B x 3 x T=2 (frame, flow) x H x W
        feats = self.encoder(x)  # B x C x 2 x h x w each
        logits = self.decoder(feats)[:, :, 0]  # the frame's time step
        size = (h + ph, w + pw)
        # The authors upsample the (B, 1, T, h, w) logits trilinearly to (T, H, W) and keep t=0;
        # with T unchanged that is the bilinear upsampling of t=0.
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
        deepest = feats[-1].mean(2)
        # Channel mean before upsampling: equal to the authors' order (interpolation is linear).
        fmap = F.interpolate(deepest.mean(1, keepdim=True), size=size, mode="bilinear", align_corners=True)
        return {"logits": logits[..., :h, :w], "features": deepest, "feature_map": fmap[..., :h, :w]}

    def to(self, *args, **kwargs) -> "OAST3D":
        """``nn.Module.to``, except that ``memory_format=torch.channels_last`` is ignored.

        That 4D layout cannot hold Conv3d kernels (PyTorch refuses), and the folded 2D
        convolutions build their kernels on every call, so the request is dropped rather
        than failing the video engine's default ``--memory_format channels_last``.
        """
        if kwargs.get("memory_format") is torch.channels_last:
            kwargs = {k: v for k, v in kwargs.items() if k != "memory_format"}
            if not args and not kwargs:
                return self
        return super().to(*args, **kwargs)

    def load_backbone_weights(self, path: str | Path) -> None:
        """Initialise the encoder from a 2D MobileViT ImageNet file by inflation (centre slice).

        ``blocks="timm"``: timm's ``mobilevit_<scale>`` state dict; ``blocks="authors"``: the
        authors' backbone file (their MobileViT's keys, ``{"state_dict": ...}``,
        ``module.`` prefixes). Every tensor of the file but the classifier must be used, and
        every encoder tensor must be given: otherwise an error names the file and the keys.
        """
        from models.authors_keys import backbone_format, map_authors_backbone
        from utils.weights import load_state_dict_file

        src = load_state_dict_file(path)
        fmt = backbone_format(src)
        if fmt != self.blocks:
            raise ValueError(f"{path} holds {describe_format(fmt)} weights, but this oast3d network has "
                             f"{self.blocks!r} blocks, which need {describe_format(self.blocks)} weights")
        if fmt == "authors":
            src, ignored = map_authors_backbone(src, path)
        else:
            ignored = [k for k in src if k.startswith("head.")]
            src = {k: v for k, v in src.items() if k not in ignored}
        inflate_into(self.encoder, src, path)
        _log.info("inflated %d tensors of %s into the oast3d %s encoder (ignored: %s)",
                  len(src), path, self.model_scale, ignored or "none")


def pretrained_blocks(path: str | Path) -> str:
    """``"timm"`` or ``"authors"``: the blocks a 2D MobileViT ImageNet file is for (by its keys)."""
    from models.authors_keys import backbone_format
    from utils.weights import load_state_dict_file

    fmt = backbone_format(load_state_dict_file(path))
    if fmt not in ("timm", "authors"):
        raise ValueError(f"{path} holds {describe_format(fmt)} weights; --arch oast3d takes timm's "
                         f"mobilevit_<scale> file or the authors' MobileViT backbone file "
                         f"(Apple ml-cvnets files have other layers, which the authors' network cannot use)")
    return fmt


def describe_format(fmt: str | None) -> str:
    """Words for a :func:`models.authors_keys.backbone_format` result, for error messages."""
    return {"timm": "timm's mobilevit_<scale>", "authors": "the authors' MobileViT backbone",
            "cvnets": "Apple ml-cvnets MobileViT"}.get(fmt or "", "unrecognised")


def inflate_into(module: nn.Module, src: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load 2D tensors ``src`` (already under ``module``'s keys) into ``module``, strictly.

    A 4D kernel for a 5D one goes into the centre temporal slice (zeros elsewhere); every
    other tensor must have the target's shape. Unused, missing (BatchNorm batch counters
    excepted: they only count) and mismatched keys raise, naming ``path`` and the keys.
    """
    own = module.state_dict()
    unexpected = [k for k in src if k not in own]
    missing = [k for k in own if k not in src and not k.endswith("num_batches_tracked")]
    out, bad = {}, []
    for k, v in src.items():
        if k not in own:
            continue
        target = own[k]
        if v.dim() == 4 and target.dim() == 5 and tuple(v.shape) == tuple(target.shape[:2] + target.shape[3:]):
            v = inflate_kernel(v, target.shape[2])
        if tuple(v.shape) != tuple(target.shape):
            bad.append(f"{k} {tuple(src[k].shape)} vs {tuple(target.shape)}")
            continue
        out[k] = v.to(target.dtype)
    if unexpected or missing or bad:
        raise ValueError(
            f"{path} does not fit the oast3d encoder: {len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(bad)} shape mismatches (e.g. {bad[:3]}); "
            f"is it for another --model_scale?")
    module.load_state_dict(out, strict=False)


__all__ = ["OAST3D", "SCALES", "STRIDE", "inflate_into", "describe_format", "pretrained_blocks"]
