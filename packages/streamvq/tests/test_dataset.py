import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from medshared.io import read_streamlines, write_streamlines
from streamvq.authors import read_authors_pt
from streamvq.config import PrepareConfig
from streamvq.dataset import read_dataset, write_dataset
from streamvq.errors import StreamvqError
from streamvq.prepare import (
    BundleSource,
    prepare_authors,
    prepare_sources,
    prepare_synthetic,
    sources_from_files,
)
from streamvq.synthetic import MNI_1MM, synthetic_bundle


def _dipy_file(name: str) -> Path:
    import dipy

    return Path(dipy.__file__).parent / "data" / "files" / name


@pytest.fixture(scope="module")
def minimal_bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mb")
    with zipfile.ZipFile(_dipy_file("minimal_bundles.zip")) as z:
        z.extractall(folder)
    return sorted(folder.glob("sub_*/*.trk"))


def test_synthetic_dataset_round_trip(tmp_path):
    ds = prepare_synthetic(4, (30, 150), PrepareConfig(val_fraction=0.25), seed=1)
    assert ds.bundles.shape[1:] == (3, 64, 64)
    assert ds.bundles.min() >= -1.0 - 1e-6 and ds.bundles.max() <= 1.0 + 1e-6
    assert len(ds.tract_names) == 12 and len(ds.subject_ids) == 4
    # split by subject: no subject on both sides; one of four held out
    train_subj, val_subj = set(ds.subject[~ds.val]), set(ds.subject[ds.val])
    assert not train_subj & val_subj and len(val_subj) == 1
    # balanced training tracts
    counts = np.bincount(ds.tract[~ds.val], minlength=12)
    assert counts.min() == counts.max() > 0
    write_dataset(tmp_path / "d.h5", ds)
    back = read_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(back.bundles, ds.bundles)
    np.testing.assert_array_equal(back.streamline_index, ds.streamline_index)
    assert back.tract_names == ds.tract_names and back.subject_ids == ds.subject_ids
    assert back.norm == ds.norm
    np.testing.assert_array_equal(back.sources[0].space.affine, MNI_1MM.affine)
    assert back.sources[0].space.dimensions == (182, 218, 182)


def test_bundles_map_back_to_mm(tmp_path):
    rng = np.random.default_rng(0)
    sl = synthetic_bundle("CST_L", 64, rng)
    ds = prepare_sources([BundleSource("s1", "CST_L", sl, MNI_1MM, "x")],
                         PrepareConfig(val_fraction=0.0))
    from streamvq.geometry import resample_streamlines
    from streamvq.grouping import from_tensor_layout

    mm = ds.norm.to_mm(from_tensor_layout(ds.bundles))[0]  # (64, 64, 3)
    ref = resample_streamlines(sl, 64)
    for row, src in zip(mm, ds.streamline_index[0], strict=True):
        r = ref[src]
        d = min(np.abs(row - r).max(), np.abs(row - r[::-1]).max())  # orientation may flip
        assert d < 1e-3


def test_reliability_counts():
    good = synthetic_bundle("AF_L", 70, np.random.default_rng(0))
    bad = [*good, np.zeros((1, 3), np.float32), np.full((5, 3), np.nan, np.float32),
           np.zeros((4, 3), np.float32)]
    far = [s + 1000.0 for s in synthetic_bundle("MCP", 10, np.random.default_rng(1))]
    srcs = [BundleSource("s1", "AF_L", bad + far[:3], MNI_1MM, "a"),
            BundleSource("s1", "MCP", far, MNI_1MM, "b"),
            BundleSource("s1", "UF_L", [], MNI_1MM, "c")]
    with pytest.warns(UserWarning) as record:
        ds = prepare_sources(srcs, PrepareConfig(val_fraction=0.0))
    r = ds.report
    assert (r["too_short"], r["non_finite"], r["zero_length"]) == (1, 1, 1)
    assert r["outside_box"] == 13 and r["dropped_box"] == 13
    assert r["empty_bundles"] == 2  # the all-outside MCP and the empty UF_L
    text = " ".join(str(w.message) for w in record)
    assert "1 streamlines with fewer than 2 points (dropped)" in text and "skipped c" in text
    with pytest.warns(UserWarning):
        clipped = prepare_sources(srcs[:2], PrepareConfig(val_fraction=0.0, out_of_box="clip"))
    assert clipped.report["clipped_box"] == 13 and clipped.report["empty_bundles"] == 0
    with pytest.raises(StreamvqError, match="input bundles are empty"), pytest.warns(UserWarning):
        prepare_sources(srcs[2:], PrepareConfig())


def test_dipy_minimal_bundles_small_bundle_rule(minimal_bundles):
    assert len(minimal_bundles) == 15
    srcs = sources_from_files(minimal_bundles)
    ds = prepare_sources(srcs, PrepareConfig(val_fraction=0.2, balance=False))
    assert len(ds) == 15 and ds.report["small_bundles"] == 15
    assert ds.report["box_checked"] == 0  # their 1x1x1 grid carries no box
    counts = np.bincount(ds.streamline_index[0], minlength=50)
    assert counts.min() == 1 and counts.max() == 2
    assert sorted(ds.tract_names) == ["AF_L", "CC_ForcepsMajor", "CST_R"]
    assert int(ds.val.sum()) == 3  # one subject of five


def test_tck_without_reference_is_refused(tmp_path):
    sl = synthetic_bundle("AF_L", 5, np.random.default_rng(0))
    (tmp_path / "s1").mkdir()
    write_streamlines(tmp_path / "s1" / "AF_L.tck", sl)
    with pytest.raises(StreamvqError, match="no reference space; pass --reference"):
        sources_from_files([tmp_path / "s1" / "AF_L.tck"])
    trk = tmp_path / "ref.trk"
    from medshared.io import Tractogram

    write_streamlines(trk, sl, Tractogram([], MNI_1MM.affine, MNI_1MM.dimensions,
                                          MNI_1MM.voxel_sizes))
    src = sources_from_files([tmp_path / "s1" / "AF_L.tck"], reference=trk)[0]
    assert src.space.dimensions == (182, 218, 182) and src.subject == "s1"


def test_tracks300_out_of_grid_is_counted():
    t = read_streamlines(_dipy_file("tracks300.trk"))
    from streamvq.space import ReferenceSpace

    space = ReferenceSpace(t.affine, t.dimensions, t.voxel_sizes)
    src = [BundleSource("s", "all", t.streamlines, space, "tracks300.trk")]
    with pytest.raises(StreamvqError, match="input bundles are empty"), pytest.warns(UserWarning):
        prepare_sources(src, PrepareConfig())
    with pytest.warns(UserWarning, match="outside the grid"):
        kept = prepare_sources(src, PrepareConfig(out_of_box="keep"))
    assert kept.report["outside_box"] > 250 and len(kept) == 5


def _authors_file(path: Path, n_subjects: int = 3) -> None:
    rng = np.random.default_rng(0)
    items = []
    for s in range(n_subjects):
        for tract in ("MCP", "CST_L"):
            for _ in range(2):
                items.append((torch.from_numpy(rng.normal(0, 30, (64, 3, 64)).astype(np.float32)),
                              f"sub-{s}__{tract}"))
    torch.save(items, path)


def test_authors_pt_read_and_parts(tmp_path):
    p = tmp_path / "processed_tracts.pt"
    _authors_file(p)
    entries = read_authors_pt(p)
    assert len(entries) == 12 and entries[0].streamlines.shape == (64, 64, 3)
    assert entries[0].subject == "sub-0" and entries[0].tract == "MCP"
    raw = p.read_bytes()
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(raw), 5000), 1):
        (parts / f"processed_tracts.pt_part_{i}").write_bytes(raw[start:start + 5000])
    again = read_authors_pt(parts / "processed_tracts.pt")
    np.testing.assert_array_equal(again[5].streamlines, entries[5].streamlines)
    ds = prepare_authors(p, PrepareConfig(val_fraction=0.34))
    assert len(ds.train) == 8 and len(ds.validation) == 4
    assert ds.sources[0].space is None


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/streamvq-test-pwned")


@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_is_refused(tmp_path, protocol):
    MARKER.unlink(missing_ok=True)
    p = tmp_path / "evil.pt"
    with open(p, "wb") as fh:
        pickle.dump([(_Evil(), "sub__x")], fh, protocol=protocol)
    with pytest.raises(StreamvqError, match="refused") as err:
        read_authors_pt(p)
    if protocol == 2:
        assert "system" in str(err.value)
    assert not MARKER.exists()


def test_authors_pt_wrong_structure(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(2)}, p)
    with pytest.raises(StreamvqError, match="list of"):
        read_authors_pt(p)
    torch.save([(torch.zeros(64, 4, 64), "a__b")], p)
    with pytest.raises(StreamvqError, match="shape"):
        read_authors_pt(p)
    with pytest.raises(StreamvqError, match="no such file"):
        read_authors_pt(tmp_path / "missing.pt")


def test_read_dataset_errors(tmp_path):
    with pytest.raises(StreamvqError, match="no such file"):
        read_dataset(tmp_path / "nope.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(StreamvqError, match="cannot read"):
        read_dataset(tmp_path / "bad.h5")
