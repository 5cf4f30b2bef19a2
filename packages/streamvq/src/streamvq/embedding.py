"""2D embedding of bundle latents coloured by tract: t-SNE (scikit-learn, extra ``embed``) or PCA."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def embed_2d(latents: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """``(N, ...)`` latents -> ``(N, 2)`` coordinates and the method used (``tsne``/``pca``).

    ``auto`` uses t-SNE when scikit-learn is installed (and N > 5), else PCA (SVD, numpy).
    """
    x = np.asarray(latents, dtype=np.float64).reshape(len(latents), -1)
    x = x - x.mean(axis=0)
    if method in ("auto", "tsne"):
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            if method == "tsne":
                from streamvq.errors import StreamvqError

                raise StreamvqError(
                    't-SNE needs scikit-learn: pip install "streamvq[embed]"'
                ) from None
        else:
            if len(x) > 5:
                perplexity = float(min(30.0, (len(x) - 1) / 3))
                y = TSNE(2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
                return y, "tsne"
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T, "pca"


def plot_embedding(coords: dict[str, np.ndarray], labels: Sequence[str], path: str | Path,
                   method: str) -> None:
    """PNG with one panel per model, points coloured by tract label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    lab = np.asarray(labels)
    fig, axes = plt.subplots(1, len(coords), figsize=(3.2 * len(coords), 3.4), squeeze=False)
    for ax, (model, y) in zip(axes[0], coords.items(), strict=True):
        for k, n in enumerate(names):
            sel = lab == n
            ax.scatter(y[sel, 0], y[sel, 1], s=8, color=cmap(k), label=n)
        ax.set_title(f"{model} ({method})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
