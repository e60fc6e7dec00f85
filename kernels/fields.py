"""Vector fields: what a stepper integrates.

The steppers (:mod:`explicit`, :mod:`rosenbrock`) never call the user's model themselves.
They integrate a *field*: a small tuple that says how to evaluate the right-hand side of the
(possibly augmented) state ``Y`` they carry. Three fields exist:

``plain_field(addresses)`` -- ``(addresses,)``
    ``Y = y``, ``Y' = f(t, y, p)``: an ordinary solve. With complex128 ``y`` and ``p`` the
    complex-valued model is called (a solve differentiated by the complex step).

``forward_field(addresses, info, param_columns)`` -- ``(addresses, info, param_columns)``
    ``Y = [y, S_1, ..., S_k]`` with ``S_c = dy/dtheta_c``, ``theta_c`` a parameter
    (``param_columns[c] >= 0``) or an initial state (``-1``):
    ``S_c' = J S_c + f_p e_{param_columns[c]}``, each column from one complex evaluation
    ``Im f(t, y + i h S_c, p + i h e) / h`` (or central differences for models that are not
    complex-step safe, ``info[SI_JVP_MODE]``). ``info[SI_N_ERROR]`` leading components of
    ``Y`` enter the error norm: ``n`` (states only) or all of them (sensitivities under error
    control, as in CVODES and AMICI by default).
    A Rosenbrock stepper integrating this field gets the method's discrete tangent-linear
    model (see :func:`field_stage_coupling`).

``complex_directions_field(addresses, info, P)`` -- ``(addresses, info, P)``
    ``Y = [y + i h S_1, ..., y + i h S_k]`` complex, block ``b`` solved with parameters
    ``P[b]``: ``k`` complex-step differentiated solves sharing one step sequence (the error
    norm sees block 0's real part, which is the real solve's).

Each field is told apart by the *type* of its tuple, so the steppers are compiled (and cached
on disk) once per field kind and the choice costs nothing per evaluation. The functions
below are ``@overload``-ed on that type and inlined into the steppers (Numba's IR inlining:
measured on Numba 0.68 at the same cost as writing the body in the loop, whereas a helper
that is not inlined costs about 70 ns per call with arrays among its arguments).
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .derivatives import CENTRAL_BASE_STEP, COMPLEX_STEP, INVERSE_COMPLEX_STEP
from .fnptr import call_model, call_vjp
from .status import TIME_DERIVATIVE_ZERO

__all__ = [
    "A_JAC",
    "A_RHS",
    "A_RHS_COMPLEX",
    "A_RHS_COMPLEX_TIME",
    "A_SIZE",
    "JVP_CENTRAL",
    "JVP_COMPLEX_STEP",
    "complex_directions_field",
    "forward_field",
    "model_addresses",
    "plain_field",
    "sensitivity_info",
]

# Entries of the ``addresses`` record every field starts with.
A_RHS = 0
A_RHS_COMPLEX = 1
A_JAC = 2
A_RHS_COMPLEX_TIME = 3
A_VJP = 4  # the user's vjp(t, y, p, w, out_y, out_p), for the adjoints
A_SIZE = 5

# Layout of a sensitivity field's ``info`` record.
SI_N = 0  # states of the model
SI_N_SENS = 1  # sensitivity columns (or complex directions)
SI_N_ERROR = 2  # leading components of Y in the error norm
SI_JVP_MODE = 3
SI_SIZE = 4

#: Jacobian-vector products ``J S + f_p e`` by one complex evaluation (exact to rounding)
JVP_COMPLEX_STEP = 0
#: ... by central differences, two real evaluations (models that are not complex-step safe)
JVP_CENTRAL = 1

#: ``eps ** (1/4)``: the step of the nested central differences that give the second
#: derivative term of a Rosenbrock tangent-linear model for a model that is not complex-step
#: safe (truncation and rounding error both about ``sqrt(eps)``)
NESTED_BASE_STEP = 1.2207031250000000e-04

_PLAIN = 1
_FORWARD = 2
_COMPLEX_DIRECTIONS = 3


def model_addresses(rhs=0, rhs_complex=0, jac=0, rhs_complex_time=0, vjp=0):
    """The int64 ``A_*`` record of a model's compiled versions (0 for those it lacks)."""
    addresses = np.zeros(A_SIZE, dtype=np.int64)
    addresses[A_RHS] = rhs
    addresses[A_RHS_COMPLEX] = rhs_complex
    addresses[A_JAC] = jac
    addresses[A_RHS_COMPLEX_TIME] = rhs_complex_time
    addresses[A_VJP] = vjp
    return addresses


def plain_field(addresses):
    """The field ``y' = f(t, y, p)``; ``addresses`` is the int64 ``A_*`` record."""
    return (addresses,)


def sensitivity_info(n, n_sens, n_error, jvp_mode=JVP_COMPLEX_STEP):
    """The int64 ``info`` record of :func:`forward_field` / :func:`complex_directions_field`."""
    if jvp_mode not in (JVP_COMPLEX_STEP, JVP_CENTRAL):
        raise ValueError(f"jvp_mode must be JVP_COMPLEX_STEP or JVP_CENTRAL, got {jvp_mode!r}")
    if not (n >= 1 and n_sens >= 0 and n_error >= 1):
        raise ValueError(f"bad sizes n={n}, n_sens={n_sens}, n_error={n_error}")
    info = np.empty(SI_SIZE, dtype=np.int64)
    info[SI_N] = n
    info[SI_N_SENS] = n_sens
    info[SI_N_ERROR] = n_error
    info[SI_JVP_MODE] = jvp_mode
    return info


def forward_field(addresses, info, param_columns):
    """The model augmented with its forward sensitivities (module docstring).

    ``param_columns`` (int64, one entry per column) holds the parameter index of each column,
    ``-1`` for a column that is a derivative with respect to an initial state.
    """
    param_columns = np.ascontiguousarray(param_columns, dtype=np.int64)
    if param_columns.shape != (info[SI_N_SENS],):
        raise ValueError("param_columns needs one entry per sensitivity column")
    return (addresses, info, param_columns)


def complex_directions_field(addresses, info, P):
    """``k`` complex-step differentiated solves in one state (module docstring);
    ``P`` is ``(k, n_p)`` complex128, block ``b``'s parameters."""
    P = np.ascontiguousarray(P, dtype=np.complex128)
    if P.ndim != 2 or P.shape[0] != info[SI_N_SENS]:
        raise ValueError("P needs one row of parameters per direction")
    return (addresses, info, P)


def _kind(field):
    """The field kind of a tuple type (None when it is not a field)."""
    if not isinstance(field, types.BaseTuple):
        return None
    if len(field.types) == 1:
        return _PLAIN
    if len(field.types) == 3:
        last = field.types[2]
        if isinstance(last, types.Array) and last.ndim == 1:
            return _FORWARD
        if isinstance(last, types.Array) and last.ndim == 2:
            return _COMPLEX_DIRECTIONS
    return None


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
    The ``A_VJP`` slot it calls holds any cfunc of that signature (``fnptr.VJP_SIG_F64``):
    the problem's own ``vjp``, or one paramest builds itself, such as a network's
    hand-written reverse pass, so that a product costs one call however many parameters.
    """
    if mode == VJP_USER:
        parameter_vjp(addresses, mode, t, y, p, u, param_idx, out_p, yc, pc, fc, pr, f_plus,
                      f_minus, out_y)
    else:
        n = y.shape[0]
        if mode == VJP_COMPLEX_STEP:
            for i in range(n):
                yc[i] = y[i]
            for i in range(p.shape[0]):
                pc[i] = p[i]
            for j in range(n):
                yc[j] = complex(y[j], COMPLEX_STEP)
                call_model(addresses[A_RHS_COMPLEX], t, yc, pc, fc)
                yc[j] = y[j]
                acc = 0.0
                for i in range(n):
                    acc += u[i] * fc[i].imag
                out_y[j] = acc * INVERSE_COMPLEX_STEP
        else:
            floor = 0.0
            for i in range(n):
                floor = max(floor, abs(y[i]))
                yr[i] = y[i]
            floor *= 1e-3
            for j in range(n):
                scale = max(abs(y[j]), floor)
                step = CENTRAL_BASE_STEP * (scale if scale > 0.0 else 1.0)
                yr[j] = y[j] + step
                call_model(addresses[A_RHS], t, yr, p, f_plus)
                yr[j] = y[j] - step
                call_model(addresses[A_RHS], t, yr, p, f_minus)
                yr[j] = y[j]
                acc = 0.0
                for i in range(n):
                    acc += u[i] * (f_plus[i] - f_minus[i])
                out_y[j] = acc / (2.0 * step)
        parameter_vjp(addresses, mode, t, y, p, u, param_idx, out_p, yc, pc, fc, pr, f_plus,
                      f_minus, out_y)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def vjp_workspace(n, n_params):
    """The work arrays of :func:`model_vjp` for ``n`` states and ``n_params`` parameters:
    ``(yc, pc, fc, yr, pr, f_plus, f_minus)``."""
    return (np.empty(n, dtype=np.complex128), np.empty(n_params, dtype=np.complex128),
            np.empty(n, dtype=np.complex128), np.empty(n), np.empty(n_params), np.empty(n),
            np.empty(n))


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def parameter_vjp(addresses, mode, t, y, p, u, param_idx, out_p, yc, pc, fc, pr, f_plus,
                  f_minus, out_y):
    """``out_p[c] = (df/dp_{param_idx[c]})^T u`` alone: ``k`` complex evaluations (or
    central-difference pairs); a user ``vjp`` is one call, which also writes ``J^T u`` to
    ``out_y``."""
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
        for c in range(k):
            q = param_idx[c]
            pc[q] = complex(p[q], COMPLEX_STEP)
            call_model(addresses[A_RHS_COMPLEX], t, yc, pc, fc)
            pc[q] = p[q]
            acc = 0.0
            for i in range(n):
                acc += u[i] * fc[i].imag
            out_p[c] = acc * INVERSE_COMPLEX_STEP
    else:
        for i in range(n_params):
            pr[i] = p[i]
        for c in range(k):
            q = param_idx[c]
            step = CENTRAL_BASE_STEP * (abs(p[q]) if p[q] != 0.0 else 1.0)
            pr[q] = p[q] + step
            call_model(addresses[A_RHS], t, y, pr, f_plus)
            pr[q] = p[q] - step
            call_model(addresses[A_RHS], t, y, pr, f_minus)
            pr[q] = p[q]
            acc = 0.0
            for i in range(n):
                acc += u[i] * (f_plus[i] - f_minus[i])
            out_p[c] = acc / (2.0 * step)


# -- the stubs the steppers call; their implementations are chosen by field type ----------

def field_workspace(field, Y, p):
    """Work arrays of the field for a state like ``Y`` (allocated once per kernel call)."""


def field_rhs(field, ws, t, Y, p, out):
    """``out = Y'(t, Y)``."""


def field_sizes(field, Y):
    """``(n, n_error)``: the number of states of the model itself (the first block of
    ``Y``), and how many leading components of ``Y`` enter the error norm."""


def field_stage_coupling(field, ws, t, Y, p, atol, U, stage, n_stages):
    """Rosenbrock steps: add the second-derivative coupling to the sensitivity blocks of
    ``U[stage]`` once the state block ``U[stage, :n]`` is solved (``n_stages`` stages a
    step)."""


def field_time_derivative(field, ws, t, Y, p, f_t, time_mode):
    """Rosenbrock steps: fill the sensitivity blocks of ``f_t`` (``d/dt`` of their
    right-hand sides) once ``f_t[:n]`` holds the model's ``df/dt``."""


# -- implementations ----------------------------------------------------------------------

def _workspace_sizes(field, p):
    """``(n, n_p, n_sens)`` of a field's work arrays: zeros for the plain field."""


@overload(_workspace_sizes, inline="always")
def _workspace_sizes_impl(field, p):
    kind = _kind(field)
    if kind == _PLAIN:
        return lambda field, p: (0, 0, 0)
    if kind is not None:
        return lambda field, p: (field[1][SI_N], p.shape[0], field[1][SI_N_SENS])
    return None


@overload(field_workspace, inline="always")
def _field_workspace(field, Y, p):
    if _kind(field) is None:
        return None

    def impl(field, Y, p):
        n, n_p, n_sens = _workspace_sizes(field, p)
        # the complex point, parameters and output of a product; the real parameters; rows
        # of the real work: evaluation point, two shifted points, two outputs, two
        # products; then the Rosenbrock coupling's matrices (field_stage_coupling): n rows
        # of scaled unit vectors, n per column
        return (np.empty(n, dtype=np.complex128), np.empty(n_p, dtype=np.complex128),
                np.empty(n, dtype=np.complex128), np.empty(n_p), np.zeros((7, n)),
                np.zeros((n * (1 + n_sens), n)))
    return impl


@overload(field_sizes, inline="always")
def _field_sizes(field, Y):
    kind = _kind(field)
    if kind == _PLAIN:
        return lambda field, Y: (Y.shape[0], Y.shape[0])
    if kind is not None:
        return lambda field, Y: (field[1][SI_N], field[1][SI_N_ERROR])
    return None


def _load_parameters(ws, p):
    """Copy ``p`` into the complex parameter work array, which :func:`_jvp` then perturbs
    one entry at a time (and restores)."""


@overload(_load_parameters, inline="always")
def _load_parameters_impl(ws, p):
    def impl(ws, p):
        cp = ws[1]
        for i in range(p.shape[0]):
            cp[i] = p[i]
    return impl


def _jvp(addresses, mode, ws, t, base, shift, direction, d_row, S, s_off, p, param, out,
         out_off, step_base):
    """``out[out_off:out_off+n] = J(t, x) S[s_off:s_off+n] + f_p(t, x) e_param`` at the point
    ``x = base[:n] + shift * direction[d_row, :n]``; ``ws[1]`` must hold ``p``
    (:func:`_load_parameters`). ``direction`` must be finite even where ``shift`` is 0:
    ``ws[5]``, whose entries are finite scales or zeros, serves then."""


@overload(_jvp, inline="always")
def _jvp_impl(addresses, mode, ws, t, base, shift, direction, d_row, S, s_off, p, param,
              out, out_off, step_base):
    # The complex step is written here (inlined into the steppers); the differences live in
    # a compiled helper, only called for models that are not complex-step safe.
    # One exit only: Numba's IR inlining mishandles variables of early-return branches.
    def impl(addresses, mode, ws, t, base, shift, direction, d_row, S, s_off, p, param, out,
             out_off, step_base):
        cy = ws[0]
        n = cy.shape[0]
        if mode == JVP_COMPLEX_STEP:
            cp = ws[1]
            cout = ws[2]
            for j in range(n):
                cy[j] = complex(base[j] + shift * direction[d_row, j],
                                COMPLEX_STEP * S[s_off + j])
            if param >= 0:
                cp[param] = complex(p[param], COMPLEX_STEP)
            call_model(addresses[A_RHS_COMPLEX], t, cy, cp, cout)
            if param >= 0:
                cp[param] = p[param]
            for j in range(n):
                out[out_off + j] = cout[j].imag * INVERSE_COMPLEX_STEP
        else:
            point = ws[4][0]
            for j in range(n):
                point[j] = base[j] + shift * direction[d_row, j]
            _jvp_central(addresses, t, point, S, s_off, p, param, out, out_off, step_base,
                         ws[3], ws[4])
    return impl


@njit(cache=True, error_model="numpy")
def _jvp_central(addresses, t, point, S, s_off, p, param, out, out_off, step_base, rp, rw):
    """:func:`_jvp` by central differences along ``(S, e_param)``, the step scaled so that
    every variable moves by about ``step_base`` times its own size (models that are not
    complex-step safe)."""
    n = point.shape[0]
    direction = 0.0
    size = 0.0
    for j in range(n):
        direction = max(direction, abs(S[s_off + j]))
        size = max(size, abs(point[j]))
    if param >= 0:
        direction = max(direction, 1.0)
        size = max(size, abs(p[param]))
    if direction == 0.0:
        for j in range(n):
            out[out_off + j] = 0.0
        return
    delta = step_base * (size if size > 0.0 else 1.0) / direction
    for j in range(n):
        rw[1, j] = point[j] + delta * S[s_off + j]
        rw[2, j] = point[j] - delta * S[s_off + j]
    for i in range(p.shape[0]):
        rp[i] = p[i]
    if param >= 0:
        rp[param] = p[param] + delta
    call_model(addresses[A_RHS], t, rw[1], rp, rw[3])
    if param >= 0:
        rp[param] = p[param] - delta
    call_model(addresses[A_RHS], t, rw[2], rp, rw[4])
    for j in range(n):
        out[out_off + j] = (rw[3, j] - rw[4, j]) / (2.0 * delta)


@overload(field_rhs, inline="always")
def _field_rhs(field, ws, t, Y, p, out):
    kind = _kind(field)
    if kind == _PLAIN:
        index = A_RHS_COMPLEX if isinstance(Y.dtype, types.Complex) else A_RHS

        def impl(field, ws, t, Y, p, out):
            call_model(field[0][index], t, Y, p, out)
        return impl
    if kind == _FORWARD:
        def impl(field, ws, t, Y, p, out):
            addresses, info, param_columns = field
            n = info[SI_N]
            mode = info[SI_JVP_MODE]
            call_model(addresses[A_RHS], t, Y[:n], p, out[:n])
            _load_parameters(ws, p)
            for c in range(info[SI_N_SENS]):
                _jvp(addresses, mode, ws, t, Y, 0.0, ws[5], 0, Y, n + c * n, p,
                     param_columns[c], out, n + c * n, CENTRAL_BASE_STEP)
        return impl
    if kind == _COMPLEX_DIRECTIONS:
        def impl(field, ws, t, Y, p, out):
            addresses, info, P = field
            n = info[SI_N]
            for b in range(info[SI_N_SENS]):
                offset = b * n
                call_model(addresses[A_RHS_COMPLEX], t, Y[offset : offset + n], P[b],
                           out[offset : offset + n])
        return impl
    return None


@overload(field_stage_coupling, inline="always")
def _field_stage_coupling(field, ws, t, Y, p, atol, U, stage, n_stages):
    kind = _kind(field)
    if kind == _PLAIN:
        def impl(field, ws, t, Y, p, atol, U, stage, n_stages):
            return 0
        return impl
    if kind == _FORWARD:
        def impl(field, ws, t, Y, p, atol, U, stage, n_stages):
            # The Rosenbrock stage equations differentiated with respect to theta_c give,
            # besides the terms the augmented right-hand side already has,
            # (d/dtheta_c J(t_n, y_n)) u_i = M_c u_i with M_c = d/dy (J S_c + f_p e_c) at
            # the step's start (symmetry of the second derivative; Sandu, Daescu &
            # Carmichael, "Direct and adjoint sensitivity analysis of chemical kinetic
            # systems with KPP: Part I", Atmos. Environ. 37, 2003). Without it the
            # sensitivities lose order (Rodas4 to 1). M_c u_i comes from central
            # differences of complex-step products: with fewer states than stages, M_c
            # itself once per step (2n products per column), else along each u_i (2 per
            # column and stage). Steps move each state by CENTRAL_BASE_STEP times its scale,
            # a state near zero counting at 1e-3 of the largest (a velocity released from
            # rest is not stepped by a rounding-size difference). Returns the products.
            addresses, info, param_columns = field
            n = info[SI_N]
            n_sens = info[SI_N_SENS]
            mode = info[SI_JVP_MODE]
            rw = ws[4]
            coupling = ws[5]
            outer = CENTRAL_BASE_STEP if mode == JVP_COMPLEX_STEP else NESTED_BASE_STEP
            floor = 0.0
            for j in range(n):
                floor = max(floor, abs(Y[j]))
            floor *= 1e-3
            evaluations = 0
            if n < n_stages:
                if stage == 0:
                    # rows 0..n-1: the scaled unit vectors the differences step along
                    for j in range(n):
                        scale = max(abs(Y[j]), atol[j], floor)
                        coupling[j, j] = scale if scale > 0.0 else 1.0
                    _load_parameters(ws, p)
                    for c in range(n_sens):
                        offset = n + c * n
                        for j in range(n):
                            for side in range(2):
                                shift = outer if side == 0 else -outer
                                _jvp(addresses, mode, ws, t, Y, shift, coupling, j, Y, offset,
                                     p, param_columns[c], rw[5 + side], 0, NESTED_BASE_STEP)
                            step = 2.0 * outer * coupling[j, j]
                            for i in range(n):
                                coupling[offset + i, j] = (rw[5, i] - rw[6, i]) / step
                    evaluations = 2 * n * n_sens
                for c in range(n_sens):
                    offset = n + c * n
                    for i in range(n):
                        acc = 0.0
                        for j in range(n):
                            acc += coupling[offset + i, j] * U[stage, j]
                        U[stage, offset + i] += acc
            else:
                largest = 0.0
                for j in range(n):
                    scale = max(abs(Y[j]), atol[j], floor)
                    if scale > 0.0:
                        largest = max(largest, abs(U[stage, j]) / scale)
                if largest > 0.0:
                    delta = outer / largest
                    _load_parameters(ws, p)
                    for c in range(n_sens):
                        for side in range(2):  # one inlined product serves both points
                            shift = delta if side == 0 else -delta
                            _jvp(addresses, mode, ws, t, Y, shift, U, stage, Y, n + c * n, p,
                                 param_columns[c], rw[5 + side], 0, NESTED_BASE_STEP)
                        offset = n + c * n
                        for j in range(n):
                            U[stage, offset + j] += (rw[5, j] - rw[6, j]) / (2.0 * delta)
                    evaluations = 2 * n_sens
            return evaluations
        return impl
    return None


@overload(field_time_derivative, inline="always")
def _field_time_derivative(field, ws, t, Y, p, f_t, time_mode):
    kind = _kind(field)
    if kind == _PLAIN:
        def impl(field, ws, t, Y, p, f_t, time_mode):
            return 0
        return impl
    if kind == _FORWARD:
        def impl(field, ws, t, Y, p, f_t, time_mode):
            # d/dt (J S_c + f_p e_c) at fixed (y, S): central differences in t of the
            # column's Jacobian-vector product (zero for autonomous models)
            addresses, info, param_columns = field
            n = info[SI_N]
            n_sens = info[SI_N_SENS]
            evaluations = 0
            if time_mode == TIME_DERIVATIVE_ZERO:
                for j in range(n, n + n_sens * n):
                    f_t[j] = 0.0
            else:
                mode = info[SI_JVP_MODE]
                rw = ws[4]
                if mode == JVP_COMPLEX_STEP:
                    step = CENTRAL_BASE_STEP * max(1.0, abs(t))
                    inner = CENTRAL_BASE_STEP
                else:
                    step = NESTED_BASE_STEP * max(1.0, abs(t))
                    inner = NESTED_BASE_STEP
                _load_parameters(ws, p)
                for c in range(n_sens):
                    for side in range(2):
                        shift = step if side == 0 else -step
                        _jvp(addresses, mode, ws, t + shift, Y, 0.0, ws[5], 0, Y, n + c * n,
                             p, param_columns[c], rw[5 + side], 0, inner)
                    offset = n + c * n
                    for j in range(n):
                        f_t[offset + j] = (rw[5, j] - rw[6, j]) / (2.0 * step)
                evaluations = 2 * n_sens
            return evaluations
        return impl
    return None


# -- the adjoint fields (kernels/adjoint.py, paramest/adjoint.py) --------------------------

# Layout of an adjoint field's ``info`` record.
AI_N = 0  # states of the model
AI_VJP_MODE = 1  # VJP_* (how J^T lambda is obtained)
AI_SIZE = 2

_NO_PARAMS = np.empty(0, dtype=np.int64)


def adjoint_info(n, vjp_mode):
    """The int64 ``info`` record of :func:`adjoint_field` / :func:`backsolve_field`."""
    info = np.empty(AI_SIZE, dtype=np.int64)
    info[AI_N] = n
    info[AI_VJP_MODE] = vjp_mode
    return info


def adjoint_field(addresses, info, step_t, step_h, step_y, step_k, dense):
    """``Y = lambda``, ``Y' = -J(t, y(t))^T lambda``: the continuous adjoint, integrated
    backwards, with ``y(t)`` interpolated from a forward solve's dense store (``step_t,
    step_h, step_y, step_k``: its accepted steps; ``dense[i, q]``: the coefficient of
    ``theta**(q+1)`` in the weight of stored slope ``i``, so that ``y(t_d + theta h_d) =
    y_d + h_d sum_i w_i(theta) step_k[d, i]`` for explicit and Rosenbrock methods alike).
    A Rosenbrock stepper gets its Jacobian ``-J^T`` from :func:`field_jacobian`."""
    return (addresses, info, step_t, step_h, step_y, step_k,
            np.ascontiguousarray(dense, dtype=np.float64))


def backsolve_field(addresses, info):
    """``Y = [y, lambda]``, ``Y' = [f(t, y), -J(t, y)^T lambda]``: the state re-solved
    backwards together with its adjoint (explicit steppers only)."""
    return (addresses, info)


def _adjoint_kind(field):
    if not isinstance(field, types.BaseTuple):
        return None
    if len(field.types) == 2:
        return _BACKSOLVE
    if len(field.types) == 7:
        return _ADJOINT
    return None


_BACKSOLVE = 4
_ADJOINT = 5


@njit(cache=True, error_model="numpy", nogil=True)
def _outlined_vjp(addresses, mode, t, y, p, u, param_idx, out_y, out_p, yc, pc, fc, yr, pr,
                  f_plus, f_minus):
    """:func:`model_vjp` as a call: inlined into a stepper through the field overloads,
    its branches trip Numba's IR inliner (variables of one branch "not in scope"); the
    call costs about 70 ns against a product of n complex evaluations."""
    model_vjp(addresses, mode, t, y, p, u, param_idx, out_y, out_p, yc, pc, fc, yr, pr,
              f_plus, f_minus)


@njit(cache=True, error_model="numpy", nogil=True)
def interpolate_store(step_t, step_h, step_y, step_k, dense, t, out):
    """``out = y(t)`` from a dense store (see :func:`adjoint_field`); a time outside the
    stored steps uses the nearest step's polynomial. A call, not inlined: inlined through
    the field overloads, its search loop trips Numba's IR inliner as :func:`_outlined_vjp`
    would."""
    n_steps = step_t.shape[0]
    direction = 1.0 if step_h[0] > 0.0 else -1.0
    lo = 0
    hi = n_steps - 1
    while lo < hi:  # the last step starting at or before t
        mid = (lo + hi + 1) // 2
        if direction * (step_t[mid] - t) <= 0.0:
            lo = mid
        else:
            hi = mid - 1
    h = step_h[lo]
    theta = (t - step_t[lo]) / h
    n = out.shape[0]
    for m in range(n):
        out[m] = step_y[lo, m]
    for i in range(dense.shape[0]):
        w = 0.0
        for q in range(dense.shape[1] - 1, -1, -1):
            w = (w + dense[i, q]) * theta
        w *= h
        if w != 0.0:
            for m in range(n):
                out[m] += w * step_k[lo, i, m]


def field_jacobian(field, ws, t, Y, p, jac_t):
    """Rosenbrock steps: fill ``jac_t[j, i] = dY'_i/dY_j`` when the field provides its own
    Jacobian (the adjoint field) and return True; False leaves it to the stepper."""


@overload(field_jacobian, inline="always")
def _field_jacobian(field, ws, t, Y, p, jac_t):
    if _kind(field) is not None or _adjoint_kind(field) == _BACKSOLVE:
        return lambda field, ws, t, Y, p, jac_t: False
    if _adjoint_kind(field) == _ADJOINT:
        def impl(field, ws, t, Y, p, jac_t):
            # d(-J^T lambda)_i / d lambda_j = -J[j, i]: jac_t is -J itself, column by column
            addresses, info, step_t, step_h, step_y, step_k, dense = field
            n = info[AI_N]
            yc, pc, fc = ws[0], ws[1], ws[2]
            point = ws[7]
            interpolate_store(step_t, step_h, step_y, step_k, dense, t, point)
            if info[AI_VJP_MODE] == VJP_CENTRAL:
                f_plus, f_minus = ws[5], ws[6]
                floor = 0.0
                for m in range(n):
                    floor = max(floor, abs(point[m]))
                floor *= 1e-3
                for col in range(n):
                    scale = max(abs(point[col]), floor)
                    step = CENTRAL_BASE_STEP * (scale if scale > 0.0 else 1.0)
                    keep = point[col]
                    point[col] = keep + step
                    call_model(addresses[A_RHS], t, point, p, f_plus)
                    point[col] = keep - step
                    call_model(addresses[A_RHS], t, point, p, f_minus)
                    point[col] = keep
                    for m in range(n):
                        jac_t[m, col] = -(f_plus[m] - f_minus[m]) / (2.0 * step)
            else:
                for m in range(n):
                    yc[m] = point[m]
                for q in range(p.shape[0]):
                    pc[q] = p[q]
                for col in range(n):
                    yc[col] = complex(point[col], COMPLEX_STEP)
                    call_model(addresses[A_RHS_COMPLEX], t, yc, pc, fc)
                    yc[col] = point[col]
                    for m in range(n):
                        jac_t[m, col] = -fc[m].imag * INVERSE_COMPLEX_STEP
            return True
        return impl
    return None


@overload(field_workspace, inline="always")
def _adjoint_field_workspace(field, Y, p):
    if _adjoint_kind(field) is None:
        return None

    def impl(field, Y, p):
        n = field[1][AI_N]
        n_p = p.shape[0]
        # the products' work arrays (vjp_workspace), the interpolated state, the (empty)
        # parameter columns, their output, two right-hand sides for differences in t
        return vjp_workspace(n, n_p) + (np.empty(n), np.empty(0, dtype=np.int64),
                                         np.empty(1), np.empty(Y.shape[0]),
                                         np.empty(Y.shape[0]))
    return impl


@overload(field_sizes, inline="always")
def _adjoint_field_sizes(field, Y):
    if _adjoint_kind(field) is None:
        return None
    return lambda field, Y: (Y.shape[0], Y.shape[0])


@overload(field_rhs, inline="always")
def _adjoint_field_rhs(field, ws, t, Y, p, out):
    kind = _adjoint_kind(field)
    if kind == _ADJOINT:
        def impl(field, ws, t, Y, p, out):
            addresses, info, step_t, step_h, step_y, step_k, dense = field
            n = info[AI_N]
            point = ws[7]
            interpolate_store(step_t, step_h, step_y, step_k, dense, t, point)
            _outlined_vjp(addresses, info[AI_VJP_MODE], t, point, p, Y, ws[8], out, ws[9],
                          ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6])
            for m in range(n):
                out[m] = -out[m]
        return impl
    if kind == _BACKSOLVE:
        def impl(field, ws, t, Y, p, out):
            addresses, info = field
            n = info[AI_N]
            call_model(addresses[A_RHS], t, Y[:n], p, out[:n])
            _outlined_vjp(addresses, info[AI_VJP_MODE], t, Y[:n], p, Y[n:], ws[8], out[n:],
                          ws[9], ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6])
            for m in range(n, 2 * n):
                out[m] = -out[m]
        return impl
    return None


@overload(field_stage_coupling, inline="always")
def _adjoint_field_stage_coupling(field, ws, t, Y, p, atol, U, stage, n_stages):
    if _adjoint_kind(field) is None:
        return None
    return lambda field, ws, t, Y, p, atol, U, stage, n_stages: 0


@overload(field_time_derivative, inline="always")
def _adjoint_field_time_derivative(field, ws, t, Y, p, f_t, time_mode):
    if _adjoint_kind(field) is None:
        return None

    def impl(field, ws, t, Y, p, f_t, time_mode):
        # the adjoint field depends on t through y(t) even for an autonomous model: central
        # differences of the field in t at fixed lambda
        step = CENTRAL_BASE_STEP * max(1.0, abs(t))
        plus, minus = ws[10], ws[11]
        field_rhs(field, ws, t + step, Y, p, plus)
        field_rhs(field, ws, t - step, Y, p, minus)
        for m in range(Y.shape[0]):
            f_t[m] = (plus[m] - minus[m]) / (2.0 * step)
        return 2
    return impl
