"""Flow quantities on analytic Poiseuille flow: flow rate and wall shear stress."""

from __future__ import annotations

import numpy as np
import pytest

from flowsr.errors import FlowsrError
from flowsr.flow import flow_rate, wall_shear_stress


def _poiseuille(umax=1.0, radius_vox=8.0, h_mm=1.0, n=24, length=12):
    c = (n - 1) / 2
    x, y = np.meshgrid(np.arange(n) - c, np.arange(n) - c, indexing="ij")
    r2 = (x**2 + y**2) / radius_vox**2
    mask2 = r2 < 1
    vel = np.zeros((3, n, n, length))
    vel[2] = np.where(mask2, umax * (1 - r2), 0.0)[:, :, None]
    mask = np.repeat(mask2[:, :, None], length, axis=2)
    radius_m = radius_vox * h_mm * 1e-3
    q = np.pi * radius_m**2 * umax / 2  # m^3/s
    return vel, mask, radius_m, q


def test_flow_rate_of_poiseuille():
    vel, mask, radius_m, q = _poiseuille()
    centre = [(24 / 2), (24 / 2), 6.0]  # mm, voxel centres at (i + 0.5) mm
    got = flow_rate(vel, [1.0, 1.0, 1.0], centre, [0, 0, 1], 10.0)
    assert got[0] == pytest.approx(q * 1e6, rel=0.02)  # mL/s
    assert flow_rate(vel, [1.0] * 3, centre, [0, 0, -1], 10.0)[0] == pytest.approx(-got[0])
    with pytest.raises(FlowsrError, match="normal"):
        flow_rate(vel, [1.0] * 3, centre, [0, 0, 0], 10.0)


def test_wall_shear_stress_of_poiseuille():
    vel, mask, radius_m, q = _poiseuille()
    mu = 3.5e-3
    analytic = 4 * mu * q / (np.pi * radius_m**3)  # = 2 mu umax / R
    res = wall_shear_stress(vel, mask, [1.0] * 3, mu)
    side = res.magnitude[:, :, 2:-2][res.wall[:, :, 2:-2]]  # away from the open ends
    assert 0.5 * analytic < np.median(side) < 0.8 * analytic  # documented low bias (0.63)
    double = wall_shear_stress(2 * vel, mask, [1.0] * 3, 2 * mu)
    np.testing.assert_allclose(double.magnitude[res.wall], 4 * res.magnitude[res.wall])
    zero = wall_shear_stress(0 * vel, mask, [1.0] * 3, mu)
    assert zero.mean == 0.0
    assert np.all(np.isnan(res.magnitude[~res.wall]))
