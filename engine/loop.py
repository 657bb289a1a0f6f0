"""The training loop shared by the offline stages and online self-tuning.

``run_epoch`` iterates a loader and calls a *step* (any callable taking a batch and
returning a dict of scalar tensors); it owns progress bars, running means, the
non-finite check across ranks and TensorBoard scalars. Each stage only writes its step.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from utils.distributed import DistInfo, all_reduce_sum
from utils.log import TensorBoard

Step = Callable[[dict], dict[str, torch.Tensor]]


class Meters:
    """Running sums of scalars, reduced across ranks on request."""

    def __init__(self):
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0

    def update(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] += v
        self.count += 1

    def means(self, reduce: bool = True) -> dict[str, float]:
        keys = sorted(self.sums)
        t = torch.tensor([self.sums[k] for k in keys] + [self.count], dtype=torch.float64)
        if reduce:
            all_reduce_sum(t)
        n = max(t[-1].item(), 1)
        return {k: t[i].item() / n for i, k in enumerate(keys)}


def check_finite(loss: torch.Tensor, info: DistInfo, where: str) -> None:
    """Stop every rank (not only the one that saw it) when a loss is NaN/inf."""
    bad = torch.tensor([0.0 if torch.isfinite(loss).all() else 1.0], device=loss.device)
    if info.distributed:
        all_reduce_sum(bad)
    if bad.item() > 0:
        raise FloatingPointError(f"non-finite loss at {where}; stopping all ranks "
                                 f"(try a lower --lr, --clip_grad, or --amp_dtype bf16)")


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   params: Iterable[nn.Parameter] | None = None, clip_grad: float | None = None) -> None:
    """zero_grad, backward (scaled), unscale, clip, step, update: in that order."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(list(params) if params is not None else
                                       [p for g in optimizer.param_groups for p in g["params"]], clip_grad)
    scaler.step(optimizer)
    scaler.update()


def run_epoch(loader: Iterable, step: Step, info: DistInfo, epoch: int, tb: TensorBoard | None = None,
              global_step: int = 0, desc: str = "train", log_every: int = 20,
              total: int | None = None) -> tuple[dict[str, float], int]:
    """One pass over ``loader``; returns the rank-averaged means of the step's scalars."""
    meters = Meters()
    bar = tqdm(loader, desc=f"{desc} {epoch}", disable=not info.is_main, dynamic_ncols=True, leave=False,
               total=total)
    for batch in bar:
        out = step(batch)
        check_finite(out["loss"], info, f"{desc} epoch {epoch} step {global_step}")
        values = {k: float(v) for k, v in out.items()}
        meters.update(values)
        global_step += 1
        if info.is_main:
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k in ("loss", "seg", "iou", "adv", "d")})
            if tb is not None and global_step % log_every == 0:
                tb.scalars({f"{desc}/{k}": v for k, v in values.items()}, global_step)
    return meters.means(reduce=info.distributed), global_step


def build_optimizer(params: Iterable[nn.Parameter] | list[dict], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, the optimizer of every stage; ``params`` may be parameter groups (dicts)."""
    params = list(params)
    if params and isinstance(params[0], dict):
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in params]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, weight_decay=weight_decay)


ENCODER_PREFIXES = ("rgb_encoder.", "flow_encoder.", "encoder.")  # two_stream's two encoders; oast3d's one


def param_groups(net: nn.Module, lr: float, encoder_lr_mult: float = 1.0,
                 weight_decay: float | None = None) -> list[dict]:
    """Optimizer groups: encoders at ``lr * encoder_lr_mult``, the rest at ``lr``; with
    ``weight_decay`` given, each splits further into decayed weights and the norms' weights and
    biases (every 1-d parameter), which get none: decay pulls a norm's scale towards 0, which
    only shrinks activations instead of regularising. Empty groups are left out."""
    groups = []
    for is_enc, mult in ((True, encoder_lr_mult), (False, 1.0)):
        named = [p for n, p in net.named_parameters() if n.startswith(ENCODER_PREFIXES) == is_enc]
        if weight_decay is None:
            groups.append({"params": named, "lr": lr * mult})
            continue
        groups.append({"params": [p for p in named if p.ndim > 1], "lr": lr * mult, "weight_decay": weight_decay})
        groups.append({"params": [p for p in named if p.ndim <= 1], "lr": lr * mult, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """lr factor of step ``k``: linear from ``1 / warmup_steps`` to 1 over the warm-up, then a
    cosine from 1 to 0 at ``total_steps`` (what ``CosineAnnealingLR`` gives without warm-up)."""
    def factor(k: int) -> float:
        if k < warmup_steps:
            return (k + 1) / warmup_steps
        t = min(k, total_steps) / max(total_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * t))
    return factor


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm of ``module`` in eval mode: running statistics stay as loaded."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def grad_scaler(device: torch.device, amp: bool, amp_dtype: str) -> torch.amp.GradScaler:
    """Loss scaling is needed for fp16 only (bf16 has float32's range)."""
    return torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == "fp16" and device.type == "cuda")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model
