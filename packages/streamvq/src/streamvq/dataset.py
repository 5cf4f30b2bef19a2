"""The prepared dataset: bundle tensors + labels + normalisation + reference spaces, in HDF5.

File layout (``format = "streamvq-dataset/1"``)
------------------------------------------------
``bundles``            float32 ``(G, 3, S, P)`` normalised coordinates (see ``norm_lo/hi``)
``tract``              int32 ``(G,)`` index into ``tract_names``
``subject``            int32 ``(G,)`` index into ``subject_ids``
``source``             int32 ``(G,)`` index into the ``sources/`` records
``val``                uint8 ``(G,)`` 1 for the held-out (validation) subjects
``streamline_index``   int32 ``(G, S)`` position of every row in its source file (-1: unknown)
``tract_names``, ``subject_ids``  UTF-8 strings
``sources/affine``     float64 ``(F, 4, 4)`` voxel -> RAS+ mm (NaN when the source had none)
``sources/dimensions`` int32 ``(F, 3)``; ``sources/voxel_sizes`` float64 ``(F, 3)``
``sources/path``, ``sources/subject``, ``sources/tract`` strings; ``sources/n_streamlines``
root attributes: ``format``, ``norm_lo``, ``norm_hi`` (mm), ``points``, ``group_size``,
``report`` (JSON of the preparation counts), ``config`` (JSON of the PrepareConfig)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from streamvq.errors import StreamvqError
from streamvq.grouping import Normalisation
from streamvq.space import ReferenceSpace

FORMAT = "streamvq-dataset/1"


@dataclass(frozen=True, eq=False)
class SourceInfo:
    """One input bundle file (or one ``subject__tract`` entry of the authors' data)."""

    path: str
    subject: str
    tract: str
    space: ReferenceSpace | None
    n_streamlines: int


@dataclass(eq=False)
class BundleDataset:
    """Bundle tensors and everything needed to map them back to tractograms."""

    bundles: np.ndarray
    """(G, 3, S, P) float32, normalised units."""
    tract: np.ndarray
    subject: np.ndarray
    source: np.ndarray
    val: np.ndarray
    """(G,) bool, held-out subjects."""
    streamline_index: np.ndarray
    tract_names: list[str]
    subject_ids: list[str]
    sources: list[SourceInfo]
    norm: Normalisation
    report: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.bundles))

    def subset(self, mask: np.ndarray) -> BundleDataset:
        """The groups where ``mask`` is True (labels and sources shared)."""
        m = np.asarray(mask)
        return BundleDataset(
            self.bundles[m], self.tract[m], self.subject[m], self.source[m], self.val[m],
            self.streamline_index[m], self.tract_names, self.subject_ids, self.sources,
            self.norm, self.report, self.config,
        )

    @property
    def train(self) -> BundleDataset:
        """Training groups."""
        return self.subset(~self.val)

    @property
    def validation(self) -> BundleDataset:
        """Held-out groups."""
        return self.subset(self.val)


def _str_array(items: list[str]) -> np.ndarray:
    return np.array([s.encode("utf-8") for s in items], dtype=h5py.string_dtype("utf-8"))


def write_dataset(path: str | Path, ds: BundleDataset) -> None:
    """Write ``ds`` to an HDF5 file atomically (layout in the module docstring)."""
    from medshared.io import atomic_path

    p = Path(path)
    n_src = len(ds.sources)
    affine = np.full((n_src, 4, 4), np.nan)
    dims = np.zeros((n_src, 3), np.int32)
    vox = np.full((n_src, 3), np.nan)
    for i, s in enumerate(ds.sources):
        if s.space is not None:
            affine[i], dims[i], vox[i] = s.space.affine, s.space.dimensions, s.space.voxel_sizes
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset("bundles", data=ds.bundles.astype(np.float32), compression="gzip",
                          compression_opts=1, chunks=(1, *ds.bundles.shape[1:]) if len(ds) else None)
        fh["tract"] = ds.tract.astype(np.int32)
        fh["subject"] = ds.subject.astype(np.int32)
        fh["source"] = ds.source.astype(np.int32)
        fh["val"] = ds.val.astype(np.uint8)
        fh["streamline_index"] = ds.streamline_index.astype(np.int32)
        fh["tract_names"] = _str_array(ds.tract_names)
        fh["subject_ids"] = _str_array(ds.subject_ids)
        g = fh.create_group("sources")
        g["affine"], g["dimensions"], g["voxel_sizes"] = affine, dims, vox
        g["path"] = _str_array([s.path for s in ds.sources])
        g["subject"] = _str_array([s.subject for s in ds.sources])
        g["tract"] = _str_array([s.tract for s in ds.sources])
        g["n_streamlines"] = np.array([s.n_streamlines for s in ds.sources], np.int64)
        fh.attrs["format"] = FORMAT
        fh.attrs["norm_lo"] = ds.norm.lo
        fh.attrs["norm_hi"] = ds.norm.hi
        fh.attrs["group_size"] = int(ds.bundles.shape[2]) if ds.bundles.ndim == 4 else 0
        fh.attrs["points"] = int(ds.bundles.shape[3]) if ds.bundles.ndim == 4 else 0
        fh.attrs["report"] = json.dumps(ds.report)
        fh.attrs["config"] = json.dumps(ds.config)


def _strings(ds: Any) -> list[str]:
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in ds[()]]


def read_dataset(path: str | Path) -> BundleDataset:
    """Read a dataset written by :func:`write_dataset` (errors name the file)."""
    p = Path(path)
    if not p.is_file():
        raise StreamvqError(f"dataset {p}: no such file")
    try:
        with h5py.File(p, "r") as fh:
            if fh.attrs.get("format") != FORMAT:
                raise StreamvqError(
                    f"dataset {p}: not a streamvq dataset (format {fh.attrs.get('format')!r}); "
                    "make one with `streamvq prepare`"
                )
            g = fh["sources"]
            affine, dims, vox = g["affine"][()], g["dimensions"][()], g["voxel_sizes"][()]
            src_path, src_subj = _strings(g["path"]), _strings(g["subject"])
            src_tract, n_sl = _strings(g["tract"]), g["n_streamlines"][()]
            sources = []
            for i in range(len(src_path)):
                space = None
                if np.isfinite(affine[i]).all():
                    space = ReferenceSpace(affine[i], tuple(int(d) for d in dims[i]),
                                           tuple(float(v) for v in vox[i]))
                sources.append(SourceInfo(src_path[i], src_subj[i], src_tract[i], space,
                                          int(n_sl[i])))
            ds = BundleDataset(
                bundles=fh["bundles"][()].astype(np.float32),
                tract=fh["tract"][()].astype(np.int64),
                subject=fh["subject"][()].astype(np.int64),
                source=fh["source"][()].astype(np.int64),
                val=fh["val"][()].astype(bool),
                streamline_index=fh["streamline_index"][()].astype(np.int64),
                tract_names=_strings(fh["tract_names"]),
                subject_ids=_strings(fh["subject_ids"]),
                sources=sources,
                norm=Normalisation(float(fh.attrs["norm_lo"]), float(fh.attrs["norm_hi"])),
                report=json.loads(fh.attrs.get("report", "{}")),
                config=json.loads(fh.attrs.get("config", "{}")),
            )
    except StreamvqError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise StreamvqError(f"dataset {p}: cannot read ({exc})") from exc
    if ds.bundles.ndim != 4 or ds.bundles.shape[1] != 3:
        raise StreamvqError(f"dataset {p}: bundles have shape {ds.bundles.shape}, "
                            "expected (G, 3, S, P)")
    if not np.isfinite(ds.bundles).all():
        raise StreamvqError(f"dataset {p}: bundles contain NaN or inf")
    return ds


class TorchBundles:
    """A map-style torch dataset over ``(G, 3, S, P)`` bundles (one float32 tensor per item)."""

    def __init__(self, bundles: np.ndarray) -> None:
        import torch

        self.data = torch.from_numpy(np.ascontiguousarray(bundles, dtype=np.float32))

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, i: int) -> Any:
        return self.data[i]
