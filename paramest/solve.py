"""``solve()``: validate the options once, run a compiled integrator, wrap the result."""

import math
import numbers
import operator
import sys
import warnings
from functools import partial

import numpy as np

from paramest import sensitivity as sens_methods
from paramest.errors import ComplexStepWarning, ModelError
from paramest.fingerprint import first_change
from paramest.kernels import status as st
from paramest.kernels.explicit import integrate, pack_tableau
from paramest.kernels.fields import (
    A_JAC,
    A_RHS,
    A_RHS_COMPLEX,
    A_RHS_COMPLEX_TIME,
    A_SIZE,
    plain_field,
)
from paramest.kernels.records import (
    float_options,
    float_state,
    int_options,
    int_options_fields,
    int_state,
)
from paramest.kernels.rosenbrock import (
    MAX_SINGULAR,
    integrate_rosenbrock,
    pack_rosenbrock_tableau,
)
from paramest.kernels.rosenbrock_tableaus import ROSENBROCK_TABLEAUS
from paramest.kernels.stepping import restart_after_switch
from paramest.kernels.tableaus import TABLEAUS
from paramest.kernels.validation import (
    TIMES_NOT_FINITE,
    TIMES_NOT_MONOTONE,
    TIMES_OK,
    TIMES_OUTSIDE,
    check_times,
)
from paramest.model import MODEL_EXCEPTIONS, describe_model_exception, record_model_exception
from paramest.problems import ODEProblem, as_vector
from paramest.solution import DenseOutput, Solution

__all__ = ["solve", "METHODS"]


class _Method:
    """A method as the driver needs it: its kernel and packed coefficients."""

    __slots__ = ("name", "kind", "tableau", "tab", "tab_info", "adaptive", "s_total")

    def __init__(self, name, kind, tableau):
        self.name = name
        self.kind = kind
        self.tableau = tableau
        if kind == "explicit":
            self.tab, self.tab_info = pack_tableau(tableau)
            self.adaptive = tableau.adaptive
            self.s_total = self.tab.shape[0]
        elif kind == "rosenbrock":
            self.tab, self.tab_info = pack_rosenbrock_tableau(tableau)
            self.adaptive = True
            self.s_total = self.tab.shape[0]
        else:  # "auto": a pair of methods, see _AUTO_PAIR
            self.tab = self.tab_info = None
            self.adaptive = True
            self.s_total = 0


#: ``method="auto"`` starts with the first and switches to the second when the problem
#: turns stiff (and back when it no longer is).
_AUTO_PAIR = ("Tsit5", "Rodas5P")

_METHOD_TABLE = {}
for _tableau in TABLEAUS.values():
    _METHOD_TABLE[_tableau.name] = _Method(_tableau.name, "explicit", _tableau)
for _tableau in ROSENBROCK_TABLEAUS.values():
    _METHOD_TABLE[_tableau.name] = _Method(_tableau.name, "rosenbrock", _tableau)
_METHOD_TABLE["auto"] = _Method("auto", "auto", None)
for _name in list(_METHOD_TABLE):
    _METHOD_TABLE[_name.lower()] = _METHOD_TABLE[_name]

#: The available methods: name -> tableau (explicit Runge–Kutta or Rosenbrock; order,
#: embedded order, dense-output order, ...). ``"auto"`` is not a tableau and not listed.
METHODS = {**TABLEAUS, **ROSENBROCK_TABLEAUS}

_EMPTY_1D = np.empty(0)
_EMPTY_2D = np.empty((0, 0))
_EMPTY_3D = np.empty((0, 0, 0))
_FIRST_CAPACITY = 128
_NO_SWITCHES = ()
_NO_LABELS = ()

_SUCCESS_MESSAGE = "The solver successfully reached the end of the integration interval."


def _method_entry(method):
    entry = _METHOD_TABLE.get(method) if isinstance(method, str) else None
    if entry is None and isinstance(method, str):
        entry = _METHOD_TABLE.get(method.lower())
    if entry is None:
        names = ", ".join(f"'{name}'" for name in ("auto", *METHODS))
        raise ValueError(f"`method` must be one of {names}; got {method!r}")
    return entry


def _positive_number(value, name, *, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__}")
    value = float(value)
    if not value > 0.0 or (math.isinf(value) and not allow_inf) or math.isnan(value):
        expected = "a positive number" + ("" if allow_inf else " (finite)")
        raise ValueError(f"`{name}` must be {expected}, got {value}")
    return value


def _tolerances(rtol, atol, n):
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
        raise TypeError(f"`rtol` must be a real number, got {type(rtol).__name__}")
    rtol = float(rtol)
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"`rtol` must be in (0, 1), got {rtol}")
    if isinstance(atol, numbers.Real) and not isinstance(atol, bool):
        value = float(atol)
        if not (value >= 0.0 and math.isfinite(value)):
            raise ValueError(f"`atol` must be a finite non-negative number, got {value}")
        atol_vector = np.full(n, value)
    else:
        try:
            atol_vector = np.array(atol, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(
                f"`atol` must be a number or a vector of {n} numbers, got {atol!r:.60}"
            ) from None
        if np.ndim(atol) != 1 or atol_vector.size != n:
            raise ValueError(
                f"`atol` must be a number or a vector of {n} numbers (one per state), "
                f"got shape {np.shape(atol)}"
            )
        if not np.all((atol_vector >= 0.0) & np.isfinite(atol_vector)):
            raise ValueError("`atol` entries must be finite and non-negative")
    return rtol, atol_vector


def _check_t_eval(t_eval, t0, t1):
    if (
        type(t_eval) is np.ndarray
        and t_eval.dtype == np.float64
        and t_eval.ndim == 1
        and t_eval.size > 0
        and t_eval.flags.c_contiguous
        and check_times(t_eval, t0, t1) == TIMES_OK
    ):
        return t_eval  # the common case, checked without building anything
    try:
        times = np.asarray(t_eval, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`t_eval` must be a 1-D array of times, got {t_eval!r:.60}") from None
    if times.ndim != 1:
        raise ValueError(f"`t_eval` must be 1-D, got shape {times.shape}")
    if times.size == 0:
        raise ValueError("`t_eval` must contain at least one time (or be None)")
    times = np.ascontiguousarray(times)
    code = check_times(times, t0, t1)
    if code == TIMES_NOT_FINITE:
        raise ValueError("`t_eval` must contain finite times")
    if code == TIMES_OUTSIDE:
        raise ValueError(
            f"`t_eval` must lie inside t_span = ({t0}, {t1}); got values in "
            f"[{times.min()}, {times.max()}]"
        )
    if code == TIMES_NOT_MONOTONE:
        order = "increasing for a forward" if t1 > t0 else "decreasing for a backward"
        raise ValueError(f"`t_eval` must be strictly {order} t_span")
    return times


def _message(code, t, h, t_end, max_steps, stiffness_detected, t_stiff, method_name,
             sensitivities=False):
    if code == st.SUCCESS:
        return _SUCCESS_MESSAGE
    stiff_hint = ""
    if stiffness_detected:
        stiff_hint = (
            f" The problem looks stiff (from t={t_stiff:.6g} the step size was limited by "
            "stability, not accuracy): explicit methods need very many tiny steps on it; "
            "use method='Rodas5P' (or 'auto', which switches by itself)."
        )
    if code == st.MAX_STEPS:
        return (
            f"Reached max_steps={max_steps} at t={t:.6g} before t_end={t_end:.6g}. "
            "Increase `max_steps`, loosen `rtol`/`atol`, or check the model." + stiff_hint
        )
    if code == st.STEP_TOO_SMALL:
        return (
            f"The step size became too small (|h|={abs(h):.3g}) at t={t:.6g}: the solution "
            "may blow up there (a finite-time singularity), or the model is discontinuous "
            "or extremely stiff near that time. Check the model and parameters near "
            "that t." + stiff_hint
        )
    if code == st.NON_FINITE:
        what = "state, its derivative or its sensitivities" if sensitivities else (
            "state or its derivative"
        )
        sensitivity_hint = (
            " A sensitivity alone becomes non-finite where the model's derivative with "
            "respect to a parameter or state is not defined (sqrt or a power below 1 at "
            "zero)." if sensitivities else ""
        )
        return (
            f"The {what} became non-finite (NaN or inf) at t={t:.6g}: the solution may "
            "blow up there, or the model divides by zero or leaves its domain (log or sqrt "
            "of a negative value). Check the model and parameters." + sensitivity_hint
            + stiff_hint
        )
    if code == st.SINGULAR_MATRIX:
        return (
            f"The iteration matrix I/(h*gamma) - J of {method_name} stayed singular at "
            f"t={t:.6g}, even after halving the step {MAX_SINGULAR} times: the Jacobian "
            "df/dy probably has huge entries there, or the model is degenerate (a "
            "conservation law or algebraic constraint written so that J is singular for "
            "every step size). Check the model near that t, or pass an exact `jac`."
        )
    if code == st.MODEL_EXCEPTION:
        return (
            f"The solve is invalid: {describe_model_exception(MODEL_EXCEPTIONS.first)} The "
            f"integration went on to t={t:.6g} with the output the model left unfinished."
        )
    if code == st.JACOBIAN_NON_FINITE:
        return (
            f"The Jacobian df/dy (or df/dt) of the model has a NaN or inf entry at "
            f"t={t:.6g}: its derivative is not defined there (sqrt or a power below 1 at "
            "zero, log of zero, division by a state that reached zero). Check the model "
            "near that t; a user `jac` must return finite values."
        )
    return f"Unexpected solver status {code} at t={t:.6g}."  # pragma: no cover


def _check_not_stale(model):
    """Refuse to solve with a model compiled from values that have changed since."""
    change = first_change(model.watches)
    if change is not None:
        raise ModelError(
            f"The model was compiled when its ODEProblem was made, and since then {change}. "
            "Numba freezes the values a model reads from outside its arguments into the "
            "compiled code, so solving now would use the old value. Make a new ODEProblem "
            "(it compiles with the current values), or pass the value through the "
            "parameter vector `p`, which can change between solves without recompiling."
        )


def _grow(array, capacity):
    grown = np.empty((capacity,) + array.shape[1:], dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown


_OPTIONS_CACHE = {}


def _validated_options(method, rtol, atol, first_step, max_step, max_steps, dense_output, dt,
                       t0, t_end, n):
    """Check the scalar options once and build the kernel's option records.

    Returns ``(method entry, atol vector, fopts, (iopts every step, iopts t_eval))``. The
    arrays are shared between calls; the kernels only read them.
    """
    entry = _method_entry(method)
    rtol, atol_vector = _tolerances(rtol, atol, n)
    if dt is None:
        if not entry.adaptive:
            raise ValueError(
                f"`dt` is required by the fixed-step method '{entry.name}' (or use an "
                "adaptive method such as 'Tsit5')"
            )
        dt_value = 0.0
    else:
        if entry.kind == "auto":
            raise ValueError(
                "`dt` (fixed steps) cannot be combined with method='auto'; name a method"
            )
        dt_value = _positive_number(dt, "dt")
    first = 0.0 if first_step is None else _positive_number(first_step, "first_step")
    if first > abs(t_end - t0):
        raise ValueError(
            f"`first_step` must not exceed the length of t_span ({abs(t_end - t0)}), got {first}"
        )
    max_step = _positive_number(max_step, "max_step", allow_inf=True)
    try:
        max_steps = operator.index(max_steps)
    except TypeError:
        raise TypeError(
            f"`max_steps` must be an integer, got {type(max_steps).__name__}"
        ) from None
    if max_steps < 1:
        raise ValueError(f"`max_steps` must be at least 1, got {max_steps}")
    fopts = float_options(t0, t_end, rtol, first_step=first, max_step=max_step, dt=dt_value)
    iopts = tuple(
        int_options(
            max_steps, save_every_step=save_every_step, store_dense=bool(dense_output),
            switch=entry.kind == "auto",
        )
        for save_every_step in (True, False)
    )
    return entry, atol_vector, fopts, iopts


class _Run:
    """The buffers of one solve, shared by every kernel call (and by both methods of
    ``method="auto"``): outputs, the dense-output store, and the resumable state."""

    __slots__ = (
        "t_out", "y_out", "dense_t", "dense_h", "dense_y", "dense_k", "fstate", "istate",
        "segments",
    )


def _dense_buffers(n, s_total, dense_output, dtype=np.float64):
    if not dense_output:
        if dtype == np.float64:
            return _EMPTY_1D, _EMPTY_1D, _EMPTY_2D, _EMPTY_3D
        return _EMPTY_1D, _EMPTY_1D, np.empty((0, 0), dtype), np.empty((0, 0, 0), dtype)
    d_cap = _FIRST_CAPACITY
    return (np.empty(d_cap), np.empty(d_cap), np.empty((d_cap, n), dtype),
            np.empty((d_cap, s_total, n), dtype))


def _rosenbrock_setup(model, y, params, t0, iopts):
    """The model addresses and the option record for a Rosenbrock method: how ``df/dy``
    and ``df/dt`` are obtained for this model. Kept on the model per option record, since
    a fit calls this with the same options thousands of times."""
    key = iopts.tobytes()
    cached = model.stiff_setups.get(key)
    if cached is None:
        cached = _new_rosenbrock_setup(model, y, params, t0, iopts)
        model.stiff_setups[key] = cached
    return cached


def _new_rosenbrock_setup(model, y, params, t0, iopts):
    addresses = np.zeros(A_SIZE, dtype=np.int64)
    addresses[A_RHS] = model.address
    addresses[A_RHS_COMPLEX] = model.address_complex
    addresses[A_JAC] = model.jac_address
    if not model.autonomous:
        addresses[A_RHS_COMPLEX_TIME] = model.time_derivative_address(t0, y, params)
    if model.jac_address:
        jac_mode = st.JAC_USER
    elif model.complex_step_safe:
        jac_mode = st.JAC_COMPLEX_STEP
    else:
        jac_mode = st.JAC_CENTRAL
        if not model.central_jacobian_warned:
            model.central_jacobian_warned = True
            warnings.warn(
                f"The stiff solver uses central-difference Jacobians for this model: it is "
                f"not complex-step safe ({model.complex_step_problem}). They cost 2n "
                "evaluations each and carry about 1e-10 relative error; pass `jac=` to "
                "ODEProblem for exact ones. (Shown once per model.)",
                ComplexStepWarning,
                stacklevel=3,
            )
    if model.autonomous:
        time_mode = st.TIME_DERIVATIVE_ZERO
    elif addresses[A_RHS_COMPLEX_TIME]:
        time_mode = st.TIME_DERIVATIVE_COMPLEX_STEP
    else:
        time_mode = st.TIME_DERIVATIVE_CENTRAL
    record = int_options(
        **{**int_options_fields(iopts), "jac_mode": jac_mode, "time_mode": time_mode}
    )
    return addresses, record


def _grow_buffers(run, code):
    """Grow the buffer a kernel found full (``OUTPUT_FULL`` or ``DENSE_FULL``) fourfold."""
    if code == st.OUTPUT_FULL:
        capacity = 4 * run.t_out.shape[0]
        run.t_out = _grow(run.t_out, capacity)
        run.y_out = _grow(run.y_out, capacity)
    else:
        capacity = 4 * run.dense_t.shape[0]
        run.dense_t = _grow(run.dense_t, capacity)
        run.dense_h = _grow(run.dense_h, capacity)
        run.dense_y = _grow(run.dense_y, capacity)
        run.dense_k = _grow(run.dense_k, capacity)


def _close_segment(run, entry):
    """Keep the dense steps taken so far by ``entry`` as one segment of the dense output."""
    n_dense = int(run.istate[st.I_N_DENSE])
    if n_dense:
        run.segments.append((
            run.dense_t[:n_dense], run.dense_h[:n_dense], run.dense_y[:n_dense],
            run.dense_k[:n_dense], entry.tableau.dense,
        ))
    run.istate[st.I_N_DENSE] = 0


class _Fields:
    """The vector fields a solve integrates (:mod:`paramest.kernels.fields`): the plain
    model, or the model augmented with its sensitivities, for either method family."""

    __slots__ = ("model", "explicit", "wrap", "y0", "params", "t0")

    def __init__(self, model, wrap, y0, params, t0):
        self.model = model
        self.wrap = wrap
        self.explicit = wrap(model.addresses)
        self.y0 = y0
        self.params = params
        self.t0 = t0

    def stiff(self, iopts):
        """The Rosenbrock field and option record (derivative modes) for ``iopts``."""
        addresses, record = _rosenbrock_setup(self.model, self.y0, self.params, self.t0, iopts)
        return self.wrap(addresses), record


def _run_method(entry, fields, y, params, atol, fopts, iopts, times, run, K):
    """Call one method's kernel until it finishes, fails or asks for a switch, growing the
    output buffers when it asks for that."""
    if entry.kind == "explicit":
        kernel, field, record = integrate, fields.explicit, iopts
    else:
        kernel = integrate_rosenbrock
        field, record = fields.stiff(iopts)
    while True:
        code = kernel(
            field, y, params, atol, fopts, record, entry.tab, entry.tab_info, times,
            run.t_out, run.y_out, run.dense_t, run.dense_h, run.dense_y, run.dense_k, K,
            run.fstate, run.istate,
        )
        if code != st.OUTPUT_FULL and code != st.DENSE_FULL:
            return code
        _grow_buffers(run, code)


def _switch_methods(code, active, fields, y, params, atol, fopts, iopts, times, run,
                    dense_output):
    """``method="auto"`` after its first request to switch (``code``): hand the solve
    between the explicit and the stiff method until it finishes or fails. The (augmented)
    state, sensitivities included, carries over.

    Returns ``(status, switches, the method in use at the end)``.
    """
    n = y.shape[0]
    switches = []
    while code == st.SWITCH_TO_STIFF or code == st.SWITCH_TO_NONSTIFF:
        previous = active
        active = _METHOD_TABLE[_AUTO_PAIR[1] if code == st.SWITCH_TO_STIFF else _AUTO_PAIR[0]]
        switches.append((float(run.fstate[st.F_T]), previous.name, active.name))
        if dense_output:
            _close_segment(run, previous)
            run.dense_t, run.dense_h, run.dense_y, run.dense_k = _dense_buffers(
                n, active.s_total, True, y.dtype
            )
        restart_after_switch(run.fstate, run.istate)
        K = np.empty((active.s_total, n))
        code = _run_method(active, fields, y, params, atol, fopts, iopts, times, run, K)
    return code, switches, active


def solve(
    problem,
    method="auto",
    t_eval=None,
    *,
    rtol=1e-6,
    atol=1e-8,
    first_step=None,
    max_step=np.inf,
    max_steps=100_000,
    dense_output=False,
    p=None,
    y0=None,
    dt=None,
    sensitivity=None,
    sens_params=None,
    sens_y0=None,
):
    """Solve an :class:`ODEProblem` with a compiled explicit Runge–Kutta or Rosenbrock
    method.

    Parameters
    ----------
    problem : ODEProblem
    method : str, default "auto"
        Case-insensitive. ``"auto"`` starts with Tsit5 and switches to Rodas5P while the
        problem is stiff (``Solution.switches`` records when); on a non-stiff problem it
        costs the same as Tsit5. Non-stiff problems: ``"Tsit5"``, ``"DP5"``, ``"BS3"``,
        ``"Vern7"`` (adaptive explicit Runge–Kutta) or ``"RK4"``, ``"Euler"`` (fixed step,
        need ``dt``). Stiff problems: ``"Rodas5P"``, ``"Rodas4"``, ``"Rosenbrock23"``
        (Rosenbrock methods; Jacobians by the complex step, by the problem's ``jac``, or
        by finite differences for models that are not complex-step safe). See
        :data:`METHODS` and the README's method table for when to pick which.
    t_eval : array_like, optional
        Times at which to report the solution, sorted in the direction of integration and
        inside ``t_span``. Values come from the method's own interpolant, so the steps are
        not shortened to hit them. When omitted, every accepted step is reported.
    rtol : float, default 1e-6
        Relative tolerance of the local error estimate.
    atol : float or array_like, default 1e-8
        Absolute tolerance, one value or one per state.
    first_step : float, optional
        Initial step size; chosen by Hairer's algorithm when omitted.
    max_step : float, default inf
        Largest allowed step size.
    max_steps : int, default 100000
        Most steps (accepted and rejected) before giving up with ``status=-1``.
    dense_output : bool, default False
        Also return the continuous solution ``sol(t)``.
    p, y0 : array_like, optional
        Parameters and initial state for this solve instead of the problem's. Nothing is
        recompiled.
    dt : float, optional
        Fixed step size. Required by ``"RK4"`` and ``"Euler"``; with an adaptive method it
        switches error control off and takes steps of ``dt`` (the last one shortened to end
        on ``t_span[1]``). Not allowed with ``"auto"``.
    sensitivity : SensitivityMethod, optional
        Also compute the derivatives of the solution with respect to parameters and
        initial states: :class:`paramest.Forward` (exact, every method),
        :class:`paramest.ComplexStep` (the derivative of the discrete solution, explicit
        methods) or :class:`paramest.FiniteDifferences` (a reference). See the README's
        "Sensitivities" section for costs.
    sens_params : int, str or sequence, optional
        The parameters to differentiate by (indices or ``param_names``); default all.
    sens_y0 : int, str or sequence, optional
        The initial states to differentiate by (indices or ``state_names``); default none.

    Returns
    -------
    Solution
        ``t``, ``y`` (shape ``(n_states, n_times)``), ``success``, ``status``,
        ``message``, ``nfev``, ``njev``, ``nlu``, ``n_accepted``, ``n_rejected``,
        ``switches``, ``sol``; with ``sensitivity``, ``sens`` of shape ``(n_states,
        n_sens, n_times)`` (columns: ``sens_params`` then ``sens_y0``, named by
        ``sens_labels``) and, with ``dense_output``, ``sol.sol.sens(t)``. Solver failures
        (step-size underflow, ``max_steps``, non-finite values, a singular iteration
        matrix, a non-finite Jacobian) are
        reported through ``success=False``, a negative ``status`` and the ``message``,
        never raised.

    Raises
    ------
    TypeError, ValueError
        For malformed arguments; the message names the argument.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def lotka_volterra(t, y, p, dydt):
    ...     dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    ...     dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1]
    >>> problem = pe.ODEProblem(lotka_volterra, [1.0, 1.0], (0.0, 10.0), [1.5, 1.0, 3.0, 1.0])
    >>> sol = pe.solve(problem, t_eval=np.linspace(0.0, 10.0, 5), rtol=1e-8, atol=1e-10)
    >>> sol.success, sol.y.shape
    (True, (2, 5))
    >>> np.round(sol.y[:, -1], 5)
    array([1.02634, 0.90969])

    A stiff problem (Robertson's chemical kinetics) with a Rosenbrock method:

    >>> def robertson(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    ...     dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] ** 2
    ...     dydt[2] = p[1] * y[1] ** 2
    >>> stiff = pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, 1e5), [0.04, 3e7, 1e4])
    >>> sol = pe.solve(stiff, "Rodas5P", t_eval=[1e5], rtol=1e-8, atol=1e-12)
    >>> sol.success, round(float(sol.y[0, -1]), 6)
    (True, 0.017866)
    """
    return _solve(problem, method, t_eval, rtol, atol, first_step, max_step, max_steps,
                  dense_output, p, y0, dt, sensitivity, sens_params, sens_y0, False)


def _solve(problem, method, t_eval, rtol, atol, first_step, max_step, max_steps,
           dense_output, p, y0, dt, sensitivity, sens_params, sens_y0, stop_at_switch):
    """:func:`solve`; ``stop_at_switch`` ends a ``method="auto"`` solve at its first switch
    to the stiff method (status ``SWITCH_TO_STIFF``), for the adjoints' automatic choice."""
    if not isinstance(problem, ODEProblem):
        raise TypeError(f"`problem` must be an ODEProblem, got {type(problem).__name__}")
    model = problem.model
    if model.watches:
        _check_not_stale(model)
    n = problem.y0.shape[0]
    t0, t_end = problem.t_span
    # Validated option records are reused for repeated calls with the same options (as in a
    # fit), which keeps the per-call cost from Python to a few microseconds.
    key = (method, rtol, atol, first_step, max_step, max_steps, dense_output, dt, t0, t_end, n)
    try:
        cached = _OPTIONS_CACHE.get(key)
    except TypeError:  # unhashable option values (an atol list, say)
        key, cached = None, None
    if cached is None:
        cached = _validated_options(
            method, rtol, atol, first_step, max_step, max_steps, dense_output, dt, t0, t_end,
            n,
        )
        if key is not None:
            if len(_OPTIONS_CACHE) >= 256:
                _OPTIONS_CACHE.clear()
            _OPTIONS_CACHE[key] = cached
    entry, atol, fopts, iopts_template = cached
    y = problem.y0.copy() if y0 is None else as_vector(
        y0, "y0", size=n, labels=problem.state_names, labels_arg="state_names"
    ).copy()
    # A private writable copy: the model receives it as a plain array and may not alter
    # the problem's parameters.
    params = (problem.p if p is None else as_vector(
        p, "p", allow_empty=True, size=model.n_params, labels=problem.param_names,
        labels_arg="param_names",
    )).copy()
    save_every_step = t_eval is None
    iopts = iopts_template[0] if save_every_step else iopts_template[1]
    dt_value = fopts[st.O_DT]
    if save_every_step:
        times = _EMPTY_1D
    else:
        times = _check_t_eval(t_eval, t0, t_end)

    columns = None
    if sensitivity is None:
        if sens_params is not None or sens_y0 is not None:
            raise ValueError(
                "`sens_params` and `sens_y0` choose sensitivity columns: pass "
                "`sensitivity=` as well (for example paramest.Forward())"
            )
        fields = _Fields(model, plain_field, y, params, t0)
        state, kernel_params, kernel_atol = y, params, atol
    else:
        sens_methods.check_method(sensitivity, entry.kind, entry.name)
        setup = _sensitivity_setup(problem, sensitivity, sens_params, sens_y0)
        columns = setup.columns
        if isinstance(sensitivity, sens_methods.FiniteDifferences):
            return _finite_difference_solve(
                problem, method, t_eval, times, columns, sensitivity, y, params,
                dict(rtol=rtol, atol=atol, first_step=first_step, max_step=max_step,
                     max_steps=max_steps, dense_output=dense_output, dt=dt),
            )
        k = len(columns)
        if isinstance(sensitivity, sens_methods.ComplexStep):
            field, state = sens_methods.complex_directions(
                model, model.addresses, columns, y, params
            )
            fields = _Fields(model, lambda addresses: field, y, params, t0)
            kernel_params = field[2][0].copy()
            kernel_atol = np.tile(atol, max(k, 1))
        else:
            fields = _Fields(model, setup.wrap, y, params, t0)
            state = sens_methods.initial_augmented_state(y, columns)
            kernel_params = params
            kernel_atol = setup.tolerances(atol)
    n_all = state.shape[0]

    if save_every_step:
        capacity = _FIRST_CAPACITY if dt_value == 0.0 else int(
            min(abs(t_end - t0) / dt_value + 2, iopts[st.IO_MAX_STEPS] + 2)
        )
    else:
        capacity = times.shape[0]
    run = _Run()
    run.t_out = np.empty(capacity)
    run.y_out = np.empty((capacity, n_all), dtype=state.dtype)
    run.fstate = float_state()
    run.istate = int_state()
    run.segments = []

    # One method, or "auto" until its first switch: no bookkeeping for switches.
    active = _METHOD_TABLE[_AUTO_PAIR[0]] if entry.kind == "auto" else entry
    run.dense_t, run.dense_h, run.dense_y, run.dense_k = _dense_buffers(
        n_all, active.s_total, dense_output, state.dtype
    )
    K = np.empty((active.s_total, n_all), dtype=state.dtype)
    # An exception inside a compiled model can only be printed by Numba's wrapper; the hook
    # counts it instead, and the solve reports it (see model.record_model_exception).
    previous_hook = sys.unraisablehook
    sys.unraisablehook = record_model_exception
    exceptions_before = MODEL_EXCEPTIONS.count
    MODEL_EXCEPTIONS.first = None
    try:
        code = _run_method(
            active, fields, state, kernel_params, kernel_atol, fopts, iopts, times, run, K
        )
        switches = _NO_SWITCHES
        if code == st.SWITCH_TO_STIFF and not stop_at_switch:
            code, switches, active = _switch_methods(
                code, active, fields, state, kernel_params, kernel_atol, fopts, iopts, times,
                run, dense_output,
            )
    finally:
        sys.unraisablehook = previous_hook
    if MODEL_EXCEPTIONS.count != exceptions_before:
        code = st.MODEL_EXCEPTION
    if dense_output:
        _close_segment(run, active)

    # one conversion to Python numbers instead of a NumPy scalar per field
    ist = run.istate.tolist()
    fst = run.fstate.tolist()
    n_out = ist[st.I_N_OUT]
    t_reached = fst[st.F_T]
    stiffness_detected = ist[st.I_STIFFNESS_DETECTED] != 0
    outputs = run.y_out[:n_out]
    if columns is None:
        y_result, sens, labels, split = outputs.T, None, _NO_LABELS, None
    else:
        labels = columns.labels
        if state.dtype == np.complex128:
            split = partial(sens_methods.split_complex, n=n, k=len(columns))
        else:
            split = partial(sens_methods.split_forward, n=n, k=len(columns))
        y_result, sens = split(outputs)
    sol = DenseOutput(t0, t_reached, run.segments, n, split) if dense_output else None
    return Solution(
        t=run.t_out[:n_out],
        y=y_result,
        sens=sens,
        sens_labels=list(labels),
        sol=sol,
        success=code == st.SUCCESS,
        status=code,
        message=_SUCCESS_MESSAGE if code == st.SUCCESS else _message(
            code, t_reached, fst[st.F_H], t_end, int(iopts[st.IO_MAX_STEPS]),
            stiffness_detected, fst[st.F_T_STIFF], active.name, columns is not None,
        ),
        t_final=t_reached,
        nfev=ist[st.I_NFEV],
        njev=ist[st.I_NJEV],
        nlu=ist[st.I_NLU],
        n_accepted=ist[st.I_N_ACCEPTED],
        n_rejected=ist[st.I_N_REJECTED],
        method=entry.name,
        switches=list(switches),
        stiffness_detected=stiffness_detected or bool(switches),
    )


class _SensitivitySetup:
    """What a solve with sensitivities needs beyond its arguments, kept per model and column
    choice (a fit repeats the same choice thousands of times): the columns and the forward
    field over each address record."""

    __slots__ = ("columns", "model", "error_control", "_fields", "_atol")

    def __init__(self, problem, sensitivity, sens_params, sens_y0):
        self.columns = sens_methods.Columns(problem, sens_params, sens_y0)
        self.model = problem.model
        self.error_control = getattr(sensitivity, "error_control", True)
        self._fields = {}
        self._atol = (None, None)

    def wrap(self, addresses):
        field = self._fields.get(id(addresses))
        if field is None or field[0] is not addresses:
            field = sens_methods.forward_fields(
                self.model, addresses, self.columns, self.error_control
            )
            self._fields[id(addresses)] = field
        return field

    def tolerances(self, atol):
        """``atol`` for every block of the augmented state (the states' own for each
        sensitivity column)."""
        if self._atol[0] is not atol:
            self._atol = (atol, np.tile(atol, 1 + len(self.columns)))
        return self._atol[1]


def _hashable(selection):
    # typed, so that a cached choice of [1] does not stand in for an invalid [True]
    items = selection if isinstance(selection, (list, tuple)) else (selection,)
    return tuple((type(item), item) for item in items)


def _sensitivity_setup(problem, sensitivity, sens_params, sens_y0):
    key = (
        "sensitivity", type(sensitivity), getattr(sensitivity, "error_control", None),
        _hashable(sens_params), _hashable(sens_y0), problem.param_names, problem.state_names,
    )
    setups = problem.model.stiff_setups
    try:
        setup = setups.get(key)
    except TypeError:  # an unhashable selection (an array, say): no caching
        return _SensitivitySetup(problem, sensitivity, sens_params, sens_y0)
    if setup is None:
        setup = _SensitivitySetup(problem, sensitivity, sens_params, sens_y0)
        setups[key] = setup
    return setup


def _finite_difference_solve(problem, method, t_eval, times, columns, sensitivity, y0, params,
                             options):
    """``FiniteDifferences()``: central differences of whole solves, column by column."""
    if t_eval is None:
        raise ValueError(
            "sensitivity=FiniteDifferences() needs `t_eval`: solves at perturbed values "
            "take different steps, so only fixed output times can be differenced"
        )
    if options["dense_output"]:
        raise ValueError(
            "sensitivity=FiniteDifferences() gives no dense output; use paramest.Forward()"
        )
    base = solve(problem, method, times, p=params, y0=y0, **options)
    if not base.success:
        return base
    n = y0.shape[0]
    sens = np.empty((n, len(columns), times.shape[0]))
    nfev = base.nfev
    step = sensitivity.relative_step
    perturbed = [("p", i) for i in columns.params] + [("y0", i) for i in columns.y0]
    for c, (kind, i) in enumerate(perturbed):
        values = params if kind == "p" else y0
        delta = sens_methods.finite_difference_step(values[i], step)
        outputs = []
        for sign in (1.0, -1.0):
            moved = values.copy()
            moved[i] += sign * delta
            arguments = {"p": moved, "y0": y0} if kind == "p" else {"p": params, "y0": moved}
            result = solve(problem, method, times, **arguments, **options)
            nfev += result.nfev
            if not result.success:
                result.message = (
                    f"FiniteDifferences: the solve at {kind}[{i}] "
                    f"{'+' if sign > 0 else '-'} {delta:.3g} failed: {result.message}"
                )
                result.sens = None
                return result
            outputs.append(result.y)
        sens[:, c, :] = (outputs[0] - outputs[1]) / (2.0 * delta)
    base.sens = sens
    base.sens_labels = columns.labels
    base.nfev = nfev
    return base


class PreparedSolve:
    """Repeated solves of one problem at fixed output times and options, varying only ``p``
    and ``y0``: what a fit does thousands of times.

    Everything :func:`solve` validates and sets up per call (options, output times,
    sensitivity columns and fields, buffers) is done once here; :meth:`run` resets the
    resumable state and calls the kernels, and returns the raw output rows. It gives the
    same numbers as :func:`solve` with the same arguments (the same kernels on the same
    records). Explicit and Rosenbrock methods and ``"auto"``; ``Forward`` sensitivities or
    none. Not thread-safe: give each thread its own.

    Parameters
    ----------
    problem : ODEProblem
    method : str
    times : ndarray
        Output times, validated as :func:`solve` validates ``t_eval``.
    rtol, atol, max_steps :
        As for :func:`solve`.
    sensitivity : Forward or None
    sens_params, sens_y0 : sequence of int
        Sensitivity columns (required with ``sensitivity``).
    """

    __slots__ = (
        "problem", "model", "entry", "atol", "fopts", "iopts", "times", "columns", "setup",
        "n", "n_all", "template", "run_buffers", "K", "kernel_atol",
    )

    def __init__(self, problem, method, times, *, rtol, atol, max_steps, sensitivity=None,
                 sens_params=(), sens_y0=()):
        model = problem.model
        n = problem.y0.shape[0]
        t0, t_end = problem.t_span
        self.problem = problem
        self.model = model
        self.entry, self.atol, self.fopts, iopts = _validated_options(
            method, rtol, atol, None, np.inf, max_steps, False, None, t0, t_end, n
        )
        self.iopts = iopts[1]
        self.times = _check_t_eval(times, t0, t_end).copy()
        self.n = n
        if sensitivity is None:
            self.columns = None
            self.setup = None
            self.n_all = n
            self.kernel_atol = self.atol
        else:
            if not isinstance(sensitivity, sens_methods.Forward):
                raise TypeError("PreparedSolve supports Forward() sensitivities only")
            self.setup = _sensitivity_setup(problem, sensitivity, list(sens_params),
                                            list(sens_y0))
            self.columns = self.setup.columns
            self.n_all = n * (1 + len(self.columns))
            self.kernel_atol = self.setup.tolerances(self.atol)
        self.template = (
            np.zeros(n) if self.columns is None
            else sens_methods.initial_augmented_state(np.zeros(n), self.columns)
        )
        run = _Run()
        run.t_out = np.empty(self.times.shape[0])
        run.y_out = np.empty((self.times.shape[0], self.n_all))
        run.segments = []
        run.dense_t, run.dense_h, run.dense_y, run.dense_k = _dense_buffers(
            self.n_all, 0, False
        )
        self.run_buffers = run
        s_total = max(entry.s_total for entry in _METHOD_TABLE.values()
                      if entry.kind != "auto")
        self.K = np.empty((s_total, self.n_all))

    def run(self, p, y0):
        """Solve from ``y0`` with parameters ``p`` (float64 vectors of the right sizes,
        unchecked). Returns ``(status, outputs)``; ``outputs`` has shape
        ``(n_times, n_states * (1 + n_sens))`` (the state, then each sensitivity column)
        and is overwritten by the next call."""
        model = self.model
        if model.watches:
            _check_not_stale(model)
        state = self.template.copy()
        state[: self.n] = y0
        params = p.copy()
        run = self.run_buffers
        run.fstate = float_state()
        run.istate = int_state()
        wrap = plain_field if self.setup is None else self.setup.wrap
        fields = _Fields(model, wrap, state[: self.n].copy(), params, self.problem.t_span[0])
        entry = self.entry
        active = _METHOD_TABLE[_AUTO_PAIR[0]] if entry.kind == "auto" else entry
        K = self.K[: active.s_total]
        previous_hook = sys.unraisablehook
        sys.unraisablehook = record_model_exception
        exceptions_before = MODEL_EXCEPTIONS.count
        try:
            code = _run_method(active, fields, state, params, self.kernel_atol, self.fopts,
                               self.iopts, self.times, run, K)
            if code == st.SWITCH_TO_STIFF:
                code, _, _ = _switch_methods(
                    code, active, fields, state, params, self.kernel_atol, self.fopts,
                    self.iopts, self.times, run, False,
                )
        finally:
            sys.unraisablehook = previous_hook
        if MODEL_EXCEPTIONS.count != exceptions_before:
            code = st.MODEL_EXCEPTION
        return code, run.y_out[: int(run.istate[st.I_N_OUT])]

    def message(self, code):
        """The message :func:`solve` would give for the last run's status ``code``."""
        run = self.run_buffers
        if code == st.SUCCESS:
            return _SUCCESS_MESSAGE
        return _message(
            code, float(run.fstate[st.F_T]), float(run.fstate[st.F_H]),
            self.problem.t_span[1], int(self.iopts[st.IO_MAX_STEPS]),
            bool(run.istate[st.I_STIFFNESS_DETECTED]), float(run.fstate[st.F_T_STIFF]),
            self.entry.name, self.columns is not None,
        )


def _load_compiled_kernels():
    """Pay Numba's one-time set-up (its typing registries, about 0.4 s) at import rather than
    inside the first solve, and load the small cached validation kernel."""
    check_times(np.zeros(1), 0.0, 1.0)


_load_compiled_kernels()
