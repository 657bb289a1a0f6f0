"""The adversarial update shared by both stages.

Offline, a feature discriminator tells labeled-frame features (real) from unlabeled-frame
features (fake); online, a mask discriminator tells the teacher's masks (real) from the
student's (fake). In both, the network is pushed to make its fakes look real, and the
discriminator then learns from detached real and fake samples.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.loop import optimizer_step, unwrap
from models.discriminators import real_fake_logits
from models.losses import adversarial_loss
from utils.misc import autocast


def generator_loss(disc: nn.Module, fake: torch.Tensor, image: torch.Tensor | None, device: torch.device,
                   amp: bool = False, amp_dtype: str = "bf16") -> torch.Tensor:
    """The network's adversarial loss: ``fake`` judged as real by ``disc`` (mask
    discriminators also see ``image``). The discriminator's weights are frozen for this pass,
    so only the network learns from it, and it goes through the bare module (no DDP forward
    without its own backward)."""
    d = unwrap(disc)
    d.requires_grad_(False)
    try:
        with autocast(device, amp, amp_dtype):
            logits = d(fake) if image is None else d(fake, image)
            return adversarial_loss(logits, real=True)
    finally:
        d.requires_grad_(True)


def discriminator_step(disc: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                       real: torch.Tensor, fake: torch.Tensor, image: torch.Tensor | None, weight: float,
                       clip_grad: float | None, device: torch.device, amp: bool = False,
                       amp_dtype: str = "bf16") -> torch.Tensor:
    """One discriminator update on detached ``real`` and ``fake`` samples (one forward for
    both); the loss is the mean of the two halves' BCE, scaled by ``weight``. Returns it unscaled."""
    with autocast(device, amp, amp_dtype):
        logits = real_fake_logits(disc, real.detach(), fake.detach(), image)
    b = real.shape[0]
    loss = 0.5 * (adversarial_loss(logits[:b], True) + adversarial_loss(logits[b:], False))
    optimizer_step(weight * loss, optimizer, scaler, disc.parameters(), clip_grad)
    return loss.detach()
