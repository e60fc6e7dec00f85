"""Jacobians of the user's model without autodiff.

The complex step (Squire & Trapp, SIAM Review 40, 1998; Martins, Sturdza & Alonso, ACM TOMS
29, 2003): for a model compiled for complex128,
``Im f(y + i*h*v, p + i*h*w) / h = J_y v + J_p w`` up to rounding, with ``h = 1e-30``, since
there is no subtraction to lose digits in. Central differences are kept for models that are
not complex-step safe (``abs``, ``sign``, ``conj`` on the state) and as a test oracle.
"""

import numpy as np
from numba import njit

from .fnptr import as_rhs

#: complex-step size: far below any perturbation that could change the real part
COMPLEX_STEP = 1e-30


@njit(cache=True)
def jacobians_complex_step(address_complex, t, y, p, jac_y, jac_p):
    """Fill ``jac_y`` (n, n) and ``jac_p`` (n, n_p) with ``df/dy`` and ``df/dp`` by the
    complex step: one complex evaluation of the model per column."""
    rhs = as_rhs(address_complex, np.empty(1, dtype=np.complex128))
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
        rhs(t, yc, pc, out)
        yc[col] = y[col]
        for row in range(n):
            jac_y[row, col] = out[row].imag / COMPLEX_STEP
    for col in range(n_p):
        pc[col] = p[col] + 1j * COMPLEX_STEP
        rhs(t, yc, pc, out)
        pc[col] = p[col]
        for row in range(n):
            jac_p[row, col] = out[row].imag / COMPLEX_STEP


@njit(cache=True)
def jacobians_central(address, t, y, p, jac_y, jac_p):
    """Fill ``jac_y`` and ``jac_p`` by central differences with steps scaled to each
    variable (``eps**(1/3) * max(1, |x|)``, the step that balances truncation and
    rounding error for a second-order formula)."""
    rhs = as_rhs(address, y)
    n = y.shape[0]
    n_p = p.shape[0]
    yw = y.copy()
    pw = p.copy()
    f_plus = np.empty(n)
    f_minus = np.empty(n)
    base = 6.055454452393343e-06  # eps ** (1/3)
    for col in range(n):
        step = base * max(1.0, abs(y[col]))
        yw[col] = y[col] + step
        rhs(t, yw, pw, f_plus)
        yw[col] = y[col] - step
        rhs(t, yw, pw, f_minus)
        yw[col] = y[col]
        for row in range(n):
            jac_y[row, col] = (f_plus[row] - f_minus[row]) / (2.0 * step)
    for col in range(n_p):
        step = base * max(1.0, abs(p[col]))
        pw[col] = p[col] + step
        rhs(t, yw, pw, f_plus)
        pw[col] = p[col] - step
        rhs(t, yw, pw, f_minus)
        pw[col] = p[col]
        for row in range(n):
            jac_p[row, col] = (f_plus[row] - f_minus[row]) / (2.0 * step)


@njit(cache=True)
def evaluate_model(address, t, y, p, out):
    """Call the model at ``address`` once (used by the model check from Python)."""
    rhs = as_rhs(address, y)
    rhs(t, y, p, out)
