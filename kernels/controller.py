"""Error norms and step-size control shared by every integrator.

All functions accept real or complex states. Norms and step decisions use real parts only,
so a solve carried out with complex128 states (complex-step differentiation of the whole
solver) takes exactly the step sequence of the corresponding real solve.
"""

import math

import numpy as np
from numba import njit

#: scipy's controller defaults (safety factor, smallest and largest step change)
SAFETY = 0.9
FACTOR_MIN = 0.2
FACTOR_MAX = 10.0
#: a step whose error estimate is NaN/inf is retried this much smaller
FACTOR_NON_FINITE = 0.25


@njit(cache=True, inline="always")
def scaled_error_squared(err, y, y_new, atol, rtol):
    """``(err / (atol + rtol * max(|y|, |y_new|)))**2`` for one real component.

    An exactly zero error counts as zero even where the scale is zero (``atol = 0`` and a
    component that stays exactly zero); a nonzero error over a zero scale is infinite.
    """
    if err == 0.0:
        return 0.0
    scale = atol + rtol * max(abs(y), abs(y_new))
    ratio = err / scale
    return ratio * ratio


@njit(cache=True, inline="always", error_model="numpy")
def scaled_rms_norm(err, y, y_new, atol, rtol):
    """RMS of ``err / (atol + rtol * max(|y|, |y_new|))`` over the components."""
    n = err.shape[0]
    total = 0.0
    for i in range(n):
        total += scaled_error_squared(err[i].real, y[i].real, y_new[i].real, atol[i], rtol)
    return math.sqrt(total / n)


@njit(cache=True, error_model="numpy")
def _scaled_rms(v, y, atol, rtol):
    n = v.shape[0]
    total = 0.0
    for i in range(n):
        e = v[i].real
        if e != 0.0:
            ratio = e / (atol[i] + rtol * abs(y[i].real))
            total += ratio * ratio
    return math.sqrt(total / n)


@njit(cache=True, error_model="numpy")
def initial_step(rhs, t0, y0, f0, p, direction, order, atol, rtol, max_step, span, y1, f1):
    """Starting step size by Hairer's algorithm (Hairer, Nørsett & Wanner, Solving ODEs I,
    Sec. II.4): the step for which an explicit Euler step would make a local error of about
    the tolerance, limited by the growth of ``f``. Costs one evaluation of ``fun``;
    ``y1`` and ``f1`` are work arrays."""
    d0 = _scaled_rms(y0, y0, atol, rtol)
    d1 = _scaled_rms(f0, y0, atol, rtol)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, span, max_step)
    n = y0.shape[0]
    for i in range(n):
        y1[i] = y0[i] + direction * h0 * f0[i]
    rhs(t0 + direction * h0, y1, p, f1)
    for i in range(n):
        y1[i] = f1[i] - f0[i]
    d2 = _scaled_rms(y1, y0, atol, rtol) / h0
    if not np.isfinite(d2):
        # The derivative is not finite a small step away: start small and let the
        # controller report the failure where it happens.
        return h0 * 1e-3
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100.0 * h0, h1, span, max_step)


@njit(cache=True, inline="always")
def pi_history(err_previous, error_order):
    """The integral-history term ``err_previous**(0.4/q)`` of :func:`pi_step_factor`.

    Integrators compute it as soon as a step is accepted, so that this power is off the
    chain of dependent operations that leads from one error estimate to the next step size.
    """
    return err_previous ** (0.4 / (error_order + 1.0))


@njit(cache=True, inline="always")
def pi_step_factor_from_history(err_norm, history, error_order, previous_rejected):
    """:func:`pi_step_factor` with its history term given by :func:`pi_history`."""
    q = error_order + 1.0
    if err_norm == 0.0:
        factor = FACTOR_MAX
    else:
        factor = SAFETY * err_norm ** (-0.7 / q) * history
    if previous_rejected:
        factor = min(factor, 1.0)
    return min(FACTOR_MAX, max(FACTOR_MIN, factor))


@njit(cache=True, inline="always")
def pi_step_factor(err_norm, err_previous, error_order, previous_rejected):
    """Step-size factor of a PI controller after an accepted step.

    Gains ``0.7/q`` and ``0.4/q`` with ``q`` the order of the error estimate plus one
    (Gustafsson 1991; Söderlind 2002, "Automatic control and adaptive time-stepping").
    The integral part alone would oscillate on problems near the stability boundary; the
    proportional part damps that.
    """
    if err_norm == 0.0:
        return pi_step_factor_from_history(err_norm, 1.0, error_order, previous_rejected)
    return pi_step_factor_from_history(
        err_norm, pi_history(err_previous, error_order), error_order, previous_rejected
    )


@njit(cache=True, inline="always")
def reject_step_factor(err_norm, error_order):
    """Step-size factor after a rejected step (integral control only)."""
    q = error_order + 1.0
    return max(FACTOR_MIN, SAFETY * err_norm ** (-1.0 / q))
