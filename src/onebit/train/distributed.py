"""torch.distributed set-up: one code path for a single process and for ``torchrun`` launches.

Under ``torchrun`` (env ``WORLD_SIZE`` > 1) the process group uses nccl when CUDA is available
and gloo otherwise; every process uses ``cuda:LOCAL_RANK`` or the CPU. Rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup", "barrier", "EvalShardSampler"]


@dataclass
class DistInfo:
    """This process's place in a run: ``rank``, ``world_size``, ``local_rank``, ``device``, and whether
    ``init_distributed`` created the process group.
    """
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Initialise the default process group if launched by torchrun; else a single-process info."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    info = DistInfo(rank, world, local, dev)
    if world > 1:
        if dist.is_initialized():
            info.rank, info.world_size = dist.get_rank(), dist.get_world_size()
        else:
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            info.initialized_here = True
    return info


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single-process run)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if this process created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


class EvalShardSampler(torch.utils.data.Sampler):
    """Indices rank, rank + world, ... : every sample evaluated exactly once (no padding, unlike
    DistributedSampler), so metrics summed over ranks equal the single-process metrics."""

    def __init__(self, n: int, rank: int, world_size: int):
        self.n, self.rank, self.world = n, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))
