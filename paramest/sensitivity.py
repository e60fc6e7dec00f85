"""Sensitivities of a solution with respect to parameters and initial states.

Choose a method with an option object and pass it to :func:`paramest.solve`
(``sensitivity=``) or :func:`vjp`. Columns are chosen with ``sens_params`` (names or indices
of parameters; default all) and ``sens_y0`` (names or indices of initial states; default
none); ``Solution.sens[i, c, j]`` is ``d y_i(t_j) / d theta_c``.

===================== ============================ ================================ =========
method                when to use it               cost (k columns, n states)        methods
===================== ============================ ================================ =========
``Forward()``         the default: exact           one real + k complex model        all
                      derivatives of the solution   evaluations per stage (explicit);
                      for up to ~100 columns        Rosenbrock: also 2k per stage for
                                                    the tangent-linear coupling
``ComplexStep()``     the exact derivative of the  k complex solves in one kernel    explicit
                      *discrete* solution (the     call, sharing the real solve's
                      numbers the solver returns)  steps
``FiniteDifferences`` a reference for tests only   2k full solves                    all
``DiscreteAdjoint()`` gradients (:func:`vjp`) of    one solve + a reverse pass: per   explicit
                      the discrete solution, cost   stage a vector-Jacobian product
                      nearly independent of k       (n + k complex evaluations)
===================== ============================ ================================ =========
"""

import numbers
import operator

import numpy as np

from paramest.errors import SolveError
from paramest.kernels.derivatives import COMPLEX_STEP
from paramest.kernels.fields import (
    JVP_CENTRAL,
    JVP_COMPLEX_STEP,
    complex_directions_field,
    forward_field,
    sensitivity_info,
)

__all__ = [
    "ComplexStep", "DiscreteAdjoint", "FiniteDifferences", "Forward", "Gradient",
    "SensitivityMethod", "vjp",
]

#: complex step of the ``ComplexStep`` solve (the kernels' own)
_COMPLEX_STEP = COMPLEX_STEP


class SensitivityMethod:
    """Base class of the sensitivity options (``Forward``, ``ComplexStep``,
    ``FiniteDifferences``)."""

    #: whether the method works with the Rosenbrock (stiff) methods
    stiff = True

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    _fields = ()


class Forward(SensitivityMethod):
    """Forward sensitivities: the sensitivity equations solved with the states.

    ``S_c' = J S_c + df/dtheta_c`` is integrated alongside ``y' = f``, each column from one
    complex-step evaluation of the model, ``Im f(t, y + i h S_c, p + i h e_c) / h``, exact to
    rounding (central differences, two evaluations, for models that are not complex-step
    safe; ``ODEProblem`` warns about those). With a Rosenbrock method the step is the
    method's own tangent-linear model (Sandu, Daescu & Carmichael 2003): one LU
    factorisation per step serves the states and every column, and the stage equations get
    the second-derivative term ``(d J / d theta_c) u_i``, from central differences of
    complex-step products (relative error about 1e-10). So the sensitivities are the
    derivatives of the discrete solution up to that error, and converge with the method's
    order.

    Parameters
    ----------
    error_control : bool, default True
        Put the sensitivities into the step-size control, with the states' ``rtol`` and
        ``atol`` (as CVODES and AMICI do by default): they are then accurate to the
        tolerance, at the price of somewhat smaller steps. With False the steps are those
        of the plain solve and the sensitivities are as accurate as those steps make them.

    Notes
    -----
    Cost: about ``1 + k`` model evaluations (``k`` of them complex, each 2-4 times a real
    one) per stage for ``k`` columns, plus for Rosenbrock methods ``2k`` complex evaluations
    per stage and ``k`` extra triangular solves. Memory: the state grows from ``n`` to
    ``n (1 + k)`` numbers, dense output likewise. For many parameters and few outputs the
    adjoints (:class:`DiscreteAdjoint`, :class:`Adjoint`) are cheaper.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 1.0), [0.5])
    >>> sol = pe.solve(problem, t_eval=[1.0], sensitivity=pe.Forward(), rtol=1e-10)
    >>> round(float(sol.sens[0, 0, -1]), 8)  # d/dk of 2 exp(-k t) at t = 1
    -1.21306132
    """

    _fields = ("error_control",)

    def __init__(self, error_control=True):
        if not isinstance(error_control, (bool, np.bool_)):
            raise TypeError(
                f"`error_control` must be True or False, got {type(error_control).__name__}"
            )
        self.error_control = bool(error_control)


class ComplexStep(SensitivityMethod):
    """The whole solve differentiated by the complex step.

    Each column is a solve with complex states and parameters ``p + i h e_c`` (``h =
    2**-100``), all columns in one kernel call; step sizes are chosen from the real parts, so
    every column takes exactly the real solve's steps, and ``Im(y) / h`` is the exact
    derivative of the numbers the solver returns (the discrete solution), to rounding.

    Use it to check other sensitivities, or where the derivative of the computed solution
    itself is wanted. Explicit methods only (a Rosenbrock method would need the Jacobian of a
    complex state): use ``Forward()`` for stiff problems. The model must be complex-step
    safe.

    Notes
    -----
    Cost: ``k`` complex solves (each about 2-4 times a real one) sharing one step sequence.
    Memory: ``k n`` complex numbers of state.

    Examples
    --------
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 1.0), [0.5])
    >>> sol = pe.solve(problem, "Tsit5", t_eval=[1.0], sensitivity=pe.ComplexStep(),
    ...                rtol=1e-10)
    >>> round(float(sol.sens[0, 0, -1]), 8)
    -1.21306132
    """

    stiff = False


class FiniteDifferences(SensitivityMethod):
    """Central differences of whole solves: a reference for tests, not for fitting.

    Each column costs two solves at ``theta_c +- delta``, ``delta = relative_step *
    max(|theta_c|, 1)`` (a parameter or initial state of zero gets ``relative_step``). The
    result carries truncation error ``O(delta^2)`` and the solver's error divided by
    ``delta``: with tolerances far below ``delta^2`` it approximates the derivative of the
    exact solution.

    Parameters
    ----------
    relative_step : float, default 1e-4
        Relative perturbation of each parameter or initial state.

    Examples
    --------
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 1.0), [0.5])
    >>> sol = pe.solve(problem, t_eval=[1.0], sensitivity=pe.FiniteDifferences(),
    ...                rtol=1e-12, atol=1e-14)
    >>> round(float(sol.sens[0, 0, -1]), 6)
    -1.213061
    """

    _fields = ("relative_step",)

    def __init__(self, relative_step=1e-4):
        if isinstance(relative_step, bool) or not isinstance(relative_step, numbers.Real):
            raise TypeError(
                f"`relative_step` must be a real number, got {type(relative_step).__name__}"
            )
        if not 0.0 < float(relative_step) < 1.0:
            raise ValueError(f"`relative_step` must be in (0, 1), got {relative_step}")
        self.relative_step = float(relative_step)


class DiscreteAdjoint(SensitivityMethod):
    """The discrete adjoint: the exact gradient of a loss of the computed solution, by one
    reverse pass over the accepted steps.

    For :func:`vjp` (gradients of ``sum(cotangent * y(t_eval))``), not for ``solve``: an
    adjoint gives a gradient, not the sensitivity matrix. The forward solve records every
    accepted step (its dense-output store); the reverse pass applies the transpose of each
    Runge–Kutta step, with the step sizes held fixed, from the last step to the first. The
    result is the derivative of the numbers the solver returns, the same as
    :class:`ComplexStep` gives, to rounding.

    When to use it: gradients with respect to many parameters, also on stiff problems
    (with a Rosenbrock method: on Robertson with 6 columns it costs 0.4 times Forward). Its
    cost is one solve plus, per stage, one vector-Jacobian product of the model (three for a
    Rosenbrock stage): one call of the problem's own
    ``vjp`` when it has one (``ODEProblem(..., vjp=...)``; the cost then hardly grows with
    the number of parameters), else ``n + k`` complex evaluations from complex-step Jacobian
    columns, so that on small models with few parameters :class:`Forward` (``k`` complex
    evaluations per stage, no reverse pass) costs about the same.

    Memory: every accepted step with all its stages, ``(s + 1) n`` numbers per step (Tsit5:
    8 n). With ``checkpoints=m`` only ``m`` steps are held at a time: the forward solve
    keeps a snapshot of the integrator every ``m`` steps, and the reverse pass replays each
    segment from its snapshot (exactly the same steps) before running back over it. That
    bounds the memory by ``m`` steps plus a snapshot (``(s + 1) n + 20`` numbers) per
    segment, for about one extra forward solve; the gradient is the same to rounding.

    Methods: every method. For the explicit Runge–Kutta methods the result equals
    :class:`ComplexStep` to rounding. For the Rosenbrock methods the reverse pass is the
    transpose of the method's discrete tangent-linear model (the one ``Forward`` integrates):
    per stage a transposed solve with the step's iteration matrix ``I/(h gamma) - J``
    (recomputed and factorised once per step), the stage's vector-Jacobian product, and the
    second-derivative term that the dependence of ``J`` on ``(y, p)`` brings, from central
    differences of two products (about 1e-10 relative error); it equals
    ``Forward(error_control=False)`` to about 1e-12. ``method="auto"`` is followed through
    its switches (without checkpoints). Models that are not complex-step safe get
    central-difference Jacobian columns (about 1e-8 relative error).

    Parameters
    ----------
    checkpoints : int, optional
        Steps between checkpoints (the most steps held in memory at once); None keeps every
        step. About ``sqrt(n_steps)`` minimises the memory.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 1.0), [0.5])
    >>> g = pe.vjp(problem, [1.0], np.ones((1, 1)), sensitivity=pe.DiscreteAdjoint(),
    ...            method="Tsit5", rtol=1e-10)
    >>> round(float(g[0]), 8)   # d y(1) / dp = -t y0 exp(-p t)
    -1.21306132
    """

    stiff = True
    _fields = ("checkpoints",)

    def __init__(self, checkpoints=None):
        self.checkpoints = _checkpoint_count(checkpoints)


#: The sensitivity methods that give gradients by a reverse pass (no sensitivity matrix):
#: fit and Objective use them for gradients only, forward sensitivities for Jacobians.

def _adjoint_tolerance(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be None or a positive number, got "
                        f"{type(value).__name__}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return float(value)


def _checkpoint_count(checkpoints):
    if checkpoints is None:
        return None
    if isinstance(checkpoints, bool) or not isinstance(checkpoints, numbers.Integral):
        raise TypeError(
            "`checkpoints` must be None or a whole number of steps, got "
            f"{type(checkpoints).__name__}"
        )
    if checkpoints < 1:
        raise ValueError(f"`checkpoints` must be at least 1, got {checkpoints}")
    return int(checkpoints)


class Adjoint(SensitivityMethod):
    """The continuous adjoint: ``lambda' = -J^T lambda`` integrated backwards from the end,
    the forward solution interpolated from its dense output, the parameter gradient
    ``int f_p^T lambda dt`` accumulated by quadrature on the way.

    For :func:`vjp` (gradients of ``sum(cotangent * y(t_eval))``). The backward pass
    integrates the ``n`` adjoint states with the forward solve's method family (an explicit
    method: the same tableau; a Rosenbrock method: the same Rosenbrock method, whose
    Jacobian ``-J^T`` comes from the model's complex-step Jacobian at the interpolated
    state), stopping at each output time, where ``lambda`` jumps by that output's cotangent.
    The gradient is accumulated step by step with a 4-point Gauss–Legendre rule, so the
    adjoint solution is never stored (a chunk of 256 backward steps at a time). With
    ``method="auto"`` each stretch of the forward solve is integrated back with the method
    that took it.

    When to use it: gradients with respect to many parameters on stiff problems (with a
    Rosenbrock method), or when the forward and backward tolerances should be set apart.
    Unlike :class:`DiscreteAdjoint` the result is the derivative of the exact solution up to
    the tolerances of both passes, not of the computed numbers: it agrees with
    :class:`Forward` to about the tolerance, not to rounding, which matters inside an
    optimiser that expects exact gradients of what it evaluates.

    Cost: one forward solve that keeps its dense output, plus a backward solve whose steps
    cost one vector–Jacobian product per stage (``n`` complex evaluations, or one call of
    the problem's ``vjp``) and four parameter products (``k`` complex evaluations each) per
    step for the quadrature. Memory: the forward dense output, ``(s + 1) n`` numbers per
    step; with ``checkpoints=m`` only ``m`` forward steps at a time (the segments are
    replayed from exact snapshots, as CVODES does), about one extra forward solve.

    Stability: the backward integration of ``lambda`` is as stable as the forward problem
    (its Jacobian is ``-J^T``); use a Rosenbrock method for stiff problems.

    Parameters
    ----------
    checkpoints : int, optional
        Forward steps held at a time; None keeps all of them.
    rtol, atol : float, optional
        Tolerances of the backward pass; default those of the forward solve.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 1.0), [0.5])
    >>> g = pe.vjp(problem, [1.0], np.ones((1, 1)), sensitivity=pe.Adjoint(),
    ...            method="Tsit5", rtol=1e-10, atol=1e-12)
    >>> round(float(g[0]), 8)   # d y(1) / dp = -t y0 exp(-p t)
    -1.21306132
    """

    stiff = True
    _fields = ("checkpoints", "rtol", "atol")

    def __init__(self, checkpoints=None, rtol=None, atol=None):
        self.checkpoints = _checkpoint_count(checkpoints)
        self.rtol = _adjoint_tolerance(rtol, "rtol")
        self.atol = _adjoint_tolerance(atol, "atol")


class BacksolveAdjoint(SensitivityMethod):
    """The continuous adjoint with the state re-solved backwards alongside it: ``[y,
    lambda]`` integrated from the end, ``y`` starting from the forward solve's final state.

    For :func:`vjp`. Memory: nothing but the final state and the outputs (O(1) in the
    number of steps); cost: one forward solve and a backward solve of ``2n`` states (one
    model evaluation and one vector–Jacobian product per stage).

    **Unstable on stiff and on chaotic problems**: integrating a stiff model backwards in
    time turns its fast decaying modes into fast growing ones, so the re-solved state leaves
    the forward trajectory (or overflows) and the gradient is wrong; a chaotic model
    amplifies the tiny difference between the two trajectories the same way. Use it only
    for non-stiff, well-conditioned problems where memory matters, and prefer
    :class:`Adjoint` with checkpoints otherwise. Explicit methods only.

    Parameters
    ----------
    rtol, atol : float, optional
        Tolerances of the backward pass; default those of the forward solve.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 1.0), [0.5])
    >>> g = pe.vjp(problem, [1.0], np.ones((1, 1)), sensitivity=pe.BacksolveAdjoint(),
    ...            method="Tsit5", rtol=1e-10, atol=1e-12)
    >>> round(float(g[0]), 7)
    -1.2130613
    """

    stiff = False
    _fields = ("rtol", "atol")

    def __init__(self, rtol=None, atol=None):
        self.rtol = _adjoint_tolerance(rtol, "rtol")
        self.atol = _adjoint_tolerance(atol, "atol")


#: the sensitivity methods that give gradients by a reverse pass (not sensitivity matrices)
ADJOINTS = (DiscreteAdjoint, Adjoint, BacksolveAdjoint)


def _indices(selection, names, size, arg, what, labels_arg, default_all):
    """Column indices from ``None`` (all or none), an index, a name, or a sequence of them."""
    if selection is None:
        return list(range(size)) if default_all else []
    if isinstance(selection, (str, numbers.Integral)) and not isinstance(selection, bool):
        selection = [selection]
    try:
        items = list(selection)
    except TypeError:
        raise TypeError(
            f"`{arg}` must be None, an index or name of a {what}, or a list of them; got "
            f"{type(selection).__name__}"
        ) from None
    indices = []
    for item in items:
        if isinstance(item, str):
            if names is None:
                raise ValueError(
                    f"`{arg}` names {what}s ({item!r}) but the problem has no "
                    f"`{labels_arg}`; pass indices or give the problem `{labels_arg}`"
                )
            if item not in names:
                raise ValueError(
                    f"`{arg}`: unknown {what} {item!r}; the problem's {labels_arg} are "
                    f"{list(names)}"
                )
            indices.append(list(names).index(item))
            continue
        if isinstance(item, bool):
            raise TypeError(f"`{arg}` entries must be indices or names, got a bool")
        try:
            index = operator.index(item)
        except TypeError:
            raise TypeError(
                f"`{arg}` entries must be indices or names, got {type(item).__name__}"
            ) from None
        if not -size <= index < size:
            raise ValueError(
                f"`{arg}`: index {index} is out of range for {size} {what}s"
            )
        indices.append(index % size)
    if len(set(indices)) != len(indices):
        raise ValueError(f"`{arg}` names a {what} twice: {items}")
    return indices


class Columns:
    """The sensitivity columns of a solve: chosen parameters, then chosen initial states."""

    __slots__ = ("params", "y0", "labels", "param_columns")

    def __init__(self, problem, sens_params, sens_y0):
        model = problem.model
        self.params = _indices(
            sens_params, problem.param_names, model.n_params, "sens_params", "parameter",
            "param_names", default_all=True,
        )
        self.y0 = _indices(
            sens_y0, problem.state_names, model.n_states, "sens_y0", "state",
            "state_names", default_all=False,
        )
        param_label = (
            (lambda i: problem.param_names[i]) if problem.param_names is not None
            else (lambda i: f"p[{i}]")
        )
        state_label = (
            (lambda i: f"y0[{problem.state_names[i]}]") if problem.state_names is not None
            else (lambda i: f"y0[{i}]")
        )
        self.labels = [param_label(i) for i in self.params] + [
            state_label(i) for i in self.y0
        ]
        self.param_columns = np.array(self.params + [-1] * len(self.y0), dtype=np.int64)

    def __len__(self):
        return len(self.labels)


def check_method(sensitivity, entry_kind, method_name):
    """Refuse an unsupported method/sensitivity combination before any computation."""
    if not isinstance(sensitivity, SensitivityMethod):
        raise TypeError(
            "`sensitivity` must be None or a sensitivity method (paramest.Forward(), "
            f"paramest.ComplexStep(), paramest.FiniteDifferences()); got {sensitivity!r:.60}"
        )
    if isinstance(sensitivity, ADJOINTS):
        name = type(sensitivity).__name__
        raise ValueError(
            f"sensitivity={name}() gives gradients, not the sensitivity matrix: use "
            f"paramest.vjp(problem, t_eval, cotangent, sensitivity=paramest.{name}())"
            ", or sensitivity=paramest.Forward() in solve"
        )
    if not sensitivity.stiff and entry_kind != "explicit":
        raise ValueError(
            f"sensitivity=ComplexStep() needs an explicit method (Tsit5, DP5, ...), not "
            f"method='{method_name}': a Rosenbrock method would need the Jacobian of a "
            "complex state. Use sensitivity=paramest.Forward() for stiff problems."
        )


def initial_augmented_state(y0, columns):
    """``[y0, S_1(0), ..., S_k(0)]``: zero columns for parameters, unit vectors for initial
    states."""
    n = y0.shape[0]
    k = len(columns)
    state = np.zeros(n * (1 + k))
    state[:n] = y0
    for c, i in enumerate(columns.y0):
        state[n * (1 + len(columns.params) + c) + i] = 1.0
    return state


def forward_fields(model, addresses, columns, error_control):
    """The forward-sensitivity field over the model's address record ``addresses``."""
    n = model.n_states
    k = len(columns)
    mode = JVP_COMPLEX_STEP if model.complex_step_safe else JVP_CENTRAL
    info = sensitivity_info(n, k, n * (1 + k) if error_control else n, mode)
    return forward_field(addresses, info, columns.param_columns)


def complex_directions(model, addresses, columns, y0, p):
    """The ``ComplexStep`` field and its complex starting state (one block per column)."""
    if not model.complex_step_safe:
        raise ValueError(
            "sensitivity=ComplexStep() needs a complex-step safe model; this one is not "
            f"({model.complex_step_problem}). Use sensitivity=paramest.Forward(), which "
            "falls back to finite differences for such models."
        )
    n = y0.shape[0]
    k = len(columns)
    P = np.empty((max(k, 1), p.shape[0]), dtype=np.complex128)
    P[:] = p
    state = np.empty(n * max(k, 1), dtype=np.complex128)
    for c in range(max(k, 1)):
        state[c * n : (c + 1) * n] = y0
    for c, i in enumerate(columns.params):
        P[c, i] += 1j * _COMPLEX_STEP
    for c, i in enumerate(columns.y0):
        state[(len(columns.params) + c) * n + i] += 1j * _COMPLEX_STEP
    info = sensitivity_info(n, max(k, 1), n)
    return complex_directions_field(addresses, info, P), state


def split_complex(values, n, k):
    """States and sensitivities from a ``ComplexStep`` solve's outputs ``(T, n * k)``."""
    T = values.shape[0]
    y = np.ascontiguousarray(values[:, :n].real.T)
    sens = values.imag.reshape(T, max(k, 1), n)[:, :k].transpose(2, 1, 0) / _COMPLEX_STEP
    return y, np.ascontiguousarray(sens)


def split_forward(values, n, k):
    """States and sensitivities from a forward-sensitivity solve's outputs ``(T, n(1+k))``."""
    T = values.shape[0]
    y = values[:, :n].T
    sens = np.ascontiguousarray(values[:, n:].reshape(T, k, n).transpose(2, 1, 0))
    return y, sens


def finite_difference_step(value, relative_step):
    return relative_step * max(abs(value), 1.0)


class Gradient(np.ndarray):
    """The result of :func:`vjp`: an ordinary float64 array that also says how it was
    computed (``sensitivity``, the :class:`SensitivityMethod` used; with
    ``sensitivity="auto"`` the one chosen)."""

    def __new__(cls, values, sensitivity):
        array = np.asarray(values, dtype=np.float64).view(cls)
        array.sensitivity = sensitivity
        return array

    def __array_finalize__(self, obj):
        self.sensitivity = getattr(obj, "sensitivity", None)


#: ``sensitivity="auto"`` in :func:`vjp`: the discrete adjoint from this many gradient
#: columns k on, and only when k >= ADJOINT_STATE_FRACTION * n as well, with complex-step
#: vector-Jacobian products (n + k complex evaluations per stage). Measured with Tsit5 on
#: the linear cascade (benchmarks/gradients.py and a sweep of k at n = 2 ... 50): Forward()
#: over the adjoint's time crosses 1 at k = 6-7 for n = 10, k = 10 for n = 20, k = 25 for
#: n = 50, and stays below 1 up to k = n for n <= 5.
ADJOINT_MIN_COLUMNS = 6
ADJOINT_STATE_FRACTION = 0.5
#: ... and from this many columns with the problem's own ``vjp`` (one call per stage):
#: measured crossover k = 2-3.
ADJOINT_MIN_COLUMNS_USER_VJP = 3
#: ... and with a Rosenbrock method, whose forward sensitivities pay the second-derivative
#: coupling (two more products per column and stage): on Robertson (n = 3, Rodas5P, rtol
#: 1e-8) the discrete adjoint costs 1.9 ms against Forward's 1.8 ms at k = 3 and 4.8 ms
#: at k = 6 (benchmarks/gradients.py)
ADJOINT_MIN_COLUMNS_STIFF = 4


#: In a fit the forward sensitivities are solved without error control on the columns
#: (fewer steps than vjp's Forward()), which moves the crossover: measured on
#: Objective.value_and_grad with Tsit5 at rtol 1e-8, Forward over the adjoint's time was
#: 0.68 (n = 2, k = 4), 0.78 (n = 2, k = 12), 0.99 (n = k = 12), 1.23 (n = k = 20) and
#: 1.58 (n = k = 30); the adjoint therefore from k >= max(16, n) there.
ADJOINT_MIN_COLUMNS_FIT = 16


def _auto_sensitivity(problem, k, entry_kind, fit=False):
    """The sensitivity ``"auto"`` takes for ``k`` gradient columns: the discrete adjoint
    from the crossovers measured above, :class:`Forward` below them. ``fit=True`` compares
    with Forward without error control on the columns (what a fit's Jacobians use)."""
    n = problem.n_states
    if problem.model.vjp_address:
        adjoint = k >= ADJOINT_MIN_COLUMNS_USER_VJP
    elif fit:
        adjoint = k >= max(ADJOINT_MIN_COLUMNS_FIT, n)
    elif entry_kind == "rosenbrock":
        adjoint = k >= max(ADJOINT_MIN_COLUMNS_STIFF, ADJOINT_STATE_FRACTION * n)
    else:
        adjoint = k >= max(ADJOINT_MIN_COLUMNS, ADJOINT_STATE_FRACTION * n)
    return DiscreteAdjoint() if adjoint else Forward()


def vjp(problem, t_eval, cotangent, *, sensitivity="auto", sens_params=None, sens_y0=None,
        method="auto", rtol=1e-6, atol=1e-8, p=None, y0=None, **solve_options):
    """The gradient of ``sum(cotangent * y(t_eval))`` with respect to the chosen parameters
    and initial states: any loss written in NumPy, differentiated through the solve.

    For a loss ``L(y)`` of the solution at ``t_eval``, pass ``cotangent = dL/dy`` (for the
    squared error ``sum((y - data)**2)`` that is ``2 * (y - data)``); the result is ``dL/dp``
    over the columns ``sens_params`` then ``sens_y0`` (as in :func:`paramest.solve`).

    Parameters
    ----------
    problem : ODEProblem
    t_eval : array_like, shape (n_times,)
        Output times, as for :func:`paramest.solve`.
    cotangent : array_like, shape (n_states, n_times)
        The weight of each output.
    sensitivity : "auto" or SensitivityMethod, default "auto"
        How to differentiate: :class:`Forward`, :class:`ComplexStep`,
        :class:`FiniteDifferences`, or an adjoint: :class:`DiscreteAdjoint` (a reverse pass
        over the steps), :class:`Adjoint` (the continuous adjoint, checkpointed) or
        :class:`BacksolveAdjoint`. ``"auto"`` takes the discrete adjoint where it was
        measured to be cheaper (k columns: explicit methods from k >= 6 and k >= n/2,
        Rosenbrock methods from k >= 4 and k >= n/2, any method from k >= 3 when the
        problem has its own ``vjp``) and :class:`Forward` otherwise, also when
        ``method="auto"`` switches to its stiff method (a solve carrying sensitivities
        switches earlier); ``result.sensitivity`` says which.
    sens_params, sens_y0 : optional
        The columns: parameters (default all) and initial states (default none), by index
        or name.
    method, rtol, atol, p, y0, **solve_options
        As for :func:`paramest.solve`.

    Returns
    -------
    Gradient, shape (n_columns,)
        A float64 array; its ``sensitivity`` attribute is the method used.

    Raises
    ------
    SolveError
        When the solve fails (its ``solution`` attribute holds the failed result): a
        gradient of a failed solve would be meaningless.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 1.0), [0.5])
    >>> t = np.linspace(0.0, 1.0, 5)
    >>> g = pe.vjp(problem, t, np.ones((1, 5)), rtol=1e-10, atol=1e-12)
    >>> g.shape
    (1,)
    """
    from paramest.solve import _method_entry, solve

    automatic = sensitivity is None or (isinstance(sensitivity, str) and sensitivity == "auto")
    if isinstance(sensitivity, str) and not automatic:
        raise ValueError(
            f"`sensitivity` must be 'auto' or a sensitivity method, got {sensitivity!r}"
        )
    if t_eval is None:
        raise ValueError("`t_eval` is required: the cotangent weighs the outputs at t_eval")
    n = problem.model.n_states
    n_times = np.size(t_eval)
    try:
        weights = np.asarray(cotangent, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`cotangent` must be an array of shape ({n}, {n_times}), got {cotangent!r:.60}"
        ) from None
    if weights.shape != (n, n_times):
        raise ValueError(
            f"`cotangent` must have shape (n_states, n_times) = ({n}, {n_times}), got "
            f"{weights.shape}"
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("`cotangent` must be finite")
    if automatic:
        columns = Columns(problem, sens_params, sens_y0)
        sensitivity = _auto_sensitivity(problem, len(columns), _method_entry(method).kind)
    if isinstance(sensitivity, ADJOINTS):
        from paramest.adjoint import SwitchedToStiff, discrete_adjoint_vjp

        columns = Columns(problem, sens_params, sens_y0)
        try:
            gradient = discrete_adjoint_vjp(problem, t_eval, weights, columns, method, rtol,
                                            atol, p, y0, sensitivity, solve_options,
                                            follow_switches=not automatic)
        except SwitchedToStiff:
            if not automatic:
                raise
            # "auto" switched to its stiff method: Forward() there (its own solve switches
            # earlier, see paramest.adjoint.adjoint_forward)
            sensitivity = Forward()
        else:
            return Gradient(gradient, sensitivity)
    sol = solve(
        problem, method, t_eval, rtol=rtol, atol=atol, p=p, y0=y0, sensitivity=sensitivity,
        sens_params=sens_params, sens_y0=sens_y0, **solve_options,
    )
    if not sol.success:
        raise SolveError(f"vjp: the solve failed: {sol.message}", sol)
    return Gradient(np.einsum("it,ikt->k", weights, sol.sens), sensitivity)
