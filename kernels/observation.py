"""Observables and their sensitivities at the output times of a solve.

A fit compares data with ``h(t, y, p)``, the user's observation function, compiled like the
model (a float64 and a complex128 ``cfunc`` called through their addresses). Its
sensitivities follow from the chain rule, ``dh/dtheta_c = dh/dy S_c + dh/dp e_c``, which
one complex evaluation per output time and column gives exactly:
``Im h(t, y + i eps S_c, p + i eps e_c) / eps``. A function that is not complex-step safe
uses central differences along the same direction instead.
"""

import numpy as np
from numba import njit

from .derivatives import CENTRAL_BASE_STEP, COMPLEX_STEP, INVERSE_COMPLEX_STEP
from .fnptr import call_model

__all__ = ["observe_outputs", "observe_sensitivities", "observe_sensitivities_central"]


@njit(cache=True, nogil=True)
def observe_outputs(address, times, y, p, out):
    """``out[j] = h(times[j], y[j], p)``; ``y`` has shape (T, n), ``out`` (T, m)."""
    for j in range(times.shape[0]):
        call_model(address, times[j], y[j], p, out[j])


@njit(cache=True, nogil=True)
def observe_sensitivities(address_complex, times, y, sens, p, param_columns, out):
    """``out[j, c] = dh/dtheta_c`` at output ``j`` by the complex step.

    ``sens`` has shape (T, k, n) (``S_c`` at each output), ``param_columns[c]`` is the
    parameter index of column ``c`` (-1 for an initial-state column) and ``out`` has shape
    (T, k, m).
    """
    n_times, k, n = sens.shape
    m = out.shape[2]
    n_params = p.shape[0]
    y_complex = np.empty(n, dtype=np.complex128)
    p_complex = np.empty(n_params, dtype=np.complex128)
    h_complex = np.empty(m, dtype=np.complex128)
    for i in range(n_params):
        p_complex[i] = p[i]
    for j in range(n_times):
        for c in range(k):
            for i in range(n):
                y_complex[i] = complex(y[j, i], COMPLEX_STEP * sens[j, c, i])
            column = param_columns[c]
            if column >= 0:
                p_complex[column] = complex(p[column], COMPLEX_STEP)
            call_model(address_complex, times[j], y_complex, p_complex, h_complex)
            if column >= 0:
                p_complex[column] = p[column]
            for i in range(m):
                out[j, c, i] = h_complex[i].imag * INVERSE_COMPLEX_STEP


@njit(cache=True, nogil=True)
def observe_sensitivities_central(address, times, y, sens, p, param_columns, out):
    """:func:`observe_sensitivities` by central differences along each direction, for
    observation functions that are not complex-step safe."""
    n_times, k, n = sens.shape
    m = out.shape[2]
    y_moved = np.empty(n)
    p_moved = p.copy()
    h_plus = np.empty(m)
    h_minus = np.empty(m)
    for j in range(n_times):
        for c in range(k):
            column = param_columns[c]
            size = 0.0
            direction = 0.0
            for i in range(n):
                size = max(size, abs(y[j, i]))
                direction = max(direction, abs(sens[j, c, i]))
            if column >= 0:
                size = max(size, abs(p[column]))
                direction = max(direction, 1.0)
            if direction == 0.0:
                for i in range(m):
                    out[j, c, i] = 0.0
                continue
            step = CENTRAL_BASE_STEP * max(size, 1.0) / direction
            for sign in (1.0, -1.0):
                for i in range(n):
                    y_moved[i] = y[j, i] + sign * step * sens[j, c, i]
                if column >= 0:
                    p_moved[column] = p[column] + sign * step
                call_model(address, times[j], y_moved, p_moved, h_plus if sign > 0 else h_minus)
            if column >= 0:
                p_moved[column] = p[column]
            for i in range(m):
                out[j, c, i] = (h_plus[i] - h_minus[i]) / (2.0 * step)
