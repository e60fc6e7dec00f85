"""Ensembles on NVIDIA GPUs: one trajectory per thread, explicit Runge-Kutta methods.

The CUDA twin of :mod:`paramest.kernels.ensemble` for the explicit family, and a
transcription of the CPU step loop (:func:`paramest.kernels.explicit.integrate` with the
controller of :mod:`paramest.kernels.controller` and :mod:`paramest.kernels.stepping`) for
one thread: the same tableaus (:mod:`paramest.kernels.tableaus`, never copied), the same
status codes (:mod:`paramest.kernels.status`), the same starting step, error norm, PI
controller, noise floor, fixed-step grid and dense output at ``t_eval``, and every sum
formed in the same order. In float64 under Numba's simulator (Python arithmetic, no fused
multiply-adds) a trajectory is therefore bitwise the CPU's, with the same step counts; on a
GPU the compiler fuses multiply-adds and ``exp``/``log`` come from libdevice, so results
agree to rounding and step counts almost always.

A kernel is built per (model, tableau, adaptive or fixed steps, dtype, n_states, n_params)
by :func:`ensemble_kernel`: those are closure constants, so the per-thread work arrays are
``cuda.local.array`` of fixed size and the loops over states and stages have constant trip
counts the compiler can unroll. Tolerances, ``dt``, the step limit and the output times are
runtime arguments (nothing recompiles when they change).

float32 runs keep the states, stages and the model in float32 and the time, step size and
step-size control in float64 (what a float32 state gains from a float64 time is an exact
grid of output and stage times; what it costs is a few conversions per step).

Not here (yet): sensitivities, the Rosenbrock methods, stiffness detection (a CUDA
trajectory never switches methods, so the test only served messages).
"""

import math

import numpy as np
from numba import cuda, float32, float64, void

from .. import status as st
from ..controller import (
    FACTOR_MAX,
    FACTOR_MIN,
    FACTOR_NON_FINITE,
    LOG_ERR_FLOOR,
    NOISE_FLOOR_GAIN,
    SAFETY,
)
from ..ensemble import (
    C_N_ACCEPTED,
    C_N_OUT,
    C_N_REJECTED,
    C_NFEV,
    C_NJEV,
    C_NLU,
    C_SIZE,
    C_SWITCHES,
)
from ..tableaus import get_tableau
from . import METHODS, arrays

__all__ = [
    "COUNT_ROWS",
    "compile_model",
    "device_model",
    "ensemble_kernel",
    "launch",
]

#: rows of the ``counts`` output (``kernels.ensemble.C_*``, the CPU's columns)
COUNT_ROWS = C_SIZE

_EPS = float(np.finfo(np.float64).eps)
_LOG_NOISE_GAIN = math.log(NOISE_FLOOR_GAIN)
_NAN = math.nan

_NUMBA_TYPES = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}


def _numba_type(dtype):
    return _NUMBA_TYPES[np.dtype(dtype)]


def compile_model(py_func, dtype):
    """Compile ``py_func(t, y, p, dydt)`` as a CUDA device function for ``dtype`` states,
    now, and return it.

    The signature is explicit, so a GPU compiles it here and a model Numba cannot compile
    for CUDA fails here, with Numba's error (``TypingError``, ``LoweringError``, ...), not
    inside the first kernel launch. Under the simulator nothing is compiled.
    """
    real = _numba_type(dtype)
    vector = real[::1]
    return cuda.jit(void(real, vector, vector, vector), device=True)(py_func)


_MODELS = {}


def device_model(key, py_func, dtype):
    """``py_func`` as the device function the kernels call, checked by
    :func:`compile_model` and kept per ``(key, dtype)``; ``key`` must identify the code and
    the values ``py_func`` reads (the front end uses the model's dependency hash)."""
    full_key = (key, np.dtype(dtype).str)
    model = _MODELS.get(full_key)
    if model is None:
        compile_model(py_func, dtype)
        # the kernels call a lazily typed twin: the argument types they pass (rows of local
        # arrays) are then exactly what Numba infers, whatever their layout flags
        model = cuda.jit(device=True)(py_func)
        _MODELS[full_key] = model
    return model


# --- step-size control: controller.py / stepping.py for one thread --------------------


@cuda.jit(device=True)
def _scaled_error_squared(err, y, y_new, atol, rtol):
    # controller.scaled_error_squared
    if err == 0.0:
        return 0.0
    scale = atol + rtol * max(abs(y), abs(y_new))
    ratio = err / scale
    return ratio * ratio


@cuda.jit(device=True)
def _scaled_increment_squared(y, y_new, atol, rtol):
    # controller.scaled_increment_squared
    dy = y_new - y
    if dy == 0.0:
        return 0.0
    ratio = rtol * dy / (atol + rtol * max(abs(y), abs(y_new)))
    return ratio * ratio


@cuda.jit(device=True)
def _judged_factor(err_norm, increments, n_error, q, log_err_previous, previous_rejected):
    """controller.pi_step_factor_from_logs after an accepted step (``err_norm <= 1``):
    ``(factor, log_err_previous for the next step)``."""
    log_err = math.log(err_norm) if err_norm > 0.0 else -math.inf
    if increments > 0.0:
        log_floor = _LOG_NOISE_GAIN + 0.5 * math.log(increments / n_error)
    else:
        log_floor = -math.inf
    if log_err <= log_floor:
        factor = FACTOR_MAX
    else:
        factor = SAFETY * math.exp((0.4 * log_err_previous - 0.7 * log_err) / q)
    if previous_rejected:
        factor = min(factor, 1.0)
    factor = min(FACTOR_MAX, max(FACTOR_MIN, factor))
    return factor, max(log_err, log_floor, LOG_ERR_FLOOR)


@cuda.jit(device=True)
def _reject_factor(err_norm, q):
    # controller.reject_step_factor
    return max(FACTOR_MIN, SAFETY * err_norm ** (-1.0 / q))


@cuda.jit(device=True)
def _scaled_rms(v, y, atol, rtol, n):
    # controller._scaled_rms
    total = 0.0
    for i in range(n):
        e = v[i]
        if e != 0.0:
            ratio = e / (atol[i] + rtol * abs(y[i]))
            total += ratio * ratio
    return math.sqrt(total / n)


# --- the kernel -----------------------------------------------------------------------


def _make_kernel(model, tableau, adaptive, n, n_params, dtype):
    # the state dtype, as a Numba type: local arrays are made of it and calling it casts
    # (in CUDA code and, returning NumPy scalars, in the simulator)
    real = _numba_type(dtype)
    s = int(tableau.n_stages)
    if tableau.A.shape[0] != s:
        raise ValueError(f"{tableau.name}: extra interpolation stages are not implemented")
    n_dense = int(tableau.dense.shape[1])
    fsal = bool(tableau.fsal)
    last = s - 1
    order = int(tableau.order)
    q = tableau.embedded_order + 1.0
    # Coefficients as closure constants (Numba puts them in constant memory), from the
    # tableau module; A, b and b_error in the state dtype, the nodes and the dense-output
    # polynomials in float64 (they multiply times). The dense coefficients are stored
    # highest power first for Horner's rule, as the CPU kernel does.
    a_coef = np.ascontiguousarray(tableau.A, dtype=dtype)
    b_coef = np.ascontiguousarray(tableau.b, dtype=dtype)
    e_coef = np.ascontiguousarray(tableau.b_error, dtype=dtype)
    c_node = np.ascontiguousarray(tableau.c, dtype=np.float64)
    d_coef = np.ascontiguousarray(tableau.dense[:, ::-1], dtype=np.float64)
    n_p = max(n_params, 1)  # a local array needs at least one element

    @cuda.jit
    def kernel(Y0, P, atol, fopts, max_steps, t_eval, Y_out, status, t_final, counts):
        i = cuda.grid(1)
        n_traj = status.shape[0]
        if i >= n_traj:
            return
        y = cuda.local.array(n, real)
        y_new = cuda.local.array(n, real)
        y_stage = cuda.local.array(n, real)
        p = cuda.local.array(n_p, real)
        w = cuda.local.array(s, real)
        K = cuda.local.array((s, n), real)
        row = i if P.shape[0] > 1 else 0
        for j in range(n_params):
            p[j] = real(P[row, j])
        row = i if Y0.shape[0] > 1 else 0
        for j in range(n):
            y[j] = real(Y0[row, j])

        t0 = fopts[st.O_T0]
        t_end = fopts[st.O_T_END]
        rtol = fopts[st.O_RTOL]
        max_step = fopts[st.O_MAX_STEP]
        dt_fixed = fopts[st.O_DT]
        direction = 1.0 if t_end > t0 else -1.0
        n_eval = t_eval.shape[0]

        # controller.begin_integration
        t = t0
        model(real(t), y, p, K[0])
        nfev = 1
        code = st.SUCCESS
        h_abs = 0.0
        for j in range(n):
            if not (math.isfinite(K[0, j]) and math.isfinite(y[j])):
                code = st.NON_FINITE
        if code == st.SUCCESS:
            if dt_fixed > 0.0:
                h_abs = dt_fixed
            elif fopts[st.O_FIRST_STEP] > 0.0:
                h_abs = fopts[st.O_FIRST_STEP]
            else:
                # controller.initial_step; y_stage and y_new are its work arrays
                span = abs(t_end - t0)
                d0 = _scaled_rms(y, y, atol, rtol, n)
                d1 = _scaled_rms(K[0], y, atol, rtol, n)
                if d0 < 1e-5 or d1 < 1e-5:
                    h0 = 1e-6
                else:
                    h0 = 0.01 * d0 / d1
                h0 = min(h0, span, max_step)
                for j in range(n):
                    y_stage[j] = y[j] + direction * h0 * K[0, j]
                model(real(t0 + direction * h0), y_stage, p, y_new)
                nfev += 1
                for j in range(n):
                    y_stage[j] = y_new[j] - K[0, j]
                d2 = _scaled_rms(y_stage, y, atol, rtol, n) / h0
                if not math.isfinite(d2):
                    h_abs = h0 * 1e-3
                else:
                    if d1 <= 1e-15 and d2 <= 1e-15:
                        h1 = max(1e-6, h0 * 1e-3)
                    else:
                        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
                    h_abs = min(100.0 * h0, h1, span, max_step)

        n_out = 0
        n_accepted = 0
        n_rejected = 0
        log_err_previous = 0.0  # log(1.0): begin_integration's F_ERR_PREVIOUS
        previous_rejected = False
        last_reject_nonfinite = False
        k0_valid = True
        while code == st.SUCCESS and direction * (t_end - t) > 0.0:
            if n_accepted + n_rejected >= max_steps:
                code = st.MAX_STEPS
                break
            if not k0_valid:
                model(real(t), y, p, K[0])
                nfev += 1
                k0_valid = True

            # controller.propose_step
            if adaptive:
                h_abs = min(h_abs, max_step)
                remaining = abs(t_end - t)
                if h_abs >= remaining * (1.0 - 1e-10):
                    h_abs = remaining
                    t_new = t_end
                else:
                    t_new = t + direction * h_abs
                min_step = 10.0 * _EPS * max(abs(t), abs(t_new))
                if h_abs < min_step:
                    code = st.NON_FINITE if last_reject_nonfinite else st.STEP_TOO_SMALL
                    break
            else:
                dt_step = min(dt_fixed, max_step)
                t_new = t0 + direction * ((n_accepted + 1) * dt_step)
                slack = 1e-10 * dt_step + 10.0 * _EPS * max(abs(t_new), abs(t_end))
                if direction * (t_end - t_new) <= slack:
                    t_new = t_end
                h_abs = abs(t_new - t)
            h = t_new - t
            hs = real(h)

            for stage in range(1, s):
                for j in range(n):
                    acc = a_coef[stage, 0] * K[0, j]
                    for m in range(1, stage):
                        acc += a_coef[stage, m] * K[m, j]
                    y_stage[j] = y[j] + hs * acc
                model(real(t + c_node[stage] * h), y_stage, p, K[stage])
            nfev += s - 1
            if fsal:
                for j in range(n):
                    y_new[j] = y_stage[j]
            else:
                for j in range(n):
                    acc = b_coef[0] * K[0, j]
                    for m in range(1, s):
                        acc += b_coef[m] * K[m, j]
                    y_new[j] = y[j] + hs * acc

            factor = 1.0
            if adaptive:
                total = 0.0
                increments = 0.0
                for j in range(n):
                    acc = e_coef[0] * K[0, j]
                    for m in range(1, s):
                        acc += e_coef[m] * K[m, j]
                    total += _scaled_error_squared(hs * acc, y[j], y_new[j], atol[j], rtol)
                    increments += _scaled_increment_squared(y[j], y_new[j], atol[j], rtol)
                err_norm = math.sqrt(total / n)
                # stepping.judge_step
                if not math.isfinite(err_norm):
                    h_abs = h_abs * FACTOR_NON_FINITE
                    n_rejected += 1
                    last_reject_nonfinite = True
                    previous_rejected = True
                    continue
                if err_norm > 1.0:
                    h_abs = h_abs * _reject_factor(err_norm, q)
                    n_rejected += 1
                    last_reject_nonfinite = False
                    previous_rejected = True
                    continue
                factor, log_err_previous = _judged_factor(
                    err_norm, increments, n, q, log_err_previous, previous_rejected
                )
            else:
                finite = True
                for j in range(n):
                    if not math.isfinite(y_new[j]):
                        finite = False
                    if fsal and not math.isfinite(K[last, j]):
                        finite = False
                if not finite:
                    code = st.NON_FINITE
                    break

            n_accepted += 1
            previous_rejected = False
            last_reject_nonfinite = False
            # outputs inside this step (stepping.output_due)
            while n_out < n_eval and direction * (t_eval[n_out] - t_new) <= 0.0:
                te = t_eval[n_out]
                if te == t_new:
                    for j in range(n):
                        Y_out[j, n_out, i] = y_new[j]
                else:
                    theta = (te - t) / h
                    for m in range(s):
                        weight = 0.0
                        for k in range(n_dense):
                            weight = (weight + d_coef[m, k]) * theta
                        w[m] = real(weight)
                    for j in range(n):
                        acc = w[0] * K[0, j]
                        for m in range(1, s):
                            acc += w[m] * K[m, j]
                        Y_out[j, n_out, i] = y[j] + hs * acc
                n_out += 1

            t = t_new
            for j in range(n):
                y[j] = y_new[j]
            if fsal:
                for j in range(n):
                    K[0, j] = K[last, j]
            else:
                k0_valid = False
            if adaptive:
                h_abs = h_abs * factor

        # outputs a failed trajectory did not reach are NaN, as on the CPU
        for k in range(n_out, n_eval):
            for j in range(n):
                Y_out[j, k, i] = _NAN
        status[i] = code
        t_final[i] = t
        counts[C_NFEV, i] = nfev
        counts[C_NJEV, i] = 0
        counts[C_NLU, i] = 0
        counts[C_N_ACCEPTED, i] = n_accepted
        counts[C_N_REJECTED, i] = n_rejected
        counts[C_N_OUT, i] = n_out
        counts[C_SWITCHES, i] = 0

    return kernel


_KERNELS = {}


def ensemble_kernel(key, model, method, adaptive, n, n_params, dtype):
    """The kernel for ``method`` (a name in :data:`METHODS`) with adaptive or fixed steps,
    built once per ``key`` (which must identify the compiled ``model``), ``n`` states,
    ``n_params`` parameters and ``dtype``.

    Launch it with :func:`launch`. Its arguments: ``Y0`` ``(1 or N, n)`` and ``P``
    ``(1 or N, n_params)`` of any real dtype (cast per thread; a single row is shared),
    ``atol`` ``(n,)`` float64, ``fopts`` (``status.O_*``), ``max_steps``, ``t_eval``
    float64, and the outputs ``Y_out`` ``(n, n_times, N)`` (coalesced: thread ``i``
    writes column ``i``), ``status`` ``(N,)`` int32, ``t_final`` ``(N,)`` float64,
    ``counts`` ``(COUNT_ROWS, N)`` int32 (rows ``kernels.ensemble.C_*``).
    """
    if method not in METHODS:
        raise ValueError(f"no CUDA kernel for method {method!r}; there are {METHODS}")
    full_key = (key, method, bool(adaptive), np.dtype(dtype).str, int(n), int(n_params))
    kernel = _KERNELS.get(full_key)
    if kernel is None:
        kernel = _make_kernel(model, get_tableau(method), bool(adaptive), int(n),
                              int(n_params), dtype)
        _KERNELS[full_key] = kernel
    return kernel


def launch(kernel, n_traj, Y0, P, atol, fopts, max_steps, t_eval, Y_out, status, t_final,
           counts):
    """Run ``kernel`` (from :func:`ensemble_kernel`) for ``n_traj`` trajectories, one per
    thread; asynchronous on a GPU, like any kernel launch."""
    blocks, threads = arrays.launch_shape(n_traj)
    kernel[blocks, threads](Y0, P, atol, fopts, max_steps, t_eval, Y_out, status, t_final,
                            counts)
