"""Datasets: the USEnhance 2023 layout, unpaired trainA/trainB folders, single folders, splits.

Layouts
-------
paired (USEnhance 2023)   ``<root>/<organ>/low_quality/*.png`` and ``<root>/<organ>/high_quality/*.png``,
                          pairs matched by file name
unpaired                  ``<root>/trainA/*`` (low quality) and ``<root>/trainB/*`` (high quality)
inference                 any folder of PNG/DICOM files, or one file

Images are handled as float32 arrays ``(Y, X)`` in [0, 1]; the networks see ``2 x - 1`` in
[-1, 1] with a channel axis, ``(C, Y, X)`` per sample.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medshared.errors import MissingExtraError
from usenhance.errors import UsenhanceError
from usenhance.imageio import ImageFrames, is_image_candidate, read_image

__all__ = [
    "ImageRecord",
    "PairRecord",
    "Split",
    "find_pairs",
    "find_unpaired",
    "list_images",
    "load_images",
    "pad_to_multiple",
    "split_pairs",
]

LOW, HIGH = "low_quality", "high_quality"


class PairRecord(NamedTuple):
    """One low/high pair of the paired layout (paths only; nothing read yet)."""

    organ: str
    name: str
    low: Path
    high: Path


class ImageRecord(NamedTuple):
    """One readable image: its path, its organ label and its first frame ``(Y, X)`` in [0, 1]."""

    path: Path
    organ: str
    image: np.ndarray


@dataclass(frozen=True)
class Split:
    """A train/validation/test split of pairs (each list sorted by organ, then name)."""

    train: list[PairRecord]
    val: list[PairRecord]
    test: list[PairRecord]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_candidate(p))


def find_pairs(root: str | Path) -> list[PairRecord]:
    """Find the pairs of a USEnhance-2023-style dataset.

    Parameters
    ----------
    root : str or Path
        Folder holding one sub-folder per organ, each with ``low_quality/`` and
        ``high_quality/`` (a root that itself holds the two folders counts as one organ named
        after the root).

    Returns
    -------
    list of PairRecord
        Sorted by organ then file name. Files present on one side only are reported in one
        warning and left out.
    """
    r = Path(root)
    if not r.is_dir():
        raise UsenhanceError(f"dataset {r}: not a folder")
    organs = [r] if (r / LOW).is_dir() else sorted(
        d for d in r.iterdir() if d.is_dir() and (d / LOW).is_dir() and (d / HIGH).is_dir()
    )
    if not organs:
        raise UsenhanceError(
            f"dataset {r}: no <organ>/{LOW} + <organ>/{HIGH} folders found (USEnhance 2023 layout)"
        )
    pairs: list[PairRecord] = []
    unmatched: list[str] = []
    for od in organs:
        if not (od / HIGH).is_dir():
            raise UsenhanceError(f"dataset {od}: has {LOW}/ but no {HIGH}/")
        lows = {p.name: p for p in _images_in(od / LOW)}
        highs = {p.name: p for p in _images_in(od / HIGH)}
        organ = od.name
        for name in sorted(lows.keys() & highs.keys()):
            pairs.append(PairRecord(organ, name, lows[name], highs[name]))
        unmatched += [f"{organ}/{LOW}/{n}" for n in sorted(lows.keys() - highs.keys())]
        unmatched += [f"{organ}/{HIGH}/{n}" for n in sorted(highs.keys() - lows.keys())]
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
        warnings.warn(f"dataset {r}: {len(unmatched)} file(s) without a partner skipped: {shown}",
                      stacklevel=2)
    if not pairs:
        raise UsenhanceError(f"dataset {r}: no low/high pairs with matching file names")
    return pairs


def find_unpaired(root: str | Path) -> tuple[list[Path], list[Path]]:
    """The ``trainA`` (low quality) and ``trainB`` (high quality) image lists of ``root``."""
    r = Path(root)
    a, b = r / "trainA", r / "trainB"
    if not (a.is_dir() and b.is_dir()):
        raise UsenhanceError(f"dataset {r}: expected trainA/ and trainB/ folders (unpaired layout)")
    la, lb = _images_in(a), _images_in(b)
    if not la or not lb:
        raise UsenhanceError(f"dataset {r}: trainA/ or trainB/ holds no PNG/DICOM images")
    return la, lb


def list_images(path: str | Path) -> list[Path]:
    """Every PNG/DICOM candidate in a folder (sorted, recursive), or the one file given."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise UsenhanceError(f"input {p}: no such file or folder")
    files = sorted(f for f in p.rglob("*") if f.is_file() and is_image_candidate(f))
    if not files:
        raise UsenhanceError(f"input {p}: no PNG or DICOM images in this folder")
    return files


def read_or_skip(paths: Iterable[Path]) -> tuple[list[ImageFrames], list[tuple[Path, str]]]:
    """Read every file; unreadable ones are returned as ``(path, reason)`` instead of raising."""
    good: list[ImageFrames] = []
    bad: list[tuple[Path, str]] = []
    for p in paths:
        try:
            good.append(read_image(p))
        except MissingExtraError:
            raise
        except (UsenhanceError, OSError) as exc:
            bad.append((p, str(exc)))
    return good, bad


def warn_skipped(bad: Sequence[tuple[Path, str]], what: str) -> None:
    """One warning per unreadable file and a count (nothing when ``bad`` is empty)."""
    for p, reason in bad:
        warnings.warn(f"skipped {p}: {reason}", stacklevel=2)
    if bad:
        warnings.warn(f"{len(bad)} unreadable {what} file(s) skipped", stacklevel=2)


def load_images(pairs: Sequence[PairRecord]) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Read the low and high image of every pair (first frame); unreadable pairs are skipped."""
    lows, highs, bad = [], [], []
    for pr in pairs:
        try:
            lo, hi = read_image(pr.low), read_image(pr.high)
        except MissingExtraError:
            raise
        except (UsenhanceError, OSError) as exc:
            bad.append((pr.low, str(exc)))
            continue
        lows.append(ImageRecord(pr.low, pr.organ, lo.frames[0]))
        highs.append(ImageRecord(pr.high, pr.organ, hi.frames[0]))
    warn_skipped(bad, "pair")
    if not lows:
        raise UsenhanceError("dataset: none of the pairs could be read")
    return lows, highs


def split_pairs(pairs: Sequence[PairRecord], fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                seed: int = 0) -> Split:
    """Seeded train/val/test split, stratified by organ.

    Within each organ the pairs are shuffled by ``numpy.random.default_rng((seed, organ index))``
    and cut at ``round(n * f_train)`` and ``round(n * (f_train + f_val))``.

    Parameters
    ----------
    pairs : sequence of PairRecord
        All pairs.
    fractions : tuple of float
        Train, validation and test fractions (non-negative, summing to 1).
    seed : int
        Split seed; the same seed and pairs give the same split.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise UsenhanceError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    organs = sorted({p.organ for p in pairs})
    out: tuple[list, list, list] = ([], [], [])
    for i, organ in enumerate(organs):
        group = sorted((p for p in pairs if p.organ == organ), key=lambda p: p.name)
        order = np.random.default_rng((int(seed), i)).permutation(len(group))
        n = len(group)
        a = int(round(n * f[0]))
        b = int(round(n * (f[0] + f[1])))
        for part, idx in zip(out, (order[:a], order[a:b], order[b:]), strict=True):
            part.extend(group[j] for j in sorted(idx))
    return Split(*out)


class Padded(NamedTuple):
    """An image padded to a multiple; ``crop`` recovers the original ``(Y, X)`` region."""

    image: np.ndarray
    crop: tuple[slice, slice]


def pad_to_multiple(image: np.ndarray, multiple: int) -> Padded:
    """Reflect-pad ``(Y, X)`` (or ``(..., Y, X)``) on the bottom/right up to a multiple.

    Example
    -------
    >>> import numpy as np
    >>> p = pad_to_multiple(np.ones((30, 45)), 16)
    >>> p.image.shape, p.image[p.crop].shape
    ((32, 48), (30, 45))
    """
    y, x = image.shape[-2:]
    py, px = (-y) % multiple, (-x) % multiple
    widths = [(0, 0)] * (image.ndim - 2) + [(0, py), (0, px)]
    mode = "symmetric" if min(y, x) < 2 else "reflect"
    return Padded(np.pad(image, widths, mode=mode), (slice(0, y), slice(0, x)))
