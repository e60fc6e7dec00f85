"""Smoothness of solver outputs in the parameters, and what it means for a fit.

A finite-difference derivative of a solver output with the usual step ``sqrt(eps) * p`` is
only useful if the output is smooth at that scale. The measure (issue W1-3): evaluate one
output at ``p * (1 + k * 1.5e-8)``, ``k = 0..7``, along one parameter, take the 7 forward
differences and their relative spread ``(max - min) / |median|``. Two problems, rtol=1e-8:

* Michaelis-Menten, ``S' = -k S / (K + S)``, ``P' = +k S / (K + S)``, ``S0 = 10``,
  ``P0 = 0``, ``(k, K) = (1, 2)``, output ``P(10)``, atol 1e-10 and 1e-12;
* a stiff signalling cascade (8 states, rate constants 1e-5 .. 1e5; the model of
  tests/problems.py), outputs ``Ap(10)`` along ``k3`` and ``X(10)`` along
  ``k5``, atol 1e-10.

Then ``scipy.optimize.least_squares`` (default 2-point finite-difference Jacobian) fits
each model's parameters, in log space, to synthetic data made at the true parameters with
2 % noise, from a start a factor 3 off, once around ``paramest.solve`` and once around
``solve_ivp``; the table gives the number of model evaluations (nfev, Jacobian evaluations
included), the final cost, and how far apart the two optima are.

Run ``python benchmarks/smoothness.py`` (``--quick`` skips the fits; ``--json PATH`` saves
the numbers). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from _common import fmt_num, format_table, machine_info, package_version, timed_import, write_json
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

# the models are the test suite's (tests/problems.py), so the test and the benchmark agree
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.problems import (  # noqa: E402
    KINETICS_P,
    KINETICS_Y0,
    MM_P,
    MM_Y0,
    SPREAD_STEP,
    forward_difference_spread,
    kinetics,
    michaelis_menten,
)

STEP = SPREAD_STEP
RTOL = 1e-8
PARAMEST_METHODS = ("Tsit5", "DP5", "Vern7", "Rodas5P", "auto")
SCIPY_METHODS = ("RK45", "DOP853", "BDF", "LSODA")


def numpy_form(fun: Callable[..., None], n: int) -> Callable[..., np.ndarray]:
    def f(t, y, p):
        out = np.empty(n)
        fun(t, y, p, out)
        return out

    return f


# --- measures -------------------------------------------------------------------

spread = forward_difference_spread


def paramest_output(pe: Any, problem: Any, method: str, t_end: float, state: int,
                    atol: float) -> Callable[[np.ndarray], float]:
    def output(p: np.ndarray) -> float:
        return float(pe.solve(problem, method, t_eval=[t_end], p=p, rtol=RTOL,
                              atol=atol).y[state, -1])

    return output


def scipy_output(f: Callable[..., Any], y0: np.ndarray, method: str, t_end: float,
                 state: int, atol: float) -> Callable[[np.ndarray], float]:
    def output(p: np.ndarray) -> float:
        return float(solve_ivp(f, (0.0, t_end), y0, method=method, t_eval=[t_end], args=(p,),
                               rtol=RTOL, atol=atol).y[state, -1])

    return output


def fit(simulate: Callable[[np.ndarray], np.ndarray], data: np.ndarray, p_true: np.ndarray,
        free: list[int]) -> dict[str, Any]:
    """least_squares on log(p[free]) from a factor 3 off, default finite-difference
    Jacobian, on data with 2 % noise (so the optimum is not the true point and the
    optimiser has to work)."""
    p_base = p_true.copy()

    def residuals(log_q: np.ndarray) -> np.ndarray:
        p = p_base.copy()
        p[free] = np.exp(log_q)
        return (simulate(p) - data).ravel()

    start = np.log(p_true[free] * np.where(np.arange(len(free)) % 2 == 0, 3.0, 1.0 / 3.0))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = least_squares(residuals, start, x_scale=1.0)
    elapsed = time.perf_counter() - t0
    found = np.exp(result.x)
    rel_err = float(np.max(np.abs(found - p_true[free]) / p_true[free]))
    return {"nfev": int(result.nfev), "njev": int(result.njev), "status": int(result.status),
            "rel_err": rel_err, "recovered": rel_err < 0.1, "cost": float(result.cost),
            "found": found.tolist(), "seconds": elapsed}


def noisy(clean: np.ndarray, seed: int) -> np.ndarray:
    """2 % multiplicative Gaussian noise, the same for both tools."""
    rng = np.random.default_rng(seed)
    return clean * (1.0 + 0.02 * rng.standard_normal(clean.shape))


# --- problems -------------------------------------------------------------------

def spread_tables(pe: Any) -> tuple[list[str], list[list[str]], dict[str, Any]]:
    cases = [
        # title, fun, n, y0, p, t_end, state, index, atol
        ("MM P(10) d/dk atol=1e-10", michaelis_menten, 2, MM_Y0, MM_P, 10.0, 1, 0, 1e-10),
        ("MM P(10) d/dK atol=1e-10", michaelis_menten, 2, MM_Y0, MM_P, 10.0, 1, 1, 1e-10),
        ("MM P(10) d/dk atol=1e-12", michaelis_menten, 2, MM_Y0, MM_P, 10.0, 1, 0, 1e-12),
        # where Rodas5P's own error estimate is noisiest (its last stage cancels terms with
        # coefficients summing to about 300): the one case it stays rougher than BDF
        ("MM k,K=1.5,3 P(10) d/dk", michaelis_menten, 2, MM_Y0, np.array([1.5, 3.0]), 10.0,
         1, 0, 1e-10),
        ("kinetics Ap(10) d/dk3", kinetics, 8, KINETICS_Y0, KINETICS_P, 10.0, 4, 3, 1e-10),
        ("kinetics X(10) d/dk5", kinetics, 8, KINETICS_Y0, KINETICS_P, 10.0, 7, 5, 1e-10),
    ]
    headers = ["case"]
    if pe is not None:
        headers += [f"paramest {m}" for m in PARAMEST_METHODS]
    headers += [f"scipy {m}" for m in SCIPY_METHODS]
    rows, numbers = [], {}
    problems: dict[int, Any] = {}
    for title, fun, n, y0, p, t_end, state, index, atol in cases:
        row, entry = [title], {}
        if pe is not None:
            key = id(fun)
            if key not in problems:
                problems[key] = pe.ODEProblem(fun, y0, (0.0, t_end), p)
            for m in PARAMEST_METHODS:
                value = spread(paramest_output(pe, problems[key], m, t_end, state, atol), p,
                               index)
                entry[f"paramest {m}"] = value
                row.append(fmt_num(value, ".1e"))
        f = numpy_form(fun, n)
        for m in SCIPY_METHODS:
            value = spread(scipy_output(f, y0, m, t_end, state, atol), p, index)
            entry[f"scipy {m}"] = value
            row.append(fmt_num(value, ".1e"))
        rows.append(row)
        numbers[title] = entry
        print(f"  {title}: done", file=sys.stderr, flush=True)
    return headers, rows, numbers


def fit_table(pe: Any) -> tuple[list[str], list[list[str]], dict[str, Any]]:
    mm_times = np.linspace(0.5, 10.0, 20)
    kin_times = np.array([0.01, 0.1, 0.3, 1.0, 2.0, 5.0, 10.0])
    kin_free = [3, 4, 5, 6]
    cases = [
        ("Michaelis-Menten, k and K", michaelis_menten, 2, MM_Y0, MM_P, mm_times, [0, 1],
         "Tsit5", "RK45", 1e-10),
        ("kinetics, k3 k4 k5 k6", kinetics, 8, KINETICS_Y0, KINETICS_P, kin_times, kin_free,
         "auto", "LSODA", 1e-10),
    ]
    headers = ["problem", "paramest method", "nfev", "final cost", "scipy method", "nfev",
               "final cost", "optima differ by"]
    rows, numbers = [], {}
    for title, fun, n, y0, p, times, free, pe_method, sp_method, atol in cases:
        t_span = (0.0, float(times[-1]))
        f = numpy_form(fun, n)

        def sim_scipy(q: np.ndarray, f=f, t_span=t_span, y0=y0, sp_method=sp_method,
                      times=times, atol=atol) -> np.ndarray:
            return solve_ivp(f, t_span, y0, method=sp_method, t_eval=times, args=(q,),
                             rtol=RTOL, atol=atol).y

        data = noisy(sim_scipy(p), seed=len(free))
        row, entry = [title], {}
        if pe is not None:
            problem = pe.ODEProblem(fun, y0, t_span, p)

            def sim_pe(q: np.ndarray, problem=problem, pe_method=pe_method, times=times,
                       atol=atol) -> np.ndarray:
                return pe.solve(problem, pe_method, t_eval=times, p=q, rtol=RTOL, atol=atol).y

            r = fit(sim_pe, data, p, free)
            entry["paramest"] = r
            row += [pe_method, str(r["nfev"]), f"{r['cost']:.6g}"]
        else:
            row += ["-", "-", "-"]
        r = fit(sim_scipy, data, p, free)
        entry["scipy"] = r
        row += [sp_method, str(r["nfev"]), f"{r['cost']:.6g}"]
        if "paramest" in entry:
            same = np.max(np.abs(np.divide(entry["paramest"]["found"], r["found"]) - 1.0))
            row.append(f"{same:.1e}")
        else:
            row.append("-")
        rows.append(row)
        numbers[title] = entry
        print(f"  fit {title}: done", file=sys.stderr, flush=True)
    return headers, rows, numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="spreads only, no fits")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    args = parser.parse_args(argv)
    info = machine_info()
    print(f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs")
    print(f"versions: paramest {package_version('paramest')}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}")
    pe, _, error = timed_import("paramest")
    if pe is None:
        print(f"note: paramest not available ({error}); scipy only")
    t0 = time.perf_counter()
    results: dict[str, Any] = {"machine": info}
    print(f"\n=== relative spread of 7 forward differences (step {STEP:g} p), rtol={RTOL:g}"
          " (smaller is smoother)")
    headers, rows, results["spread"] = spread_tables(pe)
    print(format_table(headers, rows))
    if not args.quick:
        print("\n=== least_squares, default 2-point finite-difference Jacobian, log "
              "parameters, start a factor 3 off, synthetic data with 2 % noise")
        headers, rows, results["fits"] = fit_table(pe)
        print(format_table(headers, rows))
    print(f"\ntotal benchmark time: {time.perf_counter() - t0:.2f} s")
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
