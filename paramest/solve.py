"""``solve()``: validate the options once, run a compiled integrator, wrap the result."""

import math
import numbers
import operator

import numpy as np

from paramest.kernels import status as st
from paramest.kernels.explicit import integrate, pack_tableau
from paramest.kernels.tableaus import TABLEAUS
from paramest.kernels.validation import (
    TIMES_NOT_FINITE,
    TIMES_NOT_MONOTONE,
    TIMES_OK,
    TIMES_OUTSIDE,
    check_times,
)
from paramest.problems import ODEProblem, as_vector
from paramest.solution import DenseOutput, Solution

__all__ = ["solve", "METHODS"]


class _Method:
    __slots__ = ("name", "tableau", "tab", "tab_info", "adaptive")

    def __init__(self, tableau):
        self.name = tableau.name
        self.tableau = tableau
        self.tab, self.tab_info = pack_tableau(tableau)
        self.adaptive = tableau.adaptive


_METHOD_TABLE = {}
for _tableau in TABLEAUS.values():
    _entry = _Method(_tableau)
    _METHOD_TABLE[_tableau.name] = _entry
    _METHOD_TABLE[_tableau.name.lower()] = _entry

#: The available methods: name -> tableau (order, embedded order, dense-output order, ...).
METHODS = {name: tableau for name, tableau in TABLEAUS.items()}

_EMPTY_1D = np.empty(0)
_EMPTY_2D = np.empty((0, 0))
_EMPTY_3D = np.empty((0, 0, 0))
_FIRST_CAPACITY = 128

_SUCCESS_MESSAGE = "The solver successfully reached the end of the integration interval."


def _method_entry(method):
    entry = _METHOD_TABLE.get(method) if isinstance(method, str) else None
    if entry is None and isinstance(method, str):
        entry = _METHOD_TABLE.get(method.lower())
    if entry is None:
        names = ", ".join(f"'{name}'" for name in TABLEAUS)
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


def _message(code, t, h, t_end, max_steps, stiffness_detected, t_stiff):
    if code == st.SUCCESS:
        return _SUCCESS_MESSAGE
    stiff_hint = ""
    if stiffness_detected:
        stiff_hint = (
            f" The problem looks stiff (from t={t_stiff:.6g} the step size was limited by "
            "stability, not accuracy): explicit methods need very many tiny steps on it; "
            "use a stiff (implicit or Rosenbrock) solver."
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
        return (
            f"The state or its derivative became non-finite (NaN or inf) at t={t:.6g}: the "
            "solution may blow up there, or the model divides by zero or leaves its "
            "domain (log or sqrt of a negative value). Check the model and "
            "parameters." + stiff_hint
        )
    return f"Unexpected solver status {code} at t={t:.6g}."  # pragma: no cover


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
    fopts = np.empty(st.O_SIZE)
    fopts[st.O_T0] = t0
    fopts[st.O_T_END] = t_end
    fopts[st.O_RTOL] = rtol
    fopts[st.O_FIRST_STEP] = first
    fopts[st.O_MAX_STEP] = max_step
    fopts[st.O_DT] = dt_value
    iopts = []
    for save_every_step in (True, False):
        record = np.empty(st.IO_SIZE, dtype=np.int64)
        record[st.IO_MAX_STEPS] = max_steps
        record[st.IO_SAVE_EVERY_STEP] = save_every_step
        record[st.IO_STORE_DENSE] = bool(dense_output)
        iopts.append(record)
    return entry, atol_vector, fopts, tuple(iopts)


def solve(
    problem,
    method="Tsit5",
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
):
    """Solve an :class:`ODEProblem` with a compiled Runge–Kutta method.

    Parameters
    ----------
    problem : ODEProblem
    method : str, default "Tsit5"
        ``"Tsit5"``, ``"DP5"``, ``"BS3"``, ``"Vern7"`` (adaptive, with embedded error
        estimates) or ``"RK4"``, ``"Euler"`` (fixed step, need ``dt``). Case-insensitive.
        See :data:`METHODS` and the README's method table.
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
        on ``t_span[1]``).

    Returns
    -------
    Solution
        ``t``, ``y`` (shape ``(n_states, n_times)``), ``success``, ``status``,
        ``message``, ``nfev``, ``n_accepted``, ``n_rejected``, ``sol``.
        Solver failures (step-size underflow, ``max_steps``, non-finite values) are reported
        through ``success=False``, a negative ``status`` and the ``message``, never raised.

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
    """
    if not isinstance(problem, ODEProblem):
        raise TypeError(f"`problem` must be an ODEProblem, got {type(problem).__name__}")
    model = problem.model
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
    y = problem.y0.copy() if y0 is None else as_vector(y0, "y0", size=n).copy()
    # A private writable copy: the model receives it as a plain array and may not alter
    # the problem's parameters.
    params = (problem.p if p is None else as_vector(p, "p", allow_empty=True,
                                                     size=model.n_params)).copy()
    save_every_step = t_eval is None
    iopts = iopts_template[0] if save_every_step else iopts_template[1]
    dt_value = fopts[st.O_DT]

    if save_every_step:
        times = _EMPTY_1D
        capacity = _FIRST_CAPACITY if dt_value == 0.0 else int(
            min(abs(t_end - t0) / dt_value + 2, iopts[st.IO_MAX_STEPS] + 2)
        )
    else:
        times = _check_t_eval(t_eval, t0, t_end)
        capacity = times.shape[0]
    t_out = np.empty(capacity)
    y_out = np.empty((capacity, n))
    s_total = entry.tab.shape[0]
    if dense_output:
        d_cap = _FIRST_CAPACITY
        dense_t = np.empty(d_cap)
        dense_h = np.empty(d_cap)
        dense_y = np.empty((d_cap, n))
        dense_k = np.empty((d_cap, s_total, n))
    else:
        dense_t, dense_h, dense_y, dense_k = _EMPTY_1D, _EMPTY_1D, _EMPTY_2D, _EMPTY_3D
    K = np.empty((s_total, n))
    fstate = np.zeros(st.F_SIZE)
    istate = np.zeros(st.I_SIZE, dtype=np.int64)

    while True:
        code = integrate(
            model.address, y, params, atol, fopts, iopts, entry.tab, entry.tab_info,
            times, t_out, y_out, dense_t, dense_h, dense_y, dense_k, K, fstate, istate,
        )
        if code == st.OUTPUT_FULL:
            capacity = 4 * t_out.shape[0]
            t_out = _grow(t_out, capacity)
            y_out = _grow(y_out, capacity)
        elif code == st.DENSE_FULL:
            d_cap = 4 * dense_t.shape[0]
            dense_t = _grow(dense_t, d_cap)
            dense_h = _grow(dense_h, d_cap)
            dense_y = _grow(dense_y, d_cap)
            dense_k = _grow(dense_k, d_cap)
        else:
            break

    # one conversion to Python numbers instead of a NumPy scalar per field
    ist = istate.tolist()
    fst = fstate.tolist()
    n_out = ist[st.I_N_OUT]
    t_reached = fst[st.F_T]
    stiffness_detected = ist[st.I_STIFFNESS_DETECTED] != 0
    sol = None
    if dense_output:
        n_dense = ist[st.I_N_DENSE]
        sol = DenseOutput(
            t0, t_reached, dense_t[:n_dense], dense_h[:n_dense], dense_y[:n_dense],
            dense_k[:n_dense], entry.tableau.dense,
        )
    return Solution(
        t=t_out[:n_out],
        y=y_out[:n_out].T,
        sol=sol,
        success=code == st.SUCCESS,
        status=code,
        message=_SUCCESS_MESSAGE if code == st.SUCCESS else _message(
            code, t_reached, fst[st.F_H], t_end, int(iopts[st.IO_MAX_STEPS]), stiffness_detected,
            fst[st.F_T_STIFF],
        ),
        t_final=t_reached,
        nfev=ist[st.I_NFEV],
        n_accepted=ist[st.I_N_ACCEPTED],
        n_rejected=ist[st.I_N_REJECTED],
        method=entry.name,
        stiffness_detected=stiffness_detected,
    )


def _load_compiled_kernels():
    """Pay Numba's one-time set-up (its typing registries, about 0.4 s) at import rather than
    inside the first solve, and load the small cached validation kernel."""
    check_times(np.zeros(1), 0.0, 1.0)


_load_compiled_kernels()
