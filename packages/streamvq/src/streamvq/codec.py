"""Tractograms in, latents out, and back: encode, decode, interpolate (library functions).

A latent file is ``.npy`` (just the ``(G, D, h, w)`` float32 latents) or ``.h5`` (the latents plus
what a faithful decode needs: the model kind and latent shape, the source file's reference space,
the number of source streamlines and the row -> source-streamline index). Decoding an ``.h5``
returns one streamline per source streamline (rows that repeat a streamline, see
:mod:`streamvq.grouping`, are averaged); decoding an ``.npy`` returns every row (``G * S``
streamlines) and needs a reference for ``.trk``/``.trx`` output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamvq.config import PrepareConfig
from streamvq.errors import StreamvqError
from streamvq.grouping import from_tensor_layout, to_tensor_layout
from streamvq.space import ReferenceSpace
from streamvq.train import TrainedModel

LATENT_FORMAT = "streamvq-latents/1"


@dataclass(frozen=True, eq=False)
class LatentSet:
    """Latents of one bundle file."""

    latents: np.ndarray
    """(G, D, h, w) float32, the decoder input (after the bottleneck)."""
    kind: str
    streamline_index: np.ndarray | None
    """(G, S) source streamline of each row, or None (unknown)."""
    n_streamlines: int | None
    space: ReferenceSpace | None
    source: str = ""
    counts: dict | None = None


def _run(model: TrainedModel, fn, arrays: np.ndarray, batch_size: int) -> np.ndarray:  # noqa: ANN001
    import torch

    outs = []
    dev = next(model.model.parameters()).device  # type: ignore[attr-defined]
    with torch.no_grad():
        for i in range(0, len(arrays), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(arrays[i: i + batch_size], np.float32))
            outs.append(fn(x.to(dev)).float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def encode_bundles(model: TrainedModel, bundles_norm: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``(G, 3, S, P)`` normalised bundles -> ``(G, D, h, w)`` latents."""
    return _run(model, model.model.encode, bundles_norm, batch_size)  # type: ignore[attr-defined]


def decode_latents(model: TrainedModel, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``(G, D, h, w)`` latents -> ``(G, 3, S, P)`` normalised bundles."""
    shape = tuple(model.model.latent_shape)  # type: ignore[attr-defined]
    if latents.ndim != 4 or tuple(latents.shape[1:]) != shape:
        raise StreamvqError(
            f"latents have shape {tuple(latents.shape)}; the {model.kind} model in {model.path} "
            f"expects (G, {', '.join(map(str, shape))})"
        )
    if not np.isfinite(latents).all():
        raise StreamvqError("latents contain NaN or inf")
    return _run(model, model.model.decode, latents, batch_size)  # type: ignore[attr-defined]


def encode_file(
    model: TrainedModel,
    path: str | Path,
    *,
    reference: str | Path | None = None,
    config: PrepareConfig | None = None,
    batch_size: int = 64,
) -> LatentSet:
    """Encode one bundle file (``.trk``/``.tck``/``.trx``) with the model's normalisation."""
    from streamvq.prepare import group_bundle, sources_from_files

    cfg = config or PrepareConfig()
    mc = model.config
    cfg = PrepareConfig(points=mc.points, group_size=mc.streamlines, out_of_box=cfg.out_of_box,
                        seed=cfg.seed)
    src = sources_from_files([path], reference)[0]
    gb = group_bundle(src.streamlines, src.space, cfg, np.random.default_rng(cfg.seed),
                      name=str(path))
    bundles = to_tensor_layout(model.norm.to_unit(gb.groups))
    lat = encode_bundles(model, bundles, batch_size)
    return LatentSet(lat, model.kind, gb.index, len(src.streamlines), src.space, str(path),
                     gb.counts)


def write_latents(path: str | Path, ls: LatentSet) -> None:
    """Write ``.npy`` (latents only) or ``.h5`` (latents + metadata), atomically."""
    from medshared.io import atomic_path

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.save(fh, ls.latents.astype(np.float32))
        return
    if suffix not in (".h5", ".hdf5"):
        raise StreamvqError(f"latent output {p}: use a .npy or .h5 file name")
    import h5py

    with atomic_path(p) as tmp, h5py.File(tmp, "w") as fh:
        fh["latents"] = ls.latents.astype(np.float32)
        if ls.streamline_index is not None:
            fh["streamline_index"] = ls.streamline_index.astype(np.int64)
        if ls.space is not None:
            fh["affine"] = ls.space.affine
            fh["dimensions"] = np.asarray(ls.space.dimensions, np.int32)
            fh["voxel_sizes"] = np.asarray(ls.space.voxel_sizes, np.float64)
        fh.attrs["format"] = LATENT_FORMAT
        fh.attrs["kind"] = ls.kind
        fh.attrs["n_streamlines"] = -1 if ls.n_streamlines is None else int(ls.n_streamlines)
        fh.attrs["source"] = ls.source
        fh.attrs["counts"] = json.dumps(ls.counts or {})


def read_latents(path: str | Path) -> LatentSet:
    """Read a latent ``.npy`` or ``.h5`` (errors name the file)."""
    p = Path(path)
    if not p.is_file():
        raise StreamvqError(f"latent file {p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise StreamvqError(f"latent file {p}: not a readable .npy array ({exc})") from None
        return LatentSet(np.asarray(arr, np.float32), "", None, None, None, str(p))
    if suffix not in (".h5", ".hdf5"):
        raise StreamvqError(f"latent file {p}: expected .npy or .h5")
    import h5py

    try:
        with h5py.File(p, "r") as fh:
            if fh.attrs.get("format") != LATENT_FORMAT:
                raise StreamvqError(f"latent file {p}: not a streamvq latent file")
            lat = fh["latents"][()].astype(np.float32)
            idx = fh["streamline_index"][()] if "streamline_index" in fh else None
            space = None
            if "affine" in fh:
                space = ReferenceSpace(fh["affine"][()], tuple(int(d) for d in fh["dimensions"][()]),
                                       tuple(float(v) for v in fh["voxel_sizes"][()]))
            n = int(fh.attrs.get("n_streamlines", -1))
            kind = str(fh.attrs.get("kind", ""))
            source = str(fh.attrs.get("source", ""))
    except StreamvqError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise StreamvqError(f"latent file {p}: cannot read ({exc})") from None
    return LatentSet(lat, kind, idx, None if n < 0 else n, space, source)


def rows_to_streamlines(groups_mm: np.ndarray, index: np.ndarray | None,
                        n_streamlines: int | None) -> list[np.ndarray]:
    """``(G, S, P, 3)`` decoded rows -> list of ``(P, 3)`` streamlines.

    With an ``index`` the rows of one source streamline are averaged (its repeats) and the result
    follows the source order (streamlines dropped during preparation are absent); without, every
    row is returned.
    """
    rows = groups_mm.reshape(-1, *groups_mm.shape[2:])
    if index is None:
        return [r.astype(np.float32) for r in rows]
    flat = np.asarray(index).reshape(-1)
    ok = flat >= 0
    uniq, inv = np.unique(flat[ok], return_inverse=True)
    sums = np.zeros((len(uniq), *rows.shape[1:]))
    np.add.at(sums, inv, rows[ok])
    counts = np.bincount(inv, minlength=len(uniq)).astype(float)
    mean = sums / counts[:, None, None]
    return [m.astype(np.float32) for m in mean]


def write_tractogram(path: str | Path, streamlines: list[np.ndarray],
                     space: ReferenceSpace | None) -> None:
    """Write streamlines (RAS+ mm) in ``space`` through ``medshared.io.write_streamlines``."""
    from medshared.io import Tractogram, write_streamlines

    p = Path(path)
    ref = None
    if space is not None:
        ref = Tractogram([], affine=np.asarray(space.affine, float),
                         dimensions=tuple(space.dimensions), voxel_sizes=tuple(space.voxel_sizes))
    elif p.suffix.lower() in (".trk", ".trx"):
        raise StreamvqError(
            f"output {p}: {p.suffix} needs a reference space and the latents carry none; pass "
            "--reference or write .tck"
        )
    write_streamlines(p, streamlines, ref)


def decode_set(model: TrainedModel, ls: LatentSet, batch_size: int = 64) -> list[np.ndarray]:
    """Decode a :class:`LatentSet` to streamlines in mm (see :func:`rows_to_streamlines`)."""
    if ls.kind and ls.kind != model.kind:
        raise StreamvqError(
            f"latent file {ls.source}: was made by a {ls.kind} model; {model.path} holds a "
            f"{model.kind} model (decode with the model that encoded it)"
        )
    rec = decode_latents(model, ls.latents, batch_size)
    groups = model.norm.to_mm(from_tensor_layout(rec))
    return rows_to_streamlines(groups, ls.streamline_index, ls.n_streamlines)


def interpolate(model: TrainedModel, a: LatentSet, b: LatentSet, steps: int,
                batch_size: int = 64) -> list[list[np.ndarray]]:
    """Decode ``(1 - t) z_a + t z_b`` for ``t`` in ``linspace(0, 1, steps)``.

    ``z_a``/``z_b`` are the first group of each bundle (64 streamlines). Returns one list of
    ``(P, 3)`` mm streamlines per step.
    """
    if steps < 2:
        raise StreamvqError(f"--steps must be >= 2, got {steps}")
    za, zb = a.latents[:1], b.latents[:1]
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None, None, None]
    lat = (1 - t) * za + t * zb
    rec = decode_latents(model, lat.astype(np.float32), batch_size)
    groups = model.norm.to_mm(from_tensor_layout(rec))
    return [[s.astype(np.float32) for s in g] for g in groups]
