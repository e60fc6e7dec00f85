"""Single-solve speed and accuracy of paramest against other ODE solvers.

Two non-stiff problems, each solved at rtol=1e-6, atol=1e-8 with output at 101
equally spaced times:

* Lotka-Volterra (2 states, 4 parameters) on [0, 10]; the reference is
  scipy's DOP853 at rtol = atol = 1e-13.
* a 20-state linear chain y1' = -y1, yi' = y(i-1) - yi on [0, 10]; the
  reference is the exact solution yi(t) = t**(i-1) exp(-t) / (i-1)!.

Every contender is called the way a user would call it (paramest and scipy from
Python, numbalsoda from Python and from inside an njit loop), timed in
interleaved rounds in one process, and checked against the reference.

Run ``python benchmarks/ode_solve.py`` (``--quick`` for a smoke run,
``--json PATH`` to save the results). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
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
from numba import cfunc, njit, types
from scipy.integrate import solve_ivp
from scipy.special import factorial

RTOL = 1e-6
ATOL = 1e-8
N_OUT = 101
N_CHAIN = 20
PARAMEST_METHODS = ("Tsit5", "DP5", "BS3", "Vern7")
BASELINE = "paramest Tsit5"

# numbalsoda's right-hand-side signature, f(t, u, du, p) on raw pointers. It is
# spelled out here so that the models can be written once without importing
# numbalsoda (an optional peer).
RHS_SIG = types.void(
    types.double, types.CPointer(types.double), types.CPointer(types.double),
    types.CPointer(types.double),
)


# --- models ---------------------------------------------------------------
# Written once in paramest's in-place form. paramest takes them as plain Python;
# numbalsoda gets the same code compiled into a C callback, so both solve
# exactly the same model.

def lotka_volterra(t, y, p, dydt):
    dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1]


def linear_chain(t, y, p, dydt):
    # N_CHAIN rather than len(y): the C callback sees bare pointers without a length.
    dydt[0] = -p[0] * y[0]
    for i in range(1, N_CHAIN):
        dydt[i] = p[0] * (y[i - 1] - y[i])


# scipy's solve_ivp wants f(t, y) -> array; these are the idiomatic NumPy forms.

def lotka_volterra_numpy(t, y, p):
    x, z = y
    return np.array([p[0] * x - p[1] * x * z, -p[2] * z + p[3] * x * z])


def linear_chain_numpy(t, y, p):
    dydt = -p[0] * y
    dydt[1:] += p[0] * y[:-1]
    return dydt


@dataclass
class Problem:
    name: str
    title: str
    fun: Callable[..., None]
    fun_numpy: Callable[..., np.ndarray]
    y0: np.ndarray
    p: np.ndarray
    t_eval: np.ndarray
    y_ref: np.ndarray  # (n_states, n_times)
    ref_note: str
    state_names: list[str] | None = None
    param_names: list[str] | None = None

    @property
    def t_span(self) -> tuple[float, float]:
        return float(self.t_eval[0]), float(self.t_eval[-1])


def lotka_volterra_problem() -> Problem:
    t_eval = np.linspace(0.0, 10.0, N_OUT)
    y0 = np.array([1.0, 1.0])
    p = np.array([1.5, 1.0, 3.0, 1.0])

    def ref(tol: float) -> Any:
        return solve_ivp(lotka_volterra_numpy, (0.0, 10.0), y0, method="DOP853", t_eval=t_eval,
                         args=(p,), rtol=tol, atol=tol)

    sol = ref(1e-13)
    # The reference is only as good as its own error; a looser solve gives an
    # order-of-magnitude estimate of that error to compare the contenders with.
    check = ref(1e-12)
    est = float(np.max(np.abs(check.y - sol.y)))
    note = (f"scipy DOP853 rtol=atol=1e-13 ({sol.nfev} f evals); "
            f"|ref(1e-12) - ref(1e-13)| max = {est:.1e}; y(10) = {sol.y[:, -1]!r}")
    return Problem("lotka_volterra", "Lotka-Volterra, 2 states", lotka_volterra,
                   lotka_volterra_numpy, y0, p, t_eval, sol.y, note,
                   state_names=["prey", "predator"], param_names=["a", "b", "c", "d"])


def linear_chain_problem() -> Problem:
    t_eval = np.linspace(0.0, 10.0, N_OUT)
    y0 = np.zeros(N_CHAIN)
    y0[0] = 1.0
    p = np.array([1.0])
    # y_i(t) = t^(i-1) e^(-t) / (i-1)!  (unit rate); numpy's 0**0 = 1 gives y(0) = e_1.
    k = np.arange(N_CHAIN)[:, None]
    y_ref = t_eval[None, :] ** k * np.exp(-t_eval)[None, :] / factorial(k)
    note = f"exact solution; y(10)[0, 9, 19] = {y_ref[[0, 9, 19], -1]!r}"
    return Problem("linear_chain", f"linear chain, {N_CHAIN} states", linear_chain,
                   linear_chain_numpy, y0, p, t_eval, y_ref, note)


# --- contenders -------------------------------------------------------------

@dataclass
class Contender:
    name: str
    solve: Callable[[], tuple[np.ndarray, bool]]  # -> y (n_states, n_times), success
    batch: Batch | None = None  # k solves; defaults to calling `solve` k times
    setup_s: float = math.nan  # building the problem / compiling the callback
    first_s: float = math.nan  # first solve, including any compilation it triggers
    nfev: int | None = None
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


def paramest_contenders(pe: Any, prob: Problem, notes: list[str]) -> list[Contender]:
    try:
        problem, setup_s = timed(pe.ODEProblem, prob.fun, y0=prob.y0, t_span=prob.t_span,
                                 p=prob.p, state_names=prob.state_names,
                                 param_names=prob.param_names)
    except Exception as exc:  # a broken paramest should not hide the peers' numbers
        notes.append(f"paramest: ODEProblem failed ({type(exc).__name__}: {exc}); skipped")
        return []
    out = []
    for method in PARAMEST_METHODS:
        def solve(method: str = method) -> Any:
            return pe.solve(problem, method, t_eval=prob.t_eval, rtol=RTOL, atol=ATOL)

        try:
            sol, first_s = timed(solve)
        except ValueError as exc:
            if "`method`" in str(exc):
                notes.append(f"paramest {method}: not offered by this version; skipped")
                continue
            notes.append(f"paramest {method}: failed ({exc}); skipped")
            continue
        except Exception as exc:
            notes.append(f"paramest {method}: failed ({type(exc).__name__}: {exc}); skipped")
            continue

        def solve_y(solve: Callable[[], Any] = solve) -> tuple[np.ndarray, bool]:
            s = solve()
            return s.y, bool(s.success)

        c = Contender(f"paramest {method}", solve_y, setup_s=setup_s, first_s=first_s,
                      nfev=int(sol.nfev), y=np.asarray(sol.y), success=bool(sol.success))
        if not sol.success:
            c.notes.append(str(sol.message))
        out.append(c)
    return out


def scipy_contenders(prob: Problem) -> list[Contender]:
    out = []
    for method in ("RK45", "DOP853", "LSODA"):
        def solve(method: str = method) -> Any:
            return solve_ivp(prob.fun_numpy, prob.t_span, prob.y0, method=method,
                             t_eval=prob.t_eval, args=(prob.p,), rtol=RTOL, atol=ATOL)

        sol, first_s = timed(solve)

        def solve_y(solve: Callable[[], Any] = solve) -> tuple[np.ndarray, bool]:
            s = solve()
            return s.y, bool(s.success)

        # No setup step: scipy calls the Python function as it is.
        c = Contender(f"scipy {method}", solve_y, first_s=first_s,
                      nfev=int(sol.nfev), y=sol.y, success=bool(sol.success))
        if sol.njev:
            c.notes.append(f"+{sol.njev} Jacobian evaluations")
        out.append(c)
    return out


def _numbalsoda_callback(fun: Callable[..., None], counter_index: int | None) -> Any:
    """Compile `fun` into numbalsoda's C callback.

    With `counter_index`, the callback also increments p[counter_index] on every
    call: numbalsoda reports no evaluation count, so a separate untimed solve
    counts them this way.
    """
    inner = njit(fun)
    if counter_index is None:
        @cfunc(RHS_SIG)
        def rhs(t, u, du, p):
            inner(t, u, p, du)  # paramest's argument order
    else:
        ci = counter_index

        @cfunc(RHS_SIG)
        def rhs(t, u, du, p):
            inner(t, u, p, du)  # paramest's argument order
            p[ci] += 1.0
    return rhs


def _njit_loop(integrator: Any) -> Any:
    """An njit function that runs `k` solves with `integrator`."""

    @njit
    def loop(funcptr, u0, t_eval, data, k):
        acc = 0.0
        for _ in range(k):
            usol, _ok = integrator(funcptr, u0, t_eval, data, RTOL, ATOL)
            # Use the result so that the solve cannot be optimised away.
            acc += usol[-1, 0]
        return acc

    return loop


def numbalsoda_contenders(nbl: Any, prob: Problem) -> list[Contender]:
    rhs, setup_s = timed(_numbalsoda_callback, prob.fun, None)
    counting = _numbalsoda_callback(prob.fun, len(prob.p))
    funcptr = rhs.address
    # Private copies: the solver receives raw pointers and nothing stops it writing through them.
    u0 = np.array(prob.y0, dtype=np.float64)
    t_eval = np.array(prob.t_eval, dtype=np.float64)
    data = np.array(prob.p, dtype=np.float64)
    out = []
    for name in ("dop853", "lsoda"):
        integrator = getattr(nbl, name)

        def solve(integrator: Any = integrator) -> tuple[np.ndarray, bool]:
            usol, ok = integrator(funcptr, u0, t_eval, data=data, rtol=RTOL, atol=ATOL)
            return usol.T, bool(ok)

        (y, ok), first_s = timed(solve)
        count_data = np.append(data, 0.0)
        integrator(counting.address, u0, t_eval, data=count_data, rtol=RTOL, atol=ATOL)
        nfev = int(count_data[-1])
        out.append(Contender(f"numbalsoda {name}", solve, setup_s=setup_s, first_s=first_s,
                             nfev=nfev, y=y, success=ok))

        # The same solver called from compiled code: no Python call overhead per solve.
        loop = _njit_loop(integrator)

        def batch(k: int, loop: Any = loop) -> None:
            loop(funcptr, u0, t_eval, data, k)

        _, first_loop_s = timed(batch, 1)
        out.append(Contender(f"numbalsoda {name} (njit loop)", solve, batch=batch,
                             setup_s=setup_s, first_s=first_loop_s, nfev=nfev, y=y,
                             success=ok))
    return out


# --- running and reporting -------------------------------------------------

def errors(c: Contender, prob: Problem) -> tuple[float, float]:
    if c.y is None or c.y.shape != prob.y_ref.shape:
        return math.nan, math.nan
    diff = np.abs(c.y - prob.y_ref)
    return float(np.max(diff[:, -1])), float(np.max(diff))


def ratio(num: float, den: float) -> float:
    return num / den if den > 0 and math.isfinite(num) and math.isfinite(den) else math.nan


def run_problem(prob: Problem, pe: Any, nbl: Any, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== {prob.title}: t in [{prob.t_span[0]:g}, {prob.t_span[1]:g}], "
          f"{len(prob.t_eval)} output times, rtol={RTOL:g}, atol={ATOL:g}")
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
    base = timings[BASELINE].median if BASELINE in timings else math.nan

    headers = ["solver", "median", "IQR/med", "vs Tsit5", "setup", "1st call", "nfev",
               "err t=10", "max err", "ok"]
    rows = []
    records = []
    for c in contenders:
        t = timings[c.name]
        e_end, e_max = errors(c, prob)
        rows.append([
            c.name, fmt_time(t.median), fmt_pct(t.spread),
            fmt_num(ratio(t.median, base), ".2f"), fmt_time(c.setup_s), fmt_time(c.first_s),
            "-" if c.nfev is None else str(c.nfev), fmt_num(e_end), fmt_num(e_max),
            "yes" if c.success else "NO",
        ])
        records.append({
            "name": c.name, **t.as_dict(), "relative_to_baseline": ratio(t.median, base),
            "setup_s": c.setup_s, "first_call_s": c.first_s, "nfev": c.nfev,
            "max_abs_err_final": e_end, "max_abs_err_all": e_max, "success": c.success,
            "notes": c.notes,
        })
        notes += [f"{c.name}: {n}" for n in c.notes]
    print(format_table(headers, rows))

    def med(name: str) -> float:
        return timings[name].median if name in timings else math.nan

    targets = {
        "paramest Tsit5 / numbalsoda dop853": (ratio(med(BASELINE), med("numbalsoda dop853")),
                                               "<=", 0.6),
        "scipy RK45 / paramest Tsit5": (ratio(med("scipy RK45"), med(BASELINE)), ">=", 400.0),
    }
    for label, (value, op, goal) in targets.items():
        if math.isnan(value):
            verdict = "n/a (a contender is missing)"
        else:
            met = value <= goal if op == "<=" else value >= goal
            verdict = "met" if met else "NOT met"
        print(f"{label}: {fmt_num(value, '.3g')}  (target {op} {goal:g}: {verdict})")
    for n in notes:
        print(f"note: {n}")
    return {
        "problem": prob.name, "title": prob.title, "reference": prob.ref_note,
        "rtol": RTOL, "atol": ATOL, "n_times": len(prob.t_eval), "t_span": prob.t_span,
        "results": records,
        "ratios": {k: v[0] for k, v in targets.items()},
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, short batches")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--rounds", type=int, help="timing rounds per contender")
    parser.add_argument("--batch-seconds", type=float, help="target length of one timed batch")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 25
    if args.batch_seconds is None:
        args.batch_seconds = 0.005 if args.quick else 0.05

    pe, pe_import_s, pe_err = timed_import("paramest")
    if pe is not None and not hasattr(pe, "solve"):
        pe, pe_err = None, "paramest has no `solve`"
    nbl, nbl_import_s, nbl_err = timed_import("numbalsoda")

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
          "median time per solve")

    t0 = time.perf_counter()
    problems = [lotka_volterra_problem(), linear_chain_problem()]
    results = [run_problem(p, pe, nbl, args) for p in problems]
    print(f"\ntotal benchmark time: {fmt_time(time.perf_counter() - t0)}")

    if args.json:
        write_json(args.json, {
            "benchmark": "ode_solve", "machine": info, "versions": versions,
            "import_s": {"paramest": pe_import_s if pe is not None else None,
                         "numbalsoda": nbl_import_s if nbl is not None else None},
            "rounds": args.rounds, "batch_seconds": args.batch_seconds, "problems": results,
        })
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
