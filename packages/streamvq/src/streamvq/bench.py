"""Benchmark: training iterations/s and encode+decode bundles/s, ours versus the authors' code.

The anchor is a re-implementation of the forward pass of the authors' ``models.py``
(``drewrl3v/diff-vq-vae``), written here so both run side by side in one process on the same
data and threads:

- the same ResNet encoder/decoder (identical layer shapes, so the convolution cost is equal);
- their quantisers' formulation: distances ``sum(z^2) + sum(e^2) - 2 z e^T`` on a permuted,
  contiguous copy of the latents; VQ: ``argmin``, a dense ``(N, K)`` one-hot built with
  ``scatter_`` and multiplied with the codebook, perplexity computed in every forward;
  VQ-Diff: ``F.gumbel_softmax(-d, tau, hard=False)``, which **draws Gumbel noise also in
  evaluation**, and the perplexity of the soft assignments;
- their training step: ``optimizer.zero_grad()``, forward, ``mse_loss + vq_loss``, backward, step;
  and their batch fetch ``next(iter(loader))`` (a fresh shuffled iterator every step).

Ours: the package's models in evaluation mode (deterministic VQ-Diff: no noise; VQ by index
lookup), the training step through ``medshared.training.optimizer_step``. Both inference paths run
under ``torch.no_grad()``. Each cell is the best of ``repeats`` timings after one warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamvq.config import ModelConfig


@dataclass(frozen=True)
class BenchRow:
    """One timing cell."""

    model: str
    phase: str  # "train" (iterations/s) or "infer" (bundles/s)
    batch: int
    ours: float
    anchor: float
    device: str
    ours_cpu: float = float("nan")
    """Throughput per second of process CPU time (robust to a loaded machine)."""
    anchor_cpu: float = float("nan")

    @property
    def ratio(self) -> float:
        """ours / anchor, wall clock (higher is better for both phases)."""
        return self.ours / self.anchor if self.anchor > 0 else float("nan")

    @property
    def ratio_cpu(self) -> float:
        """ours / anchor per CPU second."""
        return self.ours_cpu / self.anchor_cpu if self.anchor_cpu > 0 else float("nan")


def _anchor_model(kind: str, cfg: ModelConfig):  # noqa: ANN202
    """The authors' forward pass (see the module docstring), built from our config values."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from streamvq.models.bottlenecks import GaussianBottleneck
    from streamvq.models.resnet import Decoder, Encoder

    k, d = cfg.codebook_size, cfg.embedding_dim

    def _dist(flat: torch.Tensor, w: torch.Tensor, buggy: bool) -> torch.Tensor:
        first = torch.sum(flat * 2 if buggy else flat**2, dim=1, keepdim=True)
        return first + torch.sum(w**2, dim=1) - 2 * torch.matmul(flat, w.t())

    class HardVQ(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(k, d)
            self.emb.weight.data.uniform_(-1 / k, 1 / k)

        def forward(self, z: torch.Tensor):  # noqa: ANN202
            z = z.permute(0, 2, 3, 1).contiguous()
            shape = z.shape
            flat = z.view(-1, d)
            dist = _dist(flat, self.emb.weight, buggy=False)
            idx = torch.argmin(dist, dim=1).unsqueeze(1)
            onehot = torch.zeros(idx.shape[0], k, device=z.device)
            onehot.scatter_(1, idx, 1)
            q = torch.matmul(onehot, self.emb.weight).view(shape)
            loss = F.mse_loss(q, z.detach()) + cfg.commitment * F.mse_loss(q.detach(), z)
            q = z + (q - z).detach()
            p = torch.mean(onehot, dim=0)
            torch.exp(-torch.sum(p * torch.log(p + 1e-10)))
            return loss, q.permute(0, 3, 1, 2).contiguous()

    class Soft(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(k, d)
            self.emb.weight.data.normal_(0.0, cfg.codebook_std)

        def forward(self, z: torch.Tensor):  # noqa: ANN202
            z = z.permute(0, 2, 3, 1).contiguous()
            shape = z.shape
            flat = z.view(-1, d)
            dist = _dist(flat, self.emb.weight, buggy=True)  # their `flat_input*2`
            probs = F.gumbel_softmax(-dist, cfg.temperature, hard=False)
            q = torch.matmul(probs, self.emb.weight).view(shape)
            p = torch.mean(probs, dim=0)
            torch.exp(-torch.sum(p * torch.log(p + 1e-10)))
            return 0.0, q.permute(0, 3, 1, 2).contiguous()

    class Ident(nn.Module):
        def forward(self, z: torch.Tensor):  # noqa: ANN202
            return 0.0, z

    class Vae(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.g = GaussianBottleneck(d, (cfg.streamlines // 4, cfg.points // 4),
                                        cfg.vae_latent, 1e-7)

        def forward(self, z: torch.Tensor):  # noqa: ANN202
            self.g.stochastic = True  # their VAELayer always samples
            out = self.g(z)
            return out.loss, out.quantized

    class Anchor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            full = Encoder(cfg.hidden, cfg.residual_hidden, cfg.residual_layers, d)
            self.enc = nn.Sequential(*list(full.net)[:-1])
            self.pre = list(full.net)[-1]
            self.bott = {"ae": Ident, "vqvae": HardVQ, "vqema": HardVQ, "vqdiff": Soft,
                         "vae": Vae}[kind]()
            self.dec = Decoder(cfg.hidden, cfg.residual_hidden, cfg.residual_layers, d)

        def forward(self, x: torch.Tensor):  # noqa: ANN202
            loss, q = self.bott(self.pre(self.enc(x)))
            return loss, self.dec(q)

    return Anchor()


def _race(fns: Sequence, repeats: int) -> tuple[list[float], list[float]]:  # noqa: ANN001
    """Best wall and best process-CPU time of each callable, runs interleaved (same load)."""
    for fn in fns:
        fn()  # warm-up
    wall = [float("inf")] * len(fns)
    cpu = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[i] = min(wall[i], time.perf_counter() - t0)
            cpu[i] = min(cpu[i], time.process_time() - c0)
    return wall, cpu


def _train_ours(model, x):  # noqa: ANN001, ANN202
    import torch

    from medshared.training import optimizer_step
    from streamvq.losses import objective

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer_step(objective(model(x), x).total, opt)

    return step


def _train_anchor(model, loader, dev):  # noqa: ANN001, ANN202
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        xb = next(iter(loader)).to(dev)  # their batch fetch: a fresh iterator every update
        opt.zero_grad()
        vq_loss, rec = model(xb)
        loss = F.mse_loss(rec, xb) + vq_loss
        loss.backward()
        opt.step()
        loss.detach().item()

    return step


def _infer_ours(model, x):  # noqa: ANN001, ANN202
    import torch

    def run() -> None:
        with torch.no_grad():
            model.decode(model.encode(x)).sum().item()

    return run


def _infer_anchor(model, x):  # noqa: ANN001, ANN202
    import torch

    def run() -> None:
        with torch.no_grad():
            model(x)[1].sum().item()

    return run


def run_bench(
    batches: Sequence[int] = (16, 64, 256),
    models: Sequence[str] = ("ae", "vqvae", "vqdiff"),
    repeats: int = 3,
    threads: int = 2,
    device: str = "cpu",
    train_batches: Sequence[int] | None = (16, 64),
    seed: int = 0,
) -> list[BenchRow]:
    """Time both implementations; returns one row per (model, phase, batch).

    Training is timed at ``train_batches`` (default 16 and 64: batch 256 costs several seconds per
    update on 2 CPU threads; pass ``train_batches=batches`` to include it).
    """
    import torch

    from streamvq.config import PrepareConfig
    from streamvq.dataset import TorchBundles
    from streamvq.models import build_model
    from streamvq.prepare import prepare_synthetic

    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(seed)
    ds = prepare_synthetic(4, (64, 300), PrepareConfig(val_fraction=0.0), seed=seed)
    need = max([*batches, *(train_batches or ())])
    reps = -(-need // len(ds.bundles))
    pool_np = np.concatenate([ds.bundles] * reps)
    pool = torch.from_numpy(pool_np).to(dev)
    rows: list[BenchRow] = []
    for kind in models:
        cfg = ModelConfig(model=kind)  # type: ignore[arg-type]
        ours = build_model(cfg).to(dev)
        anchor = _anchor_model(kind, cfg).to(dev)
        ours.train()
        anchor.train()
        for b in train_batches or ():
            loader = torch.utils.data.DataLoader(TorchBundles(pool_np), batch_size=b,
                                                 shuffle=True, drop_last=True)
            (t_o, t_a), (c_o, c_a) = _race(
                [_train_ours(ours, pool[:b]), _train_anchor(anchor, loader, dev)], repeats)
            rows.append(BenchRow(kind, "train", b, 1.0 / t_o, 1.0 / t_a, device,
                                 1.0 / c_o, 1.0 / c_a))
        ours.eval()
        anchor.eval()
        for b in batches:
            (t_o, t_a), (c_o, c_a) = _race(
                [_infer_ours(ours, pool[:b]), _infer_anchor(anchor, pool[:b])], repeats)
            rows.append(BenchRow(kind, "infer", b, b / t_o, b / t_a, device, b / c_o, b / c_a))
    return rows


def format_bench(rows: Sequence[BenchRow]) -> str:
    """Text table with the ratios."""
    lines = [f"{'model':7s} {'phase':6s} {'batch':>5s} {'ours':>9s} {'authors':>9s} "
             f"{'ratio':>6s} {'ratio/cpu-s':>11s}  unit (wall clock; last column per CPU second)"]
    for r in rows:
        unit = "updates/s" if r.phase == "train" else "bundles/s"
        lines.append(f"{r.model:7s} {r.phase:6s} {r.batch:5d} {r.ours:9.2f} {r.anchor:9.2f} "
                     f"{r.ratio:6.2f} {r.ratio_cpu:11.2f}  {unit} ({r.device})")
    return "\n".join(lines)


def summary(rows: Sequence[BenchRow]) -> dict[str, float]:
    """Geometric-mean ratio per phase (per CPU second when measured, else wall clock)."""
    out = {}
    for phase in ("train", "infer"):
        rr = [r.ratio_cpu if np.isfinite(r.ratio_cpu) else r.ratio for r in rows
              if r.phase == phase]
        if rr:
            out[phase] = float(np.exp(np.mean(np.log(rr))))
    return out
