"""medshared.io.streamlines: .trk/.tck/.trx round trips, wheel files, dipy agreement, errors."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medshared.errors import MedsharedError, MissingExtraError
from medshared.io import Tractogram, read_nifti, read_streamlines, write_nifti, write_streamlines

NIB_DATA = Path(str(importlib.resources.files("nibabel") / "tests" / "data"))
OBLIQUE = np.array(
    [[0.0, -1.2, 0.1, 40.0], [1.1, 0.0, 0.0, -30.0], [0.0, 0.2, 2.0, 5.0], [0, 0, 0, 1]]
)


def _has_trx() -> bool:
    try:
        import trx.trx_file_memmap  # noqa: F401
    except ImportError:
        return False
    return True


FORMATS = [
    ".trk",
    ".tck",
    pytest.param(
        ".trx", marks=pytest.mark.skipif(not _has_trx(), reason="trx-python not installed")
    ),
]


def random_streamlines(n: int = 25, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        steps = rng.normal(size=(int(rng.integers(2, 40)), 3)).astype(np.float32)
        out.append(np.cumsum(steps, axis=0) + rng.uniform(-50, 50, size=3).astype(np.float32))
    return out


def reference_nifti(tmp_path: Path) -> Path:
    f = tmp_path / "ref.nii.gz"
    write_nifti(f, np.zeros((30, 40, 20), np.uint8), OBLIQUE)
    return f


def assert_same_streamlines(a, b, atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == np.float32 and x.shape == y.shape
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


@pytest.mark.parametrize("suffix", FORMATS)
def test_roundtrip_keeps_points_and_space(tmp_path, suffix):
    sl = random_streamlines()
    ref = read_nifti(reference_nifti(tmp_path))
    out = tmp_path / f"bundle{suffix}"
    write_streamlines(out, sl, reference=ref)
    t = read_streamlines(out)
    assert isinstance(t, Tractogram) and t.path == out
    # trk stores voxel-mm coordinates: float32 RAS -> voxmm -> RAS costs a few ulps
    assert_same_streamlines(t.streamlines, sl, atol=1e-4 if suffix == ".trk" else 0.0)
    if suffix == ".tck":
        assert t.affine is None and t.dimensions is None
    else:
        np.testing.assert_allclose(t.affine, OBLIQUE, atol=1e-6)
        assert t.dimensions == (30, 40, 20)
        assert t.voxel_sizes == pytest.approx(np.sqrt((OBLIQUE[:3, :3] ** 2).sum(0)), rel=1e-6)
        # the read tractogram is itself a valid reference: the space survives a second trip
        again = tmp_path / f"again{suffix}"
        write_streamlines(again, t.streamlines, reference=t)
        t2 = read_streamlines(again)
        np.testing.assert_allclose(t2.affine, t.affine, atol=1e-6)
        assert t2.dimensions == t.dimensions
        assert_same_streamlines(t2.streamlines, t.streamlines, atol=1e-4)


@pytest.mark.parametrize("suffix", FORMATS)
def test_empty_tractogram(tmp_path, suffix):
    out = tmp_path / f"empty{suffix}"
    write_streamlines(out, [], reference=reference_nifti(tmp_path))
    assert read_streamlines(out).streamlines == []


def test_nibabel_standard_files_agree_across_formats(tmp_path):
    # standard.trk (RAS), standard.LPS.trk and standard.tck hold the same streamlines in RAS+ mm
    trk = read_streamlines(NIB_DATA / "standard.trk")
    lps = read_streamlines(NIB_DATA / "standard.LPS.trk")
    tck = read_streamlines(NIB_DATA / "standard.tck")
    assert len(trk.streamlines) == 120
    assert trk.dimensions == (4, 5, 7) and trk.voxel_sizes == (1.0, 3.0, 2.0)
    assert_same_streamlines(lps.streamlines, trk.streamlines, atol=1e-5)
    assert_same_streamlines(tck.streamlines, trk.streamlines, atol=1e-5)
    ref = nib.streamlines.load(NIB_DATA / "standard.trk")
    assert_same_streamlines(trk.streamlines, list(ref.streamlines))
    # and it round-trips, LPS file included (written back as RAS-ordered voxel space of LPS ref)
    out = tmp_path / "lps_copy.trk"
    write_streamlines(out, lps.streamlines, reference=lps)
    back = read_streamlines(out)
    np.testing.assert_allclose(back.affine, lps.affine)
    assert_same_streamlines(back.streamlines, lps.streamlines, atol=1e-5)


def test_dipy_tracks300_matches_dipy_loader(tmp_path):
    pytest.importorskip("dipy")
    from dipy.io.streamline import load_tractogram

    src = Path(str(importlib.resources.files("dipy") / "data" / "files" / "tracks300.trk"))
    t = read_streamlines(src)
    sft = load_tractogram(str(src), "same", bbox_valid_check=False)
    sft.to_rasmm()
    assert_same_streamlines(t.streamlines, list(sft.streamlines), atol=1e-5)
    np.testing.assert_allclose(t.affine, sft.affine)
    assert t.dimensions == tuple(int(d) for d in sft.dimensions)
    out = tmp_path / "tracks300_copy.trk"
    write_streamlines(out, t.streamlines, reference=t)
    back = load_tractogram(str(out), "same", bbox_valid_check=False)
    back.to_rasmm()
    assert_same_streamlines(list(back.streamlines), t.streamlines, atol=1e-4)


# ----------------------------------------------------------------------------- errors


def test_missing_and_wrong_extension(tmp_path):
    with pytest.raises(MedsharedError, match=r"none\.trk: no such file"):
        read_streamlines(tmp_path / "none.trk")
    f = tmp_path / "x.vtk"
    f.write_bytes(b"")
    with pytest.raises(MedsharedError, match=r"x\.vtk: wrong extension"):
        read_streamlines(f)
    with pytest.raises(MedsharedError, match="wrong extension"):
        write_streamlines(f, random_streamlines(2))


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("keep", [0.05, 0.5, 0.97])
def test_truncated(tmp_path, suffix, keep):
    good = tmp_path / f"good{suffix}"
    write_streamlines(good, random_streamlines(), reference=reference_nifti(tmp_path))
    raw = good.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(MedsharedError, match=rf"cut\{suffix}: (cannot read|truncated)"):
        read_streamlines(bad)


def test_trk_cut_at_streamline_boundary_is_detected(tmp_path):
    sl = random_streamlines(5)
    good = tmp_path / "good.trk"
    write_streamlines(good, sl, reference=reference_nifti(tmp_path))
    raw = good.read_bytes()
    last = 4 + 12 * len(sl[-1])  # int32 count + N float32 xyz
    (tmp_path / "cut.trk").write_bytes(raw[: len(raw) - last])
    with pytest.raises(
        MedsharedError, match=r"cut\.trk: truncated \(4 streamlines read, header announces 5\)"
    ):
        read_streamlines(tmp_path / "cut.trk")


def test_garbage(tmp_path):
    for suffix in (".trk", ".tck"):
        f = tmp_path / f"junk{suffix}"
        f.write_bytes(b"garbage" * 100)
        with pytest.raises(MedsharedError, match=rf"junk\{suffix}: cannot read"):
            read_streamlines(f)


def test_nonfinite(tmp_path):
    sl = random_streamlines(3)
    sl[1][2, 0] = np.nan
    f = tmp_path / "nan.tck"
    with pytest.raises(MedsharedError, match=r"nan\.tck: 1 non-finite"):
        write_streamlines(f, sl)
    write_streamlines(f, sl, allow_nonfinite=True)
    assert np.isnan(read_streamlines(f).streamlines[1][2, 0])
    with pytest.raises(MedsharedError, match=r"nan\.tck: 1 non-finite"):
        read_streamlines(f, allow_nonfinite=False)


def test_bad_streamline_shapes_and_reference(tmp_path):
    f = tmp_path / "s.trk"
    with pytest.raises(MedsharedError, match=r"streamline 1 has shape \(4, 2\)"):
        write_streamlines(
            f, [np.zeros((3, 3)), np.zeros((4, 2))], reference=reference_nifti(tmp_path)
        )
    with pytest.raises(MedsharedError, match=r"\.trk needs a reference space"):
        write_streamlines(f, random_streamlines(2))
    tck = tmp_path / "a.tck"
    write_streamlines(tck, random_streamlines(2))
    with pytest.raises(MedsharedError, match="has no space"):
        write_streamlines(f, random_streamlines(2), reference=read_streamlines(tck))
    # a .trk path works as reference too
    write_streamlines(f, random_streamlines(2), reference=NIB_DATA / "standard.trk")
    assert read_streamlines(f).dimensions == (4, 5, 7)
    f.unlink()
    with pytest.raises(MedsharedError, match="reference must be"):
        write_streamlines(f, random_streamlines(2), reference=np.eye(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tck", "ref.nii.gz"]


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    f = tmp_path / "keep.trk"
    ref = reference_nifti(tmp_path)
    write_streamlines(f, random_streamlines(4), reference=ref)
    before = f.read_bytes()

    def half_write(tractogram, filename, **kwargs):
        Path(filename).write_bytes(before[:100])
        raise OSError("disk full")

    monkeypatch.setattr(nib.streamlines, "save", half_write)
    with pytest.raises(MedsharedError, match=r"keep\.trk: cannot write \(disk full\)"):
        write_streamlines(f, random_streamlines(9), reference=ref)
    assert f.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.trk", "ref.nii.gz"]


def test_trx_without_trx_python(tmp_path, monkeypatch):
    import medshared.io.streamlines as mod

    def fail(module, extra, package="medshared"):
        raise MissingExtraError(f'{module!r} missing; pip install "{package}[{extra}]"')

    monkeypatch.setattr(mod, "require", fail)
    f = tmp_path / "a.trx"
    with pytest.raises(MissingExtraError, match=r"medshared\[trx\]"):
        write_streamlines(f, random_streamlines(2), reference=reference_nifti(tmp_path))
    assert not f.exists()
    f.write_bytes(b"PK")
    with pytest.raises(MissingExtraError, match=r"medshared\[trx\]"):
        read_streamlines(f)


def test_big_endian_trk_matches_little_endian():
    little = read_streamlines(NIB_DATA / "complex.trk")
    big = read_streamlines(NIB_DATA / "complex_big_endian.trk")
    assert len(little.streamlines) == 3
    assert_same_streamlines(big.streamlines, little.streamlines)
    np.testing.assert_array_equal(big.affine, little.affine)


# ----------------------------------------------------------------------------- per-point data


def _data(streams, seed=1):
    rng = np.random.default_rng(seed)
    dpp = {
        "fa": [rng.random((len(s), 1)).astype(np.float32) for s in streams],
        "rgb": [rng.random((len(s), 3)).astype(np.float32) for s in streams],
    }
    dps = {
        "length_mm": rng.random((len(streams), 1)).astype(np.float32) * 100,
        "cluster": rng.integers(0, 5, (len(streams), 1)).astype(np.float32),
    }
    return dpp, dps


@pytest.mark.parametrize(
    "suffix",
    [".trk", pytest.param(".trx", marks=pytest.mark.skipif(not _has_trx(), reason="no trx"))],
)
def test_per_point_and_per_streamline_data_round_trip(tmp_path, suffix):
    streams = random_streamlines(12, seed=4)
    dpp, dps = _data(streams)
    f = tmp_path / f"with_data{suffix}"
    write_streamlines(
        f, streams, reference_nifti(tmp_path), data_per_point=dpp, data_per_streamline=dps
    )
    t = read_streamlines(f)
    assert t.space == "rasmm"
    assert_same_streamlines(t.streamlines, streams, atol=1e-4)
    assert sorted(t.data_per_point) == ["fa", "rgb"] and sorted(t.data_per_streamline) == [
        "cluster",
        "length_mm",
    ]
    for key in dpp:
        for got, want in zip(t.data_per_point[key], dpp[key]):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    for key in dps:
        np.testing.assert_allclose(t.data_per_streamline[key], dps[key], rtol=1e-6)
    # writing a read Tractogram keeps space and data without restating them
    g = tmp_path / f"again{suffix}"
    write_streamlines(g, t)
    u = read_streamlines(g)
    np.testing.assert_allclose(u.affine, t.affine, atol=1e-5)
    np.testing.assert_allclose(u.data_per_streamline["length_mm"], dps["length_mm"], rtol=1e-6)
    np.testing.assert_allclose(
        np.concatenate(u.data_per_point["rgb"]), np.concatenate(dpp["rgb"]), rtol=1e-6
    )


def test_tck_refuses_data_and_mismatched_data_is_named(tmp_path):
    streams = random_streamlines(5, seed=5)
    dpp, dps = _data(streams)
    with pytest.raises(MedsharedError, match=r"\.tck cannot store per-point"):
        write_streamlines(tmp_path / "a.tck", streams, data_per_point=dpp)
    assert not (tmp_path / "a.tck").exists()
    bad = {"fa": dpp["fa"][:-1]}
    with pytest.raises(MedsharedError, match=r"data_per_point\['fa'\] must hold one"):
        write_streamlines(
            tmp_path / "a.trk", streams, reference_nifti(tmp_path), data_per_point=bad
        )
    with pytest.raises(MedsharedError, match=r"data_per_streamline\['x'\] has 2 rows for 5"):
        write_streamlines(
            tmp_path / "a.trk",
            streams,
            reference_nifti(tmp_path),
            data_per_streamline={"x": np.zeros((2, 1))},
        )


def test_trk_scalars_from_the_nibabel_wheel_are_kept():
    src = NIB_DATA / "complex.trk"
    ref = nib.streamlines.load(str(src))
    t = read_streamlines(src)
    assert set(t.data_per_point) == set(ref.tractogram.data_per_point)
    assert set(t.data_per_streamline) == set(ref.tractogram.data_per_streamline)
    for key in ref.tractogram.data_per_point:
        np.testing.assert_array_equal(
            np.concatenate(t.data_per_point[key]), ref.tractogram.data_per_point[key].get_data()
        )
    for key in ref.tractogram.data_per_streamline:
        np.testing.assert_array_equal(
            t.data_per_streamline[key], ref.tractogram.data_per_streamline[key]
        )


def test_dipy_stateful_tractogram_round_trip(tmp_path):
    pytest.importorskip("dipy")
    from dipy.io.stateful_tractogram import Space

    from medshared.io.streamlines import from_dipy, to_dipy

    streams = random_streamlines(6, seed=6)
    dpp, dps = _data(streams)
    f = tmp_path / "s.trk"
    write_streamlines(
        f, streams, reference_nifti(tmp_path), data_per_point=dpp, data_per_streamline=dps
    )
    t = read_streamlines(f)
    sft = to_dipy(t)
    assert sft.space == Space.RASMM and len(sft.streamlines) == 6
    sft.to_vox()  # from_dipy converts back from any space and leaves the sft as it was
    back = from_dipy(sft)
    assert sft.space == Space.VOX
    assert_same_streamlines(back.streamlines, t.streamlines, atol=1e-3)
    np.testing.assert_allclose(back.affine, t.affine, atol=1e-5)
    np.testing.assert_allclose(back.data_per_streamline["cluster"], dps["cluster"])
    with pytest.raises(MedsharedError, match="no reference space"):
        to_dipy(Tractogram(streams))


def test_trk_header_claiming_more_streamlines_than_the_file_holds(tmp_path):
    import time

    f = tmp_path / "claim.trk"
    write_streamlines(f, random_streamlines(3), reference_nifti(tmp_path))
    raw = bytearray(f.read_bytes())
    from nibabel.streamlines import Field
    from nibabel.streamlines.trk import header_2_dtype

    hdr = np.frombuffer(bytes(raw[: header_2_dtype.itemsize]), dtype=header_2_dtype).copy()
    hdr[Field.NB_STREAMLINES] = 2_000_000_000
    raw[: header_2_dtype.itemsize] = hdr.tobytes()
    f.write_bytes(bytes(raw))
    t0 = time.perf_counter()
    with pytest.raises(
        MedsharedError,
        match=r"claim\.trk: truncated or corrupt header: it "
        r"declares 2000000000 streamlines",
    ):
        read_streamlines(f)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.skipif(not _has_trx(), reason="trx-python not installed")
def test_trx_header_counts_must_match_its_arrays(tmp_path):
    import json
    import zipfile

    good = tmp_path / "g.trx"
    write_streamlines(good, random_streamlines(4), reference_nifti(tmp_path))
    bad = tmp_path / "b.trx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "header.json":
                header = json.loads(data)
                header["NB_VERTICES"] = 10**12
                data = json.dumps(header).encode()
            dst.writestr(info, data)
    with pytest.raises(
        MedsharedError,
        match=r"b\.trx: header.json declares 1000000000000 "
        r"vertices",
    ):
        read_streamlines(bad)
