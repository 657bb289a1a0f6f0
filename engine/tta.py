"""Test-time views for the online teacher: identity, flip, photometric jitter, rescale.

``TTA_VIEWS`` are ours (the default); ``AUTHORS_TTA_VIEWS`` add the authors' colour view
(``jitter_pil``) and rescale view (``scale_set``). Every flip, ours or in the authors' view
set, mirrors the flow vectors with the pixels (their code mirrored the flow image only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.views import hflip_logits, rescaled_size

TTA_VIEWS = ("identity", "flip", "jitter", "scale")  # the default --tta: keep as is
# The authors' two other views: PIL-style colour enhancement, and one rescale
# factor drawn per step from AUTHORS_SCALES, sizes rounded to multiples of 64.
AUTHORS_TTA_VIEWS = ("jitter_pil", "scale_set")
TTA_CHOICES = TTA_VIEWS + AUTHORS_TTA_VIEWS  # what --tta accepts
AUTHORS_SCALES = (0.5, 0.75, 1.25, 1.5)
# PIL.ImageEnhance factor grids of the authors' colour_enhance (k / 10 for integer k).
PIL_JITTER_GRID = {"brightness": (5, 15), "contrast": (5, 15), "color": (0, 20), "sharpness": (0, 30)}


def color_jitter(image: torch.Tensor, gen: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Random brightness, contrast and saturation per sample (image only; flow is geometry)."""
    b = image.shape[0]

    def factor() -> torch.Tensor:
        return (1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * strength).to(image)

    x = image * factor()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor() + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * factor() + grey
    return x.clamp(0, 1)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, PIL's RGB -> L conversion


def pil_enhance(image: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, color: torch.Tensor,
                sharpness: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageEnhance`` Brightness, Contrast, Color, Sharpness in that order, on ``B x 3 x H x W``.

    Each step blends the image with a degenerate version (black; the mean grey level; the
    grey image; the 3x3 SMOOTH-filtered image, borders kept) by its per-sample factor and
    clips to [0, 1], as PIL does on 8-bit images (without PIL's rounding to 8 bits).
    """
    x = image.float()
    with torch.autocast(x.device.type, enabled=False):  # a float32 filter, AMP or not
        x = _pil_enhance_f32(x, brightness, contrast, color, sharpness)
    return x.to(image.dtype)


def _pil_enhance_f32(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, color: torch.Tensor,
                     sharpness: torch.Tensor) -> torch.Tensor:
    def f(v: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)

    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x * f(brightness)).clamp(0, 1)
    grey_mean = (x * luma).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    x = (grey_mean + (x - grey_mean) * f(contrast)).clamp(0, 1)
    grey = (x * luma).sum(1, keepdim=True)
    x = (grey + (x - grey) * f(color)).clamp(0, 1)
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(3, 1, 3, 3)
    smooth = x.clone()
    if x.shape[-2] > 2 and x.shape[-1] > 2:  # PIL leaves the one-pixel border unfiltered
        smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=3)
    return (smooth + (x - smooth) * f(sharpness)).clamp(0, 1)


def pil_jitter(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The authors' colour view: ``pil_enhance`` with per-sample factors drawn from
    ``PIL_JITTER_GRID`` (brightness and contrast 0.5..1.5, colour 0..2, sharpness 0..3, steps
    of 0.1). Image only: flow is geometry."""
    b = image.shape[0]
    factors = {k: torch.randint(lo, hi + 1, (b,), generator=gen).float() / 10
               for k, (lo, hi) in PIL_JITTER_GRID.items()}
    return pil_enhance(image, **factors)


def authors_scale_size(hw: tuple[int, int], gen: torch.Generator) -> tuple[int, int]:
    """One factor drawn from ``AUTHORS_SCALES``; the size rounded to multiples of 64 (theirs)."""
    r = AUTHORS_SCALES[int(torch.randint(len(AUTHORS_SCALES), (1,), generator=gen))]
    return rescaled_size(hw, r, multiple=64)


@torch.no_grad()
def tta_probs(model: torch.nn.Module, image: torch.Tensor, flow: torch.Tensor, views: tuple[str, ...],
              gen: torch.Generator, scale_range: tuple[float, float] = (0.5, 1.5),
              average: str = "probs") -> torch.Tensor:
    """Foreground probability averaged over the views, each mapped back to the frame's grid.

    ``average="probs"`` averages the views' probabilities; ``"logits"`` averages their
    logits and then applies the sigmoid (the authors' choice), which lets one confident
    view outvote several unsure ones.
    """
    if average not in ("probs", "logits"):
        raise ValueError(f"average must be 'probs' or 'logits', got {average!r}")
    outs = []
    hw = tuple(image.shape[-2:])
    for view in views:
        if view == "identity":
            logits = model(image, flow)["logits"]
        elif view == "flip":
            logits = hflip_logits(model, image, flow)
        elif view == "jitter":
            logits = model(color_jitter(image, gen), flow)["logits"]
        elif view == "scale":
            r = float(torch.empty(1).uniform_(*scale_range, generator=gen))
            size = rescaled_size(hw, r)
            small = model(F.interpolate(image, size=size, mode="bilinear", align_corners=False),
                          F.interpolate(flow, size=size, mode="bilinear", align_corners=False))["logits"]
            logits = F.interpolate(small, size=hw, mode="bilinear", align_corners=False)
        elif view == "jitter_pil":
            logits = model(pil_jitter(image, gen), flow)["logits"]
        elif view == "scale_set":
            size = authors_scale_size(hw, gen)
            # align_corners=True both ways, as the authors resize
            small = model(F.interpolate(image, size=size, mode="bilinear", align_corners=True),
                          F.interpolate(flow, size=size, mode="bilinear", align_corners=True))["logits"]
            logits = F.interpolate(small, size=hw, mode="bilinear", align_corners=True)
        else:
            raise ValueError(f"unknown TTA view {view!r}; choose from {TTA_CHOICES}")
        outs.append(logits.float() if average == "logits" else logits.float().sigmoid())
    mean = torch.stack(outs).mean(0)
    return mean.sigmoid() if average == "logits" else mean


def sharpen(prob: torch.Tensor, temperature: float) -> torch.Tensor:
    """Temperature sharpening of a soft mask (``temperature`` 1 leaves it unchanged)."""
    if temperature == 1:
        return prob
    p = prob.clamp(1e-6, 1 - 1e-6) ** (1 / temperature)
    q = (1 - prob).clamp(1e-6, 1 - 1e-6) ** (1 / temperature)
    return p / (p + q)
