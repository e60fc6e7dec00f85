"""Parameter estimation: paramest's ``fit`` against least-squares fits built from other tools.

Three workloads:

* (1) Lotka-Volterra, 4 parameters: ``y0' = a y0 - b y0 y1``, ``y1' = -c y1 + d y0 y1``,
  true ``p = (1.5, 1, 3, 1)``, ``y0 = (1, 1)``, 101 outputs on ``[0, 10]``; data = the true
  solution (scipy DOP853, rtol = atol = 1e-13) times ``1 + 0.05 N(0, 1)``
  (``np.random.default_rng(0)``); start ``x0 = (1, 0.8, 2.5, 1.3)``; residual
  ``model - data`` (sigma = 1), cost ``0.5 sum r^2``; every ODE solve at rtol=1e-8,
  atol=1e-10. Routes: ``pe.fit`` (trf and lm: exact forward-sensitivity Jacobian);
  (a) scipy ``least_squares`` (trf, 2-point differences) around ``solve_ivp`` LSODA;
  (b) the same around ``paramest.solve`` (Tsit5); (c) lmfit (``leastsq``, MINPACK with
  forward differences) around ``solve_ivp`` LSODA and around ``paramest.solve``;
  (d) CasADi: CVODES over the output grid, the residual and its forward-AD Jacobian as
  CasADi Functions, fed to scipy ``least_squares``. All should reach cost 1.94580.
* (2) Robertson kinetics, the three rates on a log scale from 8 starts:
  ``(k1, k2, k3) = (0.04, 3e7, 1e4)``, ``y0 = (1, 0, 0)``, 40 outputs log-spaced on
  ``[1e-2, 1e4]`` (integration from t = 0), data with 2 % multiplicative noise
  (``default_rng(1)``), sigma per observable = 0.02 max_t |data_i| (``y2`` is ~1e-5: an
  unweighted fit would ignore it); bounds ``(p / 100, 100 p)``, start ``x0 = p (3, 1/3, 3)``
  plus 7 Latin-hypercube points (``n_starts=8, seed=0``). Peer: scipy ``least_squares``
  on ``log k`` around ``solve_ivp`` LSODA with the analytic Jacobian, from the same starts
  when paramest reports them (else from its own Latin hypercube), all 8 when that fits in
  ``--scipy-budget`` seconds, else one.
* (3) the first fit of a brand-new model in a fresh process, compilation included, with
  paramest's kernels already in Numba's on-disk cache: a child process imports paramest,
  imports a model written to a new module (random name and coefficient, so nothing of it
  is cached), builds the ODEProblem and fits Lotka-Volterra's data. Target: ODEProblem +
  first fit <= 2 s.

Fits are timed whole (wall time per fit, median over interleaved rounds after one first
call that is reported separately: for paramest it includes compiling the model and any
kernel not yet cached). Targets: the fit is >= 150x faster than (a), >= 2x faster than (b).

Run ``python benchmarks/fit.py`` (``--quick`` for a smoke run, ``--only lv rob latency``
for some workloads, ``--json PATH`` to save the results). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    ratio,
    timed,
    timed_import,
    write_json,
)
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares
from scipy.stats import qmc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.problems import (  # noqa: E402
    LV_P,
    LV_Y0,
    lotka_volterra,
    lotka_volterra_reference,
)

RTOL, ATOL = 1e-8, 1e-10  # pe.fit's defaults; every route solves at these

LV_T = np.linspace(0.0, 10.0, 101)
LV_X0 = np.array([1.0, 0.8, 2.5, 1.3])
LV_NAMES = ("a", "b", "c", "d")
LV_NOISE, LV_SEED = 0.05, 0
LV_EXPECTED_COST = 1.94580  # with tight solves (issue W1-5)

ROB_P = np.array([0.04, 3e7, 1e4])
ROB_Y0 = np.array([1.0, 0.0, 0.0])
ROB_T = np.logspace(-2.0, 4.0, 40)
ROB_X0 = ROB_P * np.array([3.0, 1.0 / 3.0, 3.0])
ROB_NOISE, ROB_SEED = 0.02, 1
ROB_STARTS, ROB_START_SEED = 8, 0
ROB_LOWER, ROB_UPPER = ROB_P / 100.0, ROB_P * 100.0

TARGETS = {
    "speedup_vs_scipy_lsoda": 150.0,  # (a) / pe.fit trf, at least
    "speedup_vs_scipy_paramest_solve": 2.0,  # (b) / pe.fit trf, at least
    "first_fit_new_model_s": 2.0,  # ODEProblem + first fit in a fresh process, at most
}

BASE = "paramest fit trf"
ROUTE_A = "(a) scipy least_squares + solve_ivp LSODA"
ROUTE_B = "(b) scipy least_squares + paramest.solve Tsit5"
NOT_YET = "paramest.fit not available yet"


# --- models --------------------------------------------------------------------------
# paramest gets the in-place models (Lotka-Volterra from tests/problems.py); scipy,
# lmfit and CasADi get the same equations in their own form.

def robertson(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1]
    dydt[2] = p[1] * y[1] * y[1]


def lv_f(t, y, p):
    return np.array([p[0] * y[0] - p[1] * y[0] * y[1], -p[2] * y[1] + p[3] * y[0] * y[1]])


def rob_f(t, y, p):
    y1, y2, y3 = y
    return np.array([-p[0] * y1 + p[2] * y2 * y3,
                     p[0] * y1 - p[2] * y2 * y3 - p[1] * y2 * y2,
                     p[1] * y2 * y2])


def rob_jac(t, y, p):
    _, y2, y3 = y
    return np.array([[-p[0], p[2] * y3, p[2] * y2],
                     [p[0], -p[2] * y3 - 2.0 * p[1] * y2, -p[2] * y2],
                     [0.0, 2.0 * p[1] * y2, 0.0]])


# --- data ----------------------------------------------------------------------------

def lv_data() -> np.ndarray:
    """(2, 101): the true solution times 1 + 0.05 N(0, 1), rng seed 0."""
    y_true = lotka_volterra_reference(LV_T)
    rng = np.random.default_rng(LV_SEED)
    return y_true * (1.0 + LV_NOISE * rng.standard_normal(y_true.shape))


def rob_data() -> tuple[np.ndarray, np.ndarray]:
    """(3, 40) noisy data and sigma per observable (0.02 x the largest value)."""
    ref = solve_ivp(rob_f, (0.0, ROB_T[-1]), ROB_Y0, method="LSODA", t_eval=ROB_T,
                    args=(ROB_P,), jac=rob_jac, rtol=1e-11, atol=1e-16)
    assert ref.success, ref.message
    rng = np.random.default_rng(ROB_SEED)
    y = ref.y * (1.0 + ROB_NOISE * rng.standard_normal(ref.y.shape))
    return y, ROB_NOISE * np.max(np.abs(y), axis=1)


# --- routes --------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one fit returned, in the same form for every route."""

    x: np.ndarray
    cost: float
    nfev: int | None = None
    njev: int | None = None
    solves: int | None = None  # ODE solves counted by the benchmark (difference quotients incl.)
    success: bool = True
    message: str = ""
    failed_solves: int = 0  # trial points where the ODE solve failed (rejected steps)


@dataclass
class Route:
    name: str
    run: Callable[[], Outcome]
    setup_s: float = math.nan  # building the route (problem construction, CasADi graph)
    first_s: float = math.nan  # first fit (for paramest: compilation included)
    outcome: Outcome | None = None
    notes: list[str] = field(default_factory=list)

    def batch(self) -> Batch:
        run = self.run

        def go(k: int) -> None:
            for _ in range(k):
                run()

        return go


def _add(out: list[Route], notes: list[str], name: str,
         build: Callable[[], Callable[[], Outcome]]) -> None:
    """Build a route (timed as setup), fit once (timed as first fit), keep it.

    A route that fails is reported in a note, so the others' numbers still come out.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run, setup_s = timed(build)
            outcome, first_s = timed(run)
    except Exception as exc:
        notes.append(f"{name}: failed ({type(exc).__name__}: {str(exc)[:300]}); skipped")
        return
    out.append(Route(name, run, setup_s, first_s, outcome))


FAILED_RESIDUAL = 1e3  # every residual entry after a failed solve: the step gets rejected


class Counter:
    """Counts the ODE solves of one fit (reset at the start of every fit)."""

    def __init__(self) -> None:
        self.n = 0
        self.failed = 0  # solves that failed (any fit so far)


def _least_squares_outcome(res: Any, counter: Counter, x: np.ndarray | None = None,
                           failed0: int = 0) -> Outcome:
    return Outcome(np.asarray(res.x if x is None else x, dtype=float), float(res.cost),
                   int(res.nfev), None if res.njev is None else int(res.njev), counter.n,
                   bool(res.success), str(res.message), counter.failed - failed0)


def _fit_outcome(res: Any) -> Outcome:
    """pe.fit's FitResult as an Outcome."""
    def count(name: str) -> int | None:
        v = getattr(res, name, None)
        return None if v is None else int(v)

    return Outcome(np.asarray(res.x, dtype=float), float(res.cost), count("nfev"),
                   count("njev"), None, bool(getattr(res, "success", True)),
                   str(getattr(res, "message", "")), count("failures") or 0)


# --- (1) Lotka-Volterra --------------------------------------------------------------

Residual = Callable[[np.ndarray], "np.ndarray | None"]  # None: the solve failed


def lv_residual_scipy(data: np.ndarray) -> Residual:
    def residual(p: np.ndarray) -> np.ndarray | None:
        sol = solve_ivp(lv_f, (LV_T[0], LV_T[-1]), LV_Y0, method="LSODA", t_eval=LV_T,
                        args=(p,), rtol=RTOL, atol=ATOL)
        return (sol.y - data).ravel() if sol.success else None

    return residual


def lv_residual_paramest(pe: Any, data: np.ndarray) -> Residual:
    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (LV_T[0], LV_T[-1]), LV_X0)

    def residual(p: np.ndarray) -> np.ndarray | None:
        sol = pe.solve(problem, "Tsit5", t_eval=LV_T, rtol=RTOL, atol=ATOL, p=p)
        return (np.asarray(sol.y) - data).ravel() if sol.success else None

    residual(LV_X0)  # compile the model (setup, not part of the first fit)
    return residual


def _guarded(residual: Residual, counter: Counter, size: int
             ) -> Callable[[np.ndarray], np.ndarray]:
    """Count the solves; a failed one (e.g. paramest's max_steps at a trial point with
    negative rates) returns FAILED_RESIDUAL everywhere, so that the optimiser rejects it."""
    def counted(p: np.ndarray) -> np.ndarray:
        counter.n += 1
        r = residual(p)
        if r is None:
            counter.failed += 1
            return np.full(size, FAILED_RESIDUAL)
        return r

    return counted


def lv_least_squares(make: Callable[[], Residual]) -> Callable[[], Outcome]:
    residual, counter = make(), Counter()
    counted = _guarded(residual, counter, 2 * LV_T.size)

    def run() -> Outcome:
        counter.n, failed0 = 0, counter.failed
        res = least_squares(counted, LV_X0, method="trf")
        return _least_squares_outcome(res, counter, failed0=failed0)

    return run


def lv_lmfit(lmfit: Any, make: Callable[[], Residual]) -> Callable[[], Outcome]:
    residual, counter = make(), Counter()
    counted = _guarded(residual, counter, 2 * LV_T.size)
    params = lmfit.Parameters()
    for name, value in zip(LV_NAMES, LV_X0, strict=True):
        params.add(name, value=float(value))

    def fcn(pars: Any) -> np.ndarray:
        return counted(np.array([pars[n].value for n in LV_NAMES]))

    def run() -> Outcome:
        counter.n, failed0 = 0, counter.failed
        out = lmfit.minimize(fcn, params, method="leastsq")
        x = np.array([out.params[n].value for n in LV_NAMES])
        # lmfit's nfev is MINPACK's: every call, the difference quotients included
        return Outcome(x, 0.5 * float(out.chisqr), int(out.nfev), None, counter.n,
                       bool(out.success), str(out.message), counter.failed - failed0)

    return run


def lv_casadi(ca: Any, data: np.ndarray) -> Callable[[], Outcome]:
    # Adams with functional iteration: CVODES's setting for a non-stiff problem
    opts = {"reltol": RTOL, "abstol": ATOL, "linear_multistep_method": "adams",
            "nonlinear_solver_iteration": "functional"}
    x, p = ca.SX.sym("x", 2), ca.SX.sym("p", 4)
    ode = ca.vertcat(p[0] * x[0] - p[1] * x[0] * x[1], -p[2] * x[1] + p[3] * x[0] * x[1])
    F = ca.integrator("F", "cvodes", {"x": x, "p": p, "ode": ode}, float(LV_T[0]),
                      [float(t) for t in LV_T], opts)
    P = ca.MX.sym("P", 4)
    xf = F(x0=ca.DM(list(LV_Y0)), p=P)["xf"]  # (2, 101): t0 and the grid
    r = ca.vec(xf - ca.DM(data))
    R = ca.Function("R", [P], [r])
    J = ca.Function("J", [P], [ca.jacobian(r, P)])  # CVODES forward sensitivities
    counter = Counter()

    def fun(q: np.ndarray) -> np.ndarray:
        counter.n += 1
        return np.asarray(R(q)).ravel()

    def jac(q: np.ndarray) -> np.ndarray:
        counter.n += 1  # one solve with 4 sensitivity directions
        return np.asarray(J(q))

    def run() -> Outcome:
        counter.n = 0
        return _least_squares_outcome(least_squares(fun, LV_X0, jac=jac, method="trf"),
                                      counter)

    return run


def lv_paramest_fit(pe: Any, data: np.ndarray, method: str) -> Callable[[], Outcome]:
    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (LV_T[0], LV_T[-1]), LV_X0)
    measured = pe.Data(LV_T, data)

    def run() -> Outcome:
        return _fit_outcome(pe.fit(problem, measured, x0=LV_X0, method=method))

    return run


def lv_solve_costs(pe: Any, data: np.ndarray, x: np.ndarray, args: argparse.Namespace
                   ) -> dict[str, float]:
    """What one nfev and one njev of pe.fit cost: Objective.residuals and .jacobian (the
    fit's defaults: solver "auto", Forward(error_control=False)) near the estimate, and one
    pe.solve with Tsit5 as route (b) calls it. Objective caches the last x, so every call
    alternates between two points."""
    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (LV_T[0], LV_T[-1]), x)
    objective = pe.Objective(problem, pe.Data(LV_T, data))
    points = (np.array(x, dtype=float), np.asarray(x, dtype=float) * (1.0 + 1e-7))

    def alternate(fun: Callable[[np.ndarray], Any]) -> Batch:
        def go(k: int) -> None:
            for i in range(k):
                fun(points[i % 2])

        return go

    def plain(q: np.ndarray) -> Any:
        return pe.solve(problem, "Tsit5", t_eval=LV_T, rtol=RTOL, atol=ATOL, p=q)

    batches = {"Objective.residuals": alternate(objective.residuals),
               "Objective.jacobian": alternate(objective.jacobian),
               "pe.solve Tsit5": alternate(plain)}
    timings = interleaved_timings(batches, rounds=max(3, args.rounds),
                                  target_s=min(0.05, args.batch_seconds), warmup_calls=2)
    return {name: t.median for name, t in timings.items()}


def run_lotka_volterra(peers: Peers, args: argparse.Namespace) -> dict[str, Any]:
    x0 = ", ".join(f"{v:g}" for v in LV_X0)
    print(f"\n=== (1) Lotka-Volterra fit: 4 parameters (true {LV_P}), {len(LV_T)} outputs on "
          f"[0, 10], 5 % multiplicative noise (seed {LV_SEED}), x0 = ({x0}), "
          f"rtol={RTOL:g}, atol={ATOL:g}")
    data = lv_data()
    notes: list[str] = []
    routes: list[Route] = []
    pe = peers.pe
    if peers.fit is not None:
        for method in ("trf", "lm"):
            _add(routes, notes, f"paramest fit {method}",
                 lambda method=method: lv_paramest_fit(pe, data, method))
    else:
        notes.append(peers.missing.get("paramest.fit", NOT_YET))
    _add(routes, notes, ROUTE_A, lambda: lv_least_squares(lambda: lv_residual_scipy(data)))
    if pe is not None:
        _add(routes, notes, ROUTE_B,
             lambda: lv_least_squares(lambda: lv_residual_paramest(pe, data)))
    if peers.lmfit is not None:
        _add(routes, notes, "(c) lmfit leastsq + solve_ivp LSODA",
             lambda: lv_lmfit(peers.lmfit, lambda: lv_residual_scipy(data)))
        if pe is not None and not args.quick:
            _add(routes, notes, "(c) lmfit leastsq + paramest.solve Tsit5",
                 lambda: lv_lmfit(peers.lmfit, lambda: lv_residual_paramest(pe, data)))
    if peers.casadi is not None:
        _add(routes, notes, "(d) casadi cvodes + AD jacobian + least_squares",
             lambda: lv_casadi(peers.casadi, data))

    timings = interleaved_timings({r.name: r.batch() for r in routes}, rounds=args.rounds,
                                  target_s=args.batch_seconds, warmup_calls=0)
    base_t = timings[BASE].median if BASE in timings else math.nan
    best = min((r for r in routes if r.outcome is not None), key=lambda r: r.outcome.cost,
               default=None)
    x_ref = best.outcome.x if best is not None else None

    headers = ["route", "median", "IQR/med", "this/fit", "setup", "1st fit", "nfev", "njev",
               "solves", "cost", "max rel dx"]
    rows, records = [], []
    for r in routes:
        t, o = timings[r.name], r.outcome
        dx = (float(np.max(np.abs(o.x - x_ref) / np.abs(x_ref))) if x_ref is not None
              else math.nan)
        rows.append([r.name, fmt_time(t.median), fmt_pct(t.spread),
                     fmt_num(ratio(t.median, base_t), ".3g"), fmt_time(r.setup_s),
                     fmt_time(r.first_s), fmt_int(o.nfev), fmt_int(o.njev), fmt_int(o.solves),
                     f"{o.cost:#.6g}", fmt_num(dx, ".1e")])
        records.append({"name": r.name, **t.as_dict(), "this_over_fit": ratio(t.median, base_t),
                        "setup_s": r.setup_s, "first_fit_s": r.first_s, "x": o.x,
                        "cost": o.cost, "nfev": o.nfev, "njev": o.njev, "solves": o.solves,
                        "success": o.success, "message": o.message,
                        "failed_solves": o.failed_solves, "max_rel_dx": dx})
        if not o.success:
            notes.append(f"{r.name}: not converged ({o.message})")
        if o.failed_solves:
            notes.append(f"{r.name}: {o.failed_solves} trial point(s) of the first fit where "
                         "the ODE solve failed (rejected by the optimiser)")
    print(format_table(headers, rows))
    print("this/fit: the route's median time per fit / paramest fit trf's; nfev, njev: as the "
          "optimiser reports them (scipy's nfev leaves out the difference quotients, "
          "MINPACK's (lmfit) counts them); solves: ODE solves the benchmark counted "
          "(a Jacobian by differences costs 4); max rel dx: largest relative difference of "
          "the estimate to the lowest-cost route's")
    if best is not None:
        print(f"estimate of the lowest-cost route ({best.name}): "
              f"[{', '.join(f'{v:.6g}' for v in best.outcome.x)}]")
    costs = [r.outcome.cost for r in routes]
    if costs:
        spread = (max(costs) - min(costs)) / min(costs)
        print(f"costs: {min(costs):#.6g} to {max(costs):#.6g} (relative spread {spread:.1e}; "
              f"expected {LV_EXPECTED_COST:#.6g})")

    def med(name: str) -> float:
        return timings[name].median if name in timings else math.nan

    summary = {
        f"{ROUTE_A} / {BASE}": (ratio(med(ROUTE_A), base_t),
                                TARGETS["speedup_vs_scipy_lsoda"]),
        f"{ROUTE_B} / {BASE}": (ratio(med(ROUTE_B), base_t),
                                TARGETS["speedup_vs_scipy_paramest_solve"]),
    }
    for r in routes:
        if r.name != BASE and f"{r.name} / {BASE}" not in summary:
            summary[f"{r.name} / {BASE}"] = (ratio(med(r.name), base_t), None)
    for label, (value, goal) in summary.items():
        print(f"{label}: {fmt_num(value, '.3g')}{verdict_at_least(value, goal)}")

    costs_s: dict[str, float] = {}
    fit_route = next((r for r in routes if r.name == BASE), None)
    if fit_route is not None and hasattr(pe, "Forward"):
        # where the fit's time goes: its nfev plain solves and njev sensitivity solves
        try:
            costs_s = lv_solve_costs(pe, data, fit_route.outcome.x, args)
        except Exception as exc:
            notes.append(f"solve costs: failed ({type(exc).__name__}: {str(exc)[:200]})")
    if costs_s:
        o = fit_route.outcome
        res_t, jac_t = costs_s["Objective.residuals"], costs_s["Objective.jacobian"]
        estimate = (o.nfev or 0) * res_t + (o.njev or 0) * jac_t
        print("one evaluation near the estimate: " + ", ".join(
            f"{k} {fmt_time(v)}" for k, v in costs_s.items()))
        print(f"  jacobian / residuals: {fmt_num(ratio(jac_t, res_t), '.3g')} (a 2-point "
              f"difference Jacobian costs 4 residuals); paramest fit trf's nfev x residuals + "
              f"njev x jacobian = {fmt_time(estimate)} of its {fmt_time(base_t)} per fit "
              f"({fmt_pct(ratio(estimate, base_t))}; the rest: optimiser, set-up, statistics)")
    for n in notes:
        print(f"note: {n}")
    return {"data_seed": LV_SEED, "results": records,
            "summary": {k: v[0] for k, v in summary.items()}, "solve_costs_s": costs_s,
            "notes": notes}


# --- (2) Robertson, log scale, multistart --------------------------------------------

def rob_paramest(pe: Any, data: np.ndarray, sigma: np.ndarray) -> Callable[[], Any]:
    problem = pe.ODEProblem(robertson, ROB_Y0, (0.0, ROB_T[-1]), ROB_X0)
    measured = pe.Data(ROB_T, data, sigma=sigma)

    def run() -> Any:
        return pe.fit(problem, measured, x0=ROB_X0, method="trf", scale="log",
                      bounds=(ROB_LOWER, ROB_UPPER), n_starts=ROB_STARTS, seed=ROB_START_SEED)

    return run


def rob_starts() -> np.ndarray:
    """x0 and 7 Latin-hypercube points, uniform in log k between the bounds: the rule of
    pe.fit's n_starts (qmc.LatinHypercube(d, seed=seed) scaled to the bounds in the
    optimiser's space), reproduced here because FitResult.starts does not keep the points."""
    lhs = qmc.LatinHypercube(d=3, seed=ROB_START_SEED).random(ROB_STARTS - 1)
    lo, hi = np.log(ROB_LOWER), np.log(ROB_UPPER)
    return np.vstack([ROB_X0, np.exp(lo + lhs * (hi - lo))])


def rob_residual_scipy(data: np.ndarray, sigma: np.ndarray) -> Residual:
    """(model - data) / sigma from solve_ivp LSODA with the analytic Jacobian, at log k."""
    def residual(q: np.ndarray) -> np.ndarray | None:
        sol = solve_ivp(rob_f, (0.0, ROB_T[-1]), ROB_Y0, method="LSODA", t_eval=ROB_T,
                        args=(np.exp(q),), jac=rob_jac, rtol=RTOL, atol=ATOL)
        if not sol.success or sol.y.shape != data.shape:
            return None
        return ((sol.y - data) / sigma[:, None]).ravel()

    return residual


def rob_scipy_fit(data: np.ndarray, sigma: np.ndarray, x0: np.ndarray) -> tuple[Outcome, float]:
    """least_squares on log k (2-point differences) around solve_ivp LSODA + analytic jac."""
    counter = Counter()
    residual = _guarded(rob_residual_scipy(data, sigma), counter, data.size)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = least_squares(residual, np.log(x0), method="trf",
                            bounds=(np.log(ROB_LOWER), np.log(ROB_UPPER)))
    wall = time.perf_counter() - t0
    return _least_squares_outcome(res, counter, np.exp(res.x)), wall


def _starts_of(res: Any) -> list[Any]:
    starts = getattr(res, "starts", None)
    return list(starts) if starts else [res]


def _describe_starts(label: str, outcomes: list[tuple[float, Any]]) -> list[str]:
    """One line: each start's final cost (and the count that reached the best one)."""
    costs = np.array([c for c, _ in outcomes])
    best = float(np.min(costs))
    n_best = int(np.sum(costs <= best * (1.0 + 1e-6) + 1e-12))
    return [f"{label}: best cost {best:#.6g}, {n_best} of {len(costs)} starts within 1e-6 of it;"
            f" costs per start: {', '.join(f'{c:.6g}' for c in costs)}"]


def run_robertson(peers: Peers, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== (2) Robertson fit: (k1, k2, k3) on a log scale, {ROB_STARTS} starts "
          f"(seed {ROB_START_SEED}), bounds (p/100, 100 p), {len(ROB_T)} outputs log-spaced on "
          f"[1e-2, 1e4], 2 % noise (seed {ROB_SEED}), sigma per observable, "
          f"rtol={RTOL:g}, atol={ATOL:g}")
    data, sigma = rob_data()
    print(f"sigma = [{', '.join(f'{s:.3g}' for s in sigma)}] (0.02 x the largest value of each "
          f"observable); x0 = [{', '.join(f'{v:.3g}' for v in ROB_X0)}]")
    notes: list[str] = []
    out: dict[str, Any] = {"notes": notes}
    pe_total = math.nan
    if peers.fit is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run, setup_s = timed(rob_paramest, peers.pe, data, sigma)
                res, first_s = timed(run)
                times = [timed(run)[1] for _ in range(max(1, args.rounds // 2))]
        except Exception as exc:
            notes.append(f"paramest fit: failed ({type(exc).__name__}: {str(exc)[:300]})")
            res = None
        if res is not None:
            pe_total = float(np.median(times))
            per_start = _starts_of(res)
            nfev = sum(int(getattr(s, "nfev", 0) or 0) for s in per_start)
            njev = sum(int(getattr(s, "njev", 0) or 0) for s in per_start)
            print(f"paramest fit trf, {len(per_start)} starts: {fmt_time(pe_total)} per fit "
                  f"(median of {len(times)}; setup {fmt_time(setup_s)}, first fit "
                  f"{fmt_time(first_s)}), nfev {nfev}, njev {njev} over all starts, "
                  f"best cost {float(res.cost):#.6g}, "
                  f"x = [{', '.join(f'{v:.6g}' for v in np.asarray(res.x))}]")
            for line in _describe_starts("  paramest", [(float(s.cost), s) for s in per_start]):
                print(line)
            out["paramest"] = {"median_s": pe_total, "per_fit_s": times, "setup_s": setup_s,
                               "first_fit_s": first_s, "cost": float(res.cost),
                               "x": np.asarray(res.x), "nfev": nfev, "njev": njev,
                               "start_costs": [float(s.cost) for s in per_start]}
    else:
        notes.append(peers.missing.get("paramest.fit", NOT_YET))

    starts = rob_starts()
    origin = "x0 + LatinHypercube(d=3, seed=0) in log k, pe.fit's rule"
    n_run = 1 if args.quick else ROB_STARTS
    outcomes: list[tuple[float, Outcome]] = []
    walls: list[float] = []
    for i, x0 in enumerate(starts[:n_run]):
        outcome, wall = rob_scipy_fit(data, sigma, x0)
        outcomes.append((outcome.cost, outcome))
        walls.append(wall)
        if i == 0 and wall * ROB_STARTS > args.scipy_budget and n_run > 1:
            notes.append(f"scipy: one start took {fmt_time(wall)}, so {ROB_STARTS} would exceed "
                         f"--scipy-budget {args.scipy_budget:g} s; only the first start was run")
            break
    total = float(sum(walls))
    best = min(outcomes, key=lambda c: c[0])[1]
    if best.message:
        print(f"scipy's best start ended with: {best.message}")
    print(f"scipy least_squares (log k, 2-point) + solve_ivp LSODA (analytic jac), "
          f"{len(walls)} start(s) from {origin}: {fmt_time(total)} in all "
          f"({fmt_time(total / len(walls))} per start), nfev {sum(o.nfev for _, o in outcomes)}, "
          f"njev {sum(o.njev or 0 for _, o in outcomes)}, ODE solves "
          f"{sum(o.solves or 0 for _, o in outcomes)}, best cost {best.cost:#.6g}, "
          f"x = [{', '.join(f'{v:.6g}' for v in best.x)}]")
    for line in _describe_starts("  scipy", outcomes):
        print(line)
    out["scipy_lsoda"] = {"starts_run": len(walls), "start_origin": origin, "total_s": total,
                          "per_start_s": walls, "cost": best.cost, "x": best.x,
                          "start_costs": [c for c, _ in outcomes],
                          "starts": starts[:len(walls)]}
    if math.isfinite(pe_total):
        per_start_ratio = ratio(total / len(walls), pe_total / ROB_STARTS)
        print(f"scipy per start / paramest per start (its {ROB_STARTS}-start fit / "
              f"{ROB_STARTS}): {fmt_num(per_start_ratio, '.3g')}")
        out["scipy_per_start_over_paramest_per_start"] = per_start_ratio
        if len(walls) == ROB_STARTS:
            print(f"scipy {ROB_STARTS} starts / paramest fit with n_starts={ROB_STARTS}: "
                  f"{fmt_num(ratio(total, pe_total), '.3g')}")
        pe_cost = out["paramest"]["cost"]
        print(f"best costs: paramest {pe_cost:#.6g}, scipy {best.cost:#.6g} "
              f"(relative difference {abs(pe_cost - best.cost) / best.cost:.1e})")
        r = rob_residual_scipy(data, sigma)(np.log(out["paramest"]["x"]))
        cross = 0.5 * float(r @ r) if r is not None else math.nan
        print(f"cross-check: scipy's residual (LSODA) at paramest's estimate gives cost "
              f"{cross:#.6g}")
        out["scipy_cost_at_paramest_x"] = cross
        print("(paramest runs the starts on a thread pool, one thread per core; scipy runs them "
              "one after another)")
    for n in notes:
        print(f"note: {n}")
    return out


# --- (3) first fit of a brand-new model in a fresh process ----------------------------

CHILD = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import paramest as pe
    t1 = time.perf_counter()
    from model_{tag} import lv_{tag} as rhs
    d = np.load("data.npz")
    x0 = d["x0"]
    t2 = time.perf_counter()
    problem = pe.ODEProblem(rhs, [1.0, 1.0], (0.0, 10.0), x0)
    t3 = time.perf_counter()
    res = pe.fit(problem, pe.Data(d["t"], d["y"]), x0=x0)
    t4 = time.perf_counter()
    again = pe.fit(problem, pe.Data(d["t"], d["y"]), x0=x0)
    t5 = time.perf_counter()
    print(json.dumps(dict(import_s=t1 - t0, problem_s=t3 - t2, fit_s=t4 - t3,
                          second_fit_s=t5 - t4, cost=float(res.cost), nfev=int(res.nfev),
                          success=bool(res.success))))
    """
)

MODEL = textwrap.dedent(
    """
    def lv_{tag}(t, y, p, dydt):
        # brand-new model {tag}: Lotka-Volterra with a tiny extra decay of y1
        dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
        dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1] - {eps!r} * y[1]
    """
)


def _fresh_model(directory: str, rng: np.random.Generator) -> str:
    tag = uuid.uuid4().hex[:10]
    eps = float(1e-9 * (1.0 + rng.random()))  # a random constant: no cache can hold it
    Path(directory, f"model_{tag}.py").write_text(MODEL.format(tag=tag, eps=eps))
    return tag


def _run_child(directory: str, tag: str, env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD.format(tag=tag)], cwd=directory,
                          env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                           else f"exit status {proc.returncode}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def run_latency(peers: Peers, args: argparse.Namespace) -> dict[str, Any]:
    print("\n=== (3) first fit of a brand-new model in a fresh process (Lotka-Volterra data of "
          "(1), default fit), paramest's kernels cached")
    if peers.fit is None:
        print(f"note: {peers.missing.get('paramest.fit', NOT_YET)}; skipped")
        return {}
    rng = np.random.default_rng()
    rows, records, notes = [], [], []
    with tempfile.TemporaryDirectory() as work:
        np.savez(Path(work, "data.npz"), t=LV_T, y=lv_data(), x0=LV_X0)
        env = dict(os.environ)
        env["PYTHONPATH"] = work + os.pathsep + env.get("PYTHONPATH", "")
        cases = []
        if not args.quick:
            # another new model first, so that every kernel a fit needs is in the cache
            cases.append(("warm-up: another brand-new model", _fresh_model(work, rng)))
        tag = _fresh_model(work, rng)
        cases.append(("brand-new model", tag))
        if not args.quick:
            cases.append(("same model again, new process", tag))
        for label, t in cases:
            try:
                r = _run_child(work, t, env)
            except Exception as exc:
                notes.append(f"{label}: child failed ({type(exc).__name__}: {str(exc)[:300]})")
                continue
            first = r["problem_s"] + r["fit_s"]
            rows.append([label, fmt_time(r["import_s"]), fmt_time(r["problem_s"]),
                         fmt_time(r["fit_s"]), fmt_time(r["second_fit_s"]), fmt_time(first),
                         fmt_time(r["import_s"] + first), fmt_time(r["process_s"]),
                         f"{r['cost']:#.6g}"])
            records.append({"case": label, **r, "first_fit_total_s": first})
    if rows:
        print(format_table(["case", "import", "ODEProblem", "1st fit", "2nd fit",
                            "problem+fit", "+import", "process", "cost"], rows))
        print("problem+fit: ODEProblem (model compilation and check) + first fit, the "
              "compile-included cost of a new model; +import: with `import paramest`; "
              "process: the child's whole wall time (interpreter start included)")
    new = next((r for r in records if r["case"] == "brand-new model"), None)
    value = new["first_fit_total_s"] if new is not None else math.nan
    print(f"brand-new model, ODEProblem + first fit [s]: {fmt_num(value, '.3g')}"
          f"{verdict_at_most(value, TARGETS['first_fit_new_model_s'])}")
    for n in notes:
        print(f"note: {n}")
    return {"results": records, "first_fit_new_model_s": value, "notes": notes}


# --- helpers -------------------------------------------------------------------------

@dataclass
class Peers:
    pe: Any = None  # paramest (solve), when importable
    fit: Any = None  # paramest.fit, when it exists
    lmfit: Any = None
    casadi: Any = None
    missing: dict[str, str] = field(default_factory=dict)


def detect_peers() -> Peers:
    peers = Peers()
    pe, import_s, err = timed_import("paramest")
    peers.pe = pe
    if pe is None:
        peers.missing["paramest"] = err or "not installed"
    elif hasattr(pe, "fit") and hasattr(pe, "Data"):
        peers.fit = pe.fit
    if peers.fit is None:
        peers.missing["paramest.fit"] = NOT_YET
    peers.lmfit, _, err = timed_import("lmfit")
    if err:
        peers.missing["lmfit"] = "not installed (`pip install lmfit`)"
    peers.casadi, _, err = timed_import("casadi")
    if err:
        peers.missing["casadi"] = "not installed (`pip install casadi`)"
    return peers


def versions(peers: Peers) -> dict[str, str | None]:
    return {
        "paramest": package_version("paramest") if peers.pe is not None else None,
        "numpy": np.__version__, "scipy": scipy.__version__,
        "lmfit": package_version("lmfit") if peers.lmfit is not None else None,
        "casadi": package_version("casadi") if peers.casadi is not None else None,
    }


def fmt_int(n: int | None) -> str:
    return "-" if n is None else str(n)


def verdict_at_least(value: float, goal: float | None) -> str:
    if goal is None:
        return ""
    if math.isnan(value):
        return f"  (target >= {goal:g}: n/a, a route is missing)"
    return f"  (target >= {goal:g}: {'met' if value >= goal else 'NOT met'})"


def verdict_at_most(value: float, goal: float) -> str:
    if math.isnan(value):
        return f"  (target <= {goal:g}: n/a)"
    return f"  (target <= {goal:g}: {'met' if value <= goal else 'NOT met'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one timing round, one scipy start in (2), no warm-up child in (3)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--rounds", type=int, help="timing rounds per route (default 5, 1 quick)")
    parser.add_argument("--batch-seconds", type=float,
                        help="target length of one timed batch of fits (default 0.3 s)")
    parser.add_argument("--scipy-budget", type=float, default=60.0,
                        help="(2): run scipy from all starts only if that takes about this "
                             "long at most (seconds, default 60)")
    parser.add_argument("--only", choices=("lv", "rob", "latency"), nargs="+",
                        help="run only these workloads")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.batch_seconds is None:
        args.batch_seconds = 0.05 if args.quick else 0.3
    workloads = set(args.only or ("lv", "rob", "latency"))

    peers = detect_peers()
    vers = versions(peers)
    info = machine_info()
    print(f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs")
    print("versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in vers.items()))
    for name, why in peers.missing.items():
        print(f"note: {name}: {why}")
    print(f"timing: {args.rounds} interleaved round(s) of batches of ~"
          f"{fmt_time(args.batch_seconds)} (at least one fit), median time per fit after a "
          "first fit that is reported separately")

    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    if "lv" in workloads:
        results["lotka_volterra"] = run_lotka_volterra(peers, args)
    if "rob" in workloads:
        results["robertson"] = run_robertson(peers, args)
    if "latency" in workloads:
        results["first_fit"] = run_latency(peers, args)
    print(f"\ntotal benchmark time: {fmt_time(time.perf_counter() - t0)}")
    if args.json:
        write_json(args.json, {"benchmark": "fit", "machine": info, "versions": vers,
                               "rounds": args.rounds, "batch_seconds": args.batch_seconds,
                               "targets": TARGETS, **results})
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
