"""Step-loop bookkeeping shared by every stepper family.

What a step loop does besides the method's own arithmetic is the same for the explicit and
the Rosenbrock kernels: read the option records, restore and save the resumable state,
stop at the step limit or a full buffer, judge a step by its error norm (reject, or accept
and choose the next step size with the PI controller), store outputs and dense steps. It
lives here once, as functions inlined into the steppers (``inline="always"``).

Arrays and inlined helpers (measured on Numba 0.68): every array handed to an inlined
helper is a new reference, counted up on entry and down on exit (an atomic update each).
Where the helper has a loop inside, Numba's reference-count pruning cannot pair the two, so
they stay in the step loop: a helper taking eight arrays cost 125 ns per call on top of a
40 ns body. The steppers therefore run their loops on :func:`unmanaged` views of their
arrays, which carry no reference count (the counting calls then return at once: 72 ns for
the same call), and keep the arrays they allocate alive with :func:`keep_alive`.
"""

import math

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import status as st
from .controller import (
    FACTOR_NON_FINITE,
    log_noise_floor,
    pi_step_factor_from_logs,
    reject_step_factor,
    remembered_log_err,
)


@njit(cache=True, inline="always")
def read_options(fopts, iopts, t_eval, t_out, dense_t):
    """The option records unpacked: ``(t0, t_end, rtol, max_step, dt_fixed, adaptive,
    max_steps, save_every_step, store_dense, switch, direction, n_eval, cap_out,
    cap_dense)``."""
    t0 = fopts[st.O_T0]
    t_end = fopts[st.O_T_END]
    dt_fixed = fopts[st.O_DT]
    return (
        t0, t_end, fopts[st.O_RTOL], fopts[st.O_MAX_STEP], dt_fixed, dt_fixed <= 0.0,
        iopts[st.IO_MAX_STEPS], iopts[st.IO_SAVE_EVERY_STEP] != 0,
        iopts[st.IO_STORE_DENSE] != 0, iopts[st.IO_SWITCH] != 0,
        1.0 if t_end > t0 else -1.0, t_eval.shape[0], t_out.shape[0], dense_t.shape[0],
    )


@njit(cache=True, inline="always")
def load_state(fstate, istate):
    """The resumable state as local values: ``(t, h_abs, log_err_previous, status, n_out,
    n_accepted, n_rejected, nfev, njev, nlu, k0_valid, n_dense, stiff_count,
    nonstiff_count, last_reject_nonfinite, previous_rejected, stiffness_detected,
    t_stiff)``. Locals, because the model calls in the loop would otherwise force reloads
    from memory."""
    return (
        fstate[st.F_T], abs(fstate[st.F_H]), math.log(fstate[st.F_ERR_PREVIOUS]),
        istate[st.I_STATUS], istate[st.I_N_OUT], istate[st.I_N_ACCEPTED],
        istate[st.I_N_REJECTED], istate[st.I_NFEV], istate[st.I_NJEV], istate[st.I_NLU],
        istate[st.I_K0_VALID] != 0, istate[st.I_N_DENSE], istate[st.I_STIFF_COUNT],
        istate[st.I_NONSTIFF_COUNT], istate[st.I_LAST_REJECT_NONFINITE] != 0,
        istate[st.I_PREVIOUS_REJECTED] != 0, istate[st.I_STIFFNESS_DETECTED] != 0,
        fstate[st.F_T_STIFF],
    )


@njit(cache=True, inline="always")
def save_state(fstate, istate, t, t_end, direction, h_abs, log_err_previous, status, n_out,
               n_accepted, n_rejected, nfev, njev, nlu, k0_valid, n_dense, stiff_count,
               nonstiff_count, last_reject_nonfinite, previous_rejected,
               stiffness_detected, t_stiff):
    """Write the locals back to the records and return the final status (``SUCCESS`` once
    ``t_end`` is reached)."""
    istate[st.I_N_OUT] = n_out
    istate[st.I_N_ACCEPTED] = n_accepted
    istate[st.I_N_REJECTED] = n_rejected
    istate[st.I_NFEV] = nfev
    istate[st.I_NJEV] = njev
    istate[st.I_NLU] = nlu
    istate[st.I_K0_VALID] = 1 if k0_valid else 0
    istate[st.I_N_DENSE] = n_dense
    istate[st.I_STIFF_COUNT] = stiff_count
    istate[st.I_NONSTIFF_COUNT] = nonstiff_count
    istate[st.I_LAST_REJECT_NONFINITE] = 1 if last_reject_nonfinite else 0
    istate[st.I_PREVIOUS_REJECTED] = 1 if previous_rejected else 0
    istate[st.I_STIFFNESS_DETECTED] = 1 if stiffness_detected else 0
    fstate[st.F_T_STIFF] = t_stiff
    fstate[st.F_T] = t
    fstate[st.F_H] = direction * h_abs
    fstate[st.F_ERR_PREVIOUS] = math.exp(log_err_previous)
    if direction * (t_end - t) <= 0.0 and status > 0:
        status = st.SUCCESS
    istate[st.I_STATUS] = status
    return status


@njit(cache=True, inline="always")
def loop_head_status(n_accepted, n_rejected, max_steps, save_every_step, n_out, cap_out,
                     store_dense, n_dense, cap_dense):
    """``SUCCESS`` when another step may be taken, else why not (the step limit, or a
    full buffer the driver grows before calling again)."""
    if n_accepted + n_rejected >= max_steps:
        return st.MAX_STEPS
    if save_every_step and n_out >= cap_out:
        return st.OUTPUT_FULL
    if store_dense and n_dense >= cap_dense:
        return st.DENSE_FULL
    return st.SUCCESS


@njit(cache=True, inline="always")
def judge_step(err_norm, increments, n_error, error_order, log_err_previous,
               previous_rejected, last_reject_nonfinite, h_abs, n_rejected):
    """Accept or reject an adaptive step by its error norm.

    Returns ``(accepted, h_abs, factor, log_err_previous, n_rejected,
    last_reject_nonfinite, previous_rejected)``: after a rejection ``h_abs`` is already
    reduced (by ``FACTOR_NON_FINITE`` for a non-finite error norm); after an acceptance
    ``factor`` is the PI controller's growth for the next step (applied once the step is
    stored) and ``log_err_previous`` what the controller remembers. ``increments`` is the
    sum of ``controller.scaled_increment_squared`` over the ``n_error`` components (the
    noise floor).
    """
    if not np.isfinite(err_norm):
        return (False, h_abs * FACTOR_NON_FINITE, 1.0, log_err_previous, n_rejected + 1,
                True, True)
    if err_norm > 1.0:
        return (False, h_abs * reject_step_factor(err_norm, error_order), 1.0,
                log_err_previous, n_rejected + 1, False, True)
    # err_norm == 0 gives log -inf and the largest factor
    log_err = math.log(err_norm) if err_norm > 0.0 else -np.inf
    log_floor = log_noise_floor(increments, n_error)
    factor = pi_step_factor_from_logs(
        log_err, log_err_previous, error_order, previous_rejected, log_floor
    )
    return (True, h_abs, factor, remembered_log_err(log_err, log_floor), n_rejected,
            last_reject_nonfinite, previous_rejected)


@njit(cache=True, inline="always")
def all_finite(values, start, stop):
    """Whether the real parts of ``values[start:stop]`` are all finite."""
    for j in range(start, stop):
        if not np.isfinite(values[j].real):
            return False
    return True


@njit(cache=True, inline="always")
def save_output(t_out, y_out, row, t, values):
    """Row ``row`` of the outputs: ``t`` and the state ``values``."""
    t_out[row] = t
    for j in range(values.shape[0]):
        y_out[row, j] = values[j]


@njit(cache=True, inline="always")
def output_due(n_out, n_eval, t_eval, t_new, direction):
    """Whether the next ``t_eval`` entry lies inside the step that ends at ``t_new``."""
    return n_out < n_eval and direction * (t_eval[n_out] - t_new) <= 0.0


@njit(cache=True, inline="always")
def store_dense_step(dense_t, dense_h, dense_y, dense_k, d, t, h, y, stages, n_stages,
                     scale):
    """Step ``d`` of the dense-output store: its start ``t``, size ``h``, start state and
    ``scale`` times the first ``n_stages`` rows of ``stages`` (the slopes the
    interpolant combines)."""
    dense_t[d] = t
    dense_h[d] = h
    n = y.shape[0]
    for j in range(n):
        dense_y[d, j] = y[j]
    for i in range(n_stages):
        for j in range(n):
            dense_k[d, i, j] = stages[i, j] * scale


def _strip(context, builder, typ, value):
    if isinstance(typ, types.Array):
        array = cgutils.create_struct_proxy(typ)(context, builder, value=value)
        array.meminfo = cgutils.get_null_value(array.meminfo.type)
        array.parent = cgutils.get_null_value(array.parent.type)
        return array._getvalue()
    if isinstance(typ, types.BaseTuple):
        for index, member in enumerate(typ.types):
            stripped = _strip(context, builder, member, builder.extract_value(value, index))
            value = builder.insert_value(value, stripped, index)
        return value
    return value


@intrinsic
def unmanaged(typingctx, value):
    """The same array (or tuple of arrays and scalars) without its memory-management
    record: a view whose reference counting costs nothing (see the module docstring).

    The view does not keep the memory alive. Use it only for arrays that outlive it: the
    kernel's arguments (owned by the caller for the whole call) and arrays the kernel
    allocates and passes to :func:`keep_alive` after its last use of the views.
    """
    def codegen(context, builder, signature, args):
        return _strip(context, builder, signature.args[0], args[0])
    return value(value), codegen


@intrinsic
def keep_alive(typingctx, value):
    """Use ``value`` (a tuple of arrays) here, so that Numba frees none of them before this
    point; generates no code."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()
    return types.void(value), codegen


@njit(cache=True, nogil=True)
def restart_after_switch(fstate, istate):
    """``method="auto"`` switched methods: the new one starts afresh from the current
    ``(t, y, h)`` (no stored first stage, no stiffness counts, no rejection memory)."""
    istate[st.I_K0_VALID] = 0
    istate[st.I_STIFF_COUNT] = 0
    istate[st.I_NONSTIFF_COUNT] = 0
    istate[st.I_PREVIOUS_REJECTED] = 0
    istate[st.I_LAST_REJECT_NONFINITE] = 0
    istate[st.I_STIFFNESS_DETECTED] = 0
    fstate[st.F_ERR_PREVIOUS] = 1.0
