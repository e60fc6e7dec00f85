"""Compile latency: the first solve of a brand-new model, in fresh processes.

Prints, each measured in a new Python process, for an explicit (Tsit5) and a stiff
(Rodas5P) first solve:
  * import paramest
  * first solve of a brand-new model, library kernels not yet compiled (empty Numba cache)
  * first solve of a brand-new model, library kernels cached (the usual case on a machine
    where paramest has run once): compiling the model and running the model check
  * the same model again in a new process (everything loaded from the cache)
then each of paramest's kernels on its own: its cold compile time in a fresh Numba cache
and its load time from the cache in a second process (through ``paramest.precompile``), with
every individual Numba compile of a ``paramest.kernels`` function in the cold process
(nested ones indented: their time is part of the enclosing one's);
and, in this process, the per-call cost of solve() from Python on a trivial problem (where
the integration itself costs nothing) and the cost of changing rtol / t_eval / p / y0
(nothing is recompiled).

Run:  python benchmarks/compile_latency.py
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import timeit
import uuid
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import paramest as pe
    t1 = time.perf_counter()
    from model_{tag} import rhs
    problem = pe.ODEProblem(rhs, [1.0, 1.0, 0.5], (0.0, 5.0), [1.5, 1.0, 3.0, 1.0])
    t2 = time.perf_counter()
    sol = pe.solve(problem, "{method}", t_eval=np.linspace(0.0, 5.0, 51))
    t3 = time.perf_counter()
    assert sol.success
    print(json.dumps(dict(import_s=t1 - t0, problem_s=t2 - t1, solve_s=t3 - t2,
                          first_solve_s=t3 - t1)))
    """
)

MODEL = textwrap.dedent(
    """
    import numpy as np

    def rhs(t, y, p, dydt):
        # model {tag}: a 3-state variant of Lotka-Volterra
        dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
        dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1] - 0.1 * y[2]
        dydt[2] = 0.5 * y[1] - 0.2 * np.sin(t) * y[2]
    """
)


def run_child(directory, tag, env, method):
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(tag=tag, method=method)], cwd=directory, env=env,
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_model(directory):
    tag = uuid.uuid4().hex[:10]
    Path(directory, f"model_{tag}.py").write_text(MODEL.format(tag=tag))
    return tag


KERNELS_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from numba.core import event

    events = []
    stack = []

    class Recorder(event.Listener):
        # one row per compile, in the order they start (a kernel before its nested helpers)
        def on_start(self, ev):
            func = getattr(ev.data["dispatcher"], "py_func", None)
            module = getattr(func, "__module__", "")
            dtypes = [str(a.dtype) for a in ev.data["args"][1:2] if hasattr(a, "dtype")]
            row = None
            if module.startswith("paramest"):
                row = [len(stack), f"{module}.{func.__qualname__}", ",".join(dtypes), 0.0]
                events.append(row)
            stack.append((row, time.perf_counter()))

        def on_end(self, ev):
            row, start = stack.pop()
            if row is not None:
                row[3] = time.perf_counter() - start

    event.register("numba:compile", Recorder())
    t0 = time.perf_counter()
    import paramest as pe
    import_s = time.perf_counter() - t0
    times = pe.precompile(complex_step=True, sensitivities=True, verbose=False)
    print(json.dumps(dict(import_s=import_s,
                          times={k: list(v) for k, v in times.items()},
                          events=events)))
    """
)


def kernel_compile_times():
    """Cold compile and cached load of every kernel, each in a new process."""
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(work, "numba_cache")))
        env.pop("NUMBA_BOUNDSCHECK", None)
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", KERNELS_CHILD], cwd=work, env=env,
                capture_output=True, text=True, check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold, cached = runs
    print(f"{'kernel (paramest.precompile step)':36s} {'cold compile':>13s} "
          f"{'from cache':>11s}")
    print(f"{'import paramest':36s} {cold['import_s']:13.2f} {cached['import_s']:11.2f}")
    for name, (seconds, _) in cold["times"].items():
        cached_s, cached_hit = cached["times"][name]
        flag = "" if cached_hit else "  (recompiled!)"
        print(f"{name:36s} {seconds:13.2f} {cached_s:11.2f}{flag}")
    print("(seconds; 'model check' = ODEProblem of a small model: its cfuncs + the "
          "model-check helpers)")
    print("individual Numba compiles in the cold process (nested ones indented, their time is "
          "included in the line above them):")
    for depth, name, dtypes, seconds in cold["events"]:
        label = "  " * depth + name.replace("paramest.kernels.", "")
        print(f"  {label:60s} {dtypes:>10s} {seconds:7.2f}")
    print(f"(cached: {len(cached['events'])} compiles)")


def per_call_overhead():
    import numpy as np

    import paramest as pe

    def still(t, y, p, dydt):
        dydt[0] = 0.0

    problem = pe.ODEProblem(still, [1.0], (0.0, 1.0))
    t_eval = np.array([1.0])
    pe.solve(problem, t_eval=t_eval)
    n = 20000
    best = min(timeit.repeat(lambda: pe.solve(problem, t_eval=t_eval), number=n, repeat=7))
    return best / n


def main():
    rows = []
    for method in ("Tsit5", "Rodas5P"):
        with tempfile.TemporaryDirectory() as work:
            env = dict(os.environ)
            env["PYTHONPATH"] = work + os.pathsep + env.get("PYTHONPATH", "")
            cold_cache = Path(work, "numba_cache")
            cold_env = dict(env, NUMBA_CACHE_DIR=str(cold_cache))
            rows.append((f"{method}: library and model cold (empty cache)",
                         run_child(work, fresh_model(work), cold_env, method)))
            tag = fresh_model(work)
            # warm the library kernels in this cache location with another model first
            run_child(work, fresh_model(work), env, method)
            rows.append((f"{method}: brand-new model, library cached",
                         run_child(work, tag, env, method)))
            rows.append((f"{method}: same model, new process (warm)",
                         run_child(work, tag, env, method)))
    print(f"{'case':45s} {'import':>8s} {'ODEProblem':>11s} {'solve':>8s} {'first solve':>12s}")
    for name, r in rows:
        print(f"{name:45s} {r['import_s']:8.3f} {r['problem_s']:11.3f} {r['solve_s']:8.3f} "
              f"{r['first_solve_s']:12.3f}")
    print("(seconds; 'first solve' = ODEProblem construction + first solve, after import)")
    print()
    kernel_compile_times()
    print()
    overhead = per_call_overhead()
    print(f"per-call overhead of solve() from Python (trivial model): {overhead * 1e6:.2f} us")


if __name__ == "__main__":
    main()
