"""Distributed helpers. Environment variables are read when called, never at import."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

_log = logging.getLogger(__name__)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto", local_rank_arg: int | None = None) -> DistInfo:
    """Set up the process group from torchrun / ``torch.distributed.launch`` variables.

    NCCL on CUDA, gloo on CPU. A single process without those variables runs alone.
    ``local_rank_arg`` is the ``--local_rank``/``--local-rank`` argument the legacy launcher passes.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", local_rank_arg if local_rank_arg is not None else 0))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local, dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor across ranks (in place, returned)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_objects(obj):
    """List of ``obj`` from every rank (a one-element list without distribution)."""
    if dist.is_available() and dist.is_initialized():
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def convert_sync_bn(model: nn.Module, info: DistInfo) -> nn.Module:
    """Convert BatchNorm to SyncBatchNorm when that can work; otherwise say why and keep BN."""
    if not info.distributed:
        _log.warning("--sync-bn ignored: SyncBatchNorm only matters with several processes")
        return model
    if info.device.type != "cuda":
        _log.warning("--sync-bn ignored: PyTorch's SyncBatchNorm needs CUDA (NCCL); the gloo/CPU backend "
                     "cannot run it, so each process keeps its own BatchNorm statistics")
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def shard_indices(n: int, info: DistInfo) -> list[int]:
    """Indices ``0..n-1`` split across ranks without padding or duplicates (for evaluation)."""
    return list(range(info.rank, n, info.world_size))
