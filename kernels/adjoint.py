"""The discrete adjoint of the explicit Runge–Kutta methods: the exact gradient of the
numbers a solve returns, by one reverse pass over its accepted steps.

The forward solve records every accepted step (its start ``t_n``, size ``h_n``, start state
``y_n`` and all stages ``K_i``, the dense-output store). With the step sizes held fixed (as
diffrax's discrete adjoints and the complex step through the solver hold them), one step is
the smooth map

    Y_i = y_n + h sum_{l<i} a_il K_l,   K_i = f(t_n + c_i h, Y_i, p),
    y_{n+1} = y_n + h sum_i b_i K_i,    y(t_n + theta h) = y_n + h sum_i w_i(theta) K_i,

whose transpose, applied from the last step to the first, carries the cotangent of every
output back to ``y0`` and accumulates the parameter gradient (Hairer, Nørsett & Wanner;
Sandu 2006, "On the properties of Runge–Kutta discrete adjoints"). Each stage costs one
vector–Jacobian product ``(J^T u, f_p^T u)`` of the model, here from complex-step Jacobian
columns (``n + k`` complex evaluations) or central differences for models that are not
complex-step safe.
"""

import numpy as np
from numba import njit

from . import explicit as ex
from .derivatives import CENTRAL_BASE_STEP, COMPLEX_STEP, INVERSE_COMPLEX_STEP
from .fields import A_RHS, A_RHS_COMPLEX, A_VJP
from .fnptr import call_model, call_vjp
from .stepping import keep_alive, unmanaged

__all__ = [
    "VJP_COMPLEX_STEP", "VJP_CENTRAL", "VJP_USER", "model_vjp", "discrete_adjoint_explicit",
]

#: how :func:`model_vjp` obtains ``J^T u`` and ``f_p^T u``: complex-step Jacobian columns
VJP_COMPLEX_STEP = 0
#: ... central-difference columns (models that are not complex-step safe)
VJP_CENTRAL = 1
#: ... the problem's own ``vjp`` (one call, whatever the number of parameters)
VJP_USER = 2


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def model_vjp(addresses, mode, t, y, p, u, param_idx, out_y, out_p, yc, pc, fc, yr, pr, f_plus,
              f_minus):
    """``out_y = J(t, y)^T u`` and ``out_p[c] = (df/dp_{param_idx[c]})^T u``.

    ``yc, pc, fc`` (complex, sizes n, n_p, n) and ``yr, pr, f_plus, f_minus`` (real) are
    work arrays. The complex step perturbs one variable per evaluation and contracts the
    resulting Jacobian column with ``u``: exact to rounding, ``n + k`` complex evaluations.
    A user ``vjp`` is one call, its parameter part (every parameter) written to ``pr``.
    """
    n = y.shape[0]
    n_params = p.shape[0]
    k = param_idx.shape[0]
    if mode == VJP_USER:
        call_vjp(addresses[A_VJP], t, y, p, u, out_y, pr)
        for c in range(k):
            out_p[c] = pr[param_idx[c]]
    elif mode == VJP_COMPLEX_STEP:
        for i in range(n):
            yc[i] = y[i]
        for i in range(n_params):
            pc[i] = p[i]
        address = addresses[A_RHS_COMPLEX]
        for j in range(n):
            yc[j] = complex(y[j], COMPLEX_STEP)
            call_model(address, t, yc, pc, fc)
            yc[j] = y[j]
            acc = 0.0
            for i in range(n):
                acc += u[i] * fc[i].imag
            out_y[j] = acc * INVERSE_COMPLEX_STEP
        for c in range(k):
            q = param_idx[c]
            pc[q] = complex(p[q], COMPLEX_STEP)
            call_model(address, t, yc, pc, fc)
            pc[q] = p[q]
            acc = 0.0
            for i in range(n):
                acc += u[i] * fc[i].imag
            out_p[c] = acc * INVERSE_COMPLEX_STEP
    else:
        address = addresses[A_RHS]
        floor = 0.0
        for i in range(n):
            floor = max(floor, abs(y[i]))
            yr[i] = y[i]
        floor *= 1e-3
        for i in range(n_params):
            pr[i] = p[i]
        for j in range(n):
            scale = max(abs(y[j]), floor)
            step = CENTRAL_BASE_STEP * (scale if scale > 0.0 else 1.0)
            yr[j] = y[j] + step
            call_model(address, t, yr, pr, f_plus)
            yr[j] = y[j] - step
            call_model(address, t, yr, pr, f_minus)
            yr[j] = y[j]
            acc = 0.0
            for i in range(n):
                acc += u[i] * (f_plus[i] - f_minus[i])
            out_y[j] = acc / (2.0 * step)
        for c in range(k):
            q = param_idx[c]
            step = CENTRAL_BASE_STEP * (abs(p[q]) if p[q] != 0.0 else 1.0)
            pr[q] = p[q] + step
            call_model(address, t, yr, pr, f_plus)
            pr[q] = p[q] - step
            call_model(address, t, yr, pr, f_minus)
            pr[q] = p[q]
            acc = 0.0
            for i in range(n):
                acc += u[i] * (f_plus[i] - f_minus[i])
            out_p[c] = acc / (2.0 * step)


@njit(cache=True, error_model="numpy", nogil=True)
def discrete_adjoint_explicit(addresses, mode, tab, tab_info, step_t, step_h, step_y, step_k,
                              step_end, t_eval, weights, p, param_idx, lam, grad):
    """Reverse pass of an explicit Runge–Kutta solve.

    ``step_t, step_h, step_y, step_k`` are the solve's dense-output store (every accepted
    step, all ``s_total`` stages), ``step_end[n]`` the exact end time of step ``n`` (the
    next step's start; the solve's final time for the last). ``weights`` has shape
    ``(n_times, n)``: the cotangent of the output at each ``t_eval``. On return ``lam``
    holds the gradient with respect to ``y0`` and ``grad[c]`` (added to) that with respect
    to ``p[param_idx[c]]``. Outputs are assigned to steps exactly as the forward kernel
    assigns them: the first step whose end reaches ``t_eval[j]``; an output at a step's end
    is the step's new state, any other is the method's interpolant.
    """
    n_steps = step_t.shape[0]
    s_total = tab_info[ex.T_S_TOTAL]
    n_stages = tab_info[ex.T_N_STAGES]
    n_dense = tab_info[ex.T_N_DENSE]
    n = step_y.shape[1]
    n_times = t_eval.shape[0]
    k = param_idx.shape[0]
    n_params = p.shape[0]
    direction = 1.0 if step_h[0] > 0.0 else -1.0

    step_of = np.full(n_times, -1, dtype=np.int64)
    j = 0
    for s in range(n_steps):
        while j < n_times and direction * (t_eval[j] - step_end[s]) <= 0.0:
            step_of[j] = s
            j += 1

    lam_k = np.zeros((s_total, n))
    lam_new = np.empty(n)
    mu = np.empty(n)
    g = np.empty(max(k, 1))
    stage_y = np.empty(n)
    yc = np.empty(n, dtype=np.complex128)
    pc = np.empty(n_params, dtype=np.complex128)
    fc = np.empty(n, dtype=np.complex128)
    yr = np.empty(n)
    pr = np.empty(n_params)
    f_plus = np.empty(n)
    f_minus = np.empty(n)
    interpolated = s_total if s_total > n_stages else n_stages
    # The reverse loop runs on views without reference counts (stepping.unmanaged), as the
    # integrators' step loops do: the arguments outlive the call, and what this call
    # allocates is kept alive until its end by ``owned``.
    owned = (step_of, lam_k, lam_new, mu, g, stage_y, yc, pc, fc, yr, pr, f_plus, f_minus)
    (addresses, tab, step_t, step_h, step_y, step_k, step_end, t_eval, weights, p, param_idx,
     lam, grad, step_of, lam_k, lam_new, mu, g, stage_y, yc, pc, fc, yr, pr, f_plus,
     f_minus) = unmanaged((addresses, tab, step_t, step_h, step_y, step_k, step_end, t_eval,
                           weights, p, param_idx, lam, grad, step_of, lam_k, lam_new, mu, g,
                           stage_y, yc, pc, fc, yr, pr, f_plus, f_minus))

    j = n_times - 1
    for s in range(n_steps - 1, -1, -1):
        t = step_t[s]
        h = step_h[s]
        for i in range(s_total):
            for m in range(n):
                lam_k[i, m] = 0.0
        for m in range(n):
            lam_new[m] = 0.0
        while j >= 0 and step_of[j] == s:
            if t_eval[j] == step_end[s]:
                for m in range(n):
                    lam[m] += weights[j, m]  # the output is the new state itself
            else:
                theta = (t_eval[j] - t) / h
                for i in range(interpolated):
                    w = 0.0
                    for q in range(n_dense - 1, -1, -1):
                        w = (w + tab[i, s_total + 3 + q]) * theta
                    for m in range(n):
                        lam_k[i, m] += h * w * weights[j, m]
                for m in range(n):
                    lam_new[m] += weights[j, m]
            j -= 1
        # y_{n+1} = y_n + h sum_i b_i K_i
        for i in range(n_stages):
            b = tab[i, s_total]
            if b != 0.0:
                for m in range(n):
                    lam_k[i, m] += h * b * lam[m]
        for m in range(n):
            lam_new[m] += lam[m]
        for i in range(s_total - 1, -1, -1):
            nonzero = False
            for m in range(n):
                if lam_k[i, m] != 0.0:
                    nonzero = True
                    break
            if not nonzero:
                continue
            for m in range(n):
                acc = 0.0
                for q in range(i):
                    acc += tab[i, q] * step_k[s, q, m]
                stage_y[m] = step_y[s, m] + h * acc
            model_vjp(addresses, mode, t + tab[i, s_total + 1] * h, stage_y, p, lam_k[i],
                      param_idx, mu, g, yc, pc, fc, yr, pr, f_plus, f_minus)
            for c in range(k):
                grad[c] += g[c]
            for m in range(n):
                lam_new[m] += mu[m]
            for q in range(i):
                a = tab[i, q]
                if a != 0.0:
                    for m in range(n):
                        lam_k[q, m] += h * a * mu[m]
        for m in range(n):
            lam[m] = lam_new[m]
    keep_alive(owned)
    # outputs before the first step's end that the loop did not reach cannot exist: the
    # first step starts at t0 and every output lies in [t0, t_end]


@njit(cache=True, error_model="numpy")
def reference_vjp(addresses, mode, t, y, p, u, out_y, out_p):
    """:func:`model_vjp` over every parameter, with its own work arrays (the model check
    compares a user ``vjp`` with it)."""
    n = y.shape[0]
    n_params = p.shape[0]
    model_vjp(addresses, mode, t, y, p, u, np.arange(n_params), out_y, out_p,
              np.empty(n, dtype=np.complex128), np.empty(n_params, dtype=np.complex128),
              np.empty(n, dtype=np.complex128), np.empty(n), np.empty(n_params), np.empty(n),
              np.empty(n))
