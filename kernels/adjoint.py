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
from numba import literally, njit, types
from numba.extending import overload

from . import explicit as ex
from .derivatives import (
    CENTRAL_BASE_STEP,
)
from .explicit import integrate
from .fields import (
    AI_VJP_MODE,
    NESTED_BASE_STEP,
    VJP_CENTRAL,
    VJP_COMPLEX_STEP,
    VJP_USER,
    interpolate_store,
    model_vjp,
    parameter_vjp,
    vjp_workspace,
)
from .rosenbrock import integrate_rosenbrock, model_jacobian
from .status import (
    DENSE_FULL,
    I_K0_VALID,
    I_N_DENSE,
    O_T_END,
    SUCCESS,
    TIME_DERIVATIVE_ZERO,
)
from .stepping import keep_alive, unmanaged

__all__ = [
    "VJP_COMPLEX_STEP", "VJP_CENTRAL", "VJP_USER", "model_vjp", "discrete_adjoint_explicit",
    "discrete_adjoint_rosenbrock", "adjoint_quadrature", "backward_sweep_explicit",
    "backward_sweep_rosenbrock",
]

@njit(cache=True, error_model="numpy", nogil=True)
def _step_of_outputs(t_eval, step_end, direction):
    """The step each output belongs to, as the forward kernels assign them: the first step
    whose end reaches it."""
    step_of = np.full(t_eval.shape[0], -1, dtype=np.int64)
    j = 0
    for index in range(step_end.shape[0]):
        while j < t_eval.shape[0] and direction * (t_eval[j] - step_end[index]) <= 0.0:
            step_of[j] = index
            j += 1
    return step_of


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _output_cotangents(step, j, step_of, t_eval, end, t, h, scale, weights, tab, col_dense,
                       n_dense, rows, lam, stage_bar, lam_new):
    """Start the reverse pass of ``step``: zero the stage cotangents ``stage_bar`` (``rows``
    of them) and ``lam_new``, then add the cotangents of the outputs the step produced
    (from ``j`` down): an output at the step's end is the new state (to ``lam``), any other
    the interpolant ``y_n + scale * sum_i w_i(theta) K_i`` (to ``lam_new`` and
    ``stage_bar``; ``w_i`` from the tableau's columns ``col_dense...``). Returns the first
    output of an earlier step."""
    n = lam.shape[0]
    for i in range(rows):
        for m in range(n):
            stage_bar[i, m] = 0.0
    for m in range(n):
        lam_new[m] = 0.0
    while j >= 0 and step_of[j] == step:
        if t_eval[j] == end:
            for m in range(n):
                lam[m] += weights[j, m]
        else:
            theta = (t_eval[j] - t) / h
            for i in range(rows):
                w = 0.0
                for q in range(n_dense - 1, -1, -1):
                    w = (w + tab[i, col_dense + q]) * theta
                w *= scale
                for m in range(n):
                    stage_bar[i, m] += w * weights[j, m]
            for m in range(n):
                lam_new[m] += weights[j, m]
        j -= 1
    return j


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

    step_of = _step_of_outputs(t_eval, step_end, direction)

    lam_k = np.zeros((s_total, n))
    lam_new = np.empty(n)
    mu = np.empty(n)
    g = np.empty(max(k, 1))
    stage_y = np.empty(n)
    yc, pc, fc, yr, pr, f_plus, f_minus = vjp_workspace(n, n_params)
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
        j = _output_cotangents(s, j, step_of, t_eval, step_end[s], t, h, h, weights, tab,
                               s_total + 3, n_dense, interpolated, lam, lam_k, lam_new)
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
    yc, pc, fc, yr, pr, f_plus, f_minus = vjp_workspace(n, n_params)
    model_vjp(addresses, mode, t, y, p, u, np.arange(n_params), out_y, out_p, yc, pc, fc, yr,
              pr, f_plus, f_minus)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _transposed_iteration_lu(jac, inv_h_gamma, lu, pivots):
    """``lu, pivots`` := the LU factors (partial pivoting, row-major) of ``W^T`` with
    ``W = I/(h gamma) - J`` and ``jac[j, i] = dJ_i/dy_j`` (the Rosenbrock kernel's
    transposed layout, so ``W^T = I/(h gamma) - jac``); returns False when ``W`` is
    singular."""
    n = jac.shape[0]
    for i in range(n):
        for j in range(n):
            lu[i, j] = -jac[i, j]
        lu[i, i] += inv_h_gamma
    for k in range(n):
        pivot_row = k
        largest = abs(lu[k, k])
        for i in range(k + 1, n):
            if abs(lu[i, k]) > largest:
                largest = abs(lu[i, k])
                pivot_row = i
        pivots[k] = pivot_row
        if largest == 0.0:
            return False
        if pivot_row != k:
            for j in range(n):
                tmp = lu[k, j]
                lu[k, j] = lu[pivot_row, j]
                lu[pivot_row, j] = tmp
        inv_pivot = 1.0 / lu[k, k]
        for i in range(k + 1, n):
            factor = lu[i, k] * inv_pivot
            lu[i, k] = factor
            if factor != 0.0:
                for j in range(k + 1, n):
                    lu[i, j] -= factor * lu[k, j]
    return True


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _lu_solve(lu, pivots, b):
    """Solve with the factors of :func:`_transposed_iteration_lu`, in place on ``b``."""
    n = lu.shape[0]
    for k in range(n):
        q = pivots[k]
        if q != k:
            tmp = b[k]
            b[k] = b[q]
            b[q] = tmp
    for i in range(n):
        acc = b[i]
        for j in range(i):
            acc -= lu[i, j] * b[j]
        b[i] = acc
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for j in range(i + 1, n):
            acc -= lu[i, j] * b[j]
        b[i] = acc / lu[i, i]


@njit(cache=True, error_model="numpy", nogil=True)
def discrete_adjoint_rosenbrock(addresses, mode, jac_mode, time_mode, tab, tab_info, atol,
                                step_t, step_h, step_y, step_k, step_end, t_eval, weights, p,
                                param_idx, lam, grad):
    """Reverse pass of a Rosenbrock solve: the transpose of its discrete tangent-linear
    model.

    A step of the transformed Rosenbrock scheme (``rosenbrock.py``) is, with ``W = I/(h
    gamma) - J(t_n, y_n)`` and the step size held fixed,

        W u_i = f(t_n + alpha_i h, y_n + sum_{l<i} A_il u_l) + sum_{l<i} (C_il / h) u_l
                + gamma_i h f_t(t_n, y_n),
        y_{n+1} = y_n + sum_i m_i u_i,     y(t_n + theta h) = y_n + sum_i w_i(theta) u_i.

    With ``v_i = W^{-T} ubar_i`` (``ubar_i`` the cotangent of ``u_i``), stage ``i`` sends
    ``J(Y_i)^T v_i`` to ``y_n`` and ``A_il J(Y_i)^T v_i + (C_il/h) v_i`` to ``u_l``, and
    ``f_p(Y_i)^T v_i`` to the gradient, as an explicit stage does; and, because ``W``
    itself depends on ``y_n`` and ``p``, the second-derivative term ``grad_{y,p} (v_i^T
    J(t_n, y_n, p) u_i)``, which equals the derivative of the vector-Jacobian product
    ``(J^T v_i, f_p^T v_i)`` along ``u_i`` (symmetry of second derivatives): central
    differences of two products (Sandu, Daescu & Carmichael, Atmos. Environ. 37, 2003, the
    same term :func:`fields.field_stage_coupling` adds in the forward direction). The
    ``f_t`` term of a non-autonomous model gives ``d/dt (J^T V, f_p^T V)`` with ``V =
    sum_i gamma_i h v_i``: two more products.

    ``step_k[s, i]`` holds ``u_i / h`` (the kernel's dense store); ``jac_mode``/``time_mode``
    are the forward solve's (``status.JAC_*``, ``status.TIME_DERIVATIVE_*``), so ``J`` is
    recomputed exactly as the forward step computed it. Other arguments as for
    :func:`discrete_adjoint_explicit`. Returns False when an iteration matrix is singular
    (which the forward solve would have rejected: it cannot happen for its own steps).
    """
    n_steps = step_t.shape[0]
    s = tab_info[0]  # rosenbrock.R_N_STAGES
    n_dense = tab_info[1]  # rosenbrock.R_N_DENSE
    col_m = 2 * s
    col_alpha = 2 * s + 2
    col_gsum = 2 * s + 3
    gamma = tab[0, 2 * s + 4]
    col_dense = 2 * s + 5
    n = step_y.shape[1]
    n_times = t_eval.shape[0]
    k = param_idx.shape[0]
    n_params = p.shape[0]
    direction = 1.0 if step_h[0] > 0.0 else -1.0
    # the second-derivative differences step each state by this times its scale (as the
    # forward coupling does): nested differences of differences need the larger step
    outer = NESTED_BASE_STEP if mode == VJP_CENTRAL else CENTRAL_BASE_STEP

    step_of = _step_of_outputs(t_eval, step_end, direction)

    u_bar = np.zeros((s, n))
    lam_new = np.empty(n)
    v = np.empty(n)
    v_time = np.empty(n)
    mu = np.empty(n)
    g = np.empty(max(k, 1))
    mu_minus = np.empty(n)
    g_minus = np.empty(max(k, 1))
    stage_y = np.empty(n)
    jac = np.empty((n, n))
    jac_user = np.empty((n, n))
    lu = np.empty((n, n))
    pivots = np.empty(n, dtype=np.int64)
    yc, pc, fc, yr, pr, f_plus, f_minus = vjp_workspace(n, n_params)
    owned = (step_of, u_bar, lam_new, v, v_time, mu, g, mu_minus, g_minus, stage_y, jac,
             jac_user, lu, pivots, yc, pc, fc, yr, pr, f_plus, f_minus)
    (addresses, tab, atol, step_t, step_h, step_y, step_k, step_end, t_eval, weights, p,
     param_idx, lam, grad, step_of, u_bar, lam_new, v, v_time, mu, g, mu_minus, g_minus,
     stage_y, jac, jac_user, lu, pivots, yc, pc, fc, yr, pr, f_plus,
     f_minus) = unmanaged((addresses, tab, atol, step_t, step_h, step_y, step_k, step_end,
                           t_eval, weights, p, param_idx, lam, grad, step_of, u_bar, lam_new,
                           v, v_time, mu, g, mu_minus, g_minus, stage_y, jac, jac_user, lu,
                           pivots, yc, pc, fc, yr, pr, f_plus, f_minus))

    regular = True
    j = n_times - 1
    for index in range(n_steps - 1, -1, -1):
        t = step_t[index]
        h = step_h[index]
        y = step_y[index]
        j = _output_cotangents(index, j, step_of, t_eval, step_end[index], t, h, 1.0, weights,
                               tab, col_dense, n_dense, s, lam, u_bar, lam_new)
        for i in range(s):
            weight = tab[i, col_m]
            if weight != 0.0:
                for m in range(n):
                    u_bar[i, m] += weight * lam[m]
        for m in range(n):
            lam_new[m] += lam[m]
            v_time[m] = 0.0

        # J(t_n, y_n) exactly as the forward step obtained it (jac[j, i] = df_i/dy_j)
        for m in range(n):
            yr[m] = y[m]
        model_jacobian(addresses, jac_mode, t, y, p, atol, jac, jac_user, yc, pc, fc, yr,
                       f_plus, f_minus)
        if not _transposed_iteration_lu(jac, 1.0 / (h * gamma), lu, pivots):
            regular = False
            break

        for i in range(s - 1, -1, -1):
            nonzero = False
            for m in range(n):
                v[m] = u_bar[i, m]
                if v[m] != 0.0:
                    nonzero = True
            if not nonzero:
                continue
            _lu_solve(lu, pivots, v)
            # the stage's right-hand side f(t + alpha_i h, Y_i)
            for m in range(n):
                acc = 0.0
                for q in range(i):
                    acc += tab[i, q] * step_k[index, q, m]
                stage_y[m] = y[m] + h * acc
            model_vjp(addresses, mode, t + tab[i, col_alpha] * h, stage_y, p, v, param_idx,
                      mu, g, yc, pc, fc, yr, pr, f_plus, f_minus)
            for c in range(k):
                grad[c] += g[c]
            for m in range(n):
                lam_new[m] += mu[m]
            inv_h = 1.0 / h
            for q in range(i):
                a = tab[i, q]
                c_coef = tab[i, s + q] * inv_h
                for m in range(n):
                    u_bar[q, m] += a * mu[m] + c_coef * v[m]
            g_h = tab[i, col_gsum] * h
            for m in range(n):
                v_time[m] += g_h * v[m]
            # W depends on (y_n, p): grad (v^T J u_i) by differences of products along u_i
            largest = 0.0
            floor = 0.0
            for m in range(n):
                floor = max(floor, abs(y[m]))
            floor *= 1e-3
            for m in range(n):
                scale = max(abs(y[m]), atol[m], floor)
                if scale > 0.0:
                    largest = max(largest, abs(h * step_k[index, i, m]) / scale)
            if largest > 0.0:
                delta = outer / largest
                for m in range(n):
                    stage_y[m] = y[m] + delta * h * step_k[index, i, m]
                model_vjp(addresses, mode, t, stage_y, p, v, param_idx, mu, g, yc, pc, fc, yr,
                          pr, f_plus, f_minus)
                for m in range(n):
                    stage_y[m] = y[m] - delta * h * step_k[index, i, m]
                model_vjp(addresses, mode, t, stage_y, p, v, param_idx, mu_minus, g_minus, yc,
                          pc, fc, yr, pr, f_plus, f_minus)
                scale_back = 1.0 / (2.0 * delta)
                for m in range(n):
                    lam_new[m] += (mu[m] - mu_minus[m]) * scale_back
                for c in range(k):
                    grad[c] += (g[c] - g_minus[c]) * scale_back

        if time_mode != TIME_DERIVATIVE_ZERO:
            # gamma_i h f_t(t_n, y_n, p): d/dt of the products at (t_n, y_n)
            step = CENTRAL_BASE_STEP * max(1.0, abs(t))
            model_vjp(addresses, mode, t + step, y, p, v_time, param_idx, mu, g, yc, pc, fc,
                      yr, pr, f_plus, f_minus)
            model_vjp(addresses, mode, t - step, y, p, v_time, param_idx, mu_minus, g_minus,
                      yc, pc, fc, yr, pr, f_plus, f_minus)
            for m in range(n):
                lam_new[m] += (mu[m] - mu_minus[m]) / (2.0 * step)
            for c in range(k):
                grad[c] += (g[c] - g_minus[c]) / (2.0 * step)
        for m in range(n):
            lam[m] = lam_new[m]
    keep_alive(owned)
    return regular


#: 4-point Gauss–Legendre rule on [0, 1] (order 8): the parameter gradient of the
#: continuous adjoints, ``int f_p^T lambda dt``, over each backward step
GAUSS_NODES = np.array([
    0.5 - 0.5 * 0.8611363115940526, 0.5 - 0.5 * 0.3399810435848563,
    0.5 + 0.5 * 0.3399810435848563, 0.5 + 0.5 * 0.8611363115940526,
])
GAUSS_WEIGHTS = np.array([
    0.5 * 0.3478548451374538, 0.5 * 0.6521451548625461,
    0.5 * 0.6521451548625461, 0.5 * 0.3478548451374538,
])


@njit(cache=True, error_model="numpy", nogil=True)
def adjoint_quadrature(addresses, mode, lam_t, lam_h, lam_y, lam_k, lam_dense, backsolve,
                       fwd_t, fwd_h, fwd_y, fwd_k, fwd_dense, p, param_idx, grad):
    """``grad[c] += int f_{p_c}(t, y(t))^T lambda(t) dt`` over the backward steps in the
    store ``lam_*`` (4-point Gauss–Legendre per step, ``lambda`` from the adjoint's own
    dense output). ``y(t)`` comes from the forward store ``fwd_*`` or, with
    ``backsolve``, from the first half of the backward state ``[y, lambda]``."""
    n_steps = lam_t.shape[0]
    width = lam_y.shape[1]
    n = width // 2 if backsolve else width
    n_params = p.shape[0]
    k = param_idx.shape[0]
    both = np.empty(width)
    y = np.empty(n)
    lam = np.empty(n)
    g = np.empty(max(k, 1))
    yc, pc, fc, out_y, pr, f_plus, f_minus = vjp_workspace(n, n_params)
    for d in range(n_steps):
        # the step runs backwards from lam_t[d]: its length in forward time is -h
        length = -lam_h[d]
        for q in range(4):
            t = lam_t[d] + GAUSS_NODES[q] * lam_h[d]
            interpolate_store(lam_t[d:d + 1], lam_h[d:d + 1], lam_y[d:d + 1], lam_k[d:d + 1],
                              lam_dense, t, both)
            if backsolve:
                for m in range(n):
                    y[m] = both[m]
                    lam[m] = both[n + m]
            else:
                for m in range(n):
                    lam[m] = both[m]
                interpolate_store(fwd_t, fwd_h, fwd_y, fwd_k, fwd_dense, t, y)
            parameter_vjp(addresses, mode, t, y, p, lam, param_idx, g, yc, pc, fc, pr,
                           f_plus, f_minus, out_y)
            weight = GAUSS_WEIGHTS[q] * length
            for c in range(k):
                grad[c] += weight * g[c]


#: ``family`` of :func:`backward_sweep`
EXPLICIT_FAMILY = 0
ROSENBROCK_FAMILY = 1


def _integrate_family(family, field, y, p, atol, fopts, iopts, tab, tab_info, t_eval, t_out,
                      y_out, dense_t, dense_h, dense_y, dense_k, stages, fstate, istate):
    """The integrator of ``family`` (a literal), so that one sweep serves both."""


@overload(_integrate_family, inline="always")
def _integrate_family_impl(family, field, y, p, atol, fopts, iopts, tab, tab_info, t_eval,
                           t_out, y_out, dense_t, dense_h, dense_y, dense_k, stages, fstate,
                           istate):
    if not isinstance(family, types.IntegerLiteral):
        return None
    kernel = integrate if family.literal_value == EXPLICIT_FAMILY else integrate_rosenbrock

    def impl(family, field, y, p, atol, fopts, iopts, tab, tab_info, t_eval, t_out, y_out,
             dense_t, dense_h, dense_y, dense_k, stages, fstate, istate):
        return kernel(field, y, p, atol, fopts, iopts, tab, tab_info, t_eval, t_out, y_out,
                      dense_t, dense_h, dense_y, dense_k, stages, fstate, istate)
    return impl


_SWEEP_DOC = """A continuous adjoint's backward integration (explicit / Rosenbrock method)
    through the times ``stops``: after reaching ``stops[i]`` the adjoint jumps by
    ``jumps[i]`` (an output's cotangent; zeros at a piece boundary), added to
    ``state[jump_offset:]``. Whenever the store of backward steps fills, and at each stop,
    its steps are turned into the parameter gradient by :func:`adjoint_quadrature` and
    dropped (so the adjoint solution is never stored whole). ``counts[0]`` counts the
    backward steps. Returns the integrator's status (``SUCCESS``, or the failure that
    stopped it)."""


@njit(cache=True, error_model="numpy", nogil=True)
def backward_sweep_explicit(field, state, p, atol, fopts, iopts, tab, tab_info, stages,
                            store_t, store_h, store_y, store_k, lam_dense, fstate, istate,
                            stops, jumps, jump_offset, backsolve, fwd_t, fwd_h, fwd_y, fwd_k,
                            fwd_dense, param_idx, grad, counts):
    return _backward_sweep(EXPLICIT_FAMILY, field, state, p, atol, fopts, iopts, tab,
                           tab_info, stages, store_t, store_h, store_y, store_k, lam_dense,
                           fstate, istate, stops, jumps, jump_offset, backsolve, fwd_t, fwd_h,
                           fwd_y, fwd_k, fwd_dense, param_idx, grad, counts)


@njit(cache=True, error_model="numpy", nogil=True)
def backward_sweep_rosenbrock(field, state, p, atol, fopts, iopts, tab, tab_info, stages,
                              store_t, store_h, store_y, store_k, lam_dense, fstate, istate,
                              stops, jumps, jump_offset, backsolve, fwd_t, fwd_h, fwd_y,
                              fwd_k, fwd_dense, param_idx, grad, counts):
    return _backward_sweep(ROSENBROCK_FAMILY, field, state, p, atol, fopts, iopts, tab,
                           tab_info, stages, store_t, store_h, store_y, store_k, lam_dense,
                           fstate, istate, stops, jumps, jump_offset, backsolve, fwd_t, fwd_h,
                           fwd_y, fwd_k, fwd_dense, param_idx, grad, counts)


backward_sweep_explicit.__doc__ = backward_sweep_rosenbrock.__doc__ = _SWEEP_DOC


@njit(cache=True, error_model="numpy", nogil=True)
def _backward_sweep(family, field, state, p, atol, fopts, iopts, tab, tab_info, stages,
                    store_t, store_h, store_y, store_k, lam_dense, fstate, istate, stops,
                    jumps, jump_offset, backsolve, fwd_t, fwd_h, fwd_y, fwd_k, fwd_dense,
                    param_idx, grad, counts):
    no_times = np.empty(0)
    no_outputs = np.empty((0, 0))
    addresses = field[0]
    mode = field[1][AI_VJP_MODE]
    code = SUCCESS
    for index in range(stops.shape[0]):
        fopts[O_T_END] = stops[index]
        while True:
            code = _integrate_family(literally(family), field, state, p, atol, fopts, iopts, tab,
                                     tab_info, no_times, no_times, no_outputs, store_t,
                                     store_h, store_y, store_k, stages, fstate, istate)
            n_stored = istate[I_N_DENSE]
            if n_stored > 0:
                adjoint_quadrature(addresses, mode, store_t[:n_stored], store_h[:n_stored],
                                   store_y[:n_stored], store_k[:n_stored], lam_dense,
                                   backsolve, fwd_t, fwd_h, fwd_y, fwd_k, fwd_dense, p,
                                   param_idx, grad)
                counts[0] += n_stored
                istate[I_N_DENSE] = 0
            if code != DENSE_FULL:
                break
        if code != SUCCESS:
            return code
        nonzero = False
        for m in range(jumps.shape[1]):
            if jumps[index, m] != 0.0:
                state[jump_offset + m] += jumps[index, m]
                nonzero = True
        if nonzero:
            istate[I_K0_VALID] = 0  # the stored first stage belongs to the old adjoint
    return code
