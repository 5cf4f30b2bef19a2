"""Device choice and torchrun / DistributedDataParallel plumbing for :mod:`perfdecon.train`.

Under ``torchrun`` the environment holds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without
it (``WORLD_SIZE`` unset or 1) every helper here is a no-op for a single process. The process
group uses NCCL on CUDA and gloo on CPU. Cases are sharded round-robin over ranks; every rank
does the same number of steps (DDP needs it), so a rank's share is padded by wrapping.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from perfdecon.errors import PerfdeconError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run.

    Attributes
    ----------
    rank, world, local_rank:
        Global rank, number of processes and rank on this machine (``torchrun`` variables).
    initialised_here:
        True if :func:`init_distributed` created the process group (and
        :func:`shutdown` must destroy it).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints."""
        return self.rank == 0


class Runtime(NamedTuple):
    """Result of :func:`setup`: the torch device of this process and its :class:`DistInfo`."""

    device: torch.device
    dist: DistInfo


def env_rank() -> int:
    """Global rank from the ``RANK`` environment variable (0 outside ``torchrun``)."""
    return int(os.environ.get("RANK", "0"))


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"`` -> :class:`torch.device`.

    Raises
    ------
    PerfdeconError
        ``"cuda"`` requested but CUDA is not available.
    """
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise PerfdeconError("--device cuda requested but CUDA is not available")
    return torch.device(name)


def init_distributed(device_kind: str) -> DistInfo:
    """Join the ``torchrun`` process group (NCCL for ``"cuda"``, gloo otherwise) if there is one."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = env_rank()
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        here = True
    return DistInfo(rank=rank, world=world, local_rank=local, initialised_here=here)


def setup(device_name: str) -> Runtime:
    """Resolve the device, join the process group, and pin CUDA ranks to their local GPU."""
    import torch

    device = resolve_device(device_name)
    info = init_distributed(device.type)
    if device.type == "cuda" and info.world > 1:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return Runtime(device=device, dist=info)


def shutdown(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.initialised_here:
        import torch.distributed as dist

        dist.destroy_process_group()


def steps_per_rank(n_items: int, info: DistInfo) -> int:
    """Steps every rank takes through ``n_items`` cases (``ceil(n_items / world)``)."""
    return math.ceil(n_items / info.world)


def rank_order(order: np.ndarray, info: DistInfo) -> np.ndarray:
    """This rank's share of the epoch's case ``order``, padded by wrapping to equal length."""
    per_rank = steps_per_rank(len(order), info)
    return np.resize(order, per_rank * info.world)[info.rank :: info.world]


def rank_share(indices: np.ndarray, info: DistInfo) -> np.ndarray:
    """This rank's round-robin share of ``indices`` (unpadded; for evaluation)."""
    return indices[info.rank :: info.world]


def all_reduce_sum(values: torch.Tensor, device: torch.device, info: DistInfo) -> torch.Tensor:
    """Sum ``values`` (a CPU tensor) over all ranks; returns a CPU tensor (itself if world 1)."""
    if info.world <= 1:
        return values
    import torch.distributed as dist

    values = values.to(device)
    dist.all_reduce(values)
    return values.cpu()


def wrap_model(net: torch.nn.Module, device: torch.device, info: DistInfo) -> torch.nn.Module:
    """``net`` wrapped in DistributedDataParallel when there are several ranks, else ``net``."""
    if info.world <= 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None
    )


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for a single process)."""
    if info.world > 1:
        import torch.distributed as dist

        dist.barrier()
