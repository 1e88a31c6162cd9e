"""Golden numbers of physics.md, the PLOB property and the fault effects on the model."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd_twin.errors import InvalidLinkParameters, UnknownPreset
from qkd_twin.physics import (
    DecoyModel,
    LinkParameters,
    cutoff_length_km,
    evaluate,
    h2,
    plob_bps,
    preset,
)

# (length km, mu*, QBER, R bit/pulse, PLOB bit/s) - physics.md, reference link
REFERENCE_TABLE = [
    (10, 0.785, 0.0100, 8.12e-3, 1.44e9),
    (50, 0.78, 0.0101, 1.28e-3, 152e6),
    (100, 0.78, 0.0106, 1.26e-4, 14.5e6),
    (150, 0.77, 0.0163, 1.06e-5, 1.44e6),
]


def close(a: float, b: float, rel: float = 0.02) -> bool:
    return abs(a - b) <= rel * abs(b)


@pytest.mark.parametrize("length, mu, qber, bits, plob", REFERENCE_TABLE)
def test_twin_reference_table(length, mu, qber, bits, plob):
    perf = evaluate(preset("reference", length))
    assert close(perf.bits_per_pulse, bits)
    assert close(perf.skr_bps, bits * 1e9)
    assert close(perf.qber, qber)
    assert close(perf.mu, mu)
    assert close(perf.plob_bps, plob)


@pytest.mark.parametrize("name, rates", [
    ("gys", {10: 3.1e3, 50: 445, 100: 34}),
    ("high-end", {10: 92e6, 50: 14e6, 100: 1.4e6, 150: 140e3, 200: 13.6e3}),
])
def test_twin_preset_rates(name, rates):
    for length, bps in rates.items():
        assert close(evaluate(preset(name, length)).skr_bps, bps), (name, length)


@pytest.mark.parametrize("name, cutoff", [("reference", 193), ("gys", 143), ("high-end", 284)])
def test_twin_cutoff_distances(name, cutoff):
    assert abs(cutoff_length_km(preset(name, 0)) - cutoff) <= 2.0


@pytest.mark.parametrize("name", ["gys", "reference", "high-end"])
def test_twin_vacuum_weak_decoy_fraction(name):
    for length in (10, 50, 100):
        full = evaluate(preset(name, length)).skr_bps
        practical = evaluate(preset(name, length), DecoyModel.VACUUM_WEAK).skr_bps
        assert 0.92 <= practical / full <= 0.98


@settings(max_examples=150, deadline=None)
@given(
    length=st.floats(1, 300),
    alpha=st.floats(0.15, 0.35),
    eta_bob=st.floats(0.01, 1.0),
    y0=st.floats(1e-9, 1e-4),
    e_d=st.floats(0.0, 0.1),
    f_ec=st.floats(1.0, 1.5),
    q=st.floats(0.3, 1.0),
    decoy=st.sampled_from(list(DecoyModel)),
)
def test_twin_never_exceeds_plob(length, alpha, eta_bob, y0, e_d, f_ec, q, decoy):
    p = LinkParameters(length_km=length, alpha_db_per_km=alpha, eta_bob=eta_bob, y0=y0,
                       e_d=e_d, f_ec=f_ec, q=q, clock_hz=1e9)
    perf = evaluate(p, decoy)
    assert 0.0 <= perf.skr_bps <= plob_bps(p)


def test_twin_eavesdropper_adds_quarter_of_fraction_to_qber():
    base = evaluate(preset("reference", 20))
    for frac in (0.05, 0.1, 0.2):
        attacked = evaluate(preset("reference", 20, eavesdrop_fraction=frac), mu=base.mu)
        rise = attacked.qber - base.qber
        assert abs(rise - frac / 4) <= 0.01 * frac + 1e-4
        assert attacked.skr_bps < base.skr_bps


def test_twin_extra_loss_is_like_longer_fiber():
    lossy = evaluate(preset("reference", 20, extra_loss_db=6.0))
    longer = evaluate(preset("reference", 50))
    assert math.isclose(lossy.skr_bps, longer.skr_bps, rel_tol=1e-6)


def test_twin_invalid_parameters_and_presets():
    with pytest.raises(InvalidLinkParameters, match="eta_bob"):
        LinkParameters(length_km=1, eta_bob=0)
    with pytest.raises(InvalidLinkParameters, match="length_km"):
        LinkParameters(length_km=-1)
    with pytest.raises(UnknownPreset):
        preset("nope", 1)


def test_twin_h2():
    assert h2(0.0) == 0.0 and h2(1.0) == 0.0
    assert math.isclose(h2(0.5), 1.0)
    assert math.isclose(h2(0.11), 0.4999, abs_tol=1e-3)
