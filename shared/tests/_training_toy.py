"""A tiny but complete training loop through medshared.training (used by the training tests).

Runs standalone under torchrun too: ``python -m torch.distributed.run --nproc_per_node 2
_training_toy.py OUT_DIR STEPS``; rank 0 then writes the final weights of every rank's model
(gathered) to OUT_DIR/weights_rank{r}.pt so the test can compare them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medshared.training import (
    RunFolder,
    config_to_dict,
    launch,
    optimizer_step,
    progress,
)


@dataclass(frozen=True)
class ToyConfig:
    steps: int = field(default=12, metadata={"help": "optimiser steps", "min": 1})
    lr: float = field(default=0.05, metadata={"help": "learning rate", "min": 0.0})
    batch_size: int = field(default=4, metadata={"help": "samples per step", "min": 1})
    seed: int = 3
    save_every: int = 3


class Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Noisy(torch.utils.data.Dataset):
    """Targets get fresh noise on every read (exercises the seeded RNG through the loader)."""

    def __init__(self, n: int = 40) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x.sum(1, keepdim=True)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i] + 0.01 * torch.randn(1)


class Stop(Exception):
    """Simulated crash."""


def train(run_dir: Path, cfg: ToyConfig, resume: bool = False, crash_at: int | None = None):
    with launch(device="cpu", seed=cfg.seed) as rt:
        model = rt.wrap(Toy())
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        run = RunFolder(run_dir, config_to_dict(cfg), resume=resume, is_main=rt.is_main)
        objects = {"model": model, "optimizer": opt, "scheduler": sched}
        meta = run.resume(objects)
        step = meta["step"] if meta else 0
        loader = rt.loader(Noisy(), cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True)
        rt.set_epoch(loader, 0)
        per_epoch = len(loader)
        bar = progress(total=cfg.steps, desc="toy", enabled=False)
        while step < cfg.steps:
            epoch, offset = divmod(step, per_epoch)
            rt.set_epoch(loader, epoch, skip_batches=offset)
            for x, y in loader:
                loss = torch.nn.functional.mse_loss(model(x), y)
                out = optimizer_step(loss, opt)
                sched.step()
                step += 1
                bar.update(1)
                run.log(step, loss=rt.mean(out.loss), skipped=out.skipped)
                if crash_at is not None and step == crash_at:
                    raise Stop()
                if step % cfg.save_every == 0:
                    run.save("last", objects, {"step": step, "package": "medshared-test"})
                if step >= cfg.steps:
                    break
        run.save("final", objects, {"step": step})
        return rt.unwrap(model), rt


if __name__ == "__main__":
    out = Path(sys.argv[1])
    cfg = ToyConfig(steps=int(sys.argv[2]))
    model, rt = train(out / "run", cfg)
    torch.save(model.state_dict(), out / f"weights_rank{rt.rank}.pt")
