"""Stiff ODE solves: speed, work and accuracy of paramest against other solvers.

Two stiff problems:

* Robertson's chemical kinetics (3 states) on [0, 1e5], rtol=1e-6, atol=1e-10,
  output at t=0 and 50 log-spaced times from 1e-6 to 1e5 (the last is the end).
  The reference is computed here with scipy's Radau at rtol=1e-12, atol=1e-20
  and the analytic Jacobian, and compared with published values.
* a 1-D reaction-diffusion equation u_t = D u_xx - k u^2 discretised on n = 50,
  100 and 200 points, with a time-dependent Dirichlet value on the left and a
  zero-flux right end, on [0, 1] at rtol=1e-6, atol=1e-8 with 11 output times.
  The reference is scipy's Radau at rtol=1e-10, atol=1e-12.

Every contender is called the way a user would call it (paramest and scipy from
Python, numbalsoda from Python and from inside an njit loop), timed in
interleaved rounds in one process, and checked against the reference. The
script reports ratios measured in the same run; it asserts nothing about time.

Run ``python benchmarks/ode_stiff.py`` (``--quick`` for a smoke run,
``--json PATH`` to save the results). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import scipy
from _common import (
    Batch,
    fmt_num,
    fmt_pct,
    fmt_time,
    format_table,
    interleaved_timings,
    machine_info,
    package_version,
    timed,
    timed_import,
    write_json,
)
from numba import carray, cfunc, njit, types
from scipy.integrate import solve_ivp

# numbalsoda's right-hand-side signature, f(t, u, du, p) on raw pointers; spelled
# out here so that the models can be written without importing numbalsoda (an
# optional peer). It is numbalsoda.lsoda_sig.
RHS_SIG = types.void(
    types.double, types.CPointer(types.double), types.CPointer(types.double),
    types.CPointer(types.double),
)

BASE_METHOD = "Rodas5P"  # paramest's default stiff method; the baseline of the tables
BASELINE = f"paramest {BASE_METHOD}"
LSODA = "numbalsoda lsoda"
ROBERTSON_METHODS = ("Rodas5P", "Rodas4", "Rosenbrock23", "auto")
RD_METHODS = ("Rodas5P",)
RD_SIZES = (50, 100, 200)

# Robertson: published values at t = 1e5 (tight scipy runs), for comparison with
# the reference computed by the script.
ROBERTSON_PUBLISHED = np.array([1.7865921143e-02, 7.2747514688e-08, 9.8213400611e-01])


# --- models -----------------------------------------------------------------
# Written once in paramest's in-place form (plain arithmetic on the state, so that
# they compile for float64 and complex128). numbalsoda gets the same code compiled
# into a C callback, so both solve exactly the same model.

def robertson(t, y, p, dydt):
    # p = (k1, k2, k3) = (0.04, 3e7, 1e4)
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1]
    dydt[2] = p[1] * y[1] * y[1]


def robertson_jac(t, y, p, J):
    J[0, 0] = -p[0]
    J[0, 1] = p[2] * y[2]
    J[0, 2] = p[2] * y[1]
    J[1, 0] = p[0]
    J[1, 1] = -p[2] * y[2] - 2.0 * p[1] * y[1]
    J[1, 2] = -p[2] * y[1]
    J[2, 0] = 0.0
    J[2, 1] = 2.0 * p[1] * y[1]
    J[2, 2] = 0.0


def reaction_diffusion(t, y, p, dydt):
    # u_t = D u_xx - k u^2 on x in (0, 1], grid x_i = (i + 1) / n. Left end: Dirichlet
    # u(0, t) = 1 + sin(w t) / 2; right end: zero flux (ghost point y[n] = y[n-2]).
    # p = (D, k, w).
    n = y.shape[0]
    c = p[0] * (n * n)  # D / dx^2
    left = 1.0 + 0.5 * np.sin(p[2] * t)
    dydt[0] = c * (left - 2.0 * y[0] + y[1]) - p[1] * y[0] * y[0]
    for i in range(1, n - 1):
        dydt[i] = c * (y[i - 1] - 2.0 * y[i] + y[i + 1]) - p[1] * y[i] * y[i]
    dydt[n - 1] = c * (2.0 * y[n - 2] - 2.0 * y[n - 1]) - p[1] * y[n - 1] * y[n - 1]


def reaction_diffusion_jac(t, y, p, J):
    n = y.shape[0]
    c = p[0] * (n * n)
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
        J[i, i] = -2.0 * c - 2.0 * p[1] * y[i]
        if i > 0:
            J[i, i - 1] = c
        if i < n - 1:
            J[i, i + 1] = c
    J[n - 1, n - 2] = 2.0 * c


# scipy's solve_ivp wants f(t, y) -> array and jac(t, y) -> array; idiomatic NumPy forms.

def robertson_numpy(t, y, p):
    y1, y2, y3 = y
    return np.array([
        -p[0] * y1 + p[2] * y2 * y3,
        p[0] * y1 - p[2] * y2 * y3 - p[1] * y2 * y2,
        p[1] * y2 * y2,
    ])


def robertson_jac_numpy(t, y, p):
    _, y2, y3 = y
    return np.array([
        [-p[0], p[2] * y3, p[2] * y2],
        [p[0], -p[2] * y3 - 2.0 * p[1] * y2, -p[2] * y2],
        [0.0, 2.0 * p[1] * y2, 0.0],
    ])


def reaction_diffusion_numpy(n: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """f(t, y, p) and its dense Jacobian jac(t, y, p) for `n` grid points."""
    lap = np.zeros((n, n))  # the second-difference matrix, boundary rows included
    i = np.arange(n)
    lap[i, i] = -2.0
    lap[i[:-1], i[:-1] + 1] = 1.0
    lap[i[1:], i[1:] - 1] = 1.0
    lap[n - 1, n - 2] = 2.0

    def f(t, y, p):
        d2 = np.empty_like(y)
        d2[1:-1] = y[:-2] - 2.0 * y[1:-1] + y[2:]
        d2[0] = 1.0 + 0.5 * np.sin(p[2] * t) - 2.0 * y[0] + y[1]
        d2[-1] = 2.0 * (y[-2] - y[-1])
        return p[0] * n * n * d2 - p[1] * y * y

    def jac(t, y, p):
        J = (p[0] * n * n) * lap
        J[i, i] -= 2.0 * p[1] * y
        return J

    return f, jac


# --- problems -----------------------------------------------------------------

@dataclass
class Problem:
    name: str
    title: str
    fun: Callable[..., None]
    jac: Callable[..., None]
    fun_numpy: Callable[..., np.ndarray]
    jac_numpy: Callable[..., np.ndarray]
    y0: np.ndarray
    p: np.ndarray
    t_eval: np.ndarray
    rtol: float
    atol: float
    y_ref: np.ndarray  # (n_states, n_times)
    ref_note: str
    scipy_methods: tuple[str, ...]
    paramest_methods: tuple[str, ...]
    error_kind: str  # "relative" (Robertson) or "absolute" (reaction-diffusion)
    size: int = 0

    @property
    def t_span(self) -> tuple[float, float]:
        return float(self.t_eval[0]), float(self.t_eval[-1])


def _reference(prob_fun: Callable[..., Any], jac: Callable[..., Any], y0: np.ndarray,
               p: np.ndarray, t_eval: np.ndarray, rtol: float, atol: float) -> Any:
    sol = solve_ivp(prob_fun, (t_eval[0], t_eval[-1]), y0, method="Radau", t_eval=t_eval,
                    args=(p,), jac=jac, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"reference solve failed: {sol.message}")
    return sol


def robertson_problem(quick: bool) -> Problem:
    t_eval = np.concatenate([[0.0], np.logspace(-6.0, 5.0, 50)])
    y0 = np.array([1.0, 0.0, 0.0])
    p = np.array([0.04, 3e7, 1e4])
    (sol, ref_s) = timed(_reference, robertson_numpy, robertson_jac_numpy, y0, p, t_eval,
                         1e-12, 1e-20)
    y_end = sol.y[:, -1]
    vs_pub = np.max(np.abs(y_end - ROBERTSON_PUBLISHED) / ROBERTSON_PUBLISHED)
    note = (f"scipy Radau rtol=1e-12 atol=1e-20, analytic jac ({sol.nfev} f evals, "
            f"{ref_s:.1f} s); y(1e5) = [{y_end[0]:.10e}, {y_end[1]:.10e}, {y_end[2]:.10e}]; "
            f"max rel. difference to the published values {vs_pub:.1e}")
    if not quick:
        # A looser solve: an order-of-magnitude estimate of the reference's own error.
        check = _reference(robertson_numpy, robertson_jac_numpy, y0, p, t_eval, 1e-11, 1e-19)
        est = np.max(np.abs(check.y[:, -1] - y_end) / np.abs(y_end))
        note += f"; |ref(1e-11) - ref(1e-12)| max rel. at 1e5 = {est:.1e}"
    return Problem("robertson", "Robertson, 3 states", robertson, robertson_jac,
                   robertson_numpy, robertson_jac_numpy, y0, p, t_eval, 1e-6, 1e-10, sol.y,
                   note, ("BDF", "Radau", "LSODA"), ROBERTSON_METHODS, "relative", 3)


def reaction_diffusion_problem(n: int, quick: bool) -> Problem:
    t_eval = np.linspace(0.0, 1.0, 11)
    x = np.arange(1, n + 1) / n
    y0 = np.cos(np.pi * x) ** 2  # 1 at the left (the boundary value at t=0), flat at x=1
    p = np.array([1.0, 10.0, 4.0 * np.pi])  # D, k, w
    f, jac = reaction_diffusion_numpy(n)
    sol, ref_s = timed(_reference, f, jac, y0, p, t_eval, 1e-10, 1e-12)
    note = f"scipy Radau rtol=1e-10 atol=1e-12, analytic jac ({sol.nfev} f evals, {ref_s:.1f} s)"
    if not quick:
        check = _reference(f, jac, y0, p, t_eval, 1e-9, 1e-11)
        note += f"; |ref(1e-9) - ref(1e-10)| max = {np.max(np.abs(check.y - sol.y)):.1e}"
    return Problem(f"reaction_diffusion_{n}", f"reaction-diffusion, n = {n}",
                   reaction_diffusion, reaction_diffusion_jac, f, jac, y0, p, t_eval,
                   1e-6, 1e-8, sol.y, note, ("BDF", "LSODA"), RD_METHODS, "absolute", n)


# --- contenders -------------------------------------------------------------------

@dataclass
class Contender:
    name: str
    solve: Callable[[], tuple[np.ndarray, bool]]  # -> y (n_states, n_times), success
    batch: Batch | None = None  # k solves; defaults to calling `solve` k times
    setup_s: float = math.nan  # building the problem / compiling the callback
    first_s: float = math.nan  # first solve, including any compilation it triggers
    steps: int | None = None  # accepted steps
    rejected: int | None = None
    nfev: int | None = None
    njev: int | None = None
    nlu: int | None = None
    y: np.ndarray | None = None
    success: bool = False
    notes: list[str] = field(default_factory=list)

    def timing_batch(self) -> Batch:
        if self.batch is not None:
            return self.batch
        solve = self.solve

        def run(k: int) -> None:
            for _ in range(k):
                solve()

        return run


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@contextlib.contextmanager
def _warnings_as_notes(notes: list[str], who: str) -> Iterator[None]:
    """Turn warnings raised inside the block into notes printed below the table."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        first = str(w.message).split(". ")[0]
        notes.append(f"{who}: {w.category.__name__}: {first}")


def paramest_contenders(pe: Any, prob: Problem, notes: list[str]) -> list[Contender]:
    problems = {}
    for label, jac in (("", None), (" +jac", prob.jac)):
        try:
            with _warnings_as_notes(notes, f"paramest ODEProblem{label}"):
                problems[label] = timed(pe.ODEProblem, prob.fun, prob.y0, prob.t_span,
                                        prob.p, jac=jac)
        except Exception as exc:  # a broken paramest should not hide the peers' numbers
            notes.append(f"paramest ODEProblem{label} failed "
                         f"({type(exc).__name__}: {exc}); skipped")
    out = []
    for method in prob.paramest_methods:
        for label, (problem, setup_s) in problems.items():
            name = f"paramest {method}{label}"

            def solve(problem: Any = problem, method: str = method) -> Any:
                return pe.solve(problem, method=method, t_eval=prob.t_eval, rtol=prob.rtol,
                                atol=prob.atol)

            try:
                with _warnings_as_notes(notes, name):
                    sol, first_s = timed(solve)
            except ValueError as exc:
                if "method" in str(exc):
                    if label == "":  # one note per method
                        notes.append(f"paramest {method}: not offered by this version; skipped")
                else:
                    notes.append(f"{name}: failed ({exc}); skipped")
                continue
            except Exception as exc:
                notes.append(f"{name}: failed ({type(exc).__name__}: {exc}); skipped")
                continue

            def solve_y(solve: Callable[[], Any] = solve) -> tuple[np.ndarray, bool]:
                s = solve()
                return s.y, bool(s.success)

            c = Contender(name, solve_y, setup_s=setup_s, first_s=first_s,
                          steps=_int_or_none(getattr(sol, "n_accepted", None)),
                          rejected=_int_or_none(getattr(sol, "n_rejected", None)),
                          nfev=_int_or_none(getattr(sol, "nfev", None)),
                          njev=_int_or_none(getattr(sol, "njev", None)),
                          nlu=_int_or_none(getattr(sol, "nlu", None)),
                          y=np.asarray(sol.y), success=bool(sol.success))
            if not sol.success:
                c.notes.append(str(sol.message))
            switches = getattr(sol, "switches", None)
            if switches:
                shown = ", ".join(f"t={s[0]:.3g} {s[1]}->{s[2]}" for s in list(switches)[:3])
                more = f" (+{len(switches) - 3} more)" if len(switches) > 3 else ""
                c.notes.append(f"{len(switches)} method switch(es): {shown}{more}")
            out.append(c)
    return out


def scipy_contenders(prob: Problem) -> list[Contender]:
    out = []
    for method in prob.scipy_methods:
        def solve(method: str = method, t_eval: Any = prob.t_eval) -> Any:
            return solve_ivp(prob.fun_numpy, prob.t_span, prob.y0, method=method,
                             t_eval=t_eval, args=(prob.p,), jac=prob.jac_numpy,
                             rtol=prob.rtol, atol=prob.atol)

        sol, first_s = timed(solve)
        # With t_eval, solve_ivp hides the steps; an untimed solve without it shows the
        # accepted ones (it reports no rejected steps).
        steps = len(solve(t_eval=None).t) - 1

        def solve_y(solve: Callable[[], Any] = solve) -> tuple[np.ndarray, bool]:
            s = solve()
            return s.y, bool(s.success)

        out.append(Contender(f"scipy {method}", solve_y, first_s=first_s, steps=steps,
                             nfev=int(sol.nfev), njev=int(sol.njev), nlu=int(sol.nlu),
                             y=sol.y, success=bool(sol.success)))
    return out


def _numbalsoda_callback(fun: Callable[..., None], n: int, n_p: int, count: bool) -> Any:
    """Compile `fun` into numbalsoda's C callback for `n` states and `n_p` parameters.

    The raw pointers are wrapped as arrays, so the model can use ``y.shape``. With
    `count`, the callback also increments p[n_p] on every call: numbalsoda reports no
    evaluation count, so a separate untimed solve counts them this way.
    """
    inner = njit(fun)
    if not count:
        @cfunc(RHS_SIG)
        def rhs(t, u, du, p):
            inner(t, carray(u, (n,)), carray(p, (n_p,)), carray(du, (n,)))
    else:
        @cfunc(RHS_SIG)
        def rhs(t, u, du, p):
            inner(t, carray(u, (n,)), carray(p, (n_p,)), carray(du, (n,)))
            p[n_p] += 1.0
    return rhs


def _njit_loop(integrator: Any) -> Any:
    """An njit function that runs `k` solves with `integrator`."""

    @njit
    def loop(funcptr, u0, t_eval, data, rtol, atol, k):
        acc = 0.0
        for _ in range(k):
            usol, _ok = integrator(funcptr, u0, t_eval, data, rtol, atol)
            # Use the result so that the solve cannot be optimised away.
            acc += usol[-1, 0]
        return acc

    return loop


def numbalsoda_contenders(nbl: Any, prob: Problem) -> list[Contender]:
    n, n_p = len(prob.y0), len(prob.p)
    rhs, setup_s = timed(_numbalsoda_callback, prob.fun, n, n_p, False)
    counting = _numbalsoda_callback(prob.fun, n, n_p, True)
    funcptr = rhs.address
    # Private copies: the solver receives raw pointers and nothing stops it writing through them.
    u0 = np.array(prob.y0, dtype=np.float64)
    t_eval = np.array(prob.t_eval, dtype=np.float64)
    data = np.array(prob.p, dtype=np.float64)
    rtol, atol = prob.rtol, prob.atol

    def solve() -> tuple[np.ndarray, bool]:
        usol, ok = nbl.lsoda(funcptr, u0, t_eval, data=data, rtol=rtol, atol=atol)
        return usol.T, bool(ok)

    (y, ok), first_s = timed(solve)
    count_data = np.append(data, 0.0)
    nbl.lsoda(counting.address, u0, t_eval, data=count_data, rtol=rtol, atol=atol)
    nfev = int(count_data[-1])
    note = "nfev counted by the callback, includes its finite-difference Jacobians"
    out = [Contender(LSODA, solve, setup_s=setup_s, first_s=first_s, nfev=nfev, y=y,
                     success=ok, notes=[note])]

    # The same solver called from compiled code: no Python call overhead per solve.
    loop = _njit_loop(nbl.lsoda)

    def batch(k: int) -> None:
        loop(funcptr, u0, t_eval, data, rtol, atol, k)

    _, first_loop_s = timed(batch, 1)
    out.append(Contender(f"{LSODA} (njit loop)", solve, batch=batch, setup_s=setup_s,
                         first_s=first_loop_s, nfev=nfev, y=y, success=ok))
    return out


# --- running and reporting -----------------------------------------------------

def errors(c: Contender, prob: Problem) -> dict[str, float]:
    """Errors against the reference.

    Robertson ("relative"): the largest relative error over the components at the end,
    and the mixed error |err| / (atol + |ref|) (atol of the solve) at the end and over
    all output times. Reaction-diffusion ("absolute", u is O(1)): the largest absolute
    error at the end and over all output times.
    """
    nan = {"end": math.nan, "mixed_end": math.nan, "mixed_all": math.nan, "all": math.nan}
    if c.y is None or c.y.shape != prob.y_ref.shape or not np.all(np.isfinite(c.y)):
        return nan
    diff = np.abs(c.y - prob.y_ref)
    if prob.error_kind == "relative":
        ref = np.abs(prob.y_ref)
        mixed = diff / (prob.atol + ref)
        return {"end": float(np.max(diff[:, -1] / ref[:, -1])),
                "mixed_end": float(np.max(mixed[:, -1])), "mixed_all": float(np.max(mixed))}
    return {"end": float(np.max(diff[:, -1])), "all": float(np.max(diff))}


def _import(module: str) -> tuple[Any | None, float, str | None]:
    """timed_import, also surviving a package that fails with an error other than ImportError."""
    t0 = time.perf_counter()
    try:
        return timed_import(module)
    except Exception as exc:  # e.g. a half-finished edit of paramest; time the peers anyway
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"


def ratio(num: float, den: float) -> float:
    return num / den if den > 0 and math.isfinite(num) and math.isfinite(den) else math.nan


def _count(x: int | None) -> str:
    return "-" if x is None else str(x)


def run_problem(prob: Problem, pe: Any, nbl: Any, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== {prob.title}: t in [{prob.t_span[0]:g}, {prob.t_span[1]:g}], "
          f"{len(prob.t_eval)} output times, rtol={prob.rtol:g}, atol={prob.atol:g}")
    print(f"reference: {prob.ref_note}")
    notes: list[str] = []
    contenders: list[Contender] = []
    if pe is not None:
        contenders += paramest_contenders(pe, prob, notes)
    contenders += scipy_contenders(prob)
    if nbl is not None:
        contenders += numbalsoda_contenders(nbl, prob)

    y0, p = prob.y0.copy(), prob.p.copy()
    timings = interleaved_timings({c.name: c.timing_batch() for c in contenders},
                                  rounds=args.rounds, target_s=args.batch_seconds)
    # Every contender shares the problem's arrays; a solver that wrote into them
    # would silently change what the others solve.
    if not (np.array_equal(y0, prob.y0) and np.array_equal(p, prob.p)):
        raise RuntimeError(f"{prob.name}: y0 or p was modified during timing")

    def med(name: str) -> float:
        return timings[name].median if name in timings else math.nan

    base, lsoda = med(BASELINE), med(LSODA)
    relative = prob.error_kind == "relative"
    t_end = f"{prob.t_span[1]:g}"
    err_headers = ([f"rel err {t_end}", f"mixed {t_end}", "mixed max"] if relative
                   else [f"err t={t_end}", "max err"])
    headers = ["solver", "median", "IQR/med", f"vs {BASE_METHOD}", "vs lsoda", "setup",
               "1st call", "steps", "rej", "nfev", "njev", "nlu", *err_headers, "ok"]
    rows, records = [], []
    for c in contenders:
        t = timings[c.name]
        e = errors(c, prob)
        err_cells = ([fmt_num(e["end"]), fmt_num(e["mixed_end"]), fmt_num(e["mixed_all"])]
                     if relative else [fmt_num(e["end"]), fmt_num(e["all"])])
        rows.append([
            c.name, fmt_time(t.median), fmt_pct(t.spread),
            fmt_num(ratio(t.median, base), ".2f"), fmt_num(ratio(t.median, lsoda), ".2f"),
            fmt_time(c.setup_s), fmt_time(c.first_s), _count(c.steps), _count(c.rejected),
            _count(c.nfev), _count(c.njev), _count(c.nlu), *err_cells,
            "yes" if c.success else "NO",
        ])
        records.append({
            "name": c.name, **t.as_dict(), "relative_to_baseline": ratio(t.median, base),
            "relative_to_lsoda": ratio(t.median, lsoda), "setup_s": c.setup_s,
            "first_call_s": c.first_s, "steps": c.steps, "rejected": c.rejected,
            "nfev": c.nfev, "njev": c.njev, "nlu": c.nlu, "errors": e,
            "success": c.success, "notes": c.notes,
        })
        notes += [f"{c.name}: {n}" for n in c.notes]
    print(format_table(headers, rows))

    ratios = {
        f"{BASELINE} / {LSODA}": (ratio(base, lsoda), "<=", 0.8),
        f"{BASELINE} +jac / {LSODA}": (ratio(med(f"{BASELINE} +jac"), lsoda), None, None),
        f"{BASELINE} / {LSODA} (njit loop)": (ratio(base, med(f"{LSODA} (njit loop)")),
                                              None, None),
        f"scipy LSODA / {BASELINE}": (ratio(med("scipy LSODA"), base), None, None),
    }
    for label, (value, op, goal) in ratios.items():
        if math.isnan(value):
            verdict = "  (n/a: a contender is missing)"
        elif op is None:
            verdict = ""
        else:
            met = value <= goal if op == "<=" else value >= goal
            verdict = f"  (target {op} {goal:g}: {'met' if met else 'NOT met'})"
        print(f"{label}: {fmt_num(value, '.3g')}{verdict}")
    for n in notes:
        print(f"note: {n}")
    return {
        "problem": prob.name, "title": prob.title, "size": prob.size,
        "reference": prob.ref_note, "rtol": prob.rtol, "atol": prob.atol,
        "n_times": len(prob.t_eval), "t_span": prob.t_span, "results": records,
        "ratios": {k: v[0] for k, v in ratios.items()}, "notes": notes,
    }


def scaling_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Time per solve against n for each tool, with the log-log slopes between sizes."""
    sizes = [r["size"] for r in results]
    names: list[str] = []
    for r in results:
        names += [x["name"] for x in r["results"] if x["name"] not in names]
    headers = ["solver", *(f"n={n}" for n in sizes),
               *(f"slope {a}->{b}" for a, b in zip(sizes, sizes[1:], strict=False)),
               "fit slope", f"max err n={sizes[-1]}"]
    rows, out = [], {}
    for name in names:
        times, errs = [], []
        for r in results:
            rec = next((x for x in r["results"] if x["name"] == name), None)
            ok = rec is not None and rec["success"]
            times.append(rec["median_s"] if ok else math.nan)
            errs.append(rec["errors"]["all"] if ok else math.nan)
        slopes = [math.log(t2 / t1) / math.log(n2 / n1) if t1 > 0 and t2 > 0 else math.nan
                  for (n1, t1), (n2, t2) in zip(zip(sizes, times, strict=True),
                                                zip(sizes[1:], times[1:], strict=True),
                                                strict=False)]
        finite = [(n, t) for n, t in zip(sizes, times, strict=True) if math.isfinite(t)]
        fit = math.nan
        if len(finite) == len(sizes) >= 2:
            fit = float(np.polyfit(np.log([n for n, _ in finite]),
                                   np.log([t for _, t in finite]), 1)[0])
        rows.append([name, *(fmt_time(t) for t in times), *(fmt_num(s, ".2f") for s in slopes),
                     fmt_num(fit, ".2f"), fmt_num(errs[-1])])
        out[name] = {"sizes": sizes, "median_s": times, "slopes": slopes, "fit_slope": fit,
                     "max_abs_err": errs}
    print("\n=== reaction-diffusion: median time per solve against n "
          "(slope = d log(time) / d log(n))")
    print(format_table(headers, rows))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, short batches")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--rounds", type=int, help="timing rounds per contender")
    parser.add_argument("--batch-seconds", type=float, help="target length of one timed batch")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help=f"reaction-diffusion sizes (default {' '.join(map(str, RD_SIZES))})")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 15
    if args.batch_seconds is None:
        args.batch_seconds = 0.01 if args.quick else 0.1
    sizes = tuple(args.sizes or RD_SIZES)

    pe, pe_import_s, pe_err = _import("paramest")
    if pe is not None and not hasattr(pe, "solve"):
        pe, pe_err = None, "paramest has no `solve`"
    nbl, nbl_import_s, nbl_err = _import("numbalsoda")

    versions = {
        "paramest": (getattr(pe, "__version__", None) or package_version("paramest"))
        if pe is not None else None,
        "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "numbalsoda": package_version("numbalsoda") if nbl is not None else None,
    }
    info = machine_info()
    print(f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs")
    print("versions: " + ", ".join(f"{k} {v or 'not available'}" for k, v in versions.items()))
    if pe is None:
        print(f"note: paramest not available ({pe_err}); timing the other solvers only")
    else:
        print(f"paramest import: {fmt_time(pe_import_s)}")
    if nbl is None:
        print(f"note: numbalsoda not available ({nbl_err}); skipped. "
              "Install with `pip install numbalsoda` (needs a Fortran compiler).")
    else:
        print(f"numbalsoda import: {fmt_time(nbl_import_s)}")
    print(f"timing: {args.rounds} interleaved rounds, batches of ~{fmt_time(args.batch_seconds)}; "
          "median time per solve. scipy gets the analytic Jacobian; numbalsoda's lsoda takes "
          "none (finite differences); paramest runs with its default complex-step Jacobian "
          "and, marked +jac, with the analytic one.")

    t0 = time.perf_counter()
    results = [run_problem(robertson_problem(args.quick), pe, nbl, args)]
    rd_results = [run_problem(reaction_diffusion_problem(n, args.quick), pe, nbl, args)
                  for n in sizes]
    scaling = scaling_summary(rd_results) if len(sizes) > 1 else {}
    results += rd_results
    print(f"\ntotal benchmark time: {fmt_time(time.perf_counter() - t0)}")

    if args.json:
        write_json(args.json, {
            "benchmark": "ode_stiff", "machine": info, "versions": versions,
            "import_s": {"paramest": pe_import_s if pe is not None else None,
                         "numbalsoda": nbl_import_s if nbl is not None else None},
            "rounds": args.rounds, "batch_seconds": args.batch_seconds, "problems": results,
            "reaction_diffusion_scaling": scaling,
        })
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
