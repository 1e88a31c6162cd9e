"""Brent's bounded minimisation (the μ optimiser) against scipy's, and a node process's
modules staying free of scipy."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd_twin.bounded_minimum import bounded_minimum
from qkd_twin.physics import DecoyModel, optimal_mu, preset

optimize = pytest.importorskip("scipy.optimize")


def _scipy_minimum(f, lower, upper):
    return float(optimize.minimize_scalar(f, bounds=(lower, upper), method="bounded",
                                          options={"xatol": 1e-5}).x)


@settings(max_examples=200, deadline=None)
@given(centre=st.floats(-3, 3), lower=st.floats(-5, 0), width=st.floats(0.01, 8),
       power=st.sampled_from([1.0, 1.5, 2.0, 4.0]), wiggle=st.floats(0, 2))
def test_same_points_as_scipy_bounded(centre, lower, width, power, wiggle):
    def f(x):
        return abs(x - centre) ** power + wiggle * math.sin(5 * x)

    assert bounded_minimum(f, lower, lower + width) == pytest.approx(
        _scipy_minimum(f, lower, lower + width), abs=1e-9)


def test_minimum_at_a_bound_and_inside():
    assert bounded_minimum(lambda x: x, 0.0, 1.0) == pytest.approx(0.0, abs=1e-4)
    assert bounded_minimum(lambda x: -x, 0.0, 1.0) == pytest.approx(1.0, abs=1e-4)
    assert bounded_minimum(lambda x: (x - 0.3) ** 2, 0.0, 1.0) == pytest.approx(0.3, abs=1e-5)


def test_empty_interval_is_an_error():
    with pytest.raises(ValueError):
        bounded_minimum(lambda x: x, 1.0, 1.0)


@pytest.mark.parametrize("decoy", list(DecoyModel))
@pytest.mark.parametrize("length_km", [0, 10, 50, 100, 150, 190])
def test_optimal_mu_as_with_scipy(decoy, length_km):
    from qkd_twin.physics import key_rate_per_pulse

    params = preset("reference", length_km)
    lo = params.decoy_nu * 1.2 if decoy is DecoyModel.VACUUM_WEAK else 1e-3
    grid = [lo + (1.5 - lo) * i / 30 for i in range(31)]
    best = max(grid, key=lambda m: key_rate_per_pulse(params, m, decoy))
    step = (1.5 - lo) / 30
    reference = _scipy_minimum(lambda m: -key_rate_per_pulse(params, m, decoy),
                               max(lo, best - step), min(1.5, best + step))
    if key_rate_per_pulse(params, reference, decoy) < key_rate_per_pulse(params, best, decoy):
        reference = best
    assert optimal_mu(params, decoy) == pytest.approx(reference, abs=1e-9)


def test_node_modules_do_not_import_scipy():
    code = ("import importlib, sys; from qkdn.node_runtime import PRELOAD_MODULES; "
            "[importlib.import_module(m) for m in PRELOAD_MODULES]; "
            "import qkd_twin.physics as p; p.evaluate(p.preset('reference', 20)); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
