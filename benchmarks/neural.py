"""Neural ODE training: the spiral of DiffEqFlux's documentation, paramest against diffrax
and torchdiffeq.

The workload (DiffEqFlux's "neural ordinary differential equations" example): the true
system u' = ((u^3)^T A)^T with A = [[-0.1, 2.0], [-2.0, -0.1]], u0 = (2, 0), 30 outputs on
[0, 1.5]; the network x -> x^3 -> Dense(2, 50, tanh) -> Dense(50, 2), 252 weights; the
loss sum((u(t_i; theta) - data_i)^2); Tsit5 at rtol=1e-7, atol=1e-9.

* (A) loss + gradient w.r.t. all 252 weights, at the seed-0 initialisation (weights and
  biases ~ N(0, 0.1^2)) and at trained weights (paramest's own Adam + L-BFGS-B result,
  loss < 0.1, fed to every contender). paramest: ``Objective.value_and_grad`` with
  ``DiscreteAdjoint()`` (the network's hand-written reverse pass once per stage) and with
  the continuous ``Adjoint()``; diffrax: Tsit5 + RecursiveCheckpointAdjoint (float64,
  ``jax.jit(jax.value_and_grad(...))``); torchdiffeq: dopri5, backpropagation through the
  solver ("direct") and ``odeint_adjoint``, float64. The gradients are compared with
  paramest's. Target: paramest <= 0.33x diffrax's time at both points.
* (B) 100 Adam steps (learning rate 0.05) from the seed-0 weights, each contender in a
  fresh process, wall time including imports, compilation (or loading compiled code from
  the on-disk cache) and the 100 loss + gradient evaluations. Target: paramest <= 1 s.
  paramest's time is given with its on-disk cache warm (the installed case: the kernels
  were compiled once, when first used or by ``paramest.precompile()``); its cold time (an
  empty cache) is printed as well, with ``--cold``.

Run ``python benchmarks/neural.py`` (about two minutes on 2 cores; ``--quick`` skips the
peers and (B), ``--json PATH`` saves the results). It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    fmt_time,
    format_table,
    interleaved_timings,
    machine_info,
    package_version,
    ratio,
    timed_import,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-7, 1e-9
T = np.linspace(0.0, 1.5, 30)
U0 = np.array([2.0, 0.0])
A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
SIZES = (2, 50, 2)


def spiral(t, u, p, du):
    # ((u^3)^T A)^T
    c0, c1 = u[0] ** 3, u[1] ** 3
    du[0] = c0 * -0.1 + c1 * -2.0
    du[1] = c0 * 2.0 + c1 * -0.1


def setup() -> tuple[Any, Any, np.ndarray, np.ndarray]:
    import paramest as pe
    from paramest.nn import MLP

    truth = pe.solve(pe.ODEProblem(spiral, U0, (0.0, 1.5)), "Tsit5", T, rtol=1e-12,
                     atol=1e-12)
    net = MLP(SIZES, activation="tanh", init="normal", input_transform="cube")
    theta0 = net.init(seed=0)
    problem = pe.NeuralODE(net, U0, (0.0, 1.5), theta0)
    return pe, problem, truth.y, theta0


def objective(pe: Any, problem: Any, data: np.ndarray, sensitivity: Any) -> Any:
    # sigma^2 = 1/2 makes fit's 0.5 * sum(r^2) DiffEqFlux's sum of squares
    return pe.Objective(problem, pe.Data(T, data, sigma=np.sqrt(0.5)), sensitivity=sensitivity,
                        solver="Tsit5", rtol=RTOL, atol=ATOL)


def train(pe: Any, problem: Any, data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """paramest's own training to loss < 0.1: Adam then L-BFGS-B, as DiffEqFlux does."""
    start = time.perf_counter()
    result = pe.fit(problem, pe.Data(T, data, sigma=np.sqrt(0.5)), method="adam",
                    sensitivity=pe.DiscreteAdjoint(), solver="Tsit5", rtol=RTOL, atol=ATOL,
                    options={"maxiter": 300, "learning_rate": 0.05, "polish": "L-BFGS-B",
                             "polish_options": {"maxiter": 300}})
    return result.x, result.cost, time.perf_counter() - start


# -- peers --------------------------------------------------------------------------------
def diffrax_value_and_grad(jax: Any, dfx: Any, data: np.ndarray) -> Any:
    jnp = jax.numpy
    ts = jnp.asarray(T)
    target = jnp.asarray(data.T)
    n_w0 = SIZES[1] * SIZES[0]

    def unpack(theta):
        w0 = theta[:n_w0].reshape(SIZES[1], SIZES[0])
        b0 = theta[n_w0:n_w0 + SIZES[1]]
        start = n_w0 + SIZES[1]
        w1 = theta[start:start + SIZES[2] * SIZES[1]].reshape(SIZES[2], SIZES[1])
        b1 = theta[start + SIZES[2] * SIZES[1]:]
        return w0, b0, w1, b1

    def f(t, u, theta):
        w0, b0, w1, b1 = unpack(theta)
        return w1 @ jnp.tanh(w0 @ u**3 + b0) + b1

    def loss(theta):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(f), dfx.Tsit5(), 0.0, 1.5, None, jnp.asarray(U0), args=theta,
            saveat=dfx.SaveAt(ts=ts), stepsize_controller=dfx.PIDController(rtol=RTOL,
                                                                             atol=ATOL),
            max_steps=100_000, adjoint=dfx.RecursiveCheckpointAdjoint())
        return jnp.sum((sol.ys - target) ** 2)

    return jax.jit(jax.value_and_grad(loss))


def torch_value_and_grad(torch: Any, tdq: Any, data: np.ndarray, adjoint: bool) -> Any:
    torch.set_default_dtype(torch.float64)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l0 = torch.nn.Linear(SIZES[0], SIZES[1])
            self.l1 = torch.nn.Linear(SIZES[1], SIZES[2])

        def forward(self, t, u):
            return self.l1(torch.tanh(self.l0(u**3)))

    field = Field()
    ts = torch.tensor(T)
    u0 = torch.tensor(U0)
    target = torch.tensor(data.T)
    solve = tdq.odeint_adjoint if adjoint else tdq.odeint
    params = [field.l0.weight, field.l0.bias, field.l1.weight, field.l1.bias]

    def value_and_grad(theta):
        with torch.no_grad():
            offset = 0
            for q in params:
                q.copy_(torch.tensor(theta[offset:offset + q.numel()]).reshape(q.shape))
                offset += q.numel()
        for q in params:
            q.grad = None
        pred = solve(field, u0, ts, rtol=RTOL, atol=ATOL, method="dopri5")
        loss = torch.sum((pred - target) ** 2)
        loss.backward()
        return float(loss.detach()), np.concatenate([q.grad.numpy().ravel() for q in params])

    return value_and_grad


# -- (B): 100 Adam steps in a fresh process ------------------------------------------------
ADAM_PARAMEST = """
import time; start = time.perf_counter()
import numpy as np, paramest as pe
from paramest.nn import MLP
T = np.linspace(0.0, 1.5, 30)
data = np.load({data!r})
net = MLP((2, 50, 2), activation="tanh", init="normal", input_transform="cube")
problem = pe.NeuralODE(net, [2.0, 0.0], (0.0, 1.5), net.init(seed=0))
result = pe.fit(problem, pe.Data(T, data, sigma=np.sqrt(0.5)), method="adam",
                sensitivity=pe.DiscreteAdjoint(), solver="Tsit5", rtol=1e-7, atol=1e-9,
                options={{"maxiter": 100, "learning_rate": 0.05}})
print("RESULT", time.perf_counter() - start, result.history[0], result.cost)
"""

ADAM_DIFFRAX = """
import time; start = time.perf_counter()
import sys; sys.path.insert(0, {bench!r})
import numpy as np, jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, diffrax
import neural
data = np.load({data!r})
theta = jnp.asarray(np.load({theta!r}))
vg = neural.diffrax_value_and_grad(jax, diffrax, data)
m = jnp.zeros_like(theta); v = jnp.zeros_like(theta)
@jax.jit
def step(theta, m, v, i):
    value, g = vg(theta)
    m = 0.9 * m + 0.1 * g; v = 0.999 * v + 0.001 * g * g
    mh = m / (1 - 0.9 ** i); vh = v / (1 - 0.999 ** i)
    return theta - 0.05 * mh / (jnp.sqrt(vh) + 1e-8), m, v, value
first = None
for i in range(1, 101):
    theta, m, v, value = step(theta, m, v, float(i))
    first = float(value) if first is None else first
value = float(vg(theta)[0])
print("RESULT", time.perf_counter() - start, first, value)
"""

ADAM_TORCH = """
import time; start = time.perf_counter()
import sys; sys.path.insert(0, {bench!r})
import numpy as np, torch, torchdiffeq
import neural
data = np.load({data!r})
theta = np.load({theta!r})
vg = neural.torch_value_and_grad(torch, torchdiffeq, data, adjoint={adjoint})
m = np.zeros_like(theta); v = np.zeros_like(theta); first = None
for i in range(1, 101):
    value, g = vg(theta)
    first = value if first is None else first
    m = 0.9 * m + 0.1 * g; v = 0.999 * v + 0.001 * g * g
    theta = theta - 0.05 * (m / (1 - 0.9 ** i)) / (np.sqrt(v / (1 - 0.999 ** i)) + 1e-8)
print("RESULT", time.perf_counter() - start, first, vg(theta)[0])
"""


def run_script(code: str, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(code)
    try:
        out = subprocess.run([sys.executable, handle.name], capture_output=True, text=True,
                             env=env, cwd=str(ROOT), timeout=1800)
    finally:
        os.unlink(handle.name)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            _, wall, first, last = line.split()
            return float(wall), float(first), float(last)
    raise RuntimeError(f"the Adam run failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="paramest only, no (B)")
    parser.add_argument("--cold", action="store_true",
                        help="(B) also with an empty Numba cache (compiles everything)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    print("machine:", machine_info())
    pe, problem, data, theta0 = setup()
    print("training paramest's network (Adam 300 steps lr 0.05, then L-BFGS-B) ...")
    trained, trained_cost, train_s = train(pe, problem, data)
    print(f"  trained to loss (sum of squares) {trained_cost:.4g} in {train_s:.2f} s")

    contenders: dict[str, Any] = {}
    discrete = objective(pe, problem, data, pe.DiscreteAdjoint())
    continuous = objective(pe, problem, data, pe.Adjoint())

    def uncached(objective_):
        # an Objective keeps its last evaluation; each timed call must solve
        def call(th):
            objective_._cache_x = None
            return objective_.value_and_grad(th)
        return call

    contenders["paramest DiscreteAdjoint"] = uncached(discrete)
    contenders["paramest Adjoint"] = uncached(continuous)
    missing = {}
    if not args.quick:
        jax = timed_import("jax")[0]
        dfx = timed_import("diffrax")[0] if jax is not None else None
        if dfx is not None:
            jax.config.update("jax_enable_x64", True)
            vg = diffrax_value_and_grad(jax, dfx, data)

            def diffrax_call(th, vg=vg):
                value, grad = vg(jax.numpy.asarray(th))
                return float(value), np.asarray(grad)

            contenders["diffrax Tsit5 RecursiveCheckpointAdjoint"] = diffrax_call
        else:
            missing["diffrax"] = "not installed"
        torch = timed_import("torch")[0]
        tdq = timed_import("torchdiffeq")[0] if torch is not None else None
        if tdq is not None:
            torch.set_num_threads(1)
            for adjoint, label in ((False, "direct"), (True, "odeint_adjoint")):
                vg_t = torch_value_and_grad(torch, tdq, data, adjoint)

                def torch_call(th, vg_t=vg_t):
                    value, grad = vg_t(th)
                    return value, grad

                contenders[f"torchdiffeq dopri5 {label}"] = torch_call
        else:
            missing["torchdiffeq"] = "not installed"

    results: dict[str, Any] = {"trained_cost": trained_cost, "train_s": train_s,
                               "versions": {d: package_version(d) for d in (
                                   "numba", "diffrax", "jax", "torch", "torchdiffeq")}}
    for point, theta in (("initial", theta0), ("trained", trained)):
        reference = contenders["paramest DiscreteAdjoint"](theta)
        rows, timings_in = [], {}
        for name, call in contenders.items():
            value, grad = call(theta)  # warm-up (compilation) and the agreement check
            error = np.max(np.abs(grad - reference[1])) / np.max(np.abs(reference[1]))
            rows.append((name, f"{value:.6g}", f"{error:.1e}"))
            timings_in[name] = (lambda k, call=call, theta=theta:
                                [call(theta) for _ in range(k)] and None)
        timings = interleaved_timings(timings_in, rounds=7, target_s=0.3)
        base = timings["paramest DiscreteAdjoint"].median
        table = []
        for (name, value, error) in rows:
            med = timings[name].median
            table.append((name, fmt_time(med), f"{ratio(med, base):.2f}", value, error))
        print(f"\n(A) loss + gradient over 252 weights at the {point} weights")
        print(format_table(("contender", "time", "/ paramest DA", "loss", "grad rel err"),
                           table))
        results[point] = {name: timings[name].as_dict() for name in timings}
        peer = "diffrax Tsit5 RecursiveCheckpointAdjoint"
        if peer in timings:
            print(f"target: paramest DiscreteAdjoint / diffrax <= 0.33: "
                  f"{ratio(base, timings[peer].median):.2f}")

    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            data_file, theta_file = os.path.join(tmp, "data.npy"), os.path.join(tmp, "t.npy")
            np.save(data_file, data)
            np.save(theta_file, theta0)
            fmt = {"data": data_file, "theta": theta_file, "bench": str(Path(__file__).parent)}
            runs = {"paramest DiscreteAdjoint (warm cache)": (ADAM_PARAMEST.format(**fmt), None)}
            if args.cold:
                env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba-cache"))
                runs["paramest DiscreteAdjoint (cold cache)"] = (ADAM_PARAMEST.format(**fmt),
                                                                 env)
            if "diffrax" not in missing:
                runs["diffrax Tsit5 RecursiveCheckpointAdjoint"] = (
                    ADAM_DIFFRAX.format(**fmt), None)
            if "torchdiffeq" not in missing:
                runs["torchdiffeq dopri5 direct"] = (
                    ADAM_TORCH.format(adjoint=False, **fmt), None)
            table, adam = [], {}
            for name, (code, env) in runs.items():
                # An installed package's modules import from their byte-code caches: allow
                # them (this machine's environment may turn them off), and measure the
                # second of two runs, so that every contender's .pyc files exist. JAX's and
                # torch's own compilations are not cached across processes by default.
                env = dict(os.environ if env is None else env)
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                first_run = run_script(textwrap.dedent(code), env)[0]
                wall, first, last = run_script(textwrap.dedent(code), env)
                adam[name] = {"wall_s": wall, "first_run_wall_s": first_run,
                              "first_cost": first, "last_cost": last}
                table.append((name, f"{wall:.2f} s", f"{first_run:.2f} s", f"{first:.4g}",
                              f"{last:.4g}"))
            print("\n(B) 100 Adam steps (lr 0.05) in a fresh process, including imports and "
                  "compilation (second run; the first run's time beside it)")
            print(format_table(("contender", "wall", "first run", "loss first",
                                "loss last"), table))
            print("target: paramest <= 1 s")
            results["adam"] = adam
    for name, why in missing.items():
        print(f"{name}: {why}")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
