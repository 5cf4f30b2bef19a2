"""4DFlowNet HDF5 layout and NIfTI: round trips, lazy frames, and one clear error per fault."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from flowsr.errors import FlowsrError
from flowsr.flowio import (
    FlowFile,
    FlowSeries,
    read_flow_h5,
    read_flow_nifti,
    write_flow_h5,
    write_flow_nifti,
)


def _series(t=4, shape=(6, 5, 4), venc=False):
    rng = np.random.default_rng(0)
    vel = rng.normal(size=(3, t, *shape)).astype(np.float32)
    mask = rng.random((1, *shape)) > 0.5
    v = np.full((3, t), 1.5, np.float32) if venc else None
    mag = np.abs(vel) if venc else None
    return FlowSeries(vel, mask, np.array([2.5, 2.5, 3.0]), v, mag, 0.04)


def test_hr_round_trip_and_layout(tmp_path):
    s = _series()
    p = tmp_path / "hr.h5"
    write_flow_h5(p, s)
    with h5py.File(p) as fh:
        assert fh["u"].shape == (4, 6, 5, 4) and fh["u"].dtype == np.float32
        assert fh["dx"].shape == (4, 3) and fh["mask"].shape == (1, 6, 5, 4)
        np.testing.assert_allclose(fh["v_max"][()], np.abs(s.velocity[1]).reshape(4, -1).max(1))
        assert "venc_u" not in fh
    r = read_flow_h5(p)
    np.testing.assert_array_equal(r.velocity, s.velocity)
    np.testing.assert_array_equal(r.mask, s.mask)
    np.testing.assert_allclose(r.dx_mm, s.dx_mm)
    assert r.dt_s == pytest.approx(0.04) and r.venc is None


def test_lr_round_trip_and_lazy_frames(tmp_path):
    s = _series(venc=True)
    p = tmp_path / "lr.h5"
    write_flow_h5(p, s)
    with FlowFile(p) as f:
        assert f.is_lowres and f.n_frames == 4 and f.grid == (6, 5, 4)
        np.testing.assert_array_equal(f.frame(2), s.velocity[:, 2])
        np.testing.assert_array_equal(f.magnitude_frame(1), s.magnitude[:, 1])
        np.testing.assert_allclose(f.venc, 1.5)
        part = f.read([1, 3])
    np.testing.assert_array_equal(part.velocity, s.velocity[:, [1, 3]])


def test_single_frame_file_is_valid(tmp_path):
    s = _series(t=1)
    p = tmp_path / "one.h5"
    write_flow_h5(p, s)
    assert read_flow_h5(p).n_frames == 1


def _raw(path, **arrays):
    with h5py.File(path, "w") as fh:
        for k, v in arrays.items():
            fh[k] = v


def test_reader_errors(tmp_path):
    base = {c: np.zeros((2, 4, 4, 4), np.float32) for c in "uvw"}
    dx = np.full((2, 3), 2.0)
    cases = {
        "missing dataset": {"u": base["u"], "dx": dx},
        "axes": {**base, "u": np.zeros((4, 4, 4), np.float32), "dx": dx},
        "mask shape": {**base, "dx": dx, "mask": np.zeros((2, 4, 4, 3))},
        "positive": {**base, "dx": np.zeros((2, 3))},
        "VENC": {**base, "dx": dx, "venc_u": np.zeros(2), "venc_v": np.ones(2),
                 "venc_w": np.ones(2)},
    }
    for msg, arrays in cases.items():
        p = tmp_path / f"{msg.replace(' ', '_')}.h5"
        _raw(p, **arrays)
        with pytest.raises(FlowsrError, match=msg) as exc:
            FlowFile(p).close()
        assert str(p) in str(exc.value)
    p = tmp_path / "nan.h5"
    bad = base["v"].copy()
    bad[1, 0, 0, 0] = np.inf
    _raw(p, u=base["u"], v=bad, w=base["w"], dx=dx)
    with FlowFile(p) as f:
        f.frame(0)
        with pytest.raises(FlowsrError, match=r"non-finite velocity .*\['v'\] at frame 1"):
            f.frame(1)
    from medshared.errors import MedsharedError

    with pytest.raises(MedsharedError, match="absent.h5"):
        FlowFile(tmp_path / "absent.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(MedsharedError, match="junk.h5"):
        FlowFile(tmp_path / "junk.h5")


def test_nifti_round_trip_and_dx_check(tmp_path):
    s = _series()
    paths = write_flow_nifti(tmp_path / "pat", s, extra={"seg": s.mask.astype(np.uint8)})
    names = sorted(p.name for p in paths)
    assert names == ["pat_mask.nii.gz", "pat_seg.nii.gz", "pat_u.nii.gz", "pat_v.nii.gz",
                     "pat_w.nii.gz"]
    uvw = [tmp_path / f"pat_{c}.nii.gz" for c in "uvw"]
    r = read_flow_nifti(uvw, tmp_path / "pat_mask.nii.gz")
    np.testing.assert_allclose(r.velocity, s.velocity, atol=1e-6)
    np.testing.assert_array_equal(r.mask, s.mask)
    np.testing.assert_allclose(r.dx_mm, s.dx_mm)
    assert r.dt_s == pytest.approx(0.04)
    with pytest.raises(FlowsrError, match="disagrees with the given dx"):
        read_flow_nifti(uvw, dx_mm=[2.0, 2.0, 2.0])
    from medshared.io import write_nifti

    write_nifti(tmp_path / "small_mask.nii.gz", np.ones((6, 5, 3), np.uint8), zooms=(2.5, 2.5, 3))
    with pytest.raises(FlowsrError, match="mask shape"):
        read_flow_nifti(uvw, tmp_path / "small_mask.nii.gz")
    write_nifti(tmp_path / "w3.nii.gz", np.zeros((6, 5, 4, 4), np.float32), zooms=(2.0, 2.5, 3))
    with pytest.raises(FlowsrError, match="voxel size"):
        read_flow_nifti(uvw[:2] + [tmp_path / "w3.nii.gz"])


def test_writer_refuses_bad_series(tmp_path):
    s = _series()
    bad = FlowSeries(s.velocity * np.nan, s.mask, s.dx_mm)
    with pytest.raises(FlowsrError, match="NaN"):
        write_flow_h5(tmp_path / "x.h5", bad)
    assert not (tmp_path / "x.h5").exists()
