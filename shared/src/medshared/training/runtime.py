"""Launch: torchrun / DistributedDataParallel, device choice and seeded data loading.

Under ``torchrun`` the environment holds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without it
(``WORLD_SIZE`` unset or 1) :func:`launch` yields a single-process runtime and every collective
is a no-op. The process group uses NCCL on CUDA and gloo on CPU; each rank is pinned to the GPU
``cuda:LOCAL_RANK``.

Example
-------
>>> from medshared.training import launch
>>> with launch(device="cpu", seed=0) as rt:
...     rt.world_size, rt.is_main
(1, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from medshared.errors import MedsharedError
from medshared.training._torch import torch as _torch
from medshared.training.seeding import seed_everything, seed_worker
from medshared.training.state import unwrap_model


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise MedsharedError(f"environment variable {name}={raw!r} is not an integer") from exc


def resolve_device(name: str, local_rank: int = 0) -> Any:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` if CUDA is available else ``cpu``; else ``name`` checked."""
    torch = _torch()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise MedsharedError(f"--device {name!r} is not a torch device (use auto, cpu, cuda, cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MedsharedError(f"--device {name}: CUDA is not available on this machine (use cpu)")
        if device.index is None:
            device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


@dataclass
class Runtime:
    """This process's place in a (possibly distributed) run.

    Attributes
    ----------
    device : torch.device
        Where this rank's model and batches live.
    rank, world_size, local_rank : int
        Global rank, number of processes and rank on this machine.
    seed : int or None
        The run's seed (identical on every rank, so initial weights agree).
    """

    device: Any
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    seed: int | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    # -- models ---------------------------------------------------------------------------
    def wrap(self, model: Any, **ddp_kwargs: Any) -> Any:
        """Move ``model`` to the device; wrap it in DistributedDataParallel with >1 rank."""
        torch = _torch()
        model = model.to(self.device)
        if not self.distributed:
            return model
        if self.device.type == "cuda":
            ddp_kwargs.setdefault("device_ids", [self.device.index])
        return torch.nn.parallel.DistributedDataParallel(model, **ddp_kwargs)

    @staticmethod
    def unwrap(model: Any) -> Any:
        """The plain module under DDP / ``torch.compile`` wrappers."""
        return unwrap_model(model)

    # -- collectives ----------------------------------------------------------------------
    def all_reduce(self, tensor: Any, op: str = "sum") -> Any:
        """Reduce ``tensor`` in place over all ranks (``op``: sum, mean, max, min); returns it."""
        if op not in ("sum", "mean", "max", "min"):
            raise MedsharedError(f"all_reduce op must be sum, mean, max or min, got {op!r}")
        if not self.distributed:
            return tensor
        dist = _torch().distributed
        red = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
               "min": dist.ReduceOp.MIN}[op]
        dist.all_reduce(tensor, op=red)
        if op == "mean":
            tensor /= self.world_size
        return tensor

    def mean(self, value: float) -> float:
        """The mean of a Python number over all ranks (the value itself in one process)."""
        if not self.distributed:
            return float(value)
        torch = _torch()
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        return float(self.all_reduce(t, "mean").item())

    def barrier(self) -> None:
        """Wait for every rank (no-op in one process)."""
        if self.distributed:
            _torch().distributed.barrier()

    # -- data -----------------------------------------------------------------------------
    def loader(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        collate_fn: Callable[..., Any] | None = None,
        pin_memory: bool | None = None,
    ) -> Any:
        """A DataLoader whose order depends only on ``(seed, epoch)``, sharded over ranks.

        Every rank gets a disjoint ``1/world_size`` share through a DistributedSampler (also in
        one process, so the order is the same function of the seed everywhere). Call
        :meth:`set_epoch` at the start of each epoch: it reshuffles and reseeds the workers, so
        a resumed run sees the same batches as an uninterrupted one.
        """
        torch = _torch()
        from torch.utils.data import DataLoader

        if batch_size < 1:
            raise MedsharedError(f"batch size must be >= 1, got {batch_size}")
        seed = self.seed if seed is None else seed
        seed = 0 if seed is None else int(seed)
        sampler = _resumable_sampler_class()(
            dataset, num_replicas=self.world_size, rank=self.rank, shuffle=shuffle, seed=seed,
            drop_last=drop_last,
        )
        generator = torch.Generator()
        generator.manual_seed(_mix(seed, 0, self.rank))
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            drop_last=drop_last,
            collate_fn=collate_fn,
            pin_memory=(self.device.type == "cuda") if pin_memory is None else pin_memory,
            worker_init_fn=seed_worker,
            generator=generator,
            persistent_workers=False,
        )
        loader._medshared_seed = seed  # type: ignore[attr-defined]
        return loader

    def set_epoch(self, loader: Any, epoch: int, skip_batches: int = 0) -> None:
        """Reshuffle ``loader`` (from :meth:`loader`) for ``epoch`` and reseed its workers.

        ``skip_batches`` starts the epoch after that many batches without reading them (a run
        resumed mid-epoch then sees exactly the batches the uninterrupted run saw next).
        """
        loader.sampler.set_epoch(int(epoch))
        loader.sampler.skip = int(skip_batches) * int(loader.batch_size or 1)
        seed = getattr(loader, "_medshared_seed", 0)
        loader.generator.manual_seed(_mix(seed, int(epoch), self.rank))

    # -- mixed precision ------------------------------------------------------------------
    def amp_enabled(self, requested: bool) -> bool:
        """AMP runs only on CUDA: ``requested and device is cuda``."""
        return bool(requested) and self.device.type == "cuda"

    def autocast(self, enabled: bool = True) -> Any:
        """``torch.autocast`` on CUDA (bf16 when supported, else fp16); a no-op on CPU."""
        torch = _torch()
        if not self.amp_enabled(enabled):
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def grad_scaler(self, enabled: bool = True) -> Any:
        """A GradScaler, enabled only when AMP runs (CUDA); its state_dict is saved like any object."""
        torch = _torch()
        return torch.amp.GradScaler("cuda", enabled=self.amp_enabled(enabled))


_SAMPLER: Any = None


def _resumable_sampler_class() -> Any:
    """DistributedSampler that can start an epoch after ``skip`` indices (built lazily)."""
    global _SAMPLER
    if _SAMPLER is None:
        import itertools

        from torch.utils.data import DistributedSampler

        class ResumableSampler(DistributedSampler):
            skip = 0

            def __iter__(self):  # type: ignore[override]
                return itertools.islice(super().__iter__(), self.skip, None)

            def __len__(self) -> int:
                return max(super().__len__() - self.skip, 0)

        _SAMPLER = ResumableSampler
    return _SAMPLER


def _mix(seed: int, epoch: int, rank: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{epoch}/{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


@contextlib.contextmanager
def launch(device: str = "auto", seed: int | None = None, timeout_s: float = 600.0) -> Iterator[Runtime]:
    """Join (or create) the torchrun process group and yield this process's :class:`Runtime`.

    Parameters
    ----------
    device:
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        Under torchrun on CUDA each rank uses ``cuda:LOCAL_RANK``.
    seed:
        If given, :func:`seed_everything` is called with it on every rank (identical initial
        weights everywhere).
    timeout_s:
        Collective timeout of the process group, in seconds.

    The group is destroyed on exit if this call created it. A single process without torchrun
    gets ``world_size == 1`` and no process group.
    """
    torch = _torch()
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    created = False
    if world > 1:
        dist = torch.distributed
        if not dist.is_available():
            raise MedsharedError("WORLD_SIZE > 1 but this torch build has no distributed support")
        if not dist.is_initialized():
            import datetime

            backend = "nccl" if dev.type == "cuda" else "gloo"
            kwargs: dict[str, Any] = {"timeout": datetime.timedelta(seconds=timeout_s)}
            if dev.type == "cuda":
                kwargs["device_id"] = dev
            dist.init_process_group(backend=backend, **kwargs)
            created = True
        world, rank = dist.get_world_size(), dist.get_rank()
    if seed is not None:
        seed_everything(int(seed))
    runtime = Runtime(device=dev, rank=rank, world_size=world, local_rank=local_rank, seed=seed)
    try:
        yield runtime
    finally:
        if created:
            with contextlib.suppress(Exception):
                torch.distributed.destroy_process_group()
