"""Temporal fusion: a video's probability, each frame's averaged with its flow-warped neighbours.

1. **Views**: the network's foreground probability at several input sizes, each resized from
   the original frame (not from an already-resized tensor), with and without a horizontal
   flip, mapped back to the test size and averaged.
2. **Fusion over time**: the neighbours' probabilities (``t +- k``) are warped into frame
   ``t`` with pixel-scale DIS flow computed both ways between the two frames at the test
   size; only pixels that pass a forward-backward consistency check take part.

Used by the online stage's pseudo-labels (:mod:`engine.pseudo_labels`, which adds the
confidence thresholds and the motion veto) and by the masks that ``test.py --temporal`` and
the online stage write (:func:`engine.inference.write_fused_video`). The flows of one video
can be kept between those passes (:class:`FlowCache`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.views import ViewSet, scale_sizes, view_probs


@dataclass(frozen=True)
class TargetConfig:
    """How the teacher's targets are built: the fused probability (views and fusion over time,
    this module) and the labels' thresholds and motion veto (:mod:`engine.pseudo_labels`)."""

    scales: tuple[float, ...] = (1.0,)  # view sizes relative to the test size
    flip: bool = True  # each size also seen mirrored
    temporal: tuple[int, ...] = ()  # neighbour offsets k whose predictions are warped into t (t-k and t+k)
    fb_alpha: float = 0.01  # forward-backward check: |f + b|^2 < alpha (|f|^2 + |b|^2) + beta
    fb_beta: float = 0.5
    lo: float = 0.1  # probability below which a pixel is a background label
    hi: float = 0.9  # and above which it is an object label
    dis_preset: str = "medium"  # DIS preset of the temporal-fusion flow
    motion_veto: float = 0.0  # > 0: drop background labels moving more than this share of the object's motion
    motion_floor: float = 0.3  # ... and more than this many pixels per frame (at the target size)
    motion_max_share: float = 0.2  # a frame where the veto would drop more background labels keeps them all


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid (``1 x H x W x 2``, normalised) of ``x + flow(x)`` for ``grid_sample``."""
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack([gx, gy], -1)[None]


def _sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``x`` (``C x H x W``, frame n) sampled at ``p + flow(p)``: frame n seen from frame t when
    ``flow`` (``2 x H x W``, pixels) is the flow t -> n. Outside the frame: 0."""
    return _sample(x, _grid(flow))


def consistent(fwd: torch.Tensor, bwd: torch.Tensor, alpha: float, beta: float,
               grid: torch.Tensor | None = None) -> torch.Tensor:
    """``H x W`` bool: where the flow t -> n (``fwd``) and back (``bwd``, warped to t) cancel
    out, and the target pixel lies inside frame n (Sundaram et al.'s occlusion test).
    ``grid``: ``fwd``'s sampling grid, when the caller has it already."""
    h, w = fwd.shape[-2:]
    b = _sample(bwd, _grid(fwd) if grid is None else grid)
    err = ((fwd + b) ** 2).sum(0)
    ok = err < alpha * ((fwd ** 2).sum(0) + (b ** 2).sum(0)) + beta
    ys, xs = torch.meshgrid(torch.arange(h, dtype=fwd.dtype), torch.arange(w, dtype=fwd.dtype), indexing="ij")
    x, y = xs + fwd[0], ys + fwd[1]
    return ok & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def pair_flows(frames: Sequence[np.ndarray], offsets: Iterable[int],
               preset: str = "medium") -> dict[tuple[int, int], torch.Tensor]:
    """DIS flow ``2 x H x W`` (pixels) from frame i to frame j for every ``|i - j|`` in ``offsets``,
    both ways; ``frames`` are ``H x W x 3`` uint8 RGB at the size the flow is wanted."""
    from utils.optical_flow import DISFlow  # OpenCV, imported only where flow is computed

    dis = DISFlow(preset)
    out: dict[tuple[int, int], torch.Tensor] = {}
    for k in offsets:
        for i in range(len(frames) - k):
            f, b = dis([frames[i], frames[i + k]], [frames[i + k], frames[i]])
            out[(i, i + k)] = torch.from_numpy(f).permute(2, 0, 1)
            out[(i + k, i)] = torch.from_numpy(b).permute(2, 0, 1)
    return out


def pair_consistency(flows: dict[tuple[int, int], torch.Tensor], alpha: float = 0.01,
                     beta: float = 0.5) -> dict[tuple[int, int], torch.Tensor]:
    """:func:`consistent` for every pair ``(t, n)`` of ``flows`` whose reverse is there too:
    computed once and shared by the temporal fusion and the motion veto."""
    return {(t, n): consistent(f, flows[(n, t)], alpha, beta) for (t, n), f in flows.items() if (n, t) in flows}


class FlowCache:
    """One video's pair flows and their forward-backward checks, kept for the next pass over the
    same frames: the online stage's targets and the masks it writes fuse the same neighbours,
    and the flow does not change with the network. Holds one video at a time, and none whose
    flows would take more than ``max_bytes`` (a long video's are computed again instead)."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self.key: tuple | None = None
        self.offsets: set[int] = set()
        self.flows: dict[tuple[int, int], torch.Tensor] = {}
        self.checks: dict[tuple[int, int], torch.Tensor] = {}
        self.computed = 0  # pair-flow computations, for tests and logs

    def get(self, key: tuple, rgbs: Sequence[np.ndarray], offsets: Iterable[int], cfg: "TargetConfig"
            ) -> tuple[dict[tuple[int, int], torch.Tensor], dict[tuple[int, int], torch.Tensor]]:
        """Flows (both ways) and checks for ``offsets`` between ``rgbs``, the frames named by
        ``key`` at the flow's size; only offsets not already held for the same key are computed."""
        key = (key, tuple(rgbs[0].shape) if len(rgbs) else (), cfg.dis_preset, cfg.fb_alpha, cfg.fb_beta)
        if key != self.key:
            self.key, self.offsets, self.flows, self.checks = key, set(), {}, {}
        missing = sorted(set(offsets) - self.offsets)
        if missing:
            new = pair_flows(rgbs, missing, cfg.dis_preset)  # both ways: every new pair's reverse is new too
            self.computed += 1
            flows, checks = {**self.flows, **new}, {**self.checks, **pair_consistency(new, cfg.fb_alpha, cfg.fb_beta)}
            held = sum(f.numel() * f.element_size() for f in flows.values()) + sum(c.numel() for c in checks.values())
            if held > self.max_bytes:  # too long a video to keep: hand these over, hold nothing
                self.key, self.offsets, self.flows, self.checks = None, set(), {}, {}
                return flows, checks
            self.offsets |= set(missing)
            self.flows, self.checks = flows, checks
        return self.flows, self.checks


def temporal_fuse(probs: torch.Tensor, flows: dict[tuple[int, int], torch.Tensor], offsets: Iterable[int],
                  alpha: float = 0.01, beta: float = 0.5,
                  checks: dict[tuple[int, int], torch.Tensor] | None = None) -> torch.Tensor:
    """Each frame's probability averaged with its neighbours' (``t +- k`` for k in ``offsets``),
    warped into it where the forward-backward check passes; ``probs`` is ``T x 1 x H x W``.
    ``checks``: :func:`pair_consistency` of ``flows``, when the caller has it already."""
    out = torch.empty_like(probs)
    for t in range(len(probs)):
        total, count = probs[t].clone(), torch.ones_like(probs[t])
        for k in offsets:
            for n in (t - k, t + k):
                if (t, n) not in flows:
                    continue
                grid = _grid(flows[(t, n)])  # one grid for the check and the warp
                ok = (checks[(t, n)] if checks is not None
                      else consistent(flows[(t, n)], flows[(n, t)], alpha, beta, grid))[None].to(probs.dtype)
                total += ok * _sample(probs[n], grid)
                count += ok
        out[t] = total / count
    return out


def video_view_probs(model: torch.nn.Module, data, indices: Sequence[int], test_hw: Sequence[int],
                     view_sets: Sequence[tuple[tuple[float, ...], bool]], device: torch.device, batch_size: int = 4,
                     workers: int = 0, amp: bool = False,
                     amp_dtype: str = "bf16") -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """For one video (``indices`` of ``data`` in temporal order): for each ``(scales, flip)`` of
    ``view_sets`` the ``T x 1 x H x W`` mean probability at ``test_hw``, and the frames as uint8
    RGB at ``test_hw`` (for flow). Each frame is read once; each size is resized from it."""
    scales = sorted({s for ss, _ in view_sets for s in ss} | {1.0})
    size_of = scale_sizes(test_hw, scales)
    sizes = list(size_of.values())
    loader = torch.utils.data.DataLoader(ViewSet(data, indices, sizes), batch_size=batch_size, num_workers=workers)
    model.eval()
    outs: list[list[torch.Tensor]] = [[] for _ in view_sets]
    rgbs: list[np.ndarray] = []
    for batch in loader:
        views = {sz: (im.to(device), fl.to(device)) for sz, (im, fl) in zip(sizes, batch["views"])}
        cache: dict[tuple[tuple[int, int], bool], torch.Tensor] = {}  # one pass per size and flip
        for k, (ss, flip) in enumerate(view_sets):
            parts = []
            for s in ss:
                key = (size_of[s], flip)
                if key not in cache:
                    cache[key] = view_probs(model, [views[size_of[s]]], test_hw, flip, amp, amp_dtype).cpu()
                parts.append(cache[key])
            outs[k].append(torch.stack(parts).mean(0))
        rgbs += list(batch["rgb"].numpy())
    return [torch.cat(o) for o in outs], rgbs


def fused_video_probs(model: torch.nn.Module, data, indices: Sequence[int], test_hw: Sequence[int], cfg: TargetConfig,
                      device: torch.device, batch_size: int = 4, workers: int = 0, amp: bool = False,
                      amp_dtype: str = "bf16", flow_cache: FlowCache | None = None) -> torch.Tensor:
    """One video's probability ``T x 1 x H x W`` at ``test_hw``: the mean over ``cfg``'s views,
    then (with ``cfg.temporal``) fused with the flow-warped neighbours. The online stage's
    targets, and ``test.py --temporal``. ``flow_cache``: as :func:`build_targets`'."""
    cfg = replace(cfg, motion_veto=0.0)  # labels only: no flow for it
    return fused_probs_and_flows(model, data, indices, test_hw, cfg, device, batch_size, workers, amp, amp_dtype,
                                  flow_cache)[0]


def fused_probs_and_flows(model: torch.nn.Module, data, indices: Sequence[int], test_hw: Sequence[int],
                           cfg: TargetConfig, device: torch.device, batch_size: int, workers: int, amp: bool,
                           amp_dtype: str, flow_cache: FlowCache | None = None
                           ) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor],
                                      dict[tuple[int, int], torch.Tensor]]:
    """:func:`fused_video_probs`, the flows it computed (with the motion veto's ``t +- 1``) and
    their forward-backward checks."""
    (prob,), rgbs = video_view_probs(model, data, indices, test_hw, [(cfg.scales, cfg.flip)], device, batch_size,
                                     workers, amp, amp_dtype)
    offsets = sorted(set(cfg.temporal) | ({1} if cfg.motion_veto > 0 else set()))
    if not offsets:
        flows, checks = {}, {}
    elif flow_cache is not None:
        flows, checks = flow_cache.get(tuple(indices), rgbs, offsets, cfg)
    else:
        flows = pair_flows(rgbs, offsets, cfg.dis_preset)
        checks = pair_consistency(flows, cfg.fb_alpha, cfg.fb_beta)
    if cfg.temporal:
        prob = temporal_fuse(prob, flows, cfg.temporal, cfg.fb_alpha, cfg.fb_beta, checks)
    return prob, flows, checks
