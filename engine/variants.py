"""``--preset`` and the options that swap in the authors' components, for the two stages' parsers.

The presets' values live in :data:`utils.presets.PRESETS`; these options are the engine's (and
the loss's), so they are added here rather than in ``utils``.
"""
from __future__ import annotations

import argparse

from models.losses import add_loss_args
from utils.presets import PRESETS, PresetOption, check_stage


def add_variant_args(p: argparse.ArgumentParser, stage: str) -> None:
    """``--preset`` and the options that swap in the authors' components for ``stage``."""
    check_stage(stage)
    g = p.add_argument_group("presets and the authors' variants")
    g.add_argument("--preset", action=PresetOption, stage=stage, default="ours", choices=sorted(PRESETS[stage]),
                   help="option defaults: ours, or the authors' published settings (bugs fixed); "
                        "--config and the command line still override them")
    g.add_argument("--d_loss_weight", type=float, default=1.0,
                   help="weight of the discriminator's own loss (the authors use lambda_adv)")
    add_loss_args(g)
    if stage == "online":
        g.add_argument("--mask_disc", default="ours", choices=["ours", "authors"],
                       help="ours: patch discriminator on the resized mask and frame; authors: full-resolution "
                            "per-pixel BatchNorm discriminator on the mask's logits, frame not seen")
        g.add_argument("--transductive_order", default="shuffled", choices=["shuffled", "fixed"],
                       help="transductive mode: frames reshuffled every epoch, or in the same order (the authors')")
    else:
        g.add_argument("--feature_disc", default="ours", choices=["ours", "authors"],
                       help="ours: convolutional patch discriminator on the deepest fused features; authors: the "
                            "features' channel mean upsampled to the frame, BatchNorm, one global logit")
