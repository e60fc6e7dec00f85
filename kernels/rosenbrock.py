"""One generic Rosenbrock (W-)method integrator driven by tableau data.

Every Rosenbrock method (Rodas5P, Rodas4, Rosenbrock23) is a ``RosenbrockTableau`` packed
by :func:`pack_rosenbrock_tableau`; :func:`integrate_rosenbrock` does the arithmetic for all
of them, in the transformed form of Hairer & Wanner (Solving ODEs II, Sec. IV.7, (7.25)):

    (I/(h*gamma) - J) u_i = f(t + alpha_i h, y + sum_j A_ij u_j) + sum_j (C_ij / h) u_j
                            + gamma_i h f_t
    y_new = y + sum_i m_i u_i,     error estimate = sum_i m_error_i u_i

with ``J = df/dy`` and ``f_t = df/dt`` at the start of the step. Each step costs one
Jacobian, one LU factorisation of the iteration matrix and one triangular solve per stage;
no Newton iteration, so no convergence failures.

Derivatives, chosen by ``iopts[IO_JAC_MODE]`` and ``iopts[IO_TIME_MODE]``:

* ``df/dy`` by the complex step on the user's model compiled for complex128 (one complex
  evaluation per column, exact to rounding), by the user's ``jac``, or by central
  differences for models that are not complex-step safe;
* ``df/dt`` by the complex step in ``t`` (a variant of the model compiled with complex
  ``t``) or by central differences when the model does not compile for a complex ``t``.

After a rejected step the Jacobian at the same ``(t, y)`` is reused; only the LU
factorisation is redone for the new step size. From ``SMALL_LU`` states up the
factorisation is LAPACK's ``dgetrf`` (through the LAPACK binding Numba itself uses for
``np.linalg``); below, the same unblocked algorithm runs in the kernel, since LAPACK's call
overhead exceeds the arithmetic of a tiny matrix. The triangular solves are written out here
so that nothing is allocated in the step loop.

The kernel is resumable in the same way as the explicit one (``status.I_*`` / ``F_*``
records, positive status codes ask the driver to grow a buffer or switch methods), which
lets ``method="auto"`` hand a solve back and forth between an explicit and a Rosenbrock
method. States are float64 only: a complex-step differentiated solve would need the
Jacobian of a complex state, which the complex step cannot provide.
"""

import math

import numpy as np
from numba import njit, types
from numba.np.linalg import _LAPACK

from . import status as st
from .controller import (
    FACTOR_NON_FINITE,
    begin_integration,
    log_noise_floor,
    pi_step_factor_from_logs,
    propose_step,
    reject_step_factor,
    remembered_log_err,
    scaled_error_squared,
    scaled_increment_squared,
)
from .derivatives import CENTRAL_BASE_STEP, COMPLEX_STEP, central_step, state_scale_floor
from .fnptr import as_jac, as_rhs, as_rhs_complex_time

__all__ = ["integrate_rosenbrock", "pack_rosenbrock_tableau"]

# Layout of the packed tableau info record.
R_N_STAGES = 0
R_N_DENSE = 1
R_ORDER = 2
R_ERROR_ORDER = 3
R_FSAL = 4
R_SIZE = 5

# Entries of the ``addresses`` record.
A_RHS = 0
A_RHS_COMPLEX = 1
A_JAC = 2
A_RHS_COMPLEX_TIME = 3
A_SIZE = 4

#: ``method="auto"`` hands back to the explicit method after this many accepted steps in a
#: row with ``h * rho(J) <= NONSTIFF_H_RHO``, ``rho(J)`` bounded by ``min(||J||_1,
#: ||J||_inf)``: there an explicit method is stable with the same step size and cheaper
#: per step. The bound is an overestimate, so the switch back is conservative.
NONSTIFF_H_RHO = 1.0
NONSTIFF_STEPS_TO_SWITCH = 25

#: singular iteration matrices in a row (each halving the step) before giving up
MAX_SINGULAR = 8

_GETRF = _LAPACK().numba_xxgetrf(types.float64)
_KIND_DOUBLE = ord("d")


def pack_rosenbrock_tableau(tableau):
    """Pack a ``RosenbrockTableau`` into the two arrays the kernel takes.

    Returns ``(tab, tab_info)``: ``tab`` is ``(s, 2 s + 5 + n_dense)`` with columns
    ``[A | C | m | m_error | alpha | gamma_sum | gamma | dense]``, ``tab_info`` the int64
    record described by the ``R_*`` constants. A tableau is "FSAL" when its last stage is
    evaluated at ``(t + h, y_new)``: that evaluation then starts the next step.
    """
    s = tableau.A.shape[0]
    n_dense = tableau.dense.shape[1]
    tab = np.zeros((s, 2 * s + 5 + n_dense))
    tab[:, :s] = tableau.A
    tab[:, s : 2 * s] = tableau.C
    tab[:, 2 * s] = tableau.m
    tab[:, 2 * s + 1] = tableau.m_error
    tab[:, 2 * s + 2] = tableau.alpha
    tab[:, 2 * s + 3] = tableau.gamma_sum
    tab[:, 2 * s + 4] = tableau.gamma
    tab[:, 2 * s + 5 :] = tableau.dense
    fsal = (
        tableau.alpha[-1] == 1.0
        and tableau.m[-1] == 0.0
        and np.array_equal(tableau.A[-1, : s - 1], tableau.m[: s - 1])
    )
    info = np.zeros(R_SIZE, dtype=np.int64)
    info[R_N_STAGES] = s
    info[R_N_DENSE] = n_dense
    info[R_ORDER] = tableau.order
    info[R_ERROR_ORDER] = min(tableau.order, tableau.embedded_order)
    info[R_FSAL] = int(fsal)
    tab.setflags(write=False)
    info.setflags(write=False)
    return tab, info


#: Below this size the LU is done in the kernel: LAPACK's call and blocking overhead is
#: larger than the arithmetic of a small matrix (for n = 3, 118 ns against 74 ns; at n = 50
#: both take about 12 µs).
SMALL_LU = 16


# ``error_model="numpy"``: IEEE division, as in the explicit kernel.
@njit(cache=True, error_model="numpy")
def integrate_rosenbrock(
    addresses,
    y,
    p,
    atol,
    fopts,
    iopts,
    tab,
    tab_info,
    t_eval,
    t_out,
    y_out,
    dense_t,
    dense_h,
    dense_y,
    dense_k,
    K,
    fstate,
    istate,
):
    """Integrate ``y' = fun(t, y, p)`` from ``fopts[O_T0]`` towards ``fopts[O_T_END]`` with
    a Rosenbrock method.

    Parameters
    ----------
    addresses : (A_SIZE,) int64
        The model's float64 cfunc, its complex128 cfunc (complex-step Jacobian), the user
        Jacobian and the complex-time variant (complex-step ``df/dt``); unused entries 0.
    y : (n,) float64
        The current state, updated in place.
    p, atol : (n_p,), (n,) float64
    fopts, iopts : float64 and int64 option records (``status.O_*``, ``status.IO_*``).
    tab, tab_info : the packed tableau (:func:`pack_rosenbrock_tableau`).
    t_eval, t_out, y_out, dense_t, dense_h, dense_y, dense_k :
        As for the explicit kernel; ``dense_k[d, i]`` holds ``u_i / h`` of stored step d.
    K : (s, n) float64
        ``K[0]`` carries ``f(t, y)`` between calls (valid when ``I_K0_VALID``).
    fstate, istate : the resumable state records (``status.F_*``, ``status.I_*``).

    Returns
    -------
    int
        A ``status`` code: 0 finished, negative failure, positive "call again".
    """
    rhs = as_rhs(addresses[A_RHS], y)
    jac_mode = iopts[st.IO_JAC_MODE]
    time_mode = iopts[st.IO_TIME_MODE]
    n = y.shape[0]
    n_p = p.shape[0]
    s = tab_info[R_N_STAGES]
    n_dense = tab_info[R_N_DENSE]
    order = tab_info[R_ORDER]
    error_order = tab_info[R_ERROR_ORDER]
    fsal = tab_info[R_FSAL] != 0
    col_m = 2 * s
    col_err = 2 * s + 1
    col_alpha = 2 * s + 2
    col_gsum = 2 * s + 3
    gamma = tab[0, 2 * s + 4]
    col_dense = 2 * s + 5

    t0 = fopts[st.O_T0]
    t_end = fopts[st.O_T_END]
    rtol = fopts[st.O_RTOL]
    max_step = fopts[st.O_MAX_STEP]
    dt_fixed = fopts[st.O_DT]
    adaptive = dt_fixed <= 0.0
    max_steps = iopts[st.IO_MAX_STEPS]
    save_every_step = iopts[st.IO_SAVE_EVERY_STEP] != 0
    store_dense = iopts[st.IO_STORE_DENSE] != 0
    switch_when_nonstiff = iopts[st.IO_SWITCH] != 0
    direction = 1.0 if t_end > t0 else -1.0
    n_eval = t_eval.shape[0]
    cap_out = t_out.shape[0]
    cap_dense = dense_t.shape[0]

    # Work arrays, sized once per call.
    U = np.empty((s, n))
    y_stage = np.empty(n)
    f_stage = np.empty(n)
    y_new = np.empty(n)
    f_t = np.zeros(n)
    f_minus = np.empty(n)
    jac_t = np.empty((n, n))  # jac_t[j, i] = df_i/dy_j: column j of J is contiguous
    lu = np.empty((n, n))
    ipiv = np.empty(n, dtype=np.int32)
    weights = np.empty(s)
    inv_diagonal = np.empty(n)  # 1 / U[i, i] of the LU: back substitution multiplies
    stage_sum = np.empty(n)
    jac_user = np.empty((n, n)) if jac_mode == st.JAC_USER else np.empty((0, 0))
    complex_y = np.empty(n, dtype=np.complex128)
    complex_p = np.empty(n_p, dtype=np.complex128)
    complex_out = np.empty(n, dtype=np.complex128)

    if istate[st.I_STARTED] == 0:
        code = begin_integration(
            rhs, y, p, K[0], atol, fopts, iopts, order, t_out, y_out, y_stage, y_new, fstate,
            istate,
        )
        if code != st.SUCCESS:
            return code

    t = fstate[st.F_T]
    h_abs = abs(fstate[st.F_H])
    err_previous = fstate[st.F_ERR_PREVIOUS]
    log_err_previous = math.log(err_previous)
    status = istate[st.I_STATUS]
    n_out = istate[st.I_N_OUT]
    n_accepted = istate[st.I_N_ACCEPTED]
    n_rejected = istate[st.I_N_REJECTED]
    nfev = istate[st.I_NFEV]
    njev = istate[st.I_NJEV]
    nlu = istate[st.I_NLU]
    k0_valid = istate[st.I_K0_VALID] != 0
    n_dense_steps = istate[st.I_N_DENSE]
    nonstiff_count = istate[st.I_NONSTIFF_COUNT]
    last_reject_nonfinite = istate[st.I_LAST_REJECT_NONFINITE] != 0
    previous_rejected = istate[st.I_PREVIOUS_REJECTED] != 0
    # The Jacobian arrays are local to a call, so a resumed call starts with a fresh one.
    jac_valid = False
    rho_bound = 0.0
    n_singular = 0

    while direction * (t_end - t) > 0.0:
        if n_accepted + n_rejected >= max_steps:
            status = st.MAX_STEPS
            break
        if save_every_step and n_out >= cap_out:
            status = st.OUTPUT_FULL
            break
        if store_dense and n_dense_steps >= cap_dense:
            status = st.DENSE_FULL
            break
        if not k0_valid:
            rhs(t, y, p, K[0])
            nfev += 1
            k0_valid = True

        if not jac_valid:
            # df/dy, one column per evaluation
            if jac_mode == st.JAC_COMPLEX_STEP:
                rhs_c = as_rhs(addresses[A_RHS_COMPLEX], complex_y)
                for i in range(n):
                    complex_y[i] = y[i]
                for i in range(n_p):
                    complex_p[i] = p[i]
                for col in range(n):
                    complex_y[col] = y[col] + 1j * COMPLEX_STEP
                    rhs_c(t, complex_y, complex_p, complex_out)
                    complex_y[col] = y[col]
                    for i in range(n):
                        jac_t[col, i] = complex_out[i].imag / COMPLEX_STEP
            elif jac_mode == st.JAC_USER:
                jac = as_jac(addresses[A_JAC])
                jac(t, y, p, jac_user)
                for i in range(n):
                    for j in range(n):
                        jac_t[j, i] = jac_user[i, j]
            else:
                for j in range(n):
                    y_stage[j] = y[j]
                floor = state_scale_floor(y)
                for col in range(n):
                    # atol is the scale below which a component's value no longer matters
                    step = central_step(y[col], max(floor, atol[col]))
                    y_stage[col] = y[col] + step
                    rhs(t, y_stage, p, f_stage)
                    y_stage[col] = y[col] - step
                    rhs(t, y_stage, p, f_minus)
                    y_stage[col] = y[col]
                    for i in range(n):
                        jac_t[col, i] = (f_stage[i] - f_minus[i]) / (2.0 * step)
                nfev += 2 * n
            # df/dt (left at zero for autonomous models)
            if time_mode == st.TIME_DERIVATIVE_COMPLEX_STEP:
                rhs_ct = as_rhs_complex_time(addresses[A_RHS_COMPLEX_TIME])
                for i in range(n):
                    complex_y[i] = y[i]
                for i in range(n_p):
                    complex_p[i] = p[i]
                rhs_ct(t + 1j * COMPLEX_STEP, complex_y, complex_p, complex_out)
                for i in range(n):
                    f_t[i] = complex_out[i].imag / COMPLEX_STEP
            elif time_mode == st.TIME_DERIVATIVE_CENTRAL:
                step = CENTRAL_BASE_STEP * max(1.0, abs(t))
                rhs(t + step, y, p, f_stage)
                rhs(t - step, y, p, f_minus)
                for i in range(n):
                    f_t[i] = (f_stage[i] - f_minus[i]) / (2.0 * step)
                nfev += 2
            njev += 1
            finite = True
            for i in range(n):
                if not np.isfinite(f_t[i]):
                    finite = False
                for j in range(n):
                    if not np.isfinite(jac_t[i, j]):
                        finite = False
            if not finite:
                status = st.JACOBIAN_NON_FINITE
                break
            jac_valid = True
            if switch_when_nonstiff:
                # rho(J) <= min(||J||_1, ||J||_inf)
                norm_1 = 0.0
                for j in range(n):
                    column = 0.0
                    for i in range(n):
                        column += abs(jac_t[j, i])
                    norm_1 = max(norm_1, column)
                norm_inf = 0.0
                for i in range(n):
                    row = 0.0
                    for j in range(n):
                        row += abs(jac_t[j, i])
                    norm_inf = max(norm_inf, row)
                rho_bound = min(norm_1, norm_inf)

        t_new, h_abs, code = propose_step(
            t, h_abs, t0, t_end, direction, max_step, dt_fixed, n_accepted,
            last_reject_nonfinite,
        )
        if code != st.SUCCESS:
            status = code
            break
        h = t_new - t

        # Iteration matrix W = I/(h gamma) - J, stored column-major for LAPACK.
        inv_h_gamma = 1.0 / (h * gamma)
        for j in range(n):
            for i in range(n):
                lu[j, i] = -jac_t[j, i]
            lu[j, j] += inv_h_gamma
        if n >= SMALL_LU:
            info = _GETRF(_KIND_DOUBLE, n, n, lu.ctypes, n, ipiv.ctypes)
        else:
            # Unblocked right-looking LU with partial pivoting (LAPACK's dgetf2 algorithm,
            # with its ipiv and info conventions), on the column-major matrix. Written out
            # here: arrays handed to a helper are reference-counted on every call.
            info = 0
            for k in range(n):
                pivot_row = k
                largest = abs(lu[k, k])
                for i in range(k + 1, n):
                    value = abs(lu[k, i])
                    if value > largest:
                        largest = value
                        pivot_row = i
                ipiv[k] = pivot_row + 1
                if lu[k, pivot_row] == 0.0:
                    if info == 0:
                        info = k + 1
                    continue
                if pivot_row != k:
                    for j in range(n):
                        tmp = lu[j, k]
                        lu[j, k] = lu[j, pivot_row]
                        lu[j, pivot_row] = tmp
                inv_pivot = 1.0 / lu[k, k]
                for i in range(k + 1, n):
                    lu[k, i] *= inv_pivot
                for j in range(k + 1, n):
                    factor = lu[j, k]
                    if factor != 0.0:
                        for i in range(k + 1, n):
                            lu[j, i] -= lu[k, i] * factor
        nlu += 1
        for i in range(n):
            inv_diagonal[i] = 1.0 / lu[i, i]
        if info != 0:
            n_singular += 1
            if n_singular >= MAX_SINGULAR or not adaptive:
                status = st.SINGULAR_MATRIX
                break
            n_rejected += 1
            previous_rejected = True
            h_abs *= 0.5
            continue
        n_singular = 0

        inv_h = 1.0 / h
        for stage in range(s):
            g_h = tab[stage, col_gsum] * h
            if stage == 0:
                for j in range(n):
                    U[0, j] = K[0, j] + g_h * f_t[j]
            else:
                # the stage's argument and its sum over earlier stages in one pass
                for j in range(n):
                    acc_y = y[j]
                    acc_c = g_h * f_t[j]
                    for l in range(stage):
                        u = U[l, j]
                        acc_y += tab[stage, l] * u
                        acc_c += (tab[stage, s + l] * inv_h) * u
                    y_stage[j] = acc_y
                    stage_sum[j] = acc_c
                rhs(t + tab[stage, col_alpha] * h, y_stage, p, f_stage)
                nfev += 1
                for j in range(n):
                    U[stage, j] = f_stage[j] + stage_sum[j]
            # Solve W u = rhs in place on U[stage, :] with the factors: row interchanges,
            # then the unit lower and the upper triangle, column by column so that the
            # inner loops run over contiguous memory of the column-major factors.
            for i in range(n):
                k = ipiv[i] - 1
                if k != i:
                    tmp = U[stage, i]
                    U[stage, i] = U[stage, k]
                    U[stage, k] = tmp
            for j in range(n):
                bj = U[stage, j]
                if bj != 0.0:
                    for i in range(j + 1, n):
                        U[stage, i] -= lu[j, i] * bj
            for j in range(n - 1, -1, -1):
                bj = U[stage, j] * inv_diagonal[j]
                U[stage, j] = bj
                if bj != 0.0:
                    for i in range(j):
                        U[stage, i] -= lu[j, i] * bj

        total = 0.0
        increments = 0.0
        for j in range(n):
            acc_e = 0.0
            for i in range(s):
                acc_e += tab[i, col_err] * U[i, j]
            if fsal:
                # the last stage's argument is y_new: the evaluation there starts the next
                # step, so it must be the very same vector
                y_new[j] = y_stage[j]
            else:
                acc_y = 0.0
                for i in range(s):
                    acc_y += tab[i, col_m] * U[i, j]
                y_new[j] = y[j] + acc_y
            total += scaled_error_squared(acc_e, y[j], y_new[j], atol[j], rtol)
            increments += scaled_increment_squared(y[j], y_new[j], atol[j], rtol)
        err_norm = math.sqrt(total / n)

        if not adaptive:
            finite = True
            for j in range(n):
                if not np.isfinite(y_new[j]):
                    finite = False
            if not finite:
                status = st.NON_FINITE
                break
            err_norm = 0.0
        if not np.isfinite(err_norm):
            n_rejected += 1
            last_reject_nonfinite = True
            previous_rejected = True
            h_abs *= FACTOR_NON_FINITE
            continue
        if err_norm > 1.0:
            n_rejected += 1
            last_reject_nonfinite = False
            previous_rejected = True
            h_abs *= reject_step_factor(err_norm, error_order)
            continue
        if adaptive:
            # err_norm == 0 gives log -inf and the largest factor, as in pi_step_factor
            log_err = math.log(err_norm) if err_norm > 0.0 else -np.inf
            log_floor = log_noise_floor(increments, n)
            factor = pi_step_factor_from_logs(
                log_err, log_err_previous, error_order, previous_rejected, log_floor
            )
            log_err_previous = remembered_log_err(log_err, log_floor)
            err_previous = math.exp(log_err_previous)
        else:
            factor = 1.0

        # accepted
        n_accepted += 1
        previous_rejected = False
        last_reject_nonfinite = False
        switch_now = False
        if switch_when_nonstiff:
            if h_abs * rho_bound <= NONSTIFF_H_RHO:
                nonstiff_count += 1
                if nonstiff_count >= NONSTIFF_STEPS_TO_SWITCH:
                    switch_now = True
            else:
                nonstiff_count = 0

        if save_every_step:
            t_out[n_out] = t_new
            for j in range(n):
                y_out[n_out, j] = y_new[j]
            n_out += 1
        else:
            while n_out < n_eval and direction * (t_eval[n_out] - t_new) <= 0.0:
                te = t_eval[n_out]
                if te == t_new:
                    for j in range(n):
                        y_out[n_out, j] = y_new[j]
                else:
                    theta = (te - t) / h
                    for i in range(s):
                        w = 0.0
                        for m in range(n_dense - 1, -1, -1):
                            w = (w + tab[i, col_dense + m]) * theta
                        weights[i] = w
                    for j in range(n):
                        acc = y[j]
                        for i in range(s):
                            acc += weights[i] * U[i, j]
                        y_out[n_out, j] = acc
                t_out[n_out] = te
                n_out += 1

        if store_dense:
            d = n_dense_steps
            dense_t[d] = t
            dense_h[d] = h
            for j in range(n):
                dense_y[d, j] = y[j]
            for i in range(s):
                for j in range(n):
                    dense_k[d, i, j] = U[i, j] * inv_h
            n_dense_steps = d + 1

        t = t_new
        for j in range(n):
            y[j] = y_new[j]
        if fsal:
            # the last stage was evaluated at (t + h, y_new)
            for j in range(n):
                K[0, j] = f_stage[j]
        else:
            k0_valid = False
        jac_valid = False
        h_abs = h_abs * factor
        if switch_now:
            status = st.SWITCH_TO_NONSTIFF
            break

    istate[st.I_N_OUT] = n_out
    istate[st.I_N_ACCEPTED] = n_accepted
    istate[st.I_N_REJECTED] = n_rejected
    istate[st.I_NFEV] = nfev
    istate[st.I_NJEV] = njev
    istate[st.I_NLU] = nlu
    istate[st.I_K0_VALID] = 1 if k0_valid else 0
    istate[st.I_N_DENSE] = n_dense_steps
    istate[st.I_NONSTIFF_COUNT] = nonstiff_count
    istate[st.I_LAST_REJECT_NONFINITE] = 1 if last_reject_nonfinite else 0
    istate[st.I_PREVIOUS_REJECTED] = 1 if previous_rejected else 0
    fstate[st.F_T] = t
    fstate[st.F_H] = direction * h_abs
    fstate[st.F_ERR_PREVIOUS] = err_previous
    if direction * (t_end - t) <= 0.0 and status > 0:
        status = st.SUCCESS
    istate[st.I_STATUS] = status
    return status
