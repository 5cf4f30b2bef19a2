"""medshared.io.hdf5: named arrays + attributes round trip, atomic writes, errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from medshared.errors import AllocationError, MedsharedError
from medshared.io import Hdf5Content, read_hdf5, write_hdf5
from medshared.io.hdf5 import open_hdf5


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "velocity": rng.normal(size=(3, 4, 5, 6)).astype(np.float32),
        "mask": rng.random((4, 5, 6)) > 0.5,
        "labels": rng.integers(-5, 5, size=(7,), dtype=np.int64),
        "group/codes": rng.integers(0, 65535, size=(2, 3), dtype=np.uint16),
        "scalar": np.array(3.5),
    }


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_roundtrip(tmp_path, compression):
    arrays = _arrays()
    attrs = {"venc_m_s": 1.5, "name": "case 7", "n": 12, "flag": True, "shape": np.array([1, 2])}
    f = tmp_path / "data.h5"
    write_hdf5(f, arrays, attrs, compression=compression)
    got = read_hdf5(f)
    assert isinstance(got, Hdf5Content) and got.path == f
    assert sorted(got.arrays) == sorted(arrays)
    for k, v in arrays.items():
        assert got.arrays[k].dtype == v.dtype and got.arrays[k].shape == v.shape
        np.testing.assert_array_equal(got.arrays[k], v)
    assert got.attrs["venc_m_s"] == 1.5 and type(got.attrs["venc_m_s"]) is float
    assert got.attrs["name"] == "case 7" and got.attrs["n"] == 12 and got.attrs["flag"] is True
    np.testing.assert_array_equal(got.attrs["shape"], [1, 2])
    # independent check with h5py
    with h5py.File(f, "r") as fh:
        np.testing.assert_array_equal(fh["group/codes"][()], arrays["group/codes"])
        assert (fh["velocity"].compression == "gzip") == (compression == "gzip")


def test_read_subset_and_missing_name(tmp_path):
    f = tmp_path / "d.hdf5"
    write_hdf5(f, _arrays())
    got = read_hdf5(f, names=["mask", "/group/codes"])
    assert sorted(got.arrays) == ["group/codes", "mask"]
    with pytest.raises(MedsharedError, match=r"d\.hdf5: no dataset\(s\) \['nope'\]; available"):
        read_hdf5(f, names=["nope"])


def test_missing_wrong_extension_corrupt_truncated(tmp_path):
    with pytest.raises(MedsharedError, match=r"a\.h5: no such file"):
        read_hdf5(tmp_path / "a.h5")
    (tmp_path / "a.npz").write_bytes(b"")
    with pytest.raises(MedsharedError, match=r"a\.npz: wrong extension"):
        read_hdf5(tmp_path / "a.npz")
    with pytest.raises(MedsharedError, match="wrong extension"):
        write_hdf5(tmp_path / "a.npz", {"x": np.zeros(2)})
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 50)
    with pytest.raises(MedsharedError, match=r"junk\.h5: cannot read, file is corrupt"):
        read_hdf5(junk)
    good = tmp_path / "good.h5"
    write_hdf5(good, {"big": np.arange(200_000, dtype=np.float64)})
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MedsharedError, match=r"cut\.h5: cannot read"):
        read_hdf5(cut)


def test_nonfinite(tmp_path):
    f = tmp_path / "n.h5"
    write_hdf5(f, {"ok": np.ones(3), "bad": np.array([1.0, np.inf])})
    assert np.isinf(read_hdf5(f).arrays["bad"][1])
    with pytest.raises(MedsharedError, match=r"n\.h5:bad: 1 non-finite"):
        read_hdf5(f, allow_nonfinite=False)
    assert sorted(read_hdf5(f, ["ok"], allow_nonfinite=False).arrays) == ["ok"]


def test_unstorable_values_leave_nothing(tmp_path):
    f = tmp_path / "x.h5"
    write_hdf5(f, {"a": np.zeros(3)})
    before = f.read_bytes()
    with pytest.raises(MedsharedError, match="object dtype"):
        write_hdf5(f, {"a": np.array([{}, None], dtype=object)})
    with pytest.raises(MedsharedError, match=r"x\.h5: cannot write"):
        write_hdf5(f, {"a": np.ones(4)}, attrs={"bad": {"nested": 1}})  # fails midway
    with pytest.raises(MedsharedError, match="non-empty strings"):
        write_hdf5(f, {"": np.ones(2)})
    assert f.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


def test_failed_write_midway_keeps_previous(tmp_path, monkeypatch):
    f = tmp_path / "keep.h5"
    write_hdf5(f, {"a": np.arange(5)})
    before = f.read_bytes()
    real = h5py.File.create_dataset

    def boom(self, name, **kw):
        if name == "second":
            raise OSError("disk full")
        return real(self, name, **kw)

    monkeypatch.setattr(h5py.File, "create_dataset", boom, raising=False)
    with pytest.raises(MedsharedError, match=r"keep\.h5: cannot write \(disk full\)"):
        write_hdf5(f, {"first": np.ones(3), "second": np.ones(3)})
    assert f.read_bytes() == before
    assert [p.name for p in Path(tmp_path).iterdir()] == ["keep.h5"]


# ----------------------------------------------------------------------------- lazy reading


def test_open_hdf5_reads_frame_by_frame_without_loading_the_dataset(tmp_path, monkeypatch):
    import medshared.io._limits as limits

    u = np.random.default_rng(1).normal(size=(6, 8, 9, 10)).astype(np.float32)  # (T, X, Y, Z)
    f = tmp_path / "flow.h5"
    write_hdf5(f, {"u": u, "mask/seg": u[0] > 0}, {"venc": 1.5}, compression="gzip")
    frame_bytes = u[0].nbytes
    # memory for ~one frame only: frames read, the whole dataset is refused before allocating
    monkeypatch.setattr(limits, "available_memory", lambda: int(1.5 * frame_bytes / 0.9))
    with open_hdf5(f) as h:
        assert h.names == ["mask/seg", "u"] and "u" in h and h.attrs == {"venc": 1.5}
        ds = h["u"]
        assert ds.shape == u.shape and ds.dtype == np.float32 and len(ds) == 6
        for t in range(len(ds)):
            np.testing.assert_array_equal(ds[t], u[t])
        np.testing.assert_array_equal(ds[2, 1:4, ..., ::3], u[2, 1:4, ..., ::3])
        np.testing.assert_array_equal(ds[[0, 5], 0, 0], u[[0, 5], 0, 0])
        np.testing.assert_array_equal(np.asarray(h["mask/seg"]), u[0] > 0)
        with pytest.raises(AllocationError, match=r"flow\.h5:u: selection needs"):
            ds.read()
        with pytest.raises(MedsharedError, match=r"flow\.h5:u: bad index"):
            ds[7]
        with pytest.raises(MedsharedError, match=r"no dataset 'v'; available"):
            h["v"]
    with pytest.raises(MedsharedError, match="the file is closed"):
        ds[0]
    with pytest.raises(AllocationError, match="read slices with open_hdf5"):
        read_hdf5(f)


def test_declared_huge_dataset_is_refused_not_allocated(tmp_path, monkeypatch):
    import time

    import medshared.io._limits as limits

    monkeypatch.setattr(limits, "available_memory", lambda: 1 << 30)  # never touch real GiBs

    f = tmp_path / "claim.h5"
    with h5py.File(f, "w") as fh:  # 60000^3 float32 = 786 TiB declared; nothing stored
        fh.create_dataset("big", shape=(60000, 60000, 60000), dtype="f4", chunks=(1, 64, 64))
    assert f.stat().st_size < 100_000
    t0 = time.perf_counter()
    with pytest.raises(AllocationError, match=r"claim\.h5: 1 dataset\(s\) needs .*TiB"):
        read_hdf5(f)
    with open_hdf5(f) as h:  # a small slice of it is fine (fill value)
        assert h["big"][0, :2, :3].tolist() == [[0.0] * 3] * 2
        with pytest.raises(AllocationError, match=r"claim\.h5:big: selection"):
            h["big"][0]  # 13 GiB for one plane
    assert time.perf_counter() - t0 < 2.0


def test_open_hdf5_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.h5"):
        open_hdf5(tmp_path / "nothere.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(MedsharedError, match=r"bad\.h5: cannot read, file is corrupt"):
        open_hdf5(bad)
