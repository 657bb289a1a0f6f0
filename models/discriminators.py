"""Discriminators: feature-level (offline stage) and mask-level (online stage).

Ours (``FeatureDiscriminator``, ``MaskDiscriminator``) and the authors' (``Authors*``, chosen
with ``--feature_disc`` / ``--mask_disc authors``) all return raw logits; train them with
``BCEWithLogitsLoss`` (``models.losses.adversarial_loss``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.GroupNorm(1, cout))  # batch-size-free: discriminators see tiny batches
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class FeatureDiscriminator(nn.Module):
    """Judges whether a feature map comes from a labeled (real) or unlabeled (fake) frame."""

    def __init__(self, in_ch: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(1, width), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)  # B x 1 x h x w logits


class MaskDiscriminator(nn.Module):
    """Judges whether a soft mask is a teacher pseudo-mask (real) or a student mask (fake).

    It is conditioned on the frame so that it judges the mask *for this image*; inputs are
    resized to ``size`` first, which keeps the cost independent of the video resolution.
    """

    def __init__(self, width: int = 32, size: tuple[int, int] = (128, 224), with_image: bool = True):
        super().__init__()
        self.size, self.with_image = size, with_image
        cin = 4 if with_image else 1
        self.net = nn.Sequential(*_down(cin, width, norm=False), *_down(width, 2 * width),
                                 *_down(2 * width, 4 * width), nn.Conv2d(4 * width, 1, 3, padding=1))

    def forward(self, mask: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(mask, size=self.size, mode="bilinear", align_corners=False)
        if self.with_image:
            if image is None:
                raise ValueError("this MaskDiscriminator is conditioned on the image; pass image=")
            x = torch.cat([F.interpolate(image, size=self.size, mode="bilinear", align_corners=False), x], 1)
        return self.net(x)  # B x 1 x h/8 x w/8 logits


# --- The authors' discriminators (selectable beside ours) ------------------------------------------
# Written from the behaviour of the published OAST code (models/discriminator.py there), with
# its double sigmoid removed: these return logits, like ours, for ``adversarial_loss``.


class _ConvBNReLU(nn.Module):
    """3x3 convolution, BatchNorm, ReLU at full resolution (stride 1).

    ``split`` normalises the first ``split`` samples and the rest as two BatchNorm batches:
    one forward then behaves like the authors' two calls (real, then fake), each batch
    normalised by its own statistics, while DDP still sees a single forward.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)  # BN's shift replaces the bias
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, split: int | None = None) -> torch.Tensor:
        x = self.conv(x)
        if split is None or split <= 0 or split >= x.shape[0]:
            x = self.bn(x)
        else:
            x = torch.cat([self.bn(x[:split]), self.bn(x[split:])])
        return F.relu(x, inplace=True)


def _authors_trunk(width: int, depth: int) -> nn.ModuleList:
    """One input channel, then ``width``, ``2 width``, ... (16-32-64-128 in the authors' code)."""
    chans = [1] + [width * 2 ** i for i in range(depth)]
    return nn.ModuleList(_ConvBNReLU(a, b) for a, b in zip(chans[:-1], chans[1:]))


class AuthorsFeatureDiscriminator(nn.Module):
    """The authors' offline discriminator: one image-sized map of the deepest features, one logit.

    ``feat`` is what the segmentation network returns as ``features``:
      * ``B x C x h x w`` deepest features at ``stride`` (our two-stream network), or
      * ``B x C x T x h x w`` (a 3D network whose time axis holds frame and flow), or
      * ``B x H x W`` or ``B x 1 x H x W`` with ``full_size=True``: a map already reduced and
        upsampled, as the authors' network returns it.
    Channels (and time) are averaged to one map, which is upsampled bilinearly
    (``align_corners=True``) by ``stride`` to the input size. Averaging first and upsampling
    second equals the authors' order (upsample, then average) because interpolation is
    linear, and costs ``C`` times less. Four 3x3 convolution + BatchNorm + ReLU layers at
    full resolution, a 1x1 convolution and a global average give ``B x 1 x 1 x 1`` logits.
    """

    splits_batch = True  # see real_fake_logits

    def __init__(self, stride: int = 32, width: int = 16, depth: int = 4, full_size: bool = False):
        super().__init__()
        if stride < 1 or width < 1 or depth < 1:
            raise ValueError(f"stride, width and depth must be >= 1, got {stride}, {width}, {depth}")
        self.stride, self.full_size = stride, full_size
        self.trunk = _authors_trunk(width, depth)
        self.head = nn.Conv2d(width * 2 ** (depth - 1), 1, 1)

    def reduce(self, feat: torch.Tensor) -> torch.Tensor:
        """Features -> ``B x 1 x H x W`` map at the network's input size."""
        if feat.dim() == 3:
            return feat.unsqueeze(1)
        if feat.dim() == 5:  # B x C x T x h x w
            feat = feat.mean(2)
        if feat.dim() != 4:
            raise ValueError(f"features must be B x C x h x w, B x C x T x h x w or B x H x W, got "
                             f"{tuple(feat.shape)}")
        x = feat.mean(1, keepdim=True)  # B x 1 x h x w
        if self.full_size:
            return x
        h, w = x.shape[-2:]
        return F.interpolate(x, size=(h * self.stride, w * self.stride), mode="bilinear", align_corners=True)

    def forward(self, feat: torch.Tensor, split: int | None = None) -> torch.Tensor:
        x = self.reduce(feat)  # B x 1 x H x W
        for layer in self.trunk:
            x = layer(x, split)  # B x width*2^i x H x W
        return self.head(x).mean(dim=(2, 3), keepdim=True)  # B x 1 x 1 x 1 logits


class AuthorsMaskDiscriminator(nn.Module):
    """The authors' online discriminator: per-pixel real/fake logits for a mask, image ignored.

    Same call as ``MaskDiscriminator`` (``mask`` = foreground probabilities, ``image`` accepted
    and not used: the authors' network sees the mask alone). With ``on_logits`` (the authors'
    choice) the probabilities are mapped back to logits first (``torch.logit``, clamped at
    ``eps``), so the network sees what theirs sees (the student's raw logits, the teacher's
    averaged logits) up to ``|logit| <= log((1 - eps) / eps)`` (13.8 for 1e-6). Full
    resolution unless ``size`` is given. Returns ``B x 1 x H x W`` logits.
    """

    splits_batch = True  # see real_fake_logits

    def __init__(self, width: int = 16, depth: int = 4, on_logits: bool = True,
                 size: tuple[int, int] | None = None, eps: float = 1e-6):
        super().__init__()
        if width < 1 or depth < 1 or not 0 < eps < 0.5:
            raise ValueError(f"need width, depth >= 1 and 0 < eps < 0.5, got {width}, {depth}, {eps}")
        self.on_logits, self.size, self.eps = on_logits, (tuple(size) if size else None), eps
        self.trunk = _authors_trunk(width, depth)
        self.head = nn.Conv2d(width * 2 ** (depth - 1), 1, 1)

    def forward(self, mask: torch.Tensor, image: torch.Tensor | None = None,
                split: int | None = None) -> torch.Tensor:
        if mask.dim() == 3:
            mask = mask.unsqueeze(1)
        if mask.dim() != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must be B x 1 x H x W or B x H x W, got {tuple(mask.shape)}")
        x = mask.float()
        if self.on_logits:
            x = torch.logit(x, eps=self.eps)
        if self.size is not None:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        for layer in self.trunk:
            x = layer(x, split)  # B x width*2^i x H x W
        return self.head(x)  # B x 1 x H x W logits


def build_authors_feature_discriminator(model: nn.Module | None = None, stride: int | None = None,
                                        width: int = 16, full_size: bool = False) -> AuthorsFeatureDiscriminator:
    """The authors' feature discriminator.

    ``stride`` is that of ``model``'s ``features``: ``model.feature_stride`` if it has one,
    else 32 (the deepest MobileViT level, in our two-stream network and in ``oast3d``, whose
    ``stride`` attribute is its padding multiple, 64, not the features' stride).
    """
    if stride is None:
        stride = int(getattr(model, "feature_stride", 32))
    return AuthorsFeatureDiscriminator(stride, width, full_size=full_size)


def build_authors_mask_discriminator(width: int = 16, size: tuple[int, int] | None = None,
                                     on_logits: bool = True) -> AuthorsMaskDiscriminator:
    """The authors' mask discriminator (full resolution, on logits, not conditioned on the image)."""
    return AuthorsMaskDiscriminator(width, size=size, on_logits=on_logits)


def real_fake_logits(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     image: torch.Tensor | None = None) -> torch.Tensor:
    """Discriminator logits for ``real`` then ``fake`` samples, in one forward.

    ``image`` (one per real sample, reused for the fakes) goes to image-conditioned mask
    discriminators. A discriminator with ``splits_batch`` (BatchNorm: the authors') gets
    ``split=len(real)``, so real and fake are normalised as the separate batches of the
    authors' two calls. For ours this is exactly ``disc(cat([real, fake]), cat([image, image]))``.
    """
    bare = getattr(disc, "module", disc)  # DDP keeps the network in .module
    kw = {"split": real.shape[0]} if getattr(bare, "splits_batch", False) else {}
    x = torch.cat([real, fake])
    if image is None:
        return disc(x, **kw)
    return disc(x, torch.cat([image, image]), **kw)
