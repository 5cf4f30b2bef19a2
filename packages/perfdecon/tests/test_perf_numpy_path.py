"""The torch-free maps path: numpy deconvolution/maps agree with the torch implementation, and a
``perfdecon maps`` call without a learned AIF never imports torch (nor matplotlib without
figures)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from perfdecon import npmaps
from perfdecon.deconvolution import deconvolve
from perfdecon.maps import compute_maps
from perfdecon.phantom import grid_phantom
from perfdecon.phantom_job import PhantomSpec, write_phantom


@pytest.fixture(scope="module")
def grid():
    return grid_phantom(np.random.default_rng(3), noise_hu=2.0, delays=(0.0, 2.5), block=2)


@pytest.mark.parametrize(
    ("method", "matrix"),
    [("tikhonov", "volterra"), ("tikhonov", "circulant"), ("ssvd", "volterra"),
     ("ssvd", "circulant"), ("csvd", "circulant"), ("osvd", "circulant")],
)
def test_numpy_deconvolution_matches_torch(grid, method, matrix):
    curves = grid.ctc.reshape(-1, grid.ctc.shape[-1]).astype(np.float64)
    ref = deconvolve(torch.from_numpy(grid.aif).double(), torch.from_numpy(curves), grid.dt,
                     method=method, matrix=matrix).numpy()
    got = npmaps.deconvolve(grid.aif, curves, grid.dt, method=method, matrix=matrix)
    assert got.dtype == np.float64 and got.shape == curves.shape
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


def test_numpy_matrices_match_torch():
    aif = np.random.default_rng(0).random(17)
    from perfdecon.deconvolution import circulant_matrix, volterra_matrix

    np.testing.assert_allclose(npmaps.volterra_matrix(aif, 0.7),
                               volterra_matrix(torch.from_numpy(aif), 0.7).numpy(), rtol=1e-14)
    np.testing.assert_allclose(npmaps.circulant_matrix(aif, 0.7),
                               circulant_matrix(torch.from_numpy(aif), 0.7).numpy(), rtol=1e-14)


@pytest.mark.parametrize("method", ["tikhonov", "osvd"])
def test_numpy_maps_match_torch_maps(grid, method):
    mask = np.ones(grid.ctc.shape[:3], bool)
    mask[:, :2] = False
    ref = compute_maps(torch.from_numpy(grid.ctc), torch.from_numpy(grid.aif), grid.dt,
                       method=method, mask=torch.from_numpy(mask))
    got = npmaps.compute_maps(grid.ctc, grid.aif, grid.dt, method=method, mask=mask)
    for name in ("cbf", "cbv", "mtt", "kmax"):
        r = getattr(ref, name).numpy()
        np.testing.assert_allclose(getattr(got, name), r, rtol=2e-4, atol=2e-4 * np.abs(r).max(),
                                   err_msg=name)
    np.testing.assert_array_equal(got.ttp, ref.ttp.numpy())
    # Tmax comes from the same numpy estimator; float32 vs float64 SVDs can move a crossing by
    # a hair, never by a frame
    assert np.abs(got.tmax - ref.tmax.numpy()).max() < 0.05
    assert (got.cbf[~mask] == 0).all() and got.mask.sum() == mask.sum()


def test_numpy_reference_core_penumbra(grid):
    cbf = np.asarray(npmaps.compute_maps(grid.ctc, grid.aif, grid.dt).cbf)
    brain = np.ones(cbf.shape, bool)
    ref = npmaps.reference_cbf(cbf, brain)
    assert ref in cbf  # the lower median is a voxel's own value
    r = npmaps.relative_cbf(cbf, brain)
    j = (cbf.size - 1) // 2  # lower median: at most j values below it, at least j + 1 not above
    assert np.sum(r < 1) <= j and np.sum(r <= 1) >= j + 1
    core = npmaps.core_mask(r, 0.38)
    tmax = np.where(np.arange(cbf.shape[-1]) % 2 == 0, 8.0, 1.0) * np.ones_like(cbf)
    pen = npmaps.penumbra_mask(tmax, core, brain, 6.0)
    assert not (pen & core).any() and pen.sum() == ((tmax > 6) & ~core).sum()
    with pytest.raises(npmaps.PerfdeconError, match="not positive"):
        npmaps.reference_cbf(np.zeros((2, 3, 4)), np.ones((2, 3, 4), bool))
    with pytest.raises(npmaps.PerfdeconError, match="does not match"):
        npmaps.compute_maps(grid.ctc, grid.aif, grid.dt, mask=np.ones((1, 2, 3), bool))
    with pytest.raises(npmaps.PerfdeconError, match="constant"):
        npmaps.deconvolve(np.ones(20), np.ones((3, 20)), 1.0)


_PROBE = """
import json, sys
from perfdecon.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "loaded": sorted(m for m in ("torch", "matplotlib")
                                             if m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def small_case(tmp_path_factory):
    d = tmp_path_factory.mktemp("np_case")
    write_phantom(d, PhantomSpec(seed=5, slices=2, size=64, frames=40))
    return d


@pytest.mark.parametrize(("figures", "expected"), [(False, []), (True, ["matplotlib"])])
def test_maps_without_a_learned_aif_never_imports_torch(small_case, tmp_path, figures, expected):
    argv = ["maps", str(small_case / "ctp.nii.gz"), "--aif", "auto", "--out",
            str(tmp_path / "o"), "--quiet"] + ([] if figures else ["--no-figures"])
    out = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"rc": 0, "loaded": expected}
    assert (tmp_path / "o" / "cbf.nii.gz").is_file()
    assert (tmp_path / "o" / "overview.png").is_file() == figures


def test_calibrated_tmax_is_the_same_through_both_backends(grid):
    ref = compute_maps(torch.from_numpy(grid.ctc).double(), torch.from_numpy(grid.aif).double(),
                       grid.dt, tmax_method="calibrated")
    got = npmaps.compute_maps(grid.ctc.astype(np.float64), grid.aif, grid.dt,
                              tmax_method="calibrated")
    np.testing.assert_allclose(got.tmax, ref.tmax.numpy(), atol=1e-6)
    onset = npmaps.compute_maps(grid.ctc.astype(np.float64), grid.aif, grid.dt).tmax
    assert np.median(got.tmax - onset) > 0.1  # the correction moves Tmax later
