"""The five swappable bottlenecks, all on latents ``z`` of shape ``(B, D, H, W)``.

Every bottleneck returns a :class:`BottleneckOutput`; ``quantized`` is what the decoder consumes
(the "latent" of the package: perturbations and interpolations act on it, after quantisation, as
in the authors' scripts). Distances to the codebook are one matmul:
``|z - e|^2 = |z|^2 + |e|^2 - 2 z.e``.

Evaluation is deterministic by default: VQ-Diff uses ``softmax(-d / tau)`` without Gumbel noise
and the VAE uses the posterior mean. ``stochastic = True`` (attribute) restores the training-time
sampling at evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BottleneckOutput:
    """What a bottleneck returns."""

    quantized: torch.Tensor
    """(B, D, H, W) decoder input."""
    loss: torch.Tensor
    """Scalar: the bottleneck's weighted loss term (0 for the AE and VQ-Diff)."""
    usage: torch.Tensor | None = None
    """(K,) summed (soft) assignments to each codebook vector over the batch, no gradient."""
    indices: torch.Tensor | None = None
    """(B, H, W) index of the nearest (VQ) or most weighted (VQ-Diff) codebook vector."""
    kl: torch.Tensor | None = None
    """VAE: batch-mean KL divergence (nats), unweighted."""


def perplexity(usage: torch.Tensor) -> torch.Tensor:
    """``exp(-sum p log p)`` of the normalised usage ``p = usage / sum(usage)``.

    Equals the number of codes when all are used equally, 1 when one code takes everything.
    """
    p = usage / usage.sum().clamp_min(1e-12)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum())


def _flat(z: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) -> (B*H*W, D)."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def _unflat(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B*H*W, D) -> (B, D, H, W) shaped like ``like``."""
    b, d, h, w = like.shape
    return flat.reshape(b, h, w, d).permute(0, 3, 1, 2)


def sq_distances(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` squared Euclidean distances between rows of ``flat`` and ``codebook``."""
    z2 = (flat * flat).sum(1, keepdim=True)
    e2 = (codebook * codebook).sum(1)
    return torch.addmm(z2 + e2, flat, codebook.t(), alpha=-2.0)


class IdentityBottleneck(nn.Module):
    """The plain autoencoder: ``quantized = z``."""

    stochastic = False

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        return BottleneckOutput(z, z.new_zeros(()))


class VectorQuantizer(nn.Module):
    """VQ-VAE: nearest codebook vector, straight-through gradient.

    Loss ``|sg(z) - q|^2 + beta |z - sg(q)|^2`` (codebook + commitment, means over elements).
    Codebook initialised uniform in ``[-1/K, 1/K]`` (authors' code).
    """

    stochastic = False

    def __init__(self, codebook_size: int, dim: int, commitment: float = 0.25) -> None:
        super().__init__()
        self.commitment = float(commitment)
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        )

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        flat = _flat(z)
        with torch.no_grad():
            idx = sq_distances(flat.float(), self.codebook.float()).argmin(1)
        q = F.embedding(idx, self.codebook).to(flat.dtype)
        loss = F.mse_loss(q, flat.detach()) + self.commitment * F.mse_loss(flat, q.detach())
        st = flat + (q - flat).detach()
        usage = torch.bincount(idx, minlength=self.codebook.shape[0]).float()
        b, _, h, w = z.shape
        return BottleneckOutput(_unflat(st, z), loss, usage, idx.reshape(b, h, w))


class VectorQuantizerEMA(nn.Module):
    """VQ-EMA: codebook = EMA of assigned encoder outputs (decay 0.99), commitment loss only.

    In training mode every forward updates, without gradient::

        N_k <- decay N_k + (1 - decay) n_k          (n_k: vectors assigned to code k)
        N_k <- (N_k + eps) / (N + K eps) N          (Laplace smoothing, N = sum N_k)
        m_k <- decay m_k + (1 - decay) sum_{i -> k} z_i
        e_k <- m_k / N_k

    Under ``torch.distributed`` the counts and sums are all-reduced first, so every rank keeps the
    same codebook. The codebook and statistics are buffers (saved with the state dict).
    """

    stochastic = False

    def __init__(
        self, codebook_size: int, dim: int, commitment: float = 0.25, decay: float = 0.99,
        epsilon: float = 1e-5,
    ) -> None:
        super().__init__()
        self.commitment = float(commitment)
        self.decay = float(decay)
        self.epsilon = float(epsilon)
        init = torch.randn(codebook_size, dim)
        self.register_buffer("codebook", init)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("ema_sum", init.clone())

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        k = self.codebook.shape[0]
        counts = torch.bincount(idx, minlength=k).to(self.cluster_size.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat.to(self.ema_sum.dtype))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        size = self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        n = size.sum()
        size.copy_((size + self.epsilon) / (n + k * self.epsilon) * n)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        self.codebook.copy_(self.ema_sum / size.unsqueeze(1))

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        flat = _flat(z)
        with torch.no_grad():
            idx = sq_distances(flat.float(), self.codebook).argmin(1)
        if self.training:
            self._update(flat.detach().float(), idx)
        q = F.embedding(idx, self.codebook).to(flat.dtype)
        loss = self.commitment * F.mse_loss(flat, q.detach())
        st = flat + (q - flat).detach()
        usage = torch.bincount(idx, minlength=self.codebook.shape[0]).float()
        b, _, h, w = z.shape
        return BottleneckOutput(_unflat(st, z), loss, usage, idx.reshape(b, h, w))


class GumbelSoftQuantizer(nn.Module):
    """VQ-Diff: Gumbel-softmax weights over negative squared distances, weighted codebook sum.

    ``w = softmax((-|z - e_k|^2 + g_k) / tau)``, ``g_k ~ Gumbel(0, 1)`` in training (or with
    ``stochastic = True``); ``g = 0`` in deterministic evaluation. The latent is
    ``s = sum_k w_k e_k``; the codebook (init ``N(0, sigma^2)``, sigma 2.0) is trained by
    backpropagation through ``w`` and ``s``. ``|z|^2`` is constant along k and is left out of the
    logits (softmax is shift-invariant), which saves a reduction.
    """

    def __init__(
        self, codebook_size: int, dim: int, temperature: float = 10.0, std: float = 2.0
    ) -> None:
        super().__init__()
        self.temperature = float(temperature)
        self.stochastic = False
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim) * std)

    def weights(self, flat: torch.Tensor, noise: bool) -> torch.Tensor:
        """``(N, K)`` assignment weights for ``(N, D)`` latents."""
        e = self.codebook.to(flat.dtype)
        inv_t = 1.0 / self.temperature
        if noise:
            # -(|e|^2 - 2 z.e) = -|z - e|^2 + |z|^2  (|z|^2 dropped: constant per row)
            logits = torch.addmm(-(e * e).sum(1), flat, e.t(), alpha=2.0)
            gumbel = -torch.empty_like(logits).exponential_().log()
            return torch.softmax((logits + gumbel) * inv_t, dim=1)
        # deterministic: the 1/tau scaling folded into the one matmul (no extra pass)
        logits = torch.addmm((e * e).sum(1) * -inv_t, flat, e.t(), alpha=2.0 * inv_t)
        return torch.softmax(logits, dim=1)

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        flat = _flat(z)
        w = self.weights(flat, noise=self.training or self.stochastic)
        s = w @ self.codebook.to(w.dtype)
        with torch.no_grad():
            usage = w.float().sum(0)
            idx = w.argmax(1)
        b, _, h, w_ = z.shape
        return BottleneckOutput(_unflat(s, z), z.new_zeros(()), usage, idx.reshape(b, h, w_))


class GaussianBottleneck(nn.Module):
    """VAE bottleneck (authors' ``VAELayer``, sizes derived from the latent grid).

    ``(B, D, H, W)`` -> conv 3x3/2 (D -> 128), ReLU, conv 3x3/2 (128 -> 256), ReLU, flatten ->
    ``mu``, ``log sigma^2`` (L each) -> ``z = mu + sigma * n`` (training or ``stochastic``; ``mu``
    otherwise) -> linear -> ``(256, H/4, W/4)`` -> transposed convs back to ``(D, H, W)``, tanh.
    Loss: ``kl_weight * KL``, KL summed over the L dimensions and averaged over the batch:
    ``KL = -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)``.
    """

    def __init__(self, dim: int, grid: tuple[int, int], latent: int = 20,
                 kl_weight: float = 2.56e-5) -> None:
        super().__init__()
        h, w = grid
        if h % 4 or w % 4:
            raise ValueError(f"VAE bottleneck needs a latent grid divisible by 4, got {grid}")
        self.kl_weight = float(kl_weight)
        self.stochastic = False
        self.small = (h // 4, w // 4)
        flat = 256 * self.small[0] * self.small[1]
        self.enc = nn.Sequential(
            nn.Conv2d(dim, 128, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
        )
        self.fc_mu = nn.Linear(flat, latent)
        self.fc_logvar = nn.Linear(flat, latent)
        self.fc_dec = nn.Linear(latent, flat)
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(128, dim, 3, stride=2, padding=1, output_padding=1), nn.Tanh(),
        )

    @staticmethod
    def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Batch-mean KL(N(mu, sigma^2) || N(0, 1)), summed over latent dimensions (nats)."""
        return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()

    def decode_latent(self, code: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` Gaussian code -> ``(B, D, H, W)`` decoder input."""
        x = self.fc_dec(code).reshape(code.shape[0], 256, *self.small)
        return self.dec(x)

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        x = self.enc(z)
        mu, logvar = self.fc_mu(x), self.fc_logvar(x)
        kl = self.kl_divergence(mu, logvar)
        code = mu
        if self.training or self.stochastic:
            code = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return BottleneckOutput(self.decode_latent(code), self.kl_weight * kl, kl=kl.detach())


BOTTLENECKS = {
    "ae": IdentityBottleneck,
    "vae": GaussianBottleneck,
    "vqvae": VectorQuantizer,
    "vqema": VectorQuantizerEMA,
    "vqdiff": GumbelSoftQuantizer,
}
