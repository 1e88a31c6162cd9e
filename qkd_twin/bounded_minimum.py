"""Minimum of a scalar function on an interval: Brent's bounded method (golden section with
parabolic interpolation; Forsythe, Malcolm & Moler 1977, ``fmin``), in pure Python.

The link model optimises the signal intensity μ once per parameter set
(:func:`qkd_twin.physics.optimal_mu`). This is the method of scipy's
``minimize_scalar(method="bounded")``, which it replaces so that a node process does not
import ``scipy.optimize`` (a third of a second of CPU at every ``qkdn up``, on the path to the
first key; docs/twin.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))
_SQRT_EPS = math.sqrt(2.2e-16)


def bounded_minimum(f: Callable[[float], float], lower: float, upper: float, *,
                    xatol: float = 1e-5, max_iter: int = 500) -> float:
    """An ``x`` in ``[lower, upper]`` at which ``f`` is (locally) minimal, to within about
    ``xatol``. ``f`` is evaluated only strictly inside the interval."""
    if not lower < upper:
        raise ValueError(f"empty interval [{lower}, {upper}]")
    a, b = float(lower), float(upper)
    far = near = best = a + _GOLDEN * (b - a)   # third best, second best, best point so far
    f_best = f(best)
    f_far = f_near = f_best
    step = previous_step = 0.0
    middle = 0.5 * (a + b)
    tol1 = _SQRT_EPS * abs(best) + xatol / 3.0
    tol2 = 2.0 * tol1
    for _ in range(max_iter):
        if abs(best - middle) <= tol2 - 0.5 * (b - a):
            break
        golden = True
        if abs(previous_step) > tol1:   # try a parabola through the three points
            golden = False
            r = (best - near) * (f_best - f_far)
            q = (best - far) * (f_best - f_near)
            p = (best - far) * q - (best - near) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r, previous_step = previous_step, step
            if abs(p) < abs(0.5 * q * r) and q * (a - best) < p < q * (b - best):
                step = p / q
                x = best + step
                if x - a < tol2 or b - x < tol2:   # too close to a bound
                    step = tol1 if middle >= best else -tol1
            else:
                golden = True
        if golden:
            previous_step = (a - best) if best >= middle else (b - best)
            step = _GOLDEN * previous_step
        direction = 1.0 if step >= 0.0 else -1.0
        x = best + direction * max(abs(step), tol1)
        f_x = f(x)
        if f_x <= f_best:
            if x >= best:
                a = best
            else:
                b = best
            far, f_far = near, f_near
            near, f_near = best, f_best
            best, f_best = x, f_x
        else:
            if x < best:
                a = x
            else:
                b = x
            if f_x <= f_near or near == best:
                far, f_far = near, f_near
                near, f_near = x, f_x
            elif f_x <= f_far or far in (best, near):
                far, f_far = x, f_x
        middle = 0.5 * (a + b)
        tol1 = _SQRT_EPS * abs(best) + xatol / 3.0
        tol2 = 2.0 * tol1
    return best
