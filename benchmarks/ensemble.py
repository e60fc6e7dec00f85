"""Ensembles on the CPU: many Lotka-Volterra solves with random parameters.

paramest's ``solve_ensemble`` (a parallel loop over all cores, each trajectory the same
kernel as a single solve) against, in the same run:

* a Python loop of ``paramest.solve`` (the same numbers, one call per trajectory);
* ``solve_ensemble`` on one thread (``numba.set_num_threads(1)``): the speed-up over the
  cores;
* numbalsoda's ``dop853`` in a Python loop and in an njit loop, when installed;
* scipy ``solve_ivp`` RK45 in a Python loop (on a subset; per-solve time extrapolated).

Workload: Lotka-Volterra y0 = (1, 1) on [0, 10], 101 output times, rtol 1e-6, atol 1e-8,
N = 10,000 parameter vectors, each entry of (1.5, 1, 3, 1) scaled by U(0.8, 1.2). Every
contender's outputs are compared with the ensemble's (the paramest loop must be
identical). GPU ensembles are not measured here (no CUDA kernels yet).

Run ``python benchmarks/ensemble.py`` (``--n 2000`` for a quicker run, ``--json PATH`` to
save the results). Ratios only; nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numba
import numpy as np
from _common import fmt_time, format_table, machine_info, package_version, timed, write_json
from numba import cfunc, njit
from ode_solve import RHS_SIG, lotka_volterra

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RTOL = 1e-6
ATOL = 1e-8
T_EVAL = np.linspace(0.0, 10.0, 101)
P0 = np.array([1.5, 1.0, 3.0, 1.0])
Y0 = np.array([1.0, 1.0])

def best_of(fn, repeats):
    """The best wall time of ``repeats`` calls (the machine is shared and noisy)."""
    times = []
    result = None
    for _ in range(repeats):
        result, seconds = timed(fn)
        times.append(seconds)
    return result, min(times), sorted(times)[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="trajectories")
    parser.add_argument("--scipy-subset", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import paramest as pe

    info = machine_info()
    print(f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs, numba "
          f"threads {numba.get_num_threads()}")
    rng = np.random.default_rng(0)
    params = P0 * rng.uniform(0.8, 1.2, (args.n, 4))
    problem = pe.ODEProblem(lotka_volterra, Y0, (0.0, 10.0), P0)
    options = dict(method="Tsit5", rtol=RTOL, atol=ATOL)
    rows = []
    results = {}

    _, first = timed(pe.solve_ensemble, problem, p=params[:8], t_eval=T_EVAL, **options)
    ens, best, median = best_of(
        lambda: pe.solve_ensemble(problem, p=params, t_eval=T_EVAL, **options), args.repeats
    )
    assert ens.success.all(), ens.message
    results["ensemble, all threads"] = best
    rows.append(("paramest solve_ensemble, all threads", best, median, "0 (reference)"))

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        _, best1, median1 = best_of(
            lambda: pe.solve_ensemble(problem, p=params, t_eval=T_EVAL, **options),
            args.repeats,
        )
    finally:
        numba.set_num_threads(threads)
    results["ensemble, 1 thread"] = best1
    rows.append(("paramest solve_ensemble, 1 thread", best1, median1, "0 (the same kernel)"))

    def python_loop():
        return np.stack([pe.solve(problem, t_eval=T_EVAL, p=row, **options).y
                         for row in params])

    loop_y, best_loop, median_loop = best_of(python_loop, max(1, args.repeats // 2))
    identical = np.array_equal(loop_y, ens.y)
    results["loop of solve"] = best_loop
    rows.append(("Python loop of paramest.solve", best_loop, median_loop,
                 "0 (identical)" if identical else
                 f"{np.max(np.abs(loop_y - ens.y)):.1e} (NOT identical)"))

    try:
        import numbalsoda
    except ImportError:
        numbalsoda = None
    if numbalsoda is not None:
        inner = njit(lotka_volterra)

        @cfunc(RHS_SIG)
        def rhs(t, u, du, p):
            inner(t, u, p, du)

        address = rhs.address
        dop853 = numbalsoda.dop853

        def nbl_loop():
            out = np.empty((args.n, 2, T_EVAL.size))
            for i in range(args.n):
                usol, _ = dop853(address, Y0, T_EVAL, data=params[i], rtol=RTOL, atol=ATOL)
                out[i] = usol.T
            return out

        nbl_y, best_nbl, median_nbl = best_of(nbl_loop, max(1, args.repeats // 2))
        results["numbalsoda loop"] = best_nbl
        rows.append(("numbalsoda dop853, Python loop", best_nbl, median_nbl,
                     f"{np.max(np.abs(nbl_y - ens.y)):.1e}"))

        @njit
        def njit_loop(address, params, out):
            for i in range(params.shape[0]):
                usol, _ = dop853(address, Y0, T_EVAL, params[i], RTOL, ATOL)
                out[i] = usol.T

        nbl_out = np.empty((args.n, 2, T_EVAL.size))
        njit_loop(address, params[:2], nbl_out[:2])
        _, best_nj, median_nj = best_of(lambda: njit_loop(address, params, nbl_out),
                                        args.repeats)
        results["numbalsoda njit loop"] = best_nj
        rows.append(("numbalsoda dop853, njit loop (1 thread)", best_nj, median_nj,
                     f"{np.max(np.abs(nbl_out - ens.y)):.1e}"))

    from scipy.integrate import solve_ivp

    subset = min(args.scipy_subset, args.n)

    def scipy_loop():
        return np.stack([
            solve_ivp(lambda t, y, p=row: [p[0] * y[0] - p[1] * y[0] * y[1],
                                           -p[2] * y[1] + p[3] * y[0] * y[1]],
                      (0.0, 10.0), Y0, t_eval=T_EVAL, rtol=RTOL, atol=ATOL).y
            for row in params[:subset]
        ])

    scipy_y, best_scipy, median_scipy = best_of(scipy_loop, 1)
    scale = args.n / subset
    results["scipy loop"] = best_scipy * scale
    rows.append((f"scipy solve_ivp RK45, Python loop ({subset} solves, scaled)",
                 best_scipy * scale, median_scipy * scale,
                 f"{np.max(np.abs(scipy_y - ens.y[:subset])):.1e}"))

    print(f"\n{args.n} Lotka-Volterra solves, random parameters, Tsit5 (paramest), rtol {RTOL}, "
          f"atol {ATOL}, {T_EVAL.size} outputs; first ensemble call (compile or cache load): "
          f"{fmt_time(first)}")
    table = [(name, fmt_time(b), fmt_time(m), fmt_time(b / args.n),
              f"{b / results['ensemble, all threads']:.1f}", diff)
             for name, b, m, diff in rows]
    print(format_table(["contender", "best", "median", "per solve", "/ ensemble",
                        "max |y - ensemble|"], table))
    print(f"speed-up over the cores ({threads} threads): "
          f"{results['ensemble, 1 thread'] / results['ensemble, all threads']:.2f}x")
    print(f"ensemble vs loop of paramest.solve: "
          f"{results['loop of solve'] / results['ensemble, all threads']:.1f}x")
    reference = results["ensemble, all threads"]
    if "numbalsoda loop" in results:
        print(f"ensemble vs numbalsoda Python loop: {results['numbalsoda loop'] / reference:.1f}x;"
              f" vs its njit loop: {results['numbalsoda njit loop'] / reference:.1f}x")
    print(f"ensemble vs scipy loop: {results['scipy loop'] / reference:.0f}x")
    if args.json:
        write_json(args.json, {"machine": info, "n": args.n, "seconds": results,
                               "versions": {"paramest": package_version("paramest"),
                                            "numbalsoda": package_version("numbalsoda")}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
