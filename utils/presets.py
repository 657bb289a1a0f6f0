"""Named option presets: the authors' published settings, selectable beside ours.

``--preset authors`` sets every option below to the value of the authors' code
(sutiankang/OAST: ``unlabeled_train.py``, ``online_finetuning.py``, ``models/discriminator.py``,
``datasets/dataset.py``), with their bugs fixed (docs/authors_network.md, "Differences from the authors'
code"). ``--preset ours`` (the default) changes nothing.

:func:`utils.config.parse_with_config` applies them; precedence, lowest first::

    parser defaults  <  --preset  <  --config FILE.yaml  <  command line

A config file may name the preset itself (``preset: authors``) when the command line does
not. The preset's name is stored in ``args.preset``, so ``args.yaml`` records it.
:func:`engine.variants.add_variant_args` adds ``--preset`` (which knows its stage's table) and
the options that select the authors' components.

Stage 1 of the authors' offline training is the ``offline`` preset; their stage 2 is the
same with ``--epochs 25 --labeled_datasets DAVIS-2016 --finetune <stage 1 checkpoint>``.

Not emulated, on purpose: their flip of flow images as plain images (ours mirrors the
motion too); picking the epoch or checkpoint with test-set ground truth (online: the
last epoch; offline: ``--val_datasets``); tuning only on the annotated test frames (found
by listing the label folders, which the online stage never opens); their training
augmentation (crop, aspect-changing resize, PIL enhancement; ours is ``TrainAugment``).
"""
from __future__ import annotations

import argparse
from typing import Any

STAGES = ("online", "offline")

# Values are argparse dests of the stage's parser (unlabeled_train.py / online_finetuning.py).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "online": {
        "ours": {},
        "authors": {
            "test_datasets": ["DAVIS-2016", "FBMS"],
            "size": [384, 640],
            # One model tuned on the whole test set, 10 passes, frames in a fixed order.
            "mode": "transductive",
            "transductive_order": "fixed",
            "epochs": 10,
            "batch_size": 2,
            "lr": 1e-5,
            "lr_d": 1e-5,
            "weight_decay": 1e-2,
            "clip_grad": None,
            # Teacher: EMA 0.9996 of the student; both in eval mode (ours always is).
            "ema": 0.9996,
            "lambda_adv": 1e-4,
            "d_loss_weight": 1e-4,  # their discriminator loss is 0.5 * lambda_adv * (real + fake)
            "mask_disc": "authors",
            # Teacher target: identity, flip, PIL colour enhancement, one rescale from
            # {0.5, 0.75, 1.25, 1.5}; logits averaged, then the sigmoid; no sharpening.
            "tta": ["identity", "flip", "jitter_pil", "scale_set"],
            "tta_average": "logits",
            "sharpen": 1.0,
            # Their pseudo-mask is built anew at every step, soft, on every pixel; the teacher
            # writes the masks.
            "targets": "per_step",
            "temporal": [],
            "predict_with": "teacher",
            "write_temporal": [],  # their masks are the network's own, frame by frame
            "iou_smooth": 0.0,  # their IoU loss has no smoothing term
            "flip": False,  # their test.py writes masks without flip TTA
        },
    },
    "offline": {
        "ours": {},
        "authors": {
            "arch": "oast3d",
            "blocks": "authors",  # their MobileViT's block internals, not timm's
            "model_scale": "s",
            # GradScaler + fp16 autocast in every step of their offline training.
            "amp": True,
            "amp_dtype": "fp16",
            "iou_smooth": 0.0,  # their IoU loss has no smoothing term
            "size": [384, 640],
            "epochs": 30,
            "batch_size": 2,
            "lr": 1e-4,
            "lr_d": 1e-4,
            "weight_decay": 1e-2,
            "lr_schedule": "step",
            "lr_step": 10,
            "lr_gamma": 0.1,
            "encoder_lr_mult": 1.0,
            "freeze_encoder_bn": False,
            "clip_grad": None,
            "labeled_datasets": ["YouTubeVOS-2018", "DAVIS-2016"],
            "labeled_split": "train",
            "unlabeled_datasets": ["Youtube-objects"],
            "unlabeled_split": "val",
            "youtube_stride": 10,
            "lambda_adv": 1e-4,
            "start_adv": 0,  # their 1-based start_adv=1 with start_epoch=1: from the first epoch
            "d_loss_weight": 1e-4,
            "feature_disc": "authors",
            "max_rotation": 10.0,
            "sync_bn": True,  # their README's --sync-bn (ignored with a warning on one process)
        },
    },
}


class PresetOption(argparse.Action):
    """``--preset NAME``: stores the name, and carries the stage whose table it names, so that
    :func:`utils.config.parse_with_config` finds the values without being told the stage."""

    def __init__(self, option_strings: list[str], dest: str, stage: str, **kwargs: Any):
        check_stage(stage)
        super().__init__(option_strings, dest, **kwargs)
        self.stage = stage

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)


def preset_option(parser: argparse.ArgumentParser) -> PresetOption | None:
    """The parser's ``--preset`` option (added by :func:`engine.variants.add_variant_args`), or None."""
    return next((a for a in parser._actions if isinstance(a, PresetOption)), None)


def check_preset(parser: argparse.ArgumentParser, values: dict[str, Any], what: str) -> None:
    """Fail, naming ``what``, on a dest the parser lacks or a value outside an option's choices
    (argparse checks choices on the command line only, never on defaults)."""
    actions = {a.dest: a for a in parser._actions}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise ValueError(f"{what}: this parser has no options {unknown} (wire engine.variants.add_variant_args?)")
    for dest, value in values.items():
        choices = actions[dest].choices
        if choices is None or value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in items if v not in choices]
        if bad:
            raise ValueError(f"{what}: {dest}={value!r} has {bad} outside the option's choices {list(choices)}")


def check_stage(stage: str) -> None:
    """Fail unless ``stage`` names a table of :data:`PRESETS`."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
