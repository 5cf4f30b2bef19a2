"""Benchmark: our networks vs the reference pix2pix/CycleGAN code's, side by side, one process.

The anchor is the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix), re-written
here the way that code builds it: ``UnetGenerator`` (``unet_256``) as nested
``UnetSkipConnectionBlock`` s with pre-activation (LeakyReLU -> Conv -> BatchNorm down, ReLU ->
ConvTranspose -> BatchNorm up, Dropout(0.5) in the inner blocks), the ``NLayerDiscriminator``
(70x70 PatchGAN, BatchNorm, no spectral norm), and one CycleGAN ``optimize_parameters``
iteration: G_A/G_B forward, identity loss (lambda 0.5), LSGAN + cycle L1 (lambda 10), G step,
then D_A and D_B steps. Ours is :class:`usenhance.models.UNetGenerator` / the spectral-normalised
:class:`usenhance.models.PatchDiscriminator` and one iteration of :mod:`usenhance.train` (with the
paired L1 and the LPIPS terms). Timings are medians over ``repeats`` (inference after one warm-up
call; training iterations without one, to keep the default run short); images are simulated
B-mode pairs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["RefNLayerDiscriminator", "RefUnetGenerator", "run_bench"]


class _RefBlock(nn.Module):
    """The reference ``UnetSkipConnectionBlock`` (BatchNorm, so conv biases are off)."""

    def __init__(self, outer: int, inner: int, input_nc: int | None = None,
                 sub: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner, 4, 2, 1, bias=False)
        downrelu, downnorm = nn.LeakyReLU(0.2, True), nn.BatchNorm2d(inner)
        uprelu, upnorm = nn.ReLU(True), nn.BatchNorm2d(outer)
        if outermost:
            upconv = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1)
            model = [downconv, sub, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False)
            model = [downrelu, downconv, downnorm, sub, uprelu, upconv, upnorm]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    """The reference ``UnetGenerator(input_nc, output_nc, num_downs=8, ngf=64, BatchNorm)``."""

    def __init__(self, input_nc: int = 1, output_nc: int = 1, num_downs: int = 8, ngf: int = 64,
                 use_dropout: bool = True) -> None:
        super().__init__()
        block = _RefBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = _RefBlock(ngf * 8, ngf * 8, sub=block, use_dropout=use_dropout)
        block = _RefBlock(ngf * 4, ngf * 8, sub=block)
        block = _RefBlock(ngf * 2, ngf * 4, sub=block)
        block = _RefBlock(ngf, ngf * 2, sub=block)
        self.model = _RefBlock(output_nc, ngf, input_nc=input_nc, sub=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RefNLayerDiscriminator(nn.Module):
    """The reference ``NLayerDiscriminator(input_nc, ndf=64, n_layers=3, BatchNorm)``."""

    def __init__(self, input_nc: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _time(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _batch(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    from usenhance.phantom import ORGANS, SimConfig, simulate_pair

    cfg = SimConfig(shape=(size, size))
    pairs = [simulate_pair(ORGANS[i % 5], cfg, np.random.default_rng(i)) for i in range(n)]
    lo = torch.from_numpy(np.stack([p.low for p in pairs])[:, None] * 2 - 1).to(device)
    hi = torch.from_numpy(np.stack([p.high for p in pairs])[:, None] * 2 - 1).to(device)
    return lo, hi


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _ref_iteration(nets: dict, opts: dict, a: torch.Tensor, b: torch.Tensor) -> None:
    """The reference CycleGANModel.optimize_parameters (LSGAN, lambda_A=B=10, identity 0.5)."""
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    g_a, g_b, d_a, d_b = nets["g_a"], nets["g_b"], nets["d_a"], nets["d_b"]
    fake_b = g_a(a)
    rec_a = g_b(fake_b)
    fake_a = g_b(b)
    rec_b = g_a(fake_a)
    for p in list(d_a.parameters()) + list(d_b.parameters()):
        p.requires_grad_(False)
    opts["g"].zero_grad()
    idt_a, idt_b = g_a(b), g_b(a)
    pa, pb = d_a(fake_b), d_b(fake_a)
    loss_g = (l1(idt_a, b) * 10 * 0.5 + l1(idt_b, a) * 10 * 0.5 + mse(pa, torch.ones_like(pa))
              + mse(pb, torch.ones_like(pb)) + l1(rec_a, a) * 10 + l1(rec_b, b) * 10)
    loss_g.backward()
    opts["g"].step()
    for p in list(d_a.parameters()) + list(d_b.parameters()):
        p.requires_grad_(True)
    opts["d"].zero_grad()
    for d, real, fake in ((d_a, b, fake_b), (d_b, a, fake_a)):
        pr, pf = d(real), d(fake.detach())
        ((mse(pr, torch.ones_like(pr)) + mse(pf, torch.zeros_like(pf))) * 0.5).backward()
    opts["d"].step()


@dataclass
class BenchRow:
    """One side-by-side measurement."""

    what: str
    ours: float
    reference: float
    unit: str

    @property
    def ratio(self) -> float:
        """ours / reference for rates (img/s), reference / ours for times: > 1 means ours faster."""
        return self.ours / self.reference if self.unit == "img/s" else self.reference / self.ours


def run_bench(threads: int = 2, repeats: int = 2, device: str = "cpu", quick: bool = False) -> list[BenchRow]:
    """Time inference (256, 512; batch 1 and 4), one training iteration and its LPIPS share.

    Prints a table and returns its rows (ratios > 1: ours is faster).
    """
    from usenhance.config import TrainConfig
    from usenhance.losses import GeneratorLoss, discriminator_loss, real_label
    from usenhance.networks import Discriminators, Generators
    from usenhance.perceptual import build_lpips, default_vgg_path

    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    ours_g = Generators(TrainConfig()).g_h.to(dev).eval()
    ref_g = RefUnetGenerator().to(dev).eval()
    rows: list[BenchRow] = []
    sizes = (256,) if quick else (256, 512)
    for size in sizes:
        for bs in (1, 4):
            x, _ = _batch(bs, size, dev)

            def infer(g: nn.Module, x: torch.Tensor = x) -> None:
                with torch.inference_mode():
                    g(x)
                _sync(dev)

            t_o, t_r = _time(lambda: infer(ours_g), repeats), _time(lambda: infer(ref_g), repeats)
            rows.append(BenchRow(f"inference {size}x{size} batch {bs}", bs / t_o, bs / t_r, "img/s"))
    # -- one training iteration, batch 4, 256x256
    low, high = _batch(4, 256, dev)
    real = default_vgg_path().is_file()
    per = build_lpips(random_backbone=not real, device=dev)
    cfg = TrainConfig()
    gens, discs = Generators(cfg).to(dev).train(), Discriminators(cfg).to(dev).train()
    opt_g = torch.optim.Adam(gens.parameters(), lr=3e-4, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(discs.parameters(), lr=3e-4, betas=(0.9, 0.999))

    def ours_iter(w_per: float) -> None:
        loss = GeneratorLoss(1.0, 10.0, 2.0, w_per, per.module if w_per else None)
        for p in discs.parameters():
            p.requires_grad_(False)
        out = gens(low, high)
        t = loss(low, high, out.fake_high, out.fake_low, out.rec_low, out.rec_high,
                 discs.score_high(low, out.fake_high), discs.d_l(out.fake_low))
        opt_g.zero_grad()
        t.total.backward()
        opt_g.step()
        for p in discs.parameters():
            p.requires_grad_(True)
        r_h, f_h, r_l, f_l = discs(low, high, out.fake_high.detach(), out.fake_low.detach())
        tgt = real_label([float(r_h.detach().mean()), float(r_l.detach().mean())])
        opt_d.zero_grad()
        (discriminator_loss(r_h, f_h, tgt) + discriminator_loss(r_l, f_l, tgt)).backward()
        opt_d.step()
        _sync(dev)

    ref_nets = {"g_a": RefUnetGenerator(), "g_b": RefUnetGenerator(),
                "d_a": RefNLayerDiscriminator(), "d_b": RefNLayerDiscriminator()}
    ref_nets = {k: v.to(dev).train() for k, v in ref_nets.items()}
    ref_opts = {"g": torch.optim.Adam(list(ref_nets["g_a"].parameters())
                                      + list(ref_nets["g_b"].parameters()), lr=2e-4),
                "d": torch.optim.Adam(list(ref_nets["d_a"].parameters())
                                      + list(ref_nets["d_b"].parameters()), lr=2e-4)}

    def ref_iter() -> None:
        _ref_iteration(ref_nets, ref_opts, low, high)
        _sync(dev)

    # no separate warm-up for the (long) iterations: both sides pay their first-call cost alike
    t_ref = _time(ref_iter, repeats, warmup=False)
    t_full = _time(lambda: ours_iter(10.0), repeats, warmup=False)
    t_nolp = _time(lambda: ours_iter(0.0), repeats, warmup=False)
    rows.append(BenchRow("CycleGAN iteration batch 4 (ours without LPIPS)", t_nolp, t_ref, "s"))
    rows.append(BenchRow("proposed iteration batch 4 (with LPIPS) vs ref CycleGAN", t_full, t_ref, "s"))
    share = (t_full - t_nolp) / t_full
    label = per.label
    print(f"usenhance bench: {threads} CPU thread(s), device {dev}, median of {repeats}; "
          "reference = pytorch-CycleGAN-and-pix2pix unet_256 / NLayerDiscriminator (BatchNorm) "
          "re-implemented in usenhance.bench; inference after a warm-up")
    w = max(len(r.what) for r in rows)
    print(f"{'measurement'.ljust(w)}  {'ours':>9}  {'reference':>9}  unit   ours faster by")
    for r in rows:
        print(f"{r.what.ljust(w)}  {r.ours:9.3f}  {r.reference:9.3f}  {r.unit:5}  x{r.ratio:.2f}")
    print(f"{label} term (forward+backward, both directions): {t_full - t_nolp:.3f} s = "
          f"{100 * share:.0f}% of the proposed iteration")
    return rows
