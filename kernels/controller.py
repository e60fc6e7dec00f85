"""Error norms and step-size control shared by every integrator.

All functions accept real or complex states. Norms and step decisions use real parts only,
so a solve carried out with complex128 states (complex-step differentiation of the whole
solver) takes exactly the step sequence of the corresponding real solve.
"""

import math

import numpy as np
from numba import njit

from . import status as st
from .fields import field_rhs

#: scipy's controller defaults (safety factor, smallest and largest step change)
SAFETY = 0.9
FACTOR_MIN = 0.2
FACTOR_MAX = 10.0
#: a step whose error estimate is NaN/inf is retried this much smaller
FACTOR_NON_FINITE = 0.25
#: ``log(1e-4)``: the controller remembers a previous error norm of at least 1e-4, so that
#: one very accurate step does not inflate the next step's growth
LOG_ERR_FLOOR = math.log(1e-4)

#: Noise floor of the error norm, relative to ``rms(rtol * |y_new - y| / scale)``.
#:
#: The embedded error estimate is a difference of quantities of the size of the step's
#: increment ``y_new - y``, so it carries rounding noise of about ``c * eps * |y_new - y|``,
#: ``c`` a few for explicit pairs and tens for Rosenbrock estimates (stage couplings
#: ``C_ij / h`` of size 100 cancel in them) or for models whose right-hand side cancels large
#: terms. Scaled like the error, that is ``c * eps / rtol`` times the relative increment
#: ``rtol * |y_new - y| / scale``. An error norm this close to its noise is not a function of
#: the parameters: a controller that follows it (the PI formula does, down to error norms of
#: about 1e-10) makes the step sizes, and with them the solution, jump at rounding level
#: when a parameter moves by ``sqrt(eps)``, which ruins finite-difference derivatives of
#: solve() (issue W1-3). Relative noise ``r`` in the error norm moves the step sizes by about
#: ``r / q`` and the result by about ``rtol * r``, which a finite-difference step of relative
#: size ``sqrt(eps)`` must not see: ``r`` has to stay below about ``1e-5 * 1e-8 / rtol``. So
#: the controller ignores error norms below ``NOISE_FLOOR_GAIN * rms(rtol * |dy| / scale)``
#: (``1e5 * eps / 1e-8`` = 2e-3 times about 5 for ``c``: 1e-2 for a component that changes
#: by as much as its own size in a step, far less in the middle of a solve, where it
#: rarely binds) and grows the step by ``FACTOR_MAX`` there, as scipy's I controller does for any
#: error norm below 6e-6. The floor depends smoothly on the parameters, so the step sequence
#: does too.
NOISE_FLOOR_GAIN = 1e-2


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


@njit(cache=True, inline="always")
def scaled_increment_squared(y, y_new, atol, rtol):
    """``(rtol * (y_new - y) / (atol + rtol * max(|y|, |y_new|)))**2`` for one real
    component: the step's relative change, whose ``NOISE_FLOOR_GAIN`` multiple is the
    noise floor of the error norm (zero for an unchanged component, whatever its scale)."""
    dy = y_new - y
    if dy == 0.0:
        return 0.0
    ratio = rtol * dy / (atol + rtol * max(abs(y), abs(y_new)))
    return ratio * ratio


@njit(cache=True, inline="always")
def log_noise_floor(increment_squared_sum, n):
    """``log(NOISE_FLOOR_GAIN * rms(rtol * (y_new - y) / scale))`` from the sum of
    :func:`scaled_increment_squared` over the ``n`` components (``-inf`` for a step that
    changed nothing)."""
    if not increment_squared_sum > 0.0:
        return -np.inf
    return math.log(NOISE_FLOOR_GAIN) + 0.5 * math.log(increment_squared_sum / n)


@njit(cache=True, error_model="numpy")
def _scaled_rms(v, y, atol, rtol, n):
    total = 0.0
    for i in range(n):
        e = v[i].real
        if e != 0.0:
            ratio = e / (atol[i] + rtol * abs(y[i].real))
            total += ratio * ratio
    return math.sqrt(total / n)


@njit(cache=True, error_model="numpy")
def initial_step(field, ws, t0, y0, f0, p, direction, order, atol, rtol, max_step, span,
                 n_error, y1, f1):
    """Starting step size by Hairer's algorithm (Hairer, Nørsett & Wanner, Solving ODEs I,
    Sec. II.4): the step for which an explicit Euler step would make a local error of about
    the tolerance, limited by the growth of ``f``, measured on the first ``n_error``
    components (those under error control). Costs one evaluation of the field (see
    :mod:`fields`); ``y1`` and ``f1`` are work arrays."""
    d0 = _scaled_rms(y0, y0, atol, rtol, n_error)
    d1 = _scaled_rms(f0, y0, atol, rtol, n_error)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / d1
    h0 = min(h0, span, max_step)
    n = y0.shape[0]
    for i in range(n):
        y1[i] = y0[i] + direction * h0 * f0[i]
    field_rhs(field, ws, t0 + direction * h0, y1, p, f1)
    for i in range(n):
        y1[i] = f1[i] - f0[i]
    d2 = _scaled_rms(y1, y0, atol, rtol, n_error) / h0
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
def pi_step_factor_from_logs(log_err, log_err_previous, error_order, previous_rejected,
                             log_floor):
    """:func:`pi_step_factor` from ``log(err_norm)``, ``log(err_previous)`` and the log of
    the error norm's noise floor (:func:`log_noise_floor`).

    The integrators keep the logarithm of the previous error norm, so that a step costs
    one ``log`` and one ``exp`` instead of two ``pow``. ``log_err = -inf`` (a zero error
    norm) gives the largest factor.
    """
    if log_err <= log_floor:
        # The error norm is rounding noise (see NOISE_FLOOR_GAIN): the step is far more
        # accurate than needed, grow it as much as allowed, independently of the noise.
        factor = FACTOR_MAX
    else:
        q = error_order + 1.0
        factor = SAFETY * math.exp((0.4 * log_err_previous - 0.7 * log_err) / q)
    if previous_rejected:
        factor = min(factor, 1.0)
    return min(FACTOR_MAX, max(FACTOR_MIN, factor))


@njit(cache=True, inline="always")
def remembered_log_err(log_err, log_floor):
    """The ``log(err_previous)`` the PI controller keeps for the next step: at least
    ``LOG_ERR_FLOOR``, and at least the noise floor, so that the noise of a step's error
    norm does not reach the next step's factor through the proportional term either."""
    return max(log_err, log_floor, LOG_ERR_FLOOR)


@njit(cache=True, inline="always")
def pi_step_factor(err_norm, err_previous, error_order, previous_rejected, noise_floor=0.0):
    """Step-size factor of a PI controller after an accepted step:
    ``SAFETY * err_norm**(-0.7/q) * max(err_previous, 1e-4)**(0.4/q)``, clipped to
    ``[FACTOR_MIN, FACTOR_MAX]`` (and to at most 1 right after a rejection); ``FACTOR_MAX``
    (or 1 after a rejection) when ``err_norm <= noise_floor``, an error norm that is
    rounding noise (see ``NOISE_FLOOR_GAIN``).

    Gains ``0.7/q`` and ``0.4/q`` with ``q`` the order of the error estimate plus one
    (Gustafsson 1991, "Control theoretic techniques for stepsize selection in explicit
    Runge-Kutta methods", ACM TOMS 17; Söderlind 2002, "Automatic control and adaptive
    time-stepping", Numer. Algorithms 31). The integral part alone would oscillate on
    problems near the stability boundary; the proportional part damps that. The design
    assumes error norms near the target: far below it (Söderlind's "controller saturation")
    only the limit ``FACTOR_MAX`` should act, which the noise floor makes sure of where the
    error norm no longer carries information.
    """
    log_err = math.log(err_norm) if err_norm > 0.0 else -np.inf
    log_floor = math.log(noise_floor) if noise_floor > 0.0 else -np.inf
    return pi_step_factor_from_logs(
        log_err, max(math.log(err_previous), LOG_ERR_FLOOR), error_order, previous_rejected,
        log_floor,
    )


@njit(cache=True, inline="always")
def reject_step_factor(err_norm, error_order):
    """Step-size factor after a rejected step (integral control only)."""
    q = error_order + 1.0
    return max(FACTOR_MIN, SAFETY * err_norm ** (-1.0 / q))


@njit(cache=True, error_model="numpy")
def begin_integration(field, ws, y, p, f0, atol, fopts, iopts, order, n_error, t_out, y_out,
                      work_a, work_b, fstate, istate):
    """The first call of an integrator: evaluate ``f0 = f(t0, y0)``, record ``t0`` as the
    first output when every step is saved, and choose the first step (``dt``, the user's
    ``first_step`` or :func:`initial_step`). Fills the resumable records (``status.F_*``,
    ``status.I_*``) and returns ``status.NON_FINITE`` when ``y0`` or ``f0`` is not finite,
    else ``status.SUCCESS``. Called once per solve, so its array arguments cost nothing in
    the step loop."""
    t0 = fopts[st.O_T0]
    t_end = fopts[st.O_T_END]
    n = y.shape[0]
    istate[st.I_STARTED] = 1
    fstate[st.F_T] = t0
    fstate[st.F_ERR_PREVIOUS] = 1.0
    field_rhs(field, ws, t0, y, p, f0)
    istate[st.I_NFEV] += 1
    istate[st.I_K0_VALID] = 1
    if iopts[st.IO_SAVE_EVERY_STEP] != 0:
        t_out[0] = t0
        for j in range(n):
            y_out[0, j] = y[j]
        istate[st.I_N_OUT] = 1
    for j in range(n):
        if not (np.isfinite(f0[j].real) and np.isfinite(y[j].real)):
            fstate[st.F_H] = 0.0
            istate[st.I_STATUS] = st.NON_FINITE
            return st.NON_FINITE
    if fopts[st.O_DT] > 0.0:
        h = fopts[st.O_DT]
    elif fopts[st.O_FIRST_STEP] > 0.0:
        h = fopts[st.O_FIRST_STEP]
    else:
        direction = 1.0 if t_end > t0 else -1.0
        h = initial_step(
            field, ws, t0, y, f0, p, direction, order, atol, fopts[st.O_RTOL],
            fopts[st.O_MAX_STEP], abs(t_end - t0), n_error, work_a, work_b,
        )
        istate[st.I_NFEV] += 1
    fstate[st.F_H] = h
    return st.SUCCESS


@njit(cache=True, inline="always")
def propose_step(t, h_abs, t0, t_end, direction, max_step, dt_fixed, n_accepted,
                 last_reject_nonfinite):
    """The end of the next step: ``(t_new, h_abs, status)``.

    Adaptive (``dt_fixed == 0``): ``h_abs`` limited by ``max_step`` and stretched to land on
    ``t_end`` exactly (the 1e-10 slack avoids a last step of rounding size); status
    ``STEP_TOO_SMALL`` (or ``NON_FINITE`` when the last rejection was for non-finite
    values) once the step is below ten rounding units of ``t``.

    Fixed: steps end at ``t0 + k * dt`` rather than at a running sum of ``dt``, whose
    rounding would accumulate (n steps of ``(t_end - t0) / n`` then end on ``t_end``
    instead of leaving a last step of rounding size).
    """
    status = st.SUCCESS
    if dt_fixed <= 0.0:
        h_abs = min(h_abs, max_step)
        remaining = abs(t_end - t)
        if h_abs >= remaining * (1.0 - 1e-10):
            h_abs = remaining
            t_new = t_end
        else:
            t_new = t + direction * h_abs
        min_step = 10.0 * 2.220446049250313e-16 * max(abs(t), abs(t_new))
        if h_abs < min_step:
            status = st.NON_FINITE if last_reject_nonfinite else st.STEP_TOO_SMALL
    else:
        dt_step = min(dt_fixed, max_step)
        t_new = t0 + direction * ((n_accepted + 1) * dt_step)
        slack = 1e-10 * dt_step + 10.0 * 2.220446049250313e-16 * max(abs(t_new), abs(t_end))
        if direction * (t_end - t_new) <= slack:
            t_new = t_end
        h_abs = abs(t_new - t)
    return t_new, h_abs, status
