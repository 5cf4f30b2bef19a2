"""Latent perturbation analysis (the paper's Sec. 3.3).

Where eps enters: **after the bottleneck**, as in the authors' ``compute_latent_pertubations.py``:
``decode(q(z) + eps)`` with the same scalar added to every latent entry (for the VAE, to the
bottleneck's output, the decoder input). We sweep eps with both signs and score the perturbed
decode against the unperturbed decode with BUAN (normalised threshold) and MDF (mm), averaged
over the two signs and over the bundles given. Since the models' latents have different scales,
the table also reports eps relative to the standard deviation of each model's latents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamvq.codec import decode_latents, encode_bundles
from streamvq.grouping import Normalisation, from_tensor_layout

DEFAULT_EPS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class PerturbRow:
    """One (model, eps) cell."""

    model: str
    eps: float
    eps_rel: float
    buan: float
    mdf_mm: float


def perturbation_sweep(
    models: Mapping[str, object],
    bundles_norm: np.ndarray,
    norm: Normalisation,
    eps_values: Sequence[float] = DEFAULT_EPS,
    buan_threshold: float = 0.05,
) -> list[PerturbRow]:
    """Perturb every latent entry by ``+-eps`` and score the decodes (see the module doc)."""
    from streamvq.buan import adjacency, centroids

    rows = []
    for name, model in models.items():
        lat = encode_bundles(model, bundles_norm)
        base = from_tensor_layout(decode_latents(model, lat))
        sd = float(lat.std()) or 1.0
        base_c = [centroids(b) for b in base]  # clustered once per model, not per eps and sign
        for eps in eps_values:
            b_vals, m_vals = [], []
            for sign in (1.0, -1.0):
                pert = from_tensor_layout(decode_latents(model, (lat + sign * eps).astype(np.float32)))
                m_vals.append(float(np.linalg.norm(norm.to_mm(pert) - norm.to_mm(base),
                                                   axis=-1).mean()))
                b_vals.extend(adjacency(base_c[i], centroids(pert[i]), [buan_threshold])[0]
                              for i in range(len(base)))
            rows.append(PerturbRow(name, float(eps), float(eps) / sd, float(np.mean(b_vals)),
                                   float(np.mean(m_vals))))
    return rows


def format_sweep(rows: Sequence[PerturbRow]) -> str:
    """Text table: one line per (model, eps)."""
    lines = [f"{'model':8s} {'eps':>6s} {'eps/sd':>8s} {'BUAN@0.05norm':>14s} {'MDF mm':>8s}"]
    lines += [f"{r.model:8s} {r.eps:6.3g} {r.eps_rel:8.3g} {r.buan:14.4f} {r.mdf_mm:8.3f}"
              for r in rows]
    return "\n".join(lines)


def plot_sweep(rows: Sequence[PerturbRow], path: str | Path) -> None:
    """Write a PNG: BUAN and MDF of the perturbed decode versus eps, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for model in dict.fromkeys(r.model for r in rows):
        rr = [r for r in rows if r.model == model]
        eps = [r.eps for r in rr]
        axes[0].plot(eps, [r.buan for r in rr], marker="o", label=model)
        axes[1].plot(eps, [r.mdf_mm for r in rr], marker="o", label=model)
    for ax, title in zip(axes, ("BUAN (0.05 normalised) vs unperturbed", "MDF (mm) vs unperturbed"),
                         strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("eps added to every latent entry")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
