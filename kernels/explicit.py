"""One generic explicit Runge–Kutta integrator driven by tableau data.

Every explicit method (Tsit5, DP5, BS3, Vern7, RK4, Euler) is a tableau packed by
:func:`pack_tableau`; :func:`integrate` does the arithmetic for all of them. What it
integrates is a vector field (:mod:`fields`): the plain model, or the model augmented with
its forward sensitivities. The kernel is compiled once per machine (``cache=True``), per
state dtype and per field kind: with float64 arrays it is a real solve, with complex128
``y0`` and ``p`` it is the same solve differentiated by the complex step (step decisions use
real parts, so the step sequence is identical). The bookkeeping around the steps (options,
resumable state, step acceptance, outputs) is shared with the Rosenbrock kernel
(:mod:`stepping`).

The kernel is resumable: its whole state lives in the arrays it is given (``y``, ``K``,
``fstate``, ``istate``), so when an output buffer fills up it returns a positive status,
the driver grows the buffer and calls it again, and it carries on from the same step.

Nothing is allocated inside the step loop; work arrays are made once per call.

Performance notes (the step loop of a small model costs about as much as its model calls):

* Every linear combination of stages is summed two components at a time (two independent
  chains of additions per pass over the stages) and always over all coefficients, zeros
  included: a data-dependent branch per coefficient costs more in mispredictions than the
  multiplications it saves. Each sum is still formed in stage order, so results do not
  depend on these choices (a zero coefficient adds an exact zero; only a non-finite stage
  value, which fails the step anyway, is propagated by it).
* The step loop works on views of the arrays that carry no reference count
  (``stepping.unmanaged``): every array handed to an inlined helper with a loop inside
  would otherwise be counted up and down (atomic updates) on each call, which in the step
  loop costs more than the arithmetic of a small model.
* The integer state lives in local variables during the loop and goes back to ``istate``
  on return (the model call would otherwise force reloads from memory).
* The PI controller works on logarithms of the error norms: one ``log`` and one ``exp``
  per accepted step instead of two ``pow`` (``controller.pi_step_factor_from_logs``).
"""

import math

import numpy as np
from numba import njit

from . import status as st
from .controller import (
    begin_integration,
    propose_step,
    scaled_error_squared,
    scaled_increment_squared,
)
from .fields import field_rhs, field_sizes, field_workspace
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

# Layout of the packed tableau info record (``tab_info``).
T_N_STAGES = 0
T_S_TOTAL = 1
T_N_DENSE = 2
T_FSAL = 3
T_STIFF_I = 4
T_STIFF_J = 5
T_ORDER = 6
T_ERROR_ORDER = 7
T_SIZE = 8

#: Hairer's stiffness test: h*|lambda| above this (about the real stability boundary of
#: 5th-order explicit pairs) in 15 accepted steps without 6 non-stiff ones in a row means
#: the step size is limited by stability rather than accuracy (Hairer & Wanner, Solving
#: ODEs II, Sec. IV.2, as in DOPRI5).
STIFF_H_LAMBDA = 3.25
STIFF_STEPS = 15
NONSTIFF_STEPS = 6


def pack_tableau(tableau):
    """Pack an ``ExplicitTableau`` into the two arrays the kernel takes.

    Returns ``(tab, tab_info)``: ``tab`` is ``(s, s + 3 + n_dense)`` with columns
    ``[A | b | c | b_error | dense]``, ``tab_info`` the int64 record described by the
    ``T_*`` constants. Packing keeps the kernel's argument list (and so its per-call dispatch
    cost from Python) short.
    """
    s_total = tableau.A.shape[0]
    n_dense = tableau.dense.shape[1]
    tab = np.zeros((s_total, s_total + 3 + n_dense))
    tab[:, :s_total] = tableau.A
    tab[:, s_total] = tableau.b
    tab[:, s_total + 1] = tableau.c
    tab[:, s_total + 2] = tableau.b_error
    tab[:, s_total + 3 :] = tableau.dense
    stiff = tableau.stiffness_stages if tableau.stiffness_stages is not None else (-1, -1)
    info = np.zeros(T_SIZE, dtype=np.int64)
    info[T_N_STAGES] = tableau.n_stages
    info[T_S_TOTAL] = s_total
    info[T_N_DENSE] = n_dense
    info[T_FSAL] = int(tableau.fsal)
    info[T_STIFF_I] = stiff[0]
    info[T_STIFF_J] = stiff[1]
    info[T_ORDER] = tableau.order
    info[T_ERROR_ORDER] = tableau.embedded_order
    tab.setflags(write=False)
    info.setflags(write=False)
    return tab, info


@njit(cache=True, inline="always")
def _stiffness_h_lambda(K, tab, stage_i, stage_j, n_error, block):
    # h*|lambda| ~ h * |k_i - k_j| / |Y_i - Y_j| and Y_i - Y_j = h * sum_l (a_il - a_jl) k_l,
    # so h cancels (``tab[:, :s]`` is A). Over the components under error control (they
    # limit the step), block by block: the model's states and each sensitivity column share
    # one Jacobian, so each block's quotient bounds its spectral radius from below and the
    # largest is the estimate (one norm over all blocks would let a large, smooth
    # sensitivity dilute the stiff component).
    largest = 0.0
    for start in range(0, n_error, block):
        num = 0.0
        den = 0.0
        for j in range(start, start + block):
            dk = (K[stage_i, j] - K[stage_j, j]).real
            dy = 0.0
            for l in range(max(stage_i, stage_j)):
                dy += (tab[stage_i, l] - tab[stage_j, l]) * K[l, j].real
            num += dk * dk
            den += dy * dy
        if den > 0.0:
            largest = max(largest, math.sqrt(num / den))
    return largest


# ``error_model="numpy"``: IEEE division, so no zero-divisor checks in the step loop; an error
# scale of zero (possible with ``atol = 0``) gives a non-finite error norm instead of raising.
@njit(cache=True, error_model="numpy", nogil=True)
def integrate(
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
    """Integrate the vector field ``field`` from ``fopts[O_T0]`` towards ``fopts[O_T_END]``.

    Parameters
    ----------
    field : tuple
        What to integrate (:mod:`fields`): ``plain_field(addresses)`` for ``y' = f(t, y,
        p)``, or a field augmented with sensitivities; ``y`` is then the augmented state.
    y : (N,) float64 or complex128
        The current state, updated in place (``y0`` on the first call).
    p : (n_p,) same dtype as ``y``
    atol : (N,) float64
    fopts, iopts : float64 and int64 option records (``status.O_*``, ``status.IO_*``).
    tab, tab_info : the packed tableau (:func:`pack_tableau`).
    t_eval : (m,) float64
        Output times when ``iopts[IO_SAVE_EVERY_STEP] == 0``.
    t_out, y_out : (cap,), (cap, N)
        Output buffers: one row per ``t_eval`` entry, or per accepted step (plus ``t0``).
    dense_t, dense_h, dense_y, dense_k : (cap_d,), (cap_d,), (cap_d, N), (cap_d, s, N)
        Step store for dense output when ``iopts[IO_STORE_DENSE]``.
    K : (s, N)
        Stage derivatives; ``K[0]`` carries ``f(t, y)`` between calls.
    fstate, istate : the resumable state records (``status.F_*``, ``status.I_*``).

    Returns
    -------
    int
        A ``status`` code: 0 finished, negative failure, positive "grow a buffer and call
        again".
    """
    ws = field_workspace(field, y, p)
    n = y.shape[0]
    n_base, n_error = field_sizes(field, y)
    n_stages = tab_info[T_N_STAGES]
    s_total = tab_info[T_S_TOTAL]
    n_dense = tab_info[T_N_DENSE]
    fsal = tab_info[T_FSAL] != 0
    stiff_i = tab_info[T_STIFF_I]
    stiff_j = tab_info[T_STIFF_J]
    order = tab_info[T_ORDER]
    error_order = tab_info[T_ERROR_ORDER]

    # Coefficients, one row per linear combination of stages, in one contiguous matrix:
    # rows 0 .. s-1 the rows of A (zero from the diagonal on), then b, b_error, the
    # dense-output weights of the current output time and c; then, for the Horner
    # recursion of the weights, the dense-output coefficients, highest power first.
    row_b = s_total
    row_err = s_total + 1
    row_w = s_total + 2
    row_c = s_total + 3
    row_dense = s_total + 4
    C = np.empty((s_total + 4 + n_dense, s_total))
    for i in range(s_total):
        for l in range(s_total):
            C[i, l] = tab[i, l] if l < i else 0.0
        C[row_b, i] = tab[i, s_total]
        C[row_err, i] = tab[i, s_total + 2]
        C[row_w, i] = 0.0
        C[row_c, i] = tab[i, s_total + 1]
        for m in range(n_dense):
            C[row_dense + m, i] = tab[i, s_total + 3 + n_dense - 1 - m]

    (t0, t_end, rtol, max_step, dt_fixed, adaptive, max_steps, save_every_step,
     store_dense, switch_when_stiff, direction, n_eval, cap_out,
     cap_dense) = read_options(fopts, iopts, t_eval, t_out, dense_t)

    work = np.empty((2, n), dtype=y.dtype)
    # The step loop runs on views without reference counts (stepping.unmanaged); what this
    # call allocates is kept alive until the end by ``owned``.
    owned = (ws, C, work)
    (field, y, p, atol, tab, t_eval, t_out, y_out, dense_t, dense_h, dense_y, dense_k, K, ws,
     C, work) = unmanaged((field, y, p, atol, tab, t_eval, t_out, y_out, dense_t, dense_h,
                           dense_y, dense_k, K, ws, C, work))
    y_stage = work[0]
    y_new = work[1]

    # Targets of ``combine``.
    TO_STAGE = 0
    TO_NEW = 1
    TO_OUTPUT = 2

    def combine(row, count, h, target, k_out):
        """``y + h * sum_i C[row, i] * K[i]`` over the first ``count >= 1`` stages, written
        to ``y_stage``, ``y_new`` or ``y_out[k_out]``."""
        j = 0
        while j + 1 < n:
            coef = C[row, 0]
            acc0 = coef * K[0, j]
            acc1 = coef * K[0, j + 1]
            for i in range(1, count):
                coef = C[row, i]
                acc0 += coef * K[i, j]
                acc1 += coef * K[i, j + 1]
            v0 = y[j] + h * acc0
            v1 = y[j + 1] + h * acc1
            if target == TO_OUTPUT:
                y_out[k_out, j] = v0
                y_out[k_out, j + 1] = v1
            else:
                work[target, j] = v0
                work[target, j + 1] = v1
            j += 2
        if j < n:
            acc0 = C[row, 0] * K[0, j]
            for i in range(1, count):
                acc0 += C[row, i] * K[i, j]
            v0 = y[j] + h * acc0
            if target == TO_OUTPUT:
                y_out[k_out, j] = v0
            else:
                work[target, j] = v0

    def error_norm(h):
        """Scaled RMS norm of the error estimate ``h * sum_i b_error[i] * K[i]`` over the
        first ``n_error`` components (without storing the estimate), and the sum of
        ``controller.scaled_increment_squared`` over them, from which the controller finds
        the norm's noise floor."""
        total = 0.0
        increments = 0.0
        j = 0
        while j + 1 < n_error:
            coef = C[row_err, 0]
            acc0 = coef * K[0, j]
            acc1 = coef * K[0, j + 1]
            for i in range(1, n_stages):
                coef = C[row_err, i]
                acc0 += coef * K[i, j]
                acc1 += coef * K[i, j + 1]
            total += scaled_error_squared(
                (h * acc0).real, y[j].real, y_new[j].real, atol[j], rtol
            )
            total += scaled_error_squared(
                (h * acc1).real, y[j + 1].real, y_new[j + 1].real, atol[j + 1], rtol
            )
            increments += scaled_increment_squared(y[j].real, y_new[j].real, atol[j], rtol)
            increments += scaled_increment_squared(
                y[j + 1].real, y_new[j + 1].real, atol[j + 1], rtol
            )
            j += 2
        if j < n_error:
            acc0 = C[row_err, 0] * K[0, j]
            for i in range(1, n_stages):
                acc0 += C[row_err, i] * K[i, j]
            total += scaled_error_squared(
                (h * acc0).real, y[j].real, y_new[j].real, atol[j], rtol
            )
            increments += scaled_increment_squared(y[j].real, y_new[j].real, atol[j], rtol)
        return math.sqrt(total / n_error), increments

    def extra_stages(t, h):
        """The stages used only by the dense output."""
        for stage in range(n_stages, s_total):
            combine(stage, stage, h, TO_STAGE, 0)
            field_rhs(field, ws, t + C[row_c, stage] * h, y_stage, p, K[stage])

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

        t_new, h_abs, code = propose_step(
            t, h_abs, t0, t_end, direction, max_step, dt_fixed, n_accepted,
            last_reject_nonfinite,
        )
        if code != st.SUCCESS:
            status = code
            break
        h = t_new - t

        for stage in range(1, n_stages):
            combine(stage, stage, h, TO_STAGE, 0)
            field_rhs(field, ws, t + C[row_c, stage] * h, y_stage, p, K[stage])
        nfev += n_stages - 1
        if fsal:
            # the last stage was evaluated at the new solution
            for j in range(n):
                y_new[j] = y_stage[j]
        else:
            combine(row_b, n_stages, h, TO_NEW, 0)

        if adaptive:
            err_norm, increments = error_norm(h)
            if n_error < n and not all_finite(y_new, n_error, n):
                err_norm = np.inf  # a non-finite sensitivity fails like a state
            (accepted, h_abs, factor, log_err_previous, n_rejected, last_reject_nonfinite,
             previous_rejected) = judge_step(
                err_norm, increments, n_error, error_order, log_err_previous,
                previous_rejected, last_reject_nonfinite, h_abs, n_rejected,
            )
            if not accepted:
                continue
        else:
            factor = 1.0
            if not all_finite(y_new, 0, n) or (fsal and not all_finite(K[n_stages - 1], 0, n)):
                status = st.NON_FINITE
                break

        # accepted
        n_accepted += 1
        previous_rejected = False
        last_reject_nonfinite = False
        n_used = n_stages
        switch_now = False
        if stiff_i >= 0 and adaptive and (n_accepted % 10 == 0 or stiff_count > 0):
            if _stiffness_h_lambda(K, tab, stiff_i, stiff_j, n_error, n_base) > STIFF_H_LAMBDA:
                nonstiff_count = 0
                stiff_count += 1
                if stiff_count >= STIFF_STEPS:
                    if not stiffness_detected:
                        t_stiff = t  # the first time; the message reports it
                    stiffness_detected = True
                    switch_now = switch_when_stiff
            else:
                nonstiff_count += 1
                if nonstiff_count >= NONSTIFF_STEPS:
                    stiff_count = 0

        if save_every_step:
            save_output(t_out, y_out, n_out, t_new, y_new)
            n_out += 1
        else:
            while output_due(n_out, n_eval, t_eval, t_new, direction):
                te = t_eval[n_out]
                if te == t_new:
                    for j in range(n):
                        y_out[n_out, j] = y_new[j]
                else:
                    if n_used < s_total:
                        extra_stages(t, h)
                        nfev += s_total - n_stages
                        n_used = s_total
                    # weights[i] = sum_m dense[i, m] * theta**(m + 1) by Horner, two
                    # stages at a time
                    theta = (te - t) / h
                    i = 0
                    while i + 1 < n_used:
                        w0 = 0.0
                        w1 = 0.0
                        for m in range(n_dense):
                            w0 = (w0 + C[row_dense + m, i]) * theta
                            w1 = (w1 + C[row_dense + m, i + 1]) * theta
                        C[row_w, i] = w0
                        C[row_w, i + 1] = w1
                        i += 2
                    if i < n_used:
                        w0 = 0.0
                        for m in range(n_dense):
                            w0 = (w0 + C[row_dense + m, i]) * theta
                        C[row_w, i] = w0
                    combine(row_w, n_used, h, TO_OUTPUT, n_out)
                t_out[n_out] = te
                n_out += 1

        if store_dense:
            if n_used < s_total:
                extra_stages(t, h)
                nfev += s_total - n_stages
                n_used = s_total
            store_dense_step(dense_t, dense_h, dense_y, dense_k, n_dense_steps, t, h, y, K,
                             s_total, 1.0)
            n_dense_steps += 1

        t = t_new
        for j in range(n):
            y[j] = y_new[j]
        if fsal:
            for j in range(n):
                K[0, j] = K[n_stages - 1, j]
        else:
            k0_valid = False
        if adaptive:
            h_abs = h_abs * factor
        if switch_now:
            status = st.SWITCH_TO_STIFF
            break

    keep_alive(owned)
    return save_state(
        fstate, istate, t, t_end, direction, h_abs, log_err_previous, status, n_out,
        n_accepted, n_rejected, nfev, njev, nlu, k0_valid, n_dense_steps, stiff_count,
        nonstiff_count, last_reject_nonfinite, previous_rejected, stiffness_detected, t_stiff,
    )


@njit(cache=True, error_model="numpy")
def evaluate_dense(t_query, dense_t, dense_h, dense_y, dense_k, dense, out):
    """Evaluate a stored dense output at the times ``t_query``; ``out`` is ``(m, n)``.

    Each query finds its step by binary search over the step start times, which are
    monotone in the direction of integration.
    """
    n_steps = dense_t.shape[0]
    s_total = dense_k.shape[1]
    n = dense_k.shape[2]
    n_dense = dense.shape[1]
    weights = np.empty(s_total)
    forward = dense_h[0] > 0.0
    for q in range(t_query.shape[0]):
        tq = t_query[q]
        lo = 0
        hi = n_steps - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (dense_t[mid] <= tq) if forward else (dense_t[mid] >= tq):
                lo = mid
            else:
                hi = mid - 1
        h = dense_h[lo]
        theta = (tq - dense_t[lo]) / h
        for i in range(s_total):
            acc = 0.0
            for m in range(n_dense - 1, -1, -1):
                acc = (acc + dense[i, m]) * theta
            weights[i] = acc
        for j in range(n):
            acc = 0.0 * dense_y[lo, j]
            for i in range(s_total):
                acc += weights[i] * dense_k[lo, i, j]
            out[q, j] = dense_y[lo, j] + h * acc
