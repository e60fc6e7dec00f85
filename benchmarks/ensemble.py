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
identical).

GPU part (only where a GPU is present; otherwise one "no GPU: skipped" line): the Lorenz
system (sigma = 10, rho = 28, beta = 8/3, u0 = (1, 0, 0), t in [0, 1]) with rho varied per
trajectory, evenly spaced over [0, 21] (sigma and beta fixed), as in the MPGOS and
DiffEqGPU ensemble benchmarks (``--lorenz-params uniform`` instead scales each of the three
nominal values by U(0.9, 1.1)); only the final state is saved (``t_eval=[1.0]``):

* 1000 fixed RK4 steps in float32 for N = 2^19 ... 2^23 trajectories, and fixed-step Tsit5;
* adaptive Tsit5 in float64, rtol = atol = 1e-8, N = 2^20;

timed with device-resident inputs and outputs (Numba device arrays) after a warm-up call
(compilation), with ``cuda.synchronize()``: through ``solve_ensemble`` (all it does per
call, including the status summary) and the kernel launch alone. When JAX with CUDA and
diffrax are installed, ``jax.vmap`` of diffrax on the same GPU runs the same solves (RK4 as
a diffrax tableau solver built from paramest's RK4 tableau, Tsit5) and the ratios are
printed; published V100 figures and the targets are printed for reference.

Run ``python benchmarks/ensemble.py`` (``--n 2000`` for a quicker run, ``--json PATH`` to
save the results, ``--gpu-only`` for the GPU part alone). Ratios only; nothing is asserted
about time.
"""

from __future__ import annotations

import argparse
import sys
import time
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

LORENZ_P = np.array([10.0, 28.0, 8.0 / 3.0])
LORENZ_U0 = np.array([1.0, 0.0, 0.0])
GPU_SIZES = tuple(2**k for k in range(19, 24))
FIXED_STEPS = 1000
ADAPTIVE_N = 2**20
ADAPTIVE_TOL = 1e-8
#: published GPU ensemble timings on a V100 (DiffEqGPU paper, Utkarsh et al. 2024,
#: Lorenz ensembles; MPGOS: Nagy et al. 2020), milliseconds
PUBLISHED_V100_MS = {
    "fixed-step, 8,388,608 trajectories": {"MPGOS": 94.0, "DiffEqGPU": 145.0},
    "adaptive, 2^20 trajectories": {"DiffEqGPU": 8.5, "MPGOS": 12.0},
}
TARGET_FIXED_MS = 50.0  # 8,388,608 fixed-step trajectories on an H100/H200
TARGET_VS_DIFFRAX = 30.0


def lorenz(t, u, p, du):
    du[0] = p[0] * (u[1] - u[0])
    du[1] = u[0] * (p[1] - u[2]) - u[1]
    du[2] = u[0] * u[1] - p[2] * u[2]

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
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU part")
    parser.add_argument("--gpu-sizes", type=int, nargs="+", default=list(GPU_SIZES),
                        help="trajectories of the fixed-step GPU runs")
    parser.add_argument("--lorenz-params", choices=("rho-range", "uniform"),
                        default="rho-range")
    parser.add_argument("--diffrax-max-n", type=int, default=2**20,
                        help="largest N given to diffrax (its vmap is slow and memory-hungry)")
    parser.add_argument("--adaptive-n", type=int, default=ADAPTIVE_N)
    parser.add_argument("--no-cpu-check", action="store_true",
                        help="skip comparing GPU results with the CPU kernels (which compile "
                             "for minutes on a fresh machine)")
    parser.add_argument("--allow-simulator", action="store_true",
                        help="run the GPU part under NUMBA_ENABLE_CUDASIM=1 (use tiny "
                             "--gpu-sizes/--adaptive-n): checks this script, times nothing")
    args = parser.parse_args(argv)

    if args.gpu_only:
        results = gpu_benchmarks(args)
        if args.json:
            write_json(args.json, {"machine": machine_info(), "gpu": results})
        return 0

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
    gpu_results = gpu_benchmarks(args)
    if args.json:
        write_json(args.json, {"machine": info, "n": args.n, "seconds": results,
                               "gpu": gpu_results,
                               "versions": {"paramest": package_version("paramest"),
                                            "numbalsoda": package_version("numbalsoda")}})
    return 0


# --- GPU ------------------------------------------------------------------------------


def lorenz_parameters(n, how, dtype):
    """``(n, 3)`` Lorenz parameters: rho evenly over [0, 21] (sigma, beta nominal), or every
    nominal value scaled by U(0.9, 1.1)."""
    if how == "rho-range":
        params = np.empty((n, 3))
        params[:, 0] = LORENZ_P[0]
        params[:, 1] = np.linspace(0.0, 21.0, n)
        params[:, 2] = LORENZ_P[2]
    else:
        params = LORENZ_P * np.random.default_rng(0).uniform(0.9, 1.1, (n, 3))
    return params.astype(dtype)


def _gpu_timed(fn, repeats):
    """Best and median wall time of ``fn`` followed by ``cuda.synchronize()``, after one
    warm-up call (compilation, first allocations)."""
    from numba import cuda

    result = fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        cuda.synchronize()
        times.append(time.perf_counter() - start)
    return result, min(times), sorted(times)[len(times) // 2]


def _kernel_launcher(problem, params, method, dt, dtype, rtol, atol, t_eval):
    """The launch :func:`paramest.solve_ensemble` makes, alone, on preallocated device
    arrays: what the kernel itself costs."""
    from numba import cuda

    from paramest.ensemble import _cuda_model
    from paramest.kernels.cuda import ensemble as kens
    from paramest.solve import _validated_options

    n = problem.n_states
    t0, t_end = problem.t_span
    _, atol_vector, fopts, _ = _validated_options(
        method, rtol, atol, None, np.inf, 100_000, False, dt, t0, t_end, n
    )
    py_func = problem.model._py_func
    kernel = kens.ensemble_kernel(
        (py_func.__module__, py_func.__qualname__), _cuda_model(problem.model, dtype), method,
        dt is None, n, problem.n_params, dtype,
    )
    n_traj = params.shape[0]
    states = cuda.to_device(np.asarray(problem.y0, dtype=dtype)[None, :])
    times = cuda.to_device(np.asarray(t_eval, dtype=np.float64))
    y_out = cuda.device_array((n, times.shape[0], n_traj), dtype=dtype)
    status = cuda.device_array(n_traj, dtype=np.int32)
    t_final = cuda.device_array(n_traj, dtype=np.float64)
    counts = cuda.device_array((kens.COUNT_ROWS, n_traj), dtype=np.int32)
    atol_device = cuda.to_device(atol_vector)
    fopts_device = cuda.to_device(fopts)

    def launch():
        kens.launch(kernel, n_traj, states, params, atol_device, fopts_device, 100_000, times,
                    y_out, status, t_final, counts)
        return status

    return launch


def _diffrax_solver(jax_modules, method):
    jax, jnp, diffrax = jax_modules
    if method == "Tsit5":
        return diffrax.Tsit5()
    from paramest.kernels.tableaus import get_tableau

    tab = get_tableau("RK4")

    class RK4(diffrax.AbstractERK):
        tableau = diffrax.ButcherTableau(
            c=np.asarray(tab.c[1:]), b_sol=np.asarray(tab.b), b_error=np.zeros(4),
            a_lower=tuple(np.asarray(tab.A[i, :i]) for i in range(1, 4)),
        )
        interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return 4

    return RK4()


def _diffrax_ensemble(jax_modules, method, dtype, adaptive):
    """``jit(vmap(...))`` of one diffrax Lorenz solve to t = 1 (final state only)."""
    jax, jnp, diffrax = jax_modules

    def field(t, u, p):
        return jnp.stack([p[0] * (u[1] - u[0]), u[0] * (p[1] - u[2]) - u[1],
                          u[0] * u[1] - p[2] * u[2]])

    u0 = jnp.asarray(LORENZ_U0, dtype=dtype)
    solver = _diffrax_solver(jax_modules, method)
    if adaptive:
        controller = diffrax.PIDController(rtol=ADAPTIVE_TOL, atol=ADAPTIVE_TOL)
        dt0, max_steps = None, 100_000
    else:
        controller = diffrax.ConstantStepSize()
        dt0, max_steps = 1.0 / FIXED_STEPS, FIXED_STEPS + 16

    def one(p):
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(field), solver, 0.0, 1.0, dt0, u0, args=p,
            saveat=diffrax.SaveAt(t1=True), stepsize_controller=controller,
            max_steps=max_steps,
        )
        return solution.ys[-1]

    return jax.jit(jax.vmap(one))


def _jax_gpu():
    """``(jax, jax.numpy, diffrax)`` when JAX sees a CUDA GPU and diffrax imports, else a
    string saying why not."""
    try:
        import jax
        import jax.numpy as jnp

        if not jax.devices("gpu"):
            return "JAX sees no GPU"
        import diffrax
    except Exception as exc:  # noqa: BLE001 - any failure: no diffrax on the GPU
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return jax, jnp, diffrax


def gpu_benchmarks(args):
    """The GPU part (module docstring); returns the timings (seconds) by name."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from paramest.kernels.cuda import simulator_active, unavailable_reason

    reason = unavailable_reason()
    if reason is None and simulator_active() and not args.allow_simulator:
        reason = "Numba's CUDA simulator is active (NUMBA_ENABLE_CUDASIM=1)"
    if reason is not None:
        print(f"\nGPU ensembles: no GPU: skipped ({reason})")
        return {}

    from numba import cuda

    import paramest as pe

    if simulator_active():
        name, capability = "Numba's CUDA simulator (a script check; no timing)", "-"
    else:
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else device.name
        capability = device.compute_capability
    print(f"\nGPU ensembles on {name} (compute capability {capability}), "
          f"Lorenz, t in [0, 1], final state only; parameters: "
          + ("rho evenly over [0, 21], sigma = 10, beta = 8/3" if args.lorenz_params ==
             "rho-range" else "(10, 28, 8/3) each scaled by U(0.9, 1.1)"))
    problem = pe.ODEProblem(lorenz, LORENZ_U0, (0.0, 1.0), LORENZ_P)
    repeats = max(3, args.repeats)
    results = {}
    rows = []

    def run(label, n, method, dt, dtype, rtol=1e-6, atol=1e-8):
        params = cuda.to_device(lorenz_parameters(n, args.lorenz_params, dtype))
        options = dict(p=params, t_eval=[1.0], method=method, dt=dt, rtol=rtol, atol=atol,
                       device="cuda", dtype=dtype)
        start = time.perf_counter()
        ens = pe.solve_ensemble(problem, **options)
        first = time.perf_counter() - start
        assert ens.n_success == n, ens.message
        _, api_best, _ = _gpu_timed(lambda: pe.solve_ensemble(problem, **options), repeats)
        launch = _kernel_launcher(problem, params, method, dt, dtype, rtol, atol, [1.0])
        _, kernel_best, kernel_median = _gpu_timed(launch, repeats)
        results[f"{label}, N={n}, solve_ensemble"] = api_best
        results[f"{label}, N={n}, kernel"] = kernel_best
        steps = np.asarray(ens.n_accepted.copy_to_host()).mean()
        rows.append((label, f"{n:,}", fmt_time(first), fmt_time(api_best),
                     fmt_time(kernel_best), fmt_time(kernel_median),
                     f"{kernel_best / n * 1e9:.2f} ns", f"{steps:.0f}"))
        return ens

    dt = 1.0 / FIXED_STEPS
    for n in args.gpu_sizes:
        run("RK4 fixed, float32", n, "RK4", dt, np.float32)
    run("Tsit5 fixed, float32", args.gpu_sizes[-1], "Tsit5", dt, np.float32)
    run("Tsit5 fixed, float64", args.gpu_sizes[-1], "Tsit5", dt, np.float64)
    adaptive = run("Tsit5 adaptive, float64", args.adaptive_n, "Tsit5", None, np.float64,
                   rtol=ADAPTIVE_TOL, atol=ADAPTIVE_TOL)

    jax_modules = _jax_gpu()
    if isinstance(jax_modules, str):
        print(f"diffrax (jax.vmap) on the GPU: skipped ({jax_modules})")
    else:
        for method in ("RK4", "Tsit5"):
            n = min(args.diffrax_max_n, max(args.gpu_sizes))
            solve = _diffrax_ensemble(jax_modules, method, np.float32, adaptive=False)
            params = jax_modules[1].asarray(lorenz_parameters(n, args.lorenz_params,
                                                              np.float32))
            start = time.perf_counter()
            solve(params).block_until_ready()
            first = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                solve(params).block_until_ready()
                times.append(time.perf_counter() - start)
            best = min(times)
            results[f"diffrax {method} fixed, float32, N={n}"] = best
            ours = results.get(f"{method} fixed, float32, N={n}, solve_ensemble")
            if ours is None:  # not among our sizes: measure ours at this N
                run(f"{method} fixed, float32", n, method, dt, np.float32)
                ours = results[f"{method} fixed, float32, N={n}, solve_ensemble"]
            rows.append((f"diffrax vmap {method} fixed, float32", f"{n:,}", fmt_time(first),
                         fmt_time(best), "", "", f"{best / n * 1e9:.2f} ns", "1000"))
            print(f"diffrax vmap / paramest, {method} fixed float32, N={n:,}: "
                  f"{best / ours:.1f}x (target >= {TARGET_VS_DIFFRAX:.0f}x)")

    print(format_table(["GPU run", "N", "first call", "solve_ensemble", "kernel best",
                        "kernel median", "kernel / traj", "steps"], rows))
    largest = max(args.gpu_sizes)
    fixed = results.get(f"RK4 fixed, float32, N={largest}, kernel")
    print(f"RK4 fixed float32, N={largest:,}: kernel {fmt_time(fixed)} "
          f"(target <= {TARGET_FIXED_MS:.0f} ms for 8,388,608 on an H100/H200)")
    print("published V100 figures: " + "; ".join(
        f"{what}: " + ", ".join(f"{who} {ms:g} ms" for who, ms in peers.items())
        for what, peers in PUBLISHED_V100_MS.items()))
    del adaptive
    if not args.no_cpu_check:
        _cpu_checks(pe, problem, args, dt)
    return results


def _cpu_checks(pe, problem, args, dt):
    """The GPU results against the CPU kernels on a few trajectories."""
    from paramest.kernels.cuda import simulator_active

    # accuracy of the float32 fixed-step run against the CPU kernels (float64)
    n_check = 16 if simulator_active() else 2048
    check = lorenz_parameters(n_check, args.lorenz_params, np.float64)
    single = pe.solve_ensemble(problem, p=check, t_eval=[1.0], method="RK4", dt=dt,
                               device="cuda", dtype=np.float32)
    cpu = pe.solve_ensemble(problem, p=check, t_eval=[1.0], method="RK4", dt=dt)
    gpu64 = pe.solve_ensemble(problem, p=check, t_eval=[1.0], method="RK4", dt=dt,
                              device="cuda")
    scale = np.abs(cpu.y).max()
    print(f"check on {n_check} trajectories, RK4: |float32 GPU - float64 CPU| / max|y| = "
          f"{np.abs(single.y - cpu.y).max() / scale:.1e}; |float64 GPU - CPU| / max|y| = "
          f"{np.abs(gpu64.y - cpu.y).max() / scale:.1e}; same steps: "
          f"{bool((gpu64.n_accepted == cpu.n_accepted).all())}")
    cpu_adaptive = pe.solve_ensemble(problem, p=check, t_eval=[1.0], rtol=ADAPTIVE_TOL,
                                     atol=ADAPTIVE_TOL)
    gpu_adaptive = pe.solve_ensemble(problem, p=check, t_eval=[1.0], rtol=ADAPTIVE_TOL,
                                     atol=ADAPTIVE_TOL, device="cuda")
    print(f"check on {n_check} trajectories, adaptive Tsit5 float64: max |GPU - CPU| / max|y| = "
          f"{np.abs(gpu_adaptive.y - cpu_adaptive.y).max() / scale:.1e}; trajectories with "
          f"the CPU's step count: "
          f"{int((gpu_adaptive.n_accepted == cpu_adaptive.n_accepted).sum())} of {n_check}")


if __name__ == "__main__":
    sys.exit(main())
