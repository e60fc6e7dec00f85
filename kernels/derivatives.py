"""Jacobians of the user's model without autodiff.

The complex step (Squire & Trapp, SIAM Review 40, 1998; Martins, Sturdza & Alonso, ACM TOMS
29, 2003): for a model compiled for complex128,
``Im f(y + i*h*v, p + i*h*w) / h = J_y v + J_p w`` up to rounding, with ``h = 2**-100``, since
there is no subtraction to lose digits in. Central differences are kept for models that are
not complex-step safe (``abs``, ``sign``, ``conj`` on the state) and as a test oracle.
"""

import numpy as np
from numba import njit

from .fnptr import call_model

#: complex-step size (about 7.9e-31): far below any perturbation that could change the real
#: part, and a power of two, so that dividing by it is an exact multiplication
COMPLEX_STEP = 2.0**-100
INVERSE_COMPLEX_STEP = 2.0**100


@njit(cache=True)
def jacobians_complex_step(address_complex, t, y, p, jac_y, jac_p):
    """Fill ``jac_y`` (n, n) and ``jac_p`` (n, n_p) with ``df/dy`` and ``df/dp`` by the
    complex step: one complex evaluation of the model per column."""
    n = y.shape[0]
    n_p = p.shape[0]
    yc = np.empty(n, dtype=np.complex128)
    pc = np.empty(n_p, dtype=np.complex128)
    out = np.empty(n, dtype=np.complex128)
    for i in range(n):
        yc[i] = y[i]
    for i in range(n_p):
        pc[i] = p[i]
    for col in range(n):
        yc[col] = y[col] + 1j * COMPLEX_STEP
        call_model(address_complex, t, yc, pc, out)
        yc[col] = y[col]
        for row in range(n):
            jac_y[row, col] = out[row].imag / COMPLEX_STEP
    for col in range(n_p):
        pc[col] = p[col] + 1j * COMPLEX_STEP
        call_model(address_complex, t, yc, pc, out)
        pc[col] = p[col]
        for row in range(n):
            jac_p[row, col] = out[row].imag / COMPLEX_STEP


#: ``eps ** (1/3)``
CENTRAL_BASE_STEP = 6.055454452393343e-06


@njit(cache=True, inline="always")
def central_step(x, floor):
    """Central-difference step for a variable of value ``x`` whose scale is at least
    ``floor`` (an exact zero with a zero floor gets ``eps**(1/3)``)."""
    scale = max(abs(x), floor)
    return CENTRAL_BASE_STEP * (scale if scale > 0.0 else 1.0)


@njit(cache=True, inline="always")
def state_scale_floor(y):
    """``1e-3 * max|y|``: below this a state counts as small on the scale of the others."""
    largest = 0.0
    for i in range(y.shape[0]):
        largest = max(largest, abs(y[i]))
    return 1e-3 * largest


@njit(cache=True)
def jacobians_central(address, t, y, p, jac_y, jac_p):
    """Fill ``jac_y`` and ``jac_p`` by central differences.

    Steps are ``eps**(1/3)`` (the step that balances truncation and rounding error of a
    second-order formula) times a scale per variable: ``|p_k|`` for a parameter, so that a
    small rate constant (``p = 1e-6``) is not stepped out of its domain, and
    ``max(|y_i|, 1e-3 * max|y|)`` for a state, so that a state that is tiny but not zero
    (``3.7e-33``) is not stepped by a difference that rounds away.
    """
    n = y.shape[0]
    n_p = p.shape[0]
    floor = state_scale_floor(y)
    yw = y.copy()
    pw = p.copy()
    f_plus = np.empty(n)
    f_minus = np.empty(n)
    for col in range(n):
        step = central_step(y[col], floor)
        yw[col] = y[col] + step
        call_model(address, t, yw, pw, f_plus)
        yw[col] = y[col] - step
        call_model(address, t, yw, pw, f_minus)
        yw[col] = y[col]
        for row in range(n):
            jac_y[row, col] = (f_plus[row] - f_minus[row]) / (2.0 * step)
    for col in range(n_p):
        step = central_step(p[col], 0.0)
        pw[col] = p[col] + step
        call_model(address, t, yw, pw, f_plus)
        pw[col] = p[col] - step
        call_model(address, t, yw, pw, f_minus)
        pw[col] = p[col]
        for row in range(n):
            jac_p[row, col] = (f_plus[row] - f_minus[row]) / (2.0 * step)


@njit(cache=True)
def evaluate_model(address, t, y, p, out):
    """Call the model at ``address`` once (used by the model check from Python)."""
    call_model(address, t, y, p, out)


@njit(cache=True)
def time_derivative_complex_step(address_complex_time, t, y, p, out):
    """``df/dt`` by the complex step in ``t``, with the model compiled for complex ``t``."""
    n = y.shape[0]
    yc = np.empty(n, dtype=np.complex128)
    pc = np.empty(p.shape[0], dtype=np.complex128)
    values = np.empty(n, dtype=np.complex128)
    for i in range(n):
        yc[i] = y[i]
    for i in range(p.shape[0]):
        pc[i] = p[i]
    call_model(address_complex_time, t + 1j * COMPLEX_STEP, yc, pc, values)
    for i in range(n):
        out[i] = values[i].imag / COMPLEX_STEP


@njit(cache=True)
def time_derivative_central(address, t, y, p, out):
    """``df/dt`` by central differences (step ``eps**(1/3) * max(1, |t|)``)."""
    n = y.shape[0]
    f_plus = np.empty(n)
    f_minus = np.empty(n)
    step = CENTRAL_BASE_STEP * max(1.0, abs(t))
    call_model(address, t + step, y, p, f_plus)
    call_model(address, t - step, y, p, f_minus)
    for i in range(n):
        out[i] = (f_plus[i] - f_minus[i]) / (2.0 * step)
