"""Reading the authors' released dataset: a ``.pt`` list of ``(tensor, "subject__tract")``.

Their ``processed_tracts.pt`` is published in parts (``processed_tracts.pt_part_1`` ...
``_part_13``, byte chunks of one file). Each entry is a ``(64, 3, 64)`` tensor (streamlines,
xyz, points) in mm and a label ``"<subject>__<tract>"``. We read it with
``torch.load(weights_only=True)`` only: tensors, tuples, lists and strings load; anything that
would need arbitrary unpickling (their ``val_set.pt`` is a pickled ``torch.utils.data.Subset``,
a malicious file runs code) is refused with a clear error.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamvq.errors import StreamvqError


@dataclass(frozen=True)
class AuthorsEntry:
    """One entry of the authors' file."""

    streamlines: np.ndarray
    """(S, P, 3) float32, mm."""
    subject: str
    tract: str


def _part_files(p: Path) -> list[Path]:
    parts = sorted(
        p.parent.glob(p.name + "_part_*"),
        key=lambda q: int(m.group(1)) if (m := re.search(r"_part_(\d+)$", q.name)) else -1,
    )
    numbers = [int(re.search(r"_part_(\d+)$", q.name).group(1)) for q in parts  # type: ignore[union-attr]
               if re.search(r"_part_(\d+)$", q.name)]
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        raise StreamvqError(f"{p}: parts {numbers} are not numbered 1..{len(numbers)}")
    return parts


def read_authors_pt(path: str | Path) -> list[AuthorsEntry]:
    """Read the authors' ``.pt`` file (or its ``_part_N`` pieces when ``path`` is absent).

    Raises
    ------
    StreamvqError
        Naming the file: missing, needs unpickling (refused), or not a list of
        ``(tensor (S, 3, P), "subject__tract")`` pairs.
    """
    import torch

    p = Path(path)
    if p.is_file():
        source: io.BytesIO | Path = p
    else:
        parts = _part_files(p)
        if not parts:
            raise StreamvqError(f"{p}: no such file (nor {p.name}_part_1, _part_2, ...)")
        source = io.BytesIO(b"".join(q.read_bytes() for q in parts))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            data = torch.load(source, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"it references {found.group(1)}" if found else "it needs arbitrary unpickling"
        raise StreamvqError(
            f"{p}: refused: {what}; only lists of (tensor, 'subject__tract') pairs are read "
            "(torch.load weights_only=True)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise StreamvqError(f"{p}: not a readable torch file ({exc})") from None
    if not isinstance(data, list | tuple) or not data:
        raise StreamvqError(f"{p}: expected a non-empty list of (tensor, label) pairs, "
                            f"got {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        if not (isinstance(item, tuple | list) and len(item) == 2
                and isinstance(item[0], torch.Tensor) and isinstance(item[1], str)):
            raise StreamvqError(f"{p}: entry {i} is not a (tensor, 'subject__tract') pair")
        t, label = item
        if t.ndim != 3 or t.shape[1] != 3:
            raise StreamvqError(f"{p}: entry {i} ({label}) has shape {tuple(t.shape)}, "
                                "expected (streamlines, 3, points)")
        if "__" not in label:
            raise StreamvqError(f"{p}: entry {i} label {label!r} is not 'subject__tract'")
        subject, tract = label.split("__", 1)
        arr = t.detach().to(torch.float32).permute(0, 2, 1).contiguous().numpy()
        if not np.isfinite(arr).all():
            raise StreamvqError(f"{p}: entry {i} ({label}) contains NaN or inf")
        out.append(AuthorsEntry(arr, subject, tract))
    return out
