"""Phantom physics: ranges, zero outside, divergence-free interior, flux conservation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from flowsr.config import PhantomConfig
from flowsr.errors import FlowsrError
from flowsr.flow import divergence, flow_rate, gradient_norm, peak_velocity
from flowsr.phantom import make_phantom
from flowsr.womersley import aortic_waveform, womersley_profiles


def test_physiological_ranges(small_phantom):
    p = small_phantom
    assert 12.0 <= p.geometry.radius <= 15.0
    assert 60.0 <= p.heart_rate_bpm <= 75.0
    assert 1.0 <= p.peak_velocity <= 1.5
    speed = np.linalg.norm(p.velocity, axis=0)
    assert speed.max() == pytest.approx(p.peak_velocity, rel=1e-5)
    assert np.all(p.velocity[:, :, ~p.mask] == 0)
    assert p.velocity.dtype == np.float32 and p.velocity.shape == (3, 12, 64, 64, 32)
    assert peak_velocity(p.velocity, p.mask).argmax() == p.peak_systole_frame


def test_seeds_give_distinct_geometries(small_config):
    geos = {make_phantom(small_config, seed=s).geometry for s in range(4)}
    assert len({(round(g.arch_radius, 3), round(g.x_a, 3)) for g in geos}) == 4


@pytest.mark.parametrize("fixture", ["small_phantom", "coarct_phantom"])
def test_divergence_small(fixture, request):
    p = request.getfixturevalue(fixture)
    h = [p.dx_mm] * 3
    interior = binary_erosion(p.mask, iterations=2)
    t = p.peak_systole_frame
    div = divergence(p.velocity[:, t], h)[interior]
    g = gradient_norm(p.velocity[:, t], h)[interior]
    assert np.abs(div).mean() < 0.05 * g.mean()


def test_divergence_detects_a_broken_field(small_phantom):
    p = small_phantom
    h = [p.dx_mm] * 3
    interior = binary_erosion(p.mask, iterations=2)
    t = p.peak_systole_frame
    broken = p.velocity[:, t].copy()
    broken[0] *= 1.0 + np.linspace(0, 1, broken.shape[1])[:, None, None]  # stretch u along X
    ok = np.abs(divergence(p.velocity[:, t], h)[interior]).mean()
    assert np.abs(divergence(broken, h)[interior]).mean() > 3 * ok


def test_flux_conserved_along_the_vessel(coarct_phantom):
    p = coarct_phantom
    g = p.geometry
    s, pts, tan = g.centreline()
    inside = np.all((pts > 3 * p.dx_mm) & (pts < np.array(p.mask.shape) * p.dx_mm - 3 * p.dx_mm),
                    axis=1)
    stations = np.flatnonzero(inside)[:: max(1, inside.sum() // 6)]
    stations = np.append(stations, np.argmin(np.abs(s - g.coarct_s)))  # the narrowest section
    assert g.coarct_depth == pytest.approx(0.4)
    peak = p.flow_ml_s.max()
    for k in stations:
        q = flow_rate(p.velocity, [p.dx_mm] * 3, pts[k], tan[k], 1.25 * g.radius)
        assert np.abs(q - p.flow_ml_s).max() < 0.03 * peak, (k, s[k])
    assert 150 < peak < 1500  # mL/s, aortic range for these radii and speeds


def test_womersley_profiles_have_unit_mean_and_no_slip():
    eta = np.linspace(0, 1, 4001)
    prof = womersley_profiles(eta, np.array([0.0, 0.5, 12.0, 40.0]))
    mean = np.trapezoid(prof * 2 * eta[:, None], eta, axis=0)
    np.testing.assert_allclose(mean, 1.0, atol=2e-3)
    np.testing.assert_allclose(prof[-1], 0.0, atol=1e-9)
    # low alpha -> Poiseuille; high alpha -> flat core
    np.testing.assert_allclose(prof[:, 1].real, 2 * (1 - eta**2), atol=0.01)
    assert abs(prof[0, 3]) < 1.2


def test_waveform_peak_and_positive_mean():
    w = aortic_waveform(6)
    tau = np.linspace(0, 1, 1000, endpoint=False)
    q = w(tau)
    assert q.max() == pytest.approx(1.0, rel=1e-3)
    assert 0.1 < q.mean() < 0.5 and q.min() < 0  # brief backflow


def test_too_small_grid_is_a_clear_error():
    with pytest.raises(FlowsrError, match="too small"):
        make_phantom(PhantomConfig(shape_x=16, shape_y=16, shape_z=8, voxel_mm=1.0))
