"""Link physics: decoy-state BB84 over fiber and the PLOB bound (pure functions, no I/O).

Formulas and golden numbers are in ``docs/physics.md`` (shared) and ``docs/twin.md``:

* GLLP with decoy states, asymptotic, infinite decoys (Lo, Ma, Chen 2005; Ma, Qi, Zhao, Lo 2005);
* the practical vacuum + one weak decoy variant (Ma et al. 2005, section "vacuum + weak decoy");
* PLOB: ``K = -log2(1 - eta_ch)`` per channel use (Pirandola et al. 2017).

Faults act on the physics through two extra parameters: ``extra_loss_db`` (a degraded or bent
fiber adds loss to the channel) and ``eavesdrop_fraction`` (an intercept-resend attacker on a
fraction ``p`` of the pulses: on those pulses the error probability becomes
``1/4 + e_d/2``, so the QBER rises by about ``p/4``).

Example:
    >>> perf = evaluate(preset("reference", length_km=50))
    >>> round(perf.qber * 100, 2), round(perf.skr_bps / 1e6, 2)
    (1.01, 1.28)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum

from qkd_twin.bounded_minimum import bounded_minimum
from qkd_twin.errors import InvalidLinkParameters, UnknownPreset

#: Error probability of a random (dark-count / background) click.
E0 = 0.5
#: BB84 stops producing key when the QBER reaches this (1 - 2 h2(Q) = 0).
BB84_QBER_LIMIT = 0.110028


class DecoyModel(str, Enum):
    """How the single-photon yield and error are estimated."""

    INFINITE = "infinite"            # infinitely many decoys: Y1, e1 known exactly
    VACUUM_WEAK = "vacuum+weak"      # one vacuum and one weak decoy (nu) - practical


@dataclass(frozen=True)
class LinkParameters:
    """Everything the decoy-state BB84 model of one fiber link needs.

    Attributes:
        length_km: fiber length.
        alpha_db_per_km: fiber attenuation.
        eta_bob: Bob's detection efficiency including his optics.
        y0: dark-count (background) probability per pulse slot.
        e_d: misalignment error probability (optical visibility).
        f_ec: error-correction efficiency (leak / Shannon limit), >= 1.
        q: sifting factor (1/2 for standard BB84, ~0.9 for biased bases).
        clock_hz: pulse repetition rate.
        extra_loss_db: additional channel loss (fault injection, connectors...).
        eavesdrop_fraction: fraction of pulses attacked by an intercept-resend eavesdropper.
        decoy_nu: intensity of the weak decoy in the vacuum + weak variant.
    """

    length_km: float
    alpha_db_per_km: float = 0.20
    eta_bob: float = 0.10
    y0: float = 1e-6
    e_d: float = 0.01
    f_ec: float = 1.16
    q: float = 0.5
    clock_hz: float = 1e9
    extra_loss_db: float = 0.0
    eavesdrop_fraction: float = 0.0
    decoy_nu: float = 0.05

    def __post_init__(self) -> None:
        checks = (
            ("length_km", self.length_km >= 0),
            ("alpha_db_per_km", self.alpha_db_per_km >= 0),
            ("eta_bob", 0 < self.eta_bob <= 1),
            ("y0", 0 <= self.y0 < 1),
            ("e_d", 0 <= self.e_d < 0.5),
            ("f_ec", self.f_ec >= 1),
            ("q", 0 < self.q <= 1),
            ("clock_hz", self.clock_hz > 0),
            ("extra_loss_db", self.extra_loss_db >= 0),
            ("eavesdrop_fraction", 0 <= self.eavesdrop_fraction <= 1),
            ("decoy_nu", 0 < self.decoy_nu < 1),
        )
        for name, ok in checks:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and math.isnan(value)):
                raise InvalidLinkParameters(f"link parameter {name}={value!r} is out of range")

    def replace(self, **changes: float) -> LinkParameters:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


#: The parameter sets of physics.md. ``length_km`` is filled in by :func:`preset`.
PRESETS: dict[str, dict[str, float]] = {
    "gys": {"alpha_db_per_km": 0.21, "eta_bob": 0.045, "y0": 1.7e-6, "e_d": 0.033, "f_ec": 1.22,
                "q": 0.5, "clock_hz": 2e6},
    "reference": {"alpha_db_per_km": 0.20, "eta_bob": 0.10, "y0": 1e-6, "e_d": 0.01, "f_ec": 1.16,
                      "q": 0.5, "clock_hz": 1e9},
    "high-end": {"alpha_db_per_km": 0.20, "eta_bob": 0.60, "y0": 1e-7, "e_d": 0.01, "f_ec": 1.10,
                     "q": 0.9, "clock_hz": 1e9},
}


def preset(name: str, length_km: float, **overrides: float) -> LinkParameters:
    """The named parameter set at ``length_km``, with optional overrides.

    Raises:
        UnknownPreset: ``name`` is not one of :data:`PRESETS`.
    """
    try:
        base = PRESETS[name]
    except KeyError:
        raise UnknownPreset(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
    return LinkParameters(length_km=length_km, **{**base, **overrides})


@dataclass(frozen=True)
class LinkPerformance:
    """The model's answer for one link at its optimal signal intensity."""

    mu: float                 # optimal mean photon number of the signal state
    qber: float               # E_mu, error rate of the sifted signal key
    gain: float               # Q_mu, detection probability per signal pulse
    bits_per_pulse: float     # secret key per pulse slot (>= 0)
    skr_bps: float            # secret key rate = bits_per_pulse * clock
    plob_bps: float           # PLOB bound at this channel transmissivity * clock
    sifted_bps: float         # q * Q_mu * clock
    single_photon_fraction: float  # Q1 / Q_mu, fraction of detections from single photons
    e1: float                 # single-photon (phase) error rate estimate


def h2(x: float) -> float:
    """Binary entropy in bits (0 at 0 and 1)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0
    return -x * math.log2(x) - (1.0 - x) * math.log2(1.0 - x)


def channel_transmittance(p: LinkParameters) -> float:
    """Transmissivity of the fiber channel alone, including extra loss."""
    return 10.0 ** (-(p.alpha_db_per_km * p.length_km + p.extra_loss_db) / 10.0)


def total_transmittance(p: LinkParameters) -> float:
    """Channel times Bob's detection efficiency."""
    return channel_transmittance(p) * p.eta_bob


def effective_misalignment(p: LinkParameters) -> float:
    """Error probability of a signal click, including an intercept-resend attack."""
    attacked = 0.25 + p.e_d / 2.0  # wrong basis half of the time: error 1/2, else e_d
    return (1.0 - p.eavesdrop_fraction) * p.e_d + p.eavesdrop_fraction * attacked


def plob_bits_per_use(eta: float) -> float:
    """PLOB repeaterless bound -log2(1 - eta) per channel use."""
    if eta >= 1.0:
        return math.inf
    return -math.log2(1.0 - eta) if eta > 1e-12 else eta / math.log(2.0)


def plob_bps(p: LinkParameters) -> float:
    """PLOB bound for this link in bit/s."""
    return p.clock_hz * plob_bits_per_use(channel_transmittance(p))


def gain(p: LinkParameters, intensity: float) -> float:
    """Q: detection probability of a pulse of mean photon number ``intensity``."""
    return p.y0 + 1.0 - math.exp(-total_transmittance(p) * intensity)


def error_gain(p: LinkParameters, intensity: float) -> float:
    """E*Q: probability of an erroneous detection."""
    return E0 * p.y0 + effective_misalignment(p) * (
        1.0 - math.exp(-total_transmittance(p) * intensity))


def qber(p: LinkParameters, mu: float) -> float:
    """E_mu, the QBER of the signal state."""
    return error_gain(p, mu) / gain(p, mu)


def single_photon_estimates(p: LinkParameters, mu: float,
                            decoy: DecoyModel = DecoyModel.INFINITE) -> tuple[float, float]:
    """(Y1, e1): single-photon yield and error rate, exact or from vacuum + weak decoys."""
    eta = total_transmittance(p)
    if decoy is DecoyModel.INFINITE:
        y1 = p.y0 + eta
        e1 = (E0 * p.y0 + effective_misalignment(p) * eta) / y1
        return y1, e1
    nu = p.decoy_nu
    if not nu < mu:
        return 0.0, 0.5
    q_nu, q_mu = gain(p, nu), gain(p, mu)
    y1 = mu / (mu * nu - nu * nu) * (
        q_nu * math.exp(nu) - q_mu * math.exp(mu) * nu * nu / (mu * mu)
        - (mu * mu - nu * nu) / (mu * mu) * p.y0)
    if y1 <= 0:
        return 0.0, 0.5
    e1 = (error_gain(p, nu) * math.exp(nu) - E0 * p.y0) / (y1 * nu)
    return y1, min(max(e1, 0.0), 0.5)


def key_rate_per_pulse(p: LinkParameters, mu: float,
                       decoy: DecoyModel = DecoyModel.INFINITE) -> float:
    """GLLP secret key per pulse slot at signal intensity ``mu`` (may be negative)."""
    if mu <= 0:
        return 0.0
    y1, e1 = single_photon_estimates(p, mu, decoy)
    q1 = y1 * mu * math.exp(-mu)
    q_mu = gain(p, mu)
    return p.q * (q1 * (1.0 - h2(e1)) - p.f_ec * q_mu * h2(qber(p, mu)))


def optimal_mu(p: LinkParameters, decoy: DecoyModel = DecoyModel.INFINITE) -> float:
    """Signal intensity maximising the key rate (bounded scalar search on a coarse grid)."""
    lo = p.decoy_nu * 1.2 if decoy is DecoyModel.VACUUM_WEAK else 1e-3
    grid = [lo + (1.5 - lo) * i / 30 for i in range(31)]
    best = max(grid, key=lambda m: key_rate_per_pulse(p, m, decoy))
    step = (1.5 - lo) / 30
    mu = bounded_minimum(lambda m: -key_rate_per_pulse(p, m, decoy),
                         max(lo, best - step), min(1.5, best + step), xatol=1e-5)
    return mu if key_rate_per_pulse(p, mu, decoy) >= key_rate_per_pulse(p, best, decoy) else best


def evaluate(p: LinkParameters, decoy: DecoyModel = DecoyModel.INFINITE,
             mu: float | None = None) -> LinkPerformance:
    """The link's key rate, QBER and PLOB bound at the optimal (or given) ``mu``."""
    if mu is None:
        mu = optimal_mu(p, decoy)
    r = max(0.0, key_rate_per_pulse(p, mu, decoy))
    y1, e1 = single_photon_estimates(p, mu, decoy)
    q_mu = gain(p, mu)
    return LinkPerformance(
        mu=mu, qber=qber(p, mu), gain=q_mu, bits_per_pulse=r, skr_bps=r * p.clock_hz,
        plob_bps=plob_bps(p), sifted_bps=p.q * q_mu * p.clock_hz,
        single_photon_fraction=y1 * mu * math.exp(-mu) / q_mu, e1=e1)


def cutoff_length_km(p: LinkParameters, decoy: DecoyModel = DecoyModel.INFINITE,
                     max_km: float = 1000.0, tol_km: float = 0.05) -> float:
    """Length at which the key rate reaches zero (bisection on ``length_km``)."""
    def positive(length: float) -> bool:
        q = p.replace(length_km=length)
        return key_rate_per_pulse(q, optimal_mu(q, decoy), decoy) > 0
    lo, hi = 0.0, max_km
    if not positive(lo):
        return 0.0
    if positive(hi):
        return hi
    while hi - lo > tol_km:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if positive(mid) else (lo, mid)
    return (lo + hi) / 2


def sweep(p: LinkParameters, lengths_km: list[float],
          decoy: DecoyModel = DecoyModel.INFINITE) -> list[tuple[float, LinkPerformance]]:
    """``evaluate`` at each length."""
    return [(length, evaluate(p.replace(length_km=length), decoy)) for length in lengths_km]


def phase_error_bound(p: LinkParameters, mu: float, qber_upper: float,
                      decoy: DecoyModel = DecoyModel.VACUUM_WEAK) -> float:
    """Single-photon phase-error bound e1 from a measured QBER upper bound.

    The decoy states fix the single-photon yield ``Y1`` (lower bound for the practical
    variant) and the background ``Y0``; the measured QBER fixes the disturbance: invert
    ``E_mu = (e0 Y0 + e_d' (1 - exp(-eta mu))) / Q_mu`` for ``e_d'`` (which includes any
    eavesdropper) and attribute it to the single photons, ``e1 = (e0 Y0 + e_d' eta) / Y1``.
    """
    eta = total_transmittance(p)
    signal = 1.0 - math.exp(-eta * mu)
    y1, _ = single_photon_estimates(p, mu, decoy)
    if y1 <= 0 or signal <= 0:
        return 0.5
    disturbance = min(0.5, max(0.0, (qber_upper * gain(p, mu) - E0 * p.y0) / signal))
    return min(0.5, (E0 * p.y0 + disturbance * eta) / y1)
