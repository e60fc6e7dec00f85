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
    begin_integration,
    propose_step,
    scaled_error_squared,
    scaled_increment_squared,
)
from .derivatives import CENTRAL_BASE_STEP, COMPLEX_STEP, central_step, state_scale_floor
from .fields import (
    A_JAC,
    A_RHS,
    A_RHS_COMPLEX,
    A_RHS_COMPLEX_TIME,
    field_jacobian,
    field_rhs,
    field_sizes,
    field_stage_coupling,
    field_time_derivative,
    field_workspace,
)
from .fnptr import call_model
from .stepping import (
    all_finite,
    judge_step,
    keep_alive,
    load_state,
    loop_head_status,
    output_due,
    read_options,
    save_output,
    save_state,
    store_dense_step,
    unmanaged,
)

__all__ = ["integrate_rosenbrock", "pack_rosenbrock_tableau"]

# Layout of the packed tableau info record.
R_N_STAGES = 0
R_N_DENSE = 1
R_ORDER = 2
R_ERROR_ORDER = 3
R_FSAL = 4
R_SIZE = 5

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


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def model_jacobian(addresses, jac_mode, t, y, p, atol, jac_t, jac_user, complex_y, complex_p,
                   complex_out, point, f_plus, f_minus):
    """``jac_t[j, i] = df_i/dy_j`` at ``(t, y[:n])`` (``n = jac_t.shape[0]``): by the
    complex step (one complex evaluation per column), the user's ``jac``, or central
    differences (``atol`` is the scale below which a component's value no longer matters).
    ``point`` must hold ``y[:n]``. Returns the number of real model evaluations."""
    n = jac_t.shape[0]
    evaluations = 0
    if jac_mode == st.JAC_COMPLEX_STEP:
        for i in range(n):
            complex_y[i] = y[i]
        for i in range(p.shape[0]):
            complex_p[i] = p[i]
        for col in range(n):
            complex_y[col] = y[col] + 1j * COMPLEX_STEP
            call_model(addresses[A_RHS_COMPLEX], t, complex_y, complex_p, complex_out)
            complex_y[col] = y[col]
            for i in range(n):
                jac_t[col, i] = complex_out[i].imag / COMPLEX_STEP
    elif jac_mode == st.JAC_USER:
        call_model(addresses[A_JAC], t, point, p, jac_user)
        for i in range(n):
            for j in range(n):
                jac_t[j, i] = jac_user[i, j]
    else:
        floor = state_scale_floor(point)
        for col in range(n):
            step = central_step(y[col], max(floor, atol[col]))
            point[col] = y[col] + step
            call_model(addresses[A_RHS], t, point, p, f_plus)
            point[col] = y[col] - step
            call_model(addresses[A_RHS], t, point, p, f_minus)
            point[col] = y[col]
            for i in range(n):
                jac_t[col, i] = (f_plus[i] - f_minus[i]) / (2.0 * step)
        evaluations = 2 * n
    return evaluations


#: Below this size the LU is done in the kernel: LAPACK's call and blocking overhead is
#: larger than the arithmetic of a small matrix (for n = 3, 118 ns against 74 ns; at n = 50
#: both take about 12 µs).
SMALL_LU = 16


# ``error_model="numpy"``: IEEE division, as in the explicit kernel.
@njit(cache=True, error_model="numpy", nogil=True)
def integrate_rosenbrock(
    field,
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
    """Integrate the vector field ``field`` from ``fopts[O_T0]`` towards ``fopts[O_T_END]``
    with a Rosenbrock method.

    Parameters
    ----------
    field : tuple
        What to integrate (:mod:`fields`); its ``addresses`` record (``fields.A_*``) holds
        the model's float64 cfunc, its complex128 cfunc (complex-step Jacobian), the user
        Jacobian and the complex-time variant (complex-step ``df/dt``); unused entries 0.
        With :func:`fields.forward_field` the step is the method's discrete tangent-linear
        model: one LU of ``I/(h gamma) - J`` serves the states and every sensitivity
        column, whose stage equations gain the second-derivative coupling
        (:func:`fields.field_stage_coupling`).
    y : (N,) float64
        The current (augmented) state, updated in place.
    p : (n_p,) float64
    atol : (N,) float64
    fopts, iopts : float64 and int64 option records (``status.O_*``, ``status.IO_*``).
    tab, tab_info : the packed tableau (:func:`pack_rosenbrock_tableau`).
    t_eval, t_out, y_out, dense_t, dense_h, dense_y, dense_k :
        As for the explicit kernel; ``dense_k[d, i]`` holds ``u_i / h`` of stored step d.
    K : (s, N) float64
        ``K[0]`` carries ``f(t, y)`` between calls (valid when ``I_K0_VALID``).
    fstate, istate : the resumable state records (``status.F_*``, ``status.I_*``).

    Returns
    -------
    int
        A ``status`` code: 0 finished, negative failure, positive "call again".
    """
    addresses = field[0]
    ws = field_workspace(field, y, p)
    jac_mode = iopts[st.IO_JAC_MODE]
    time_mode = iopts[st.IO_TIME_MODE]
    n_all = y.shape[0]
    n, n_error = field_sizes(field, y)  # the Jacobian is n x n
    n_blocks = n_all // n  # the states, then one block per sensitivity column
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

    (t0, t_end, rtol, max_step, dt_fixed, adaptive, max_steps, save_every_step,
     store_dense, switch_when_nonstiff, direction, n_eval, cap_out,
     cap_dense) = read_options(fopts, iopts, t_eval, t_out, dense_t)

    # Work arrays, sized once per call: the (augmented) state's, then the model's own.
    U = np.empty((s, n_all))
    y_stage = np.empty(n_all)
    f_stage = np.empty(n_all)
    y_new = np.empty(n_all)
    f_t = np.zeros(n_all)
    stage_sum = np.empty(n_all)
    point = np.empty(n)
    f_plus = np.empty(n)
    f_minus = np.empty(n)
    jac_t = np.empty((n, n))  # jac_t[j, i] = df_i/dy_j: column j of J is contiguous
    lu = np.empty((n, n))
    ipiv = np.empty(n, dtype=np.int32)
    weights = np.empty(s)
    inv_diagonal = np.empty(n)  # 1 / U[i, i] of the LU: back substitution multiplies
    jac_user = np.empty((n, n)) if jac_mode == st.JAC_USER else np.empty((0, 0))
    complex_y = np.empty(n, dtype=np.complex128)
    complex_p = np.empty(n_p, dtype=np.complex128)
    complex_out = np.empty(n, dtype=np.complex128)
    # The step loop runs on views without reference counts (stepping.unmanaged); what this
    # call allocates is kept alive until the end by ``owned``.
    owned = (ws, U, y_stage, f_stage, y_new, f_t, stage_sum, point, f_plus, f_minus, jac_t, lu,
             ipiv, weights, inv_diagonal, jac_user, complex_y, complex_p, complex_out)
    (field, addresses, y, p, atol, tab, t_eval, t_out, y_out, dense_t, dense_h, dense_y,
     dense_k, K) = unmanaged((field, addresses, y, p, atol, tab, t_eval, t_out, y_out, dense_t,
                              dense_h, dense_y, dense_k, K))
    (ws, U, y_stage, f_stage, y_new, f_t, stage_sum, point, f_plus, f_minus, jac_t, lu, ipiv,
     weights, inv_diagonal, jac_user, complex_y, complex_p, complex_out) = unmanaged(owned)

    if istate[st.I_STARTED] == 0:
        code = begin_integration(
            field, ws, y, p, K[0], atol, fopts, iopts, order, n_error, t_out, y_out, y_stage,
            y_new, fstate, istate,
        )
        if code != st.SUCCESS:
            return code

    (t, h_abs, log_err_previous, status, n_out, n_accepted, n_rejected, nfev, njev, nlu,
     k0_valid, n_dense_steps, stiff_count, nonstiff_count, last_reject_nonfinite,
     previous_rejected, stiffness_detected, t_stiff) = load_state(fstate, istate)
    # The Jacobian arrays are local to a call, so a resumed call starts with a fresh one.
    jac_valid = False
    rho_bound = 0.0
    n_singular = 0

    while direction * (t_end - t) > 0.0:
        code = loop_head_status(
            n_accepted, n_rejected, max_steps, save_every_step, n_out, cap_out, store_dense,
            n_dense_steps, cap_dense,
        )
        if code != st.SUCCESS:
            status = code
            break
        if not k0_valid:
            field_rhs(field, ws, t, y, p, K[0])
            nfev += 1
            k0_valid = True

        if not jac_valid:
            for j in range(n):
                point[j] = y[j]
            # df/dy, one column per evaluation (unless the field has its own)
            if not field_jacobian(field, ws, t, y, p, jac_t):
                nfev += model_jacobian(addresses, jac_mode, t, y, p, atol, jac_t, jac_user,
                                       complex_y, complex_p, complex_out, point, f_plus,
                                       f_minus)
            # df/dt (left at zero for autonomous models)
            if time_mode == st.TIME_DERIVATIVE_COMPLEX_STEP:
                for i in range(n):
                    complex_y[i] = y[i]
                for i in range(n_p):
                    complex_p[i] = p[i]
                call_model(addresses[A_RHS_COMPLEX_TIME], t + 1j * COMPLEX_STEP, complex_y,
                           complex_p, complex_out)
                for i in range(n):
                    f_t[i] = complex_out[i].imag / COMPLEX_STEP
            elif time_mode == st.TIME_DERIVATIVE_CENTRAL:
                step = CENTRAL_BASE_STEP * max(1.0, abs(t))
                call_model(addresses[A_RHS], t + step, point, p, f_plus)
                call_model(addresses[A_RHS], t - step, point, p, f_minus)
                for i in range(n):
                    f_t[i] = (f_plus[i] - f_minus[i]) / (2.0 * step)
                nfev += 2
            field_time_derivative(field, ws, t, y, p, f_t, time_mode)
            njev += 1
            finite = all_finite(f_t, 0, n_all)
            for i in range(n):
                if not all_finite(jac_t[i], 0, n):
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
            # with its ipiv and info conventions), on the column-major matrix.
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
                for j in range(n_all):
                    U[0, j] = K[0, j] + g_h * f_t[j]
            else:
                # the stage's argument and its sum over earlier stages in one pass
                for j in range(n_all):
                    acc_y = y[j]
                    acc_c = g_h * f_t[j]
                    for l in range(stage):
                        u = U[l, j]
                        acc_y += tab[stage, l] * u
                        acc_c += (tab[stage, s + l] * inv_h) * u
                    y_stage[j] = acc_y
                    stage_sum[j] = acc_c
                field_rhs(field, ws, t + tab[stage, col_alpha] * h, y_stage, p, f_stage)
                nfev += 1
                for j in range(n_all):
                    U[stage, j] = f_stage[j] + stage_sum[j]
            # Solve W u = rhs block by block in place on U[stage]: the states first, whose
            # solution the sensitivity blocks' coupling needs, then each sensitivity block
            # with the same factors.
            for block in range(n_blocks):
                if block == 1:
                    field_stage_coupling(field, ws, t, y, p, atol, U, stage, s)
                offset = block * n
                # row interchanges, then the unit lower and the upper triangle, column by
                # column so that the inner loops run over contiguous memory of the
                # column-major factors
                for i in range(n):
                    k = ipiv[i] - 1
                    if k != i:
                        tmp = U[stage, offset + i]
                        U[stage, offset + i] = U[stage, offset + k]
                        U[stage, offset + k] = tmp
                for j in range(n):
                    bj = U[stage, offset + j]
                    if bj != 0.0:
                        for i in range(j + 1, n):
                            U[stage, offset + i] -= lu[j, i] * bj
                for j in range(n - 1, -1, -1):
                    bj = U[stage, offset + j] * inv_diagonal[j]
                    U[stage, offset + j] = bj
                    if bj != 0.0:
                        for i in range(j):
                            U[stage, offset + i] -= lu[j, i] * bj

        total = 0.0
        increments = 0.0
        for j in range(n_all):
            if fsal:
                # the last stage's argument is y_new: the evaluation there starts the next
                # step, so it must be the very same vector
                y_new[j] = y_stage[j]
            else:
                acc_y = 0.0
                for i in range(s):
                    acc_y += tab[i, col_m] * U[i, j]
                y_new[j] = y[j] + acc_y
            if j < n_error:
                acc_e = 0.0
                for i in range(s):
                    acc_e += tab[i, col_err] * U[i, j]
                total += scaled_error_squared(acc_e, y[j], y_new[j], atol[j], rtol)
                increments += scaled_increment_squared(y[j], y_new[j], atol[j], rtol)
        err_norm = math.sqrt(total / n_error)
        if n_error < n_all and not all_finite(y_new, n_error, n_all):
            err_norm = np.inf  # a non-finite sensitivity fails like a state

        if adaptive:
            (accepted, h_abs, factor, log_err_previous, n_rejected, last_reject_nonfinite,
             previous_rejected) = judge_step(
                err_norm, increments, n_error, error_order, log_err_previous,
                previous_rejected, last_reject_nonfinite, h_abs, n_rejected,
            )
            if not accepted:
                continue
        else:
            if not all_finite(y_new, 0, n_all):
                status = st.NON_FINITE
                break
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
            save_output(t_out, y_out, n_out, t_new, y_new)
            n_out += 1
        else:
            while output_due(n_out, n_eval, t_eval, t_new, direction):
                te = t_eval[n_out]
                if te == t_new:
                    for j in range(n_all):
                        y_out[n_out, j] = y_new[j]
                else:
                    theta = (te - t) / h
                    for i in range(s):
                        w = 0.0
                        for m in range(n_dense - 1, -1, -1):
                            w = (w + tab[i, col_dense + m]) * theta
                        weights[i] = w
                    for j in range(n_all):
                        acc = y[j]
                        for i in range(s):
                            acc += weights[i] * U[i, j]
                        y_out[n_out, j] = acc
                t_out[n_out] = te
                n_out += 1

        if store_dense:
            store_dense_step(dense_t, dense_h, dense_y, dense_k, n_dense_steps, t, h, y, U, s,
                             inv_h)
            n_dense_steps += 1

        t = t_new
        for j in range(n_all):
            y[j] = y_new[j]
        if fsal:
            # the last stage was evaluated at (t + h, y_new)
            for j in range(n_all):
                K[0, j] = f_stage[j]
        else:
            k0_valid = False
        jac_valid = False
        h_abs = h_abs * factor
        if switch_now:
            status = st.SWITCH_TO_NONSTIFF
            break

    keep_alive(owned)
    return save_state(
        fstate, istate, t, t_end, direction, h_abs, log_err_previous, status, n_out,
        n_accepted, n_rejected, nfev, njev, nlu, k0_valid, n_dense_steps, stiff_count,
        nonstiff_count, last_reject_nonfinite, previous_rejected, stiffness_detected, t_stiff,
    )
