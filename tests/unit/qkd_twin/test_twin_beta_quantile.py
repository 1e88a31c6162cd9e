"""Beta upper quantiles (Clopper–Pearson) and FFT lengths without scipy, checked against
closed forms and against scipy where it is installed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd_twin.postprocessing.beta_quantile import beta_upper_quantile, beta_upper_tail
from qkd_twin.postprocessing.parameter_estimation import qber_upper_bound
from qkd_twin.postprocessing.privacy_amplification import fast_fft_length


@pytest.mark.parametrize("b", [1, 2, 10, 255, 4096, 100_000])
@pytest.mark.parametrize("tail", [0.5, 1e-3, 1e-10, 1e-30])
def test_no_errors_matches_the_closed_form(b, tail):
    # Beta(1, b): P(X > x) = (1 - x)^b
    expected = -math.expm1(math.log(tail) / b)
    assert beta_upper_quantile(1, b, tail) == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("a", [1, 3, 50])
def test_beta_a_1_mirror_closed_form(a):
    # Beta(a, 1): P(X > x) = 1 - x^a
    for x in (0.01, 0.3, 0.9, 0.999):
        assert beta_upper_tail(a, 1, x) == pytest.approx(-math.expm1(a * math.log(x)),
                                                         rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(total=st.integers(1, 120_000), error_rate=st.floats(0, 0.5),
       tail=st.sampled_from([0.4, 1e-2, 1e-5]))
def test_same_as_scipy_betaincinv(total, error_rate, tail):
    special = pytest.importorskip("scipy.special")
    errors = min(total - 1, int(error_rate * total))
    a, b = errors + 1, total - errors
    assert beta_upper_quantile(a, b, tail) == pytest.approx(
        float(special.betaincinv(a, b, 1.0 - tail)), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(total=st.integers(256, 100_000), error_rate=st.floats(0, 0.2))
def test_quantile_inverts_the_tail(total, error_rate):
    errors = min(total - 1, int(error_rate * total))
    x = beta_upper_quantile(errors + 1, total - errors, 1e-10)
    assert beta_upper_tail(errors + 1, total - errors, x) == pytest.approx(1e-10, rel=1e-6)


def test_clopper_pearson_bound_is_above_the_observed_rate_and_shrinks_with_n():
    assert qber_upper_bound(40, 1000, 1e-10) > 0.04
    assert qber_upper_bound(400, 10_000, 1e-10) < qber_upper_bound(40, 1000, 1e-10)
    assert qber_upper_bound(0, 0, 1e-10) == 0.5 and qber_upper_bound(5, 5, 1e-10) == 0.5


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError):
        beta_upper_quantile(1, 2, 0.0)
    with pytest.raises(ValueError):
        beta_upper_tail(0, 2, 0.5)


def test_fft_length_is_the_next_5_smooth_number():
    def smooth(n):
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in list(range(1, 3000)) + [104_729, 131_073, 1_000_001]:
        length = fast_fft_length(n)
        assert length >= n and smooth(length)
        assert not any(smooth(m) for m in range(n, length))


def test_fft_length_as_scipy():
    sp_fft = pytest.importorskip("scipy.fft")
    for n in (1, 7, 97, 8191, 12_289, 150_001, 2_000_003):
        assert fast_fft_length(n) == sp_fft.next_fast_len(n, real=True)
