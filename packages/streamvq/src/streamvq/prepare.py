"""``prepare``: tractograms (or the authors' ``.pt``, or synthetic bundles) -> a dataset.

Per bundle: drop unusable streamlines (counted: < 2 points, NaN/inf, zero length), resample to
``points`` by arc length, apply the out-of-box policy (counted), orient, cut into groups of
``group_size`` (rule in :mod:`streamvq.grouping`). Then: seeded split by subject
(``val_fraction``), tract balancing of the training groups (down-sampling to the rarest tract),
normalisation to [-1, 1] with the global min/max of the training coordinates.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from streamvq.config import PrepareConfig
from streamvq.dataset import BundleDataset, SourceInfo
from streamvq.errors import StreamvqError
from streamvq.geometry import clean_streamlines, orient_bundle, resample_streamlines
from streamvq.grouping import Normalisation, balance_tracts, group_indices, split_subjects
from streamvq.space import ReferenceSpace, apply_box


class EmptyBundleError(StreamvqError):
    """Nothing of a bundle is left to group; ``counts`` says why."""

    def __init__(self, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.counts = counts


@dataclass(frozen=True, eq=False)
class BundleSource:
    """One bundle of one subject, in mm (RAS+)."""

    subject: str
    tract: str
    streamlines: Sequence[np.ndarray]
    space: ReferenceSpace | None
    path: str = ""


@dataclass(frozen=True, eq=False)
class GroupedBundle:
    """One bundle after cleaning, resampling, box policy, orientation and grouping."""

    groups: np.ndarray
    """(G, S, P, 3) mm."""
    index: np.ndarray
    """(G, S) position of each row in the source's streamline list."""
    counts: dict[str, int]


def group_bundle(
    streamlines: Sequence[np.ndarray],
    space: ReferenceSpace | None,
    config: PrepareConfig,
    rng: np.random.Generator,
    *,
    name: str = "bundle",
) -> GroupedBundle:
    """Clean, resample, box, orient and group one bundle (raises for an empty result)."""
    kept, kept_idx, clean = clean_streamlines(streamlines)
    counts = {"streamlines": len(streamlines), "too_short": clean.too_short,
              "non_finite": clean.non_finite, "zero_length": clean.zero_length}
    if clean.kept == 0:
        raise EmptyBundleError(
            f"{name}: empty bundle (of {len(streamlines)} streamlines, {clean.too_short} have < 2 "
            f"points, {clean.non_finite} NaN/inf, {clean.zero_length} zero length)", counts
        )
    res = resample_streamlines(kept, config.points)
    boxed, box_idx, box = apply_box(res, space, config.out_of_box)
    counts.update(outside_box=box.outside, dropped_box=box.dropped, clipped_box=box.clipped,
                  box_checked=int(box.checked))
    if len(boxed) == 0:
        raise EmptyBundleError(
            f"{name}: all {box.outside} streamlines leave the reference grid "
            f"{space.dimensions if space else ''}; use --out-of-box keep or clip", counts
        )
    oriented = orient_bundle(boxed)
    counts["flipped"] = int(oriented.flipped.sum())
    gidx = group_indices(len(boxed), config.group_size, rng)
    counts["groups"] = int(len(gidx))
    counts["small_bundle"] = int(len(boxed) < config.group_size)
    source_index = kept_idx[box_idx][gidx]
    return GroupedBundle(oriented.streamlines[gidx], source_index, counts)


def _sum_counts(items: list[dict[str, int]]) -> dict[str, int]:
    keys = sorted({k for d in items for k in d})
    return {k: int(sum(d.get(k, 0) for d in items)) for k in keys}


def assemble(
    groups_mm: list[np.ndarray],
    index: list[np.ndarray],
    infos: list[SourceInfo],
    config: PrepareConfig,
    rng: np.random.Generator,
    report: dict,
) -> BundleDataset:
    """Split by subject, balance, normalise; ``groups_mm[i]`` ``(G_i, S, P, 3)`` from source i."""
    tract_names = sorted({s.tract for s in infos})
    subject_ids = sorted({s.subject for s in infos})
    tmap = {t: i for i, t in enumerate(tract_names)}
    smap = {s: i for i, s in enumerate(subject_ids)}
    n_per = np.array([len(g) for g in groups_mm])
    src = np.repeat(np.arange(len(infos)), n_per)
    tract = np.array([tmap[infos[i].tract] for i in src], np.int64)
    subject = np.array([smap[infos[i].subject] for i in src], np.int64)
    val_subjects = split_subjects(subject_ids, config.val_fraction, rng)
    val = np.array([subject_ids[s] in val_subjects for s in subject], bool)
    keep = np.ones(len(src), bool)
    if config.balance:
        train_idx = np.flatnonzero(~val)
        kept = train_idx[balance_tracts(tract[train_idx], rng)]
        keep[train_idx] = False
        keep[kept] = True
    report = {**report, "groups_before_balance": int(len(src)),
              "groups_removed_by_balance": int((~keep).sum()),
              "val_subjects": sorted(val_subjects)}
    mm = np.concatenate(groups_mm)[keep]
    fit_on = mm[~val[keep]] if (~val[keep]).any() else mm
    norm = Normalisation.fit(fit_on)
    from streamvq.grouping import to_tensor_layout

    bundles = to_tensor_layout(norm.to_unit(mm))
    return BundleDataset(
        bundles=bundles, tract=tract[keep], subject=subject[keep], source=src[keep],
        val=val[keep], streamline_index=np.concatenate(index)[keep].astype(np.int64),
        tract_names=tract_names, subject_ids=subject_ids, sources=infos, norm=norm,
        report=report, config=asdict(config),
    )


def prepare_sources(sources: Sequence[BundleSource], config: PrepareConfig,
                    *, show_progress: bool = False) -> BundleDataset:
    """Build a dataset from in-memory bundles (see the module docstring).

    An empty bundle (nothing left after cleaning/box policy) is skipped and counted
    (``report["empty_bundles"]``); if every bundle is empty the call raises.
    """
    if not sources:
        raise StreamvqError("no input bundles")
    rng = np.random.default_rng(config.seed)
    groups, index, infos, counts, empty = [], [], [], [], []
    from medshared.training import progress

    for s in progress(sources, total=len(sources), desc="bundles", enabled=show_progress):
        name = s.path or f"{s.subject}/{s.tract}"
        try:
            gb = group_bundle(s.streamlines, s.space, config, rng, name=name)
        except EmptyBundleError as exc:
            warnings.warn(f"skipped {exc}", stacklevel=2)
            empty.append(name)
            counts.append(exc.counts)
            continue
        groups.append(gb.groups)
        index.append(gb.index)
        infos.append(SourceInfo(s.path, s.subject, s.tract, s.space, len(s.streamlines)))
        counts.append(gb.counts)
    if not groups:
        raise StreamvqError(
            f"all {len(empty)} input bundles are empty or outside their reference grid "
            "(see the warnings above; --out-of-box keep or clip keeps outside streamlines)"
        )
    report = _sum_counts(counts)
    report["bundles"] = len(infos)
    report["empty_bundles"] = len(empty)
    report["small_bundles"] = report.pop("small_bundle", 0)
    for key, what in (("too_short", "fewer than 2 points"), ("non_finite", "NaN/inf"),
                      ("zero_length", "zero length"), ("outside_box", "points outside the grid")):
        if report.get(key):
            action = "dropped" if key != "outside_box" else f"policy {config.out_of_box}"
            warnings.warn(f"{report[key]} streamlines with {what} ({action})", stacklevel=2)
    return assemble(groups, index, infos, config, rng, report)


def sources_from_files(
    paths: Sequence[str | Path], reference: str | Path | None = None
) -> list[BundleSource]:
    """Read bundle files; subject = parent folder name, tract = file stem.

    ``.tck`` files store no reference space: pass ``reference`` (a NIfTI, ``.trk`` or ``.trx``
    whose space they share), otherwise they are refused.
    """
    from medshared.io import read_streamlines

    ref_space = read_reference(reference) if reference is not None else None
    out = []
    for path in paths:
        p = Path(path)
        t = read_streamlines(p)
        space = ref_space
        if t.affine is not None and t.dimensions is not None:
            space = ReferenceSpace(np.asarray(t.affine), tuple(t.dimensions),
                                   tuple(t.voxel_sizes or (1.0, 1.0, 1.0)))
        elif space is None:
            raise StreamvqError(
                f"{p}: a .tck file has no reference space; pass --reference (a NIfTI, .trk or "
                ".trx in the same space)"
            )
        out.append(BundleSource(p.parent.name or "subject", p.stem, t.streamlines, space, str(p)))
    return out


def read_reference(path: str | Path) -> ReferenceSpace:
    """Reference space of a NIfTI image or a ``.trk``/``.trx`` file."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        if not p.is_file():
            raise StreamvqError(f"--reference {p}: no such file")
        try:
            img = nib.load(str(p))
        except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad files
            raise StreamvqError(f"--reference {p}: not a readable NIfTI ({exc})") from None
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
        return ReferenceSpace(np.asarray(img.affine, float),
                              tuple(int(d) for d in img.shape[:3]), zooms)  # type: ignore[arg-type]
    if name.endswith((".trk", ".trx")):
        from medshared.io import read_streamlines

        t = read_streamlines(p)
        return ReferenceSpace(np.asarray(t.affine), tuple(t.dimensions),  # type: ignore[arg-type]
                              tuple(t.voxel_sizes or (1.0, 1.0, 1.0)))
    raise StreamvqError(f"--reference {p}: expected a .nii/.nii.gz, .trk or .trx file")


def prepare_authors(path: str | Path, config: PrepareConfig) -> BundleDataset:
    """Dataset from the authors' ``.pt`` (already grouped and resampled; no reference space)."""
    from streamvq.authors import read_authors_pt

    entries = read_authors_pt(path)
    shapes = {e.streamlines.shape for e in entries}
    if len(shapes) != 1:
        raise StreamvqError(f"{path}: entries have different shapes {sorted(shapes)}")
    keyed: dict[tuple[str, str], list[np.ndarray]] = {}
    for e in entries:
        keyed.setdefault((e.subject, e.tract), []).append(e.streamlines)
    infos, groups, index = [], [], []
    for (subj, tract), items in keyed.items():
        g = np.stack(items)
        infos.append(SourceInfo(str(path), subj, tract, None, int(g.shape[0] * g.shape[1])))
        groups.append(g.astype(np.float64))
        index.append(np.full(g.shape[:2], -1, np.int64))
    rng = np.random.default_rng(config.seed)
    return assemble(groups, index, infos, config, rng, {"bundles": len(infos),
                                                        "entries": len(entries)})


def prepare_synthetic(n_subjects: int, streamlines: int | tuple[int, int],
                      config: PrepareConfig, seed: int = 0) -> BundleDataset:
    """Dataset of synthetic subjects (twelve tracts each, MNI152 1 mm space)."""
    from streamvq.synthetic import synthetic_dataset

    bundles = synthetic_dataset(n_subjects, streamlines, seed=seed)
    return prepare_sources(
        [BundleSource(b.subject, b.tract, b.streamlines, b.space, f"synthetic:{b.subject}/{b.tract}")
         for b in bundles], config)
