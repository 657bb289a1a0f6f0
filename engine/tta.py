"""Test-time views for the online teacher: identity, flip, photometric jitter, rescale."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.inference import hflip_logits
from utils.flow import hflip_flow_image

TTA_VIEWS = ("identity", "flip", "jitter", "scale")


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


def rescaled_size(hw: tuple[int, int], factor: float, multiple: int = 32) -> tuple[int, int]:
    """``hw * factor`` rounded to the nearest multiple the network takes without padding."""
    return tuple(max(multiple, int(round(s * factor / multiple)) * multiple) for s in hw)


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
        else:
            raise ValueError(f"unknown TTA view {view!r}; choose from {TTA_VIEWS}")
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


def student_view(image: torch.Tensor, flow: torch.Tensor, pseudo: torch.Tensor,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random horizontal flip (image, flow vectors and pseudo-mask) and colour jitter (image)."""
    if torch.rand(1, generator=gen).item() < 0.5:
        image, flow, pseudo = image.flip(-1), hflip_flow_image(flow), pseudo.flip(-1)
    return color_jitter(image, gen), flow, pseudo
