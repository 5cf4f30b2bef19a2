"""Learned-AIF data: ISLES18 loader on a fake tree, augmentation properties, k-fold split."""

from __future__ import annotations

import numpy as np
import pytest

from medshared.io import write_nifti
from perfdecon.augment import AugmentConfig, augment, shift_bolus
from perfdecon.datasets import Sample, kfold_split, network_input
from perfdecon.errors import PerfdeconError
from perfdecon.isles import find_isles_cases, load_isles_case

SHAPE_XYZ = (12, 10, 3)  # NIfTI order (X, Y, Z)
N_T = 15


def _write_mod(case_dir, mod, ident, data, zooms):
    folder = case_dir / f"SMIR.Brain.XX.O.{mod}.{ident}"
    folder.mkdir(parents=True)
    write_nifti(folder / f"SMIR.Brain.XX.O.{mod}.{ident}.nii", data, np.eye(4), zooms=zooms)
    return folder


def _fake_case(root, n, rng, *, dt=1.0, mods=("CT_4DPWI", "OT", "CT_CBF", "CT")):
    case = root / f"case_{n}"
    case.mkdir(parents=True)
    arrays = {}
    for j, mod in enumerate(mods):
        if mod == "CT_4DPWI":
            data = rng.normal(30.0, 5.0, SHAPE_XYZ + (N_T,)).astype(np.int16)
            zooms = (0.8, 0.9, 5.0, dt)
        elif mod == "OT":
            data = (rng.random(SHAPE_XYZ) < 0.2).astype(np.uint8)
            zooms = (0.8, 0.9, 5.0)
        else:
            data = rng.random(SHAPE_XYZ).astype(np.float32)
            zooms = (0.8, 0.9, 5.0)
        _write_mod(case, mod, 345560 + 10 * n + j, data, zooms)
        arrays[mod] = data
    return case, arrays


def test_isles_loader_reads_fake_case(tmp_path):
    rng = np.random.default_rng(0)
    case, arrays = _fake_case(tmp_path, 2, rng, dt=1.5)
    _fake_case(tmp_path, 10, rng)
    _fake_case(tmp_path, 1, rng)
    (tmp_path / "notes").mkdir()
    assert [p.name for p in find_isles_cases(tmp_path)] == ["case_1", "case_2", "case_10"]

    c = load_isles_case(case, modalities=("CT_4DPWI", "OT", "CT_CBF", "CT"))
    assert c.case_id == "case_2"
    assert c.ctp.shape == (3, 10, 12, N_T) and c.ctp.dtype == np.float32
    # (X, Y, Z, T) on disk -> (Z, Y, X, T) in memory, values unchanged.
    np.testing.assert_array_equal(c.ctp, np.transpose(arrays["CT_4DPWI"], (2, 1, 0, 3)))
    np.testing.assert_array_equal(c.core, np.transpose(arrays["OT"], (2, 1, 0)) > 0)
    np.testing.assert_allclose(c.images["CT_CBF"], np.transpose(arrays["CT_CBF"], (2, 1, 0)))
    assert c.dt == pytest.approx(1.5)
    assert c.spacing == pytest.approx((5.0, 0.9, 0.8))
    assert c.affine.shape == (4, 4)


def test_isles_loader_error_paths(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(PerfdeconError, match="does not exist"):
        find_isles_cases(tmp_path / "nope")
    with pytest.raises(PerfdeconError, match="no case_N"):
        find_isles_cases(tmp_path)
    with pytest.raises(PerfdeconError, match="does not exist"):
        load_isles_case(tmp_path / "case_9")

    case, _ = _fake_case(tmp_path, 1, rng, mods=("CT_4DPWI",))
    with pytest.raises(PerfdeconError, match="modality OT is missing"):
        load_isles_case(case)
    assert load_isles_case(case, require_core=False).core is None
    with pytest.raises(PerfdeconError, match="CT_CBF is missing"):
        load_isles_case(case, modalities=("CT_CBF",), require_core=False)
    with pytest.raises(PerfdeconError, match="unknown ISLES modalities"):
        load_isles_case(case, modalities=("PET",), require_core=False)

    case2, _ = _fake_case(tmp_path, 2, rng, mods=("OT",))
    with pytest.raises(PerfdeconError, match="CT_4DPWI is missing"):
        load_isles_case(case2)

    # Two files in one modality folder.
    case3, _ = _fake_case(tmp_path, 3, rng, mods=("CT_4DPWI", "OT"))
    folder = next(case3.glob("SMIR.Brain.XX.O.OT.*"))
    (folder / "extra.nii").write_bytes((next(folder.glob("*.nii"))).read_bytes())
    with pytest.raises(PerfdeconError, match="exactly one .nii"):
        load_isles_case(case3)

    # Core mask on another grid.
    case4 = tmp_path / "case_4"
    _write_mod(case4, "CT_4DPWI", 1, np.zeros(SHAPE_XYZ + (N_T,), np.int16), (1, 1, 1, 1.0))
    _write_mod(case4, "OT", 2, np.zeros((5, 5, 3), np.uint8), (1, 1, 1))
    with pytest.raises(PerfdeconError, match="does not match the perfusion"):
        load_isles_case(case4)

    # 3D file where the 4D series is expected; corrupt file.
    case5 = tmp_path / "case_5"
    _write_mod(case5, "CT_4DPWI", 1, np.zeros(SHAPE_XYZ, np.int16), (1, 1, 1))
    _write_mod(case5, "OT", 2, np.zeros(SHAPE_XYZ, np.uint8), (1, 1, 1))
    with pytest.raises(PerfdeconError, match="CT_4DPWI"):
        load_isles_case(case5)
    case6, _ = _fake_case(tmp_path, 6, rng, mods=("CT_4DPWI", "OT"))
    nii = next(case6.glob("SMIR.Brain.XX.O.OT.*/*.nii"))
    nii.write_bytes(nii.read_bytes()[:200])
    with pytest.raises(PerfdeconError, match="OT"):
        load_isles_case(case6)

    # Zero frame interval.
    case7 = tmp_path / "case_7"
    _write_mod(case7, "CT_4DPWI", 1, np.ones(SHAPE_XYZ + (N_T,), np.int16), (1, 1, 1, 0.0))
    _write_mod(case7, "OT", 2, np.zeros(SHAPE_XYZ, np.uint8), (1, 1, 1))
    with pytest.raises(PerfdeconError, match="frame interval"):
        load_isles_case(case7)


def _bolus(n_t=30, t0=6.0):
    t = np.arange(n_t, dtype=np.float64)
    s = np.clip(t - t0, 0, None)
    return (s**3 * np.exp(-s / 1.5)).astype(np.float32)


def _sample(rng, n_t=30):
    z, y, x = 2, 8, 6
    amp = rng.uniform(0.5, 2.0, size=(z, y, x, 1)).astype(np.float32)
    ctc = amp * _bolus(n_t)
    brain = np.ones((z, y, x), bool)
    core = np.zeros((z, y, x), bool)
    core[:, :3, :2] = True
    return Sample("s", ctc, brain, core, dt=1.0, aif=_bolus(n_t).astype(np.float64) * 5)


@pytest.mark.parametrize("shift", [1, 2, 3, -2])
def test_shift_bolus_moves_peak_by_whole_frames(shift):
    curve = _bolus()
    out = shift_bolus(np.stack([curve, 2 * curve]), shift)
    assert np.all(out.argmax(-1) == curve.argmax() + shift)
    np.testing.assert_allclose(
        out[0, max(shift, 0) : 30 + min(shift, 0)], curve[max(-shift, 0) : 30 - max(shift, 0)]
    )


def test_shift_bolus_subframe_interpolates():
    curve = _bolus()
    half = shift_bolus(curve, 0.5)
    np.testing.assert_allclose(half[1:], 0.5 * (curve[1:] + curve[:-1]), rtol=1e-6)
    # Peak time of a fractional shift lies between the two whole-frame shifts.
    t = np.arange(curve.size)
    centroid = lambda c: float((c * t).sum() / c.sum())  # noqa: E731
    assert centroid(shift_bolus(curve, 1)) > centroid(half) > centroid(curve)


def test_augment_scaling_flips_and_noise():
    rng = np.random.default_rng(3)
    s = _sample(rng)
    cfg = AugmentConfig(
        max_shift_frames=0.0, scale_range=(1.7, 1.7), flip=False, rot90=False, noise_std=0.0
    )
    a = augment(s, np.random.default_rng(0), cfg)
    np.testing.assert_allclose(a.ctc.max(), 1.7 * s.ctc.max(), rtol=1e-6)
    np.testing.assert_allclose(a.aif.max(), 1.7 * s.aif.max(), rtol=1e-6)
    np.testing.assert_array_equal(a.core_mask, s.core_mask)

    # Geometry: the core mask moves with the series (the high-amplitude voxels follow it).
    cfg = AugmentConfig(max_shift_frames=0.0, scale_range=(1, 1), noise_std=0.0)
    s.ctc[s.core_mask] *= 10
    geometries = set()
    for seed in range(8):
        a = augment(s, np.random.default_rng(seed), cfg)
        assert a.core_mask.sum() == s.core_mask.sum()
        # Core voxels peak >= 5x the bolus maximum, the others <= 2x.
        np.testing.assert_array_equal(a.ctc.max(-1) > 3.5 * _bolus().max(), a.core_mask)
        np.testing.assert_allclose(np.sort(a.ctc.ravel()), np.sort(s.ctc.ravel()))
        geometries.add(a.core_mask.tobytes() + bytes(a.core_mask.shape))
    assert len(geometries) >= 3

    # Noise: standard deviation bounded by noise_std, mean unchanged; reproducible per seed.
    cfg = AugmentConfig(
        max_shift_frames=0.0, scale_range=(1, 1), flip=False, rot90=False, noise_std=0.5
    )
    a1 = augment(s, np.random.default_rng(5), cfg)
    a2 = augment(s, np.random.default_rng(5), cfg)
    np.testing.assert_array_equal(a1.ctc, a2.ctc)
    diff = a1.ctc - s.ctc
    assert 0 < diff.std() < 0.5 and abs(diff.mean()) < 0.05


def test_augment_delay_shift_moves_series_and_aif_together():
    rng = np.random.default_rng(4)
    s = _sample(rng)
    cfg = AugmentConfig(
        max_shift_frames=3.0, scale_range=(1, 1), flip=False, rot90=False, noise_std=0.0
    )
    t = np.arange(30)

    def centroid(c):
        return float((c * t).sum() / c.sum())

    base_gap = centroid(s.ctc.sum((0, 1, 2))) - centroid(s.aif)
    shifts = set()
    for seed in range(10):
        a = augment(s, np.random.default_rng(seed), cfg)
        shift = centroid(a.aif) - centroid(s.aif)
        assert -3.05 <= shift <= 3.05
        # Tissue and AIF move together: their timing gap is unchanged.
        assert abs(centroid(a.ctc.sum((0, 1, 2))) - centroid(a.aif) - base_gap) < 0.05
        shifts.add(round(shift, 2))
    assert len(shifts) > 5


def test_kfold_split_disjoint_and_covering():
    for n, k in [(12, 4), (10, 3), (5, 5)]:
        folds = kfold_split(n, k, seed=7)
        vals = np.concatenate([f.val for f in folds])
        assert sorted(vals.tolist()) == list(range(n))
        for f in folds:
            assert set(f.train).isdisjoint(f.val)
            assert sorted(np.concatenate([f.train, f.val]).tolist()) == list(range(n))
            assert abs(len(f.val) - n / k) < 1
    assert [f.val.tolist() for f in kfold_split(12, 4, 7)] == [
        f.val.tolist() for f in kfold_split(12, 4, 7)
    ]
    assert [f.val.tolist() for f in kfold_split(12, 4, 7)] != [
        f.val.tolist() for f in kfold_split(12, 4, 8)
    ]
    for bad in [(5, 1), (3, 4)]:
        with pytest.raises(PerfdeconError):
            kfold_split(*bad)


def test_network_input_layout_and_errors():
    rng = np.random.default_rng(0)
    ctc = rng.random((2, 5, 4, 12)).astype(np.float32)
    x = network_input(ctc, scale=2.0)
    assert tuple(x.shape) == (1, 12, 2, 5, 4)
    np.testing.assert_allclose(x[0, 3, 1, 2, 1].item(), ctc[1, 2, 1, 3] / 2.0, rtol=1e-6)
    ctc[0, 0, 0, 0] = np.nan
    with pytest.raises(PerfdeconError, match="NaN"):
        network_input(ctc)
    with pytest.raises(PerfdeconError, match="Z, Y, X, T"):
        network_input(ctc[0])


def test_isles_dataset_matches_phantom_preprocessing(tmp_path):
    from perfdecon.datasets import PhantomDataset
    from perfdecon.isles import IslesDataset
    from perfdecon.phantom import brain_case

    case = brain_case(np.random.default_rng([4, 0]), n_slices=2, size=32, n_frames=16)
    folder = tmp_path / "case_1"
    _write_mod(
        folder, "CT_4DPWI", 11, np.transpose(case.ctp_hu, (2, 1, 0, 3)), (0.9, 0.9, 5.0, 1.0)
    )
    _write_mod(
        folder, "OT", 12, np.transpose(case.core_mask, (2, 1, 0)).astype(np.uint8), (0.9, 0.9, 5.0)
    )
    ds = IslesDataset(tmp_path)
    assert len(ds) == 1
    got = ds[0]
    ref = PhantomDataset(1, seed=4, size=32, n_slices=2, n_frames=16)[0]
    assert (
        got.case_id == "case_1" and got.dt == 1.0 and got.spacing == pytest.approx((5.0, 0.9, 0.9))
    )
    np.testing.assert_array_equal(got.brain_mask, ref.brain_mask)
    np.testing.assert_allclose(got.ctc, ref.ctc, atol=1e-4)
    np.testing.assert_array_equal(got.core_mask, case.core_mask & ref.brain_mask)
    # Concentration is baseline-subtracted HU: near zero before the bolus.
    assert abs(float(np.median(got.ctc[got.brain_mask][:, 0]))) < 3.0

    only_pwi = tmp_path / "test" / "case_1"
    _write_mod(
        only_pwi, "CT_4DPWI", 11, np.transpose(case.ctp_hu, (2, 1, 0, 3)), (0.9, 0.9, 5.0, 1.0)
    )
    with pytest.raises(PerfdeconError, match="OT"):
        IslesDataset(tmp_path / "test")[0]


def test_fit_frames_crops_and_pads():
    from perfdecon.datasets import fit_frames

    c = np.arange(2 * 7, dtype=np.float32).reshape(2, 7)
    np.testing.assert_array_equal(fit_frames(c, 5), c[:, :5])
    padded = fit_frames(c, 10)
    np.testing.assert_array_equal(padded[:, :7], c)
    np.testing.assert_array_equal(padded[:, 7:], np.repeat(c[:, 6:7], 3, axis=1))
    np.testing.assert_array_equal(fit_frames(c, 7), c)
    with pytest.raises(PerfdeconError):
        fit_frames(c, 1)


def test_data_module_reexports_the_split_modules():
    import perfdecon.data
    from perfdecon import augment as augment_mod
    from perfdecon import datasets, isles

    mods = (augment_mod, datasets, isles)
    for name in perfdecon.data.__all__:
        obj = getattr(perfdecon.data, name)
        assert any(getattr(m, name, None) is obj for m in mods), name
    # Every public class/function defined in the split modules is re-exported.
    defined = {
        n
        for m in mods
        for n, v in vars(m).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == m.__name__
    }
    assert defined <= set(perfdecon.data.__all__), defined - set(perfdecon.data.__all__)
