"""Bundles -> fixed-size groups, tract balancing, subject split, coordinate normalisation.

The bundle tensor layout is ``(3, S, P)``: xyz as channels, S streamlines (rows), P points
(columns), as in the authors' code (their stored ``(S, 3, P)`` permuted to ``(3, S, P)``).

Rule for a bundle of ``M`` streamlines (documented, seeded)
------------------------------------------------------------
The streamlines are shuffled with the seed, then cut into ``ceil(M / S)`` groups of ``S``:

- ``M >= S``: the last, incomplete group (``r = M mod S`` streamlines) is completed with
  ``S - r`` streamlines drawn without replacement from the rest of the bundle; every streamline
  appears in at least one group, at most ``S - r`` appear twice.
- ``M < S`` (dipy's sample bundles have 50): one group; every streamline is repeated
  ``S // M`` times and ``S mod M`` of them, drawn without replacement, once more.
- ``M == 0``: an error (an empty bundle cannot be encoded).

Each group keeps the index of its streamlines in the source bundle, so a decode can map the
``S`` outputs back to the ``M`` inputs (duplicates removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamvq.errors import StreamvqError


def group_indices(m: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices ``(G, size)`` into a bundle of ``m`` streamlines (rule in the module docstring)."""
    if m <= 0:
        raise StreamvqError("empty bundle: no streamline left to group")
    if size <= 0:
        raise StreamvqError(f"group size must be positive, got {size}")
    perm = rng.permutation(m)
    if m < size:
        extra = rng.choice(m, size % m, replace=False)
        return np.concatenate([np.tile(perm, size // m), perm[extra]])[None, :]
    n_groups = -(-m // size)
    r = m - (n_groups - 1) * size
    if r == size:
        return perm.reshape(n_groups, size)
    tail = perm[(n_groups - 1) * size:]
    pool = perm[: (n_groups - 1) * size]
    fill = rng.choice(pool, size - r, replace=False)
    full = perm[: (n_groups - 1) * size].reshape(n_groups - 1, size)
    return np.concatenate([full, np.concatenate([tail, fill])[None]], axis=0)


def to_tensor_layout(groups: np.ndarray) -> np.ndarray:
    """``(G, S, P, 3)`` streamline groups -> ``(G, 3, S, P)`` bundle tensors (float32)."""
    return np.ascontiguousarray(np.moveaxis(groups, -1, 1), dtype=np.float32)


def from_tensor_layout(tensors: np.ndarray) -> np.ndarray:
    """``(G, 3, S, P)`` bundle tensors -> ``(G, S, P, 3)`` streamline groups."""
    return np.moveaxis(np.asarray(tensors), 1, -1)


def balance_tracts(tract: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a subset with the same number of groups for every tract (down-sampling).

    Parameters
    ----------
    tract : (G,) int array
        Tract id of every group.

    Returns
    -------
    (K,) sorted int array of kept group indices; ``K = n_tracts * min count``.
    """
    tract = np.asarray(tract)
    if len(tract) == 0:
        return np.zeros(0, np.int64)
    ids, counts = np.unique(tract, return_counts=True)
    keep = int(counts.min())
    order = rng.permutation(len(tract))
    shuffled = tract[order]
    # rank of each group among the groups of its tract, in shuffled order
    sort = np.argsort(shuffled, kind="stable")
    first = np.searchsorted(shuffled[sort], ids)
    rank = np.empty(len(tract), np.int64)
    rank[sort] = np.arange(len(tract)) - np.repeat(first, counts)
    return np.sort(order[rank < keep])


def split_subjects(
    subjects: Sequence[str], val_fraction: float, rng: np.random.Generator
) -> frozenset[str]:
    """Seeded choice of the validation subjects (``round(fraction * n)``, at least one of two+).

    Returns the set of validation subject ids; every other subject is for training.
    """
    unique = sorted(set(subjects))
    if not 0.0 <= val_fraction < 1.0:
        raise StreamvqError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0 or len(unique) < 2:
        return frozenset()
    n_val = min(max(1, round(val_fraction * len(unique))), len(unique) - 1)
    return frozenset(unique[i] for i in rng.permutation(len(unique))[:n_val])


@dataclass(frozen=True)
class Normalisation:
    """Global min/max scaling of coordinates to [-1, 1] (one scalar pair, as the authors do).

    ``x_norm = 2 (x - lo) / (hi - lo) - 1`` with ``lo``/``hi`` the minimum/maximum coordinate
    (over all axes, mm) of the training data.
    """

    lo: float
    hi: float

    @classmethod
    def fit(cls, bundles_mm: np.ndarray) -> Normalisation:
        """Fit to an array of coordinates in mm (any shape)."""
        x = np.asarray(bundles_mm)
        if x.size == 0:
            raise StreamvqError("cannot fit the normalisation: no coordinates")
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            raise StreamvqError("cannot fit the normalisation: all coordinates are equal")
        return cls(lo, hi)

    @property
    def mm_per_unit(self) -> float:
        """mm corresponding to one normalised unit (``(hi - lo) / 2``)."""
        return (self.hi - self.lo) / 2.0

    def to_unit(self, x_mm: np.ndarray) -> np.ndarray:
        """mm -> normalised units."""
        return 2.0 * (np.asarray(x_mm) - self.lo) / (self.hi - self.lo) - 1.0

    def to_mm(self, x_unit: np.ndarray) -> np.ndarray:
        """Normalised units -> mm."""
        return (np.asarray(x_unit) + 1.0) * (self.hi - self.lo) / 2.0 + self.lo
