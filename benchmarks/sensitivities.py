"""Forward sensitivities: speed and accuracy of paramest's derivatives against other tools.

Three workloads:

* (A) the gradient of a least-squares loss on Lotka-Volterra: y0 = (1, 1), output at
  101 equally spaced times on [0, 10], data from a tight solve at p = (1.5, 1, 3, 1),
  loss sum((y(t_i; p) - data_i)^2), gradient w.r.t. the 4 parameters at
  p = (1.4, 0.9, 3.1, 1.1), rtol=1e-6, atol=1e-8. Reference: scipy DOP853 on the
  augmented (state + sensitivity) system at rtol=1e-12, atol=1e-14.
* (B) the sensitivities of Robertson's kinetics w.r.t. (k1, k2, k3) = (0.04, 3e7, 1e4)
  on [0, 1e5], y0 = (1, 0, 0), output at 51 log-spaced times from 1e-5 to 1e5 (t = 0 is
  not an output), rtol=1e-6, atol=1e-10. Reference: scipy Radau on the augmented system
  (scaled sensitivities, analytic Jacobian) at rtol=1e-12, atol=1e-20.
* (C) the cost of a forward-sensitivity solve against the number of parameters: the
  linear cascade of tests/problems.py (n states, n rates, n from 2 to 200) with Tsit5
  and Rodas5P, time with all sensitivities divided by the time of a plain solve.

Peers, each used only when importable: scipy (central differences of solve_ivp, and
solve_ivp on the augmented system with analytic derivatives in NumPy), CasADi (CVODES,
with its own AD: reverse mode and forward sensitivities), torchdiffeq (backpropagation
through dopri5, float64) and diffrax (JAX, Tsit5, reverse mode and forward mode). Every
contender is timed in interleaved rounds in one process after a warm-up (JIT and
graph construction excluded) and checked against the reference; the script reports
ratios measured in the same run and asserts nothing about time.

Run ``python benchmarks/sensitivities.py`` (``--quick`` for a smoke run, ``--json PATH``
to save the results). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.problems import (  # noqa: E402
    LV_Y0,
    linear_chain_problem,
    lotka_volterra,
    lotka_volterra_reference,
)

RTOL_LV, ATOL_LV = 1e-6, 1e-8
LV_T = np.linspace(0.0, 10.0, 101)
LV_P0 = np.array([1.4, 0.9, 3.1, 1.1])
LV_METHODS = ("Tsit5", "Vern7")
LV_BASE = "Tsit5"  # the method the targets of (A) are judged on

RTOL_ROB, ATOL_ROB = 1e-6, 1e-10
ROB_T = np.logspace(-5.0, 5.0, 51)
ROB_Y0 = np.array([1.0, 0.0, 0.0])
ROB_P = np.array([0.04, 3e7, 1e4])
ROB_METHODS = ("Rodas5P", "auto")
ROB_LABELS = ("k1", "k2", "k3")

CHAIN_SIZES = (2, 5, 10, 20, 50, 100, 200)
CHAIN_METHODS = ("Tsit5", "Rodas5P")
CHAIN_EXACT_MAX = 50  # exact sensitivities (Van Loan, one 2n x 2n expm per parameter) up to n

# central differences of a solve at tolerance rtol: the truncation error grows as h^2 and
# the tolerance noise as rtol / h, balanced at h ~ rtol^(1/3) (relative to p_k)
FD_REL_STEP = RTOL_LV ** (1.0 / 3.0)

TARGETS = {
    "lv_grad_over_solve": 4.0,
    "lv_grad_time_s": 100e-6,
    "lv_grad_rel_err": 1e-5,
    "rob_sens_over_solve": 5.0,
    "rob_sens_rel_err": 1e-4,
}

NOT_YET = "paramest sensitivities not available yet"


# --- models in NumPy (scipy's f(t, y) -> array) -------------------------------------
# paramest gets the in-place models (tests/problems.py for LV and the cascade).

def robertson(t, y, p, dydt):
    # p = (k1, k2, k3) = (0.04, 3e7, 1e4)
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1]
    dydt[2] = p[1] * y[1] * y[1]


def lv_f(y, p):
    x, z = y
    return np.array([p[0] * x - p[1] * x * z, -p[2] * z + p[3] * x * z])


def lv_jac(y, p):
    x, z = y
    return np.array([[p[0] - p[1] * z, -p[1] * x], [p[3] * z, -p[2] + p[3] * x]])


def lv_fp(y, p):
    """df/dp, shape (2, 4)."""
    x, z = y
    return np.array([[x, -x * z, 0.0, 0.0], [0.0, 0.0, -z, x * z]])


def lv_augmented(t, z, p):
    """State and sensitivities, z = (y, S.ravel()) with S = dy/dp of shape (2, 4)."""
    y, S = z[:2], z[2:].reshape(2, 4)
    return np.concatenate([lv_f(y, p), (lv_jac(y, p) @ S + lv_fp(y, p)).ravel()])


def rob_f(y, p):
    y1, y2, y3 = y
    return np.array([-p[0] * y1 + p[2] * y2 * y3,
                     p[0] * y1 - p[2] * y2 * y3 - p[1] * y2 * y2,
                     p[1] * y2 * y2])


def rob_jac(y, p):
    _, y2, y3 = y
    return np.array([[-p[0], p[2] * y3, p[2] * y2],
                     [p[0], -p[2] * y3 - 2.0 * p[1] * y2, -p[2] * y2],
                     [0.0, 2.0 * p[1] * y2, 0.0]])


def rob_fp(y, p):
    """df/dp, shape (3, 3)."""
    y1, y2, y3 = y
    return np.array([[-y1, 0.0, y2 * y3],
                     [y1, -y2 * y2, -y2 * y3],
                     [0.0, y2 * y2, 0.0]])


# The augmented Robertson system carries scaled sensitivities Z_k = p_k dy/dp_k (the
# derivatives w.r.t. log p_k): they are of the size of y, so one atol fits states and
# sensitivities alike (dy/dk2 itself is ~1e-13 and would sit far below atol).

def rob_augmented(t, z, p):
    y, Z = z[:3], z[3:].reshape(3, 3)
    return np.concatenate([rob_f(y, p), (rob_jac(y, p) @ Z + rob_fp(y, p) * p).ravel()])


def rob_augmented_jac(t, z, p):
    """Jacobian of :func:`rob_augmented`: block lower triangular, J on the diagonal."""
    y, Z = z[:3], z[3:].reshape(3, 3)
    _, y2, y3 = y
    k1, k2, k3 = p
    J = rob_jac(y, p)
    out = np.zeros((12, 12))
    out[:3, :3] = J
    for k in range(3):
        v = Z[:, k]
        # d(J(y) v)/dy: the second derivatives of f contracted with v
        hv = np.array([[0.0, k3 * v[2], k3 * v[1]],
                       [0.0, -k3 * v[2] - 2.0 * k2 * v[1], -k3 * v[1]],
                       [0.0, 2.0 * k2 * v[1], 0.0]])
        # d(p_k df/dp_k)/dy
        if k == 0:
            dfp = k1 * np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        elif k == 1:
            dfp = k2 * np.array([[0.0, 0.0, 0.0], [0.0, -2.0 * y2, 0.0], [0.0, 2.0 * y2, 0.0]])
        else:
            dfp = k3 * np.array([[0.0, y3, y2], [0.0, -y3, -y2], [0.0, 0.0, 0.0]])
        rows = 3 + np.arange(3) * 3 + k  # Z[i, k] sits at 3 + 3 i + k
        out[rows, :3] = hv + dfp
        out[np.ix_(rows, rows)] = J
    return out


# --- contenders --------------------------------------------------------------------

@dataclass
class Contender:
    name: str
    run: Callable[[], np.ndarray]  # -> the gradient (A) or the sensitivities (B)
    setup_s: float = math.nan  # construction / compilation, excluded from the timing
    first_s: float = math.nan  # first call after setup
    value: np.ndarray | None = None
    kind: str = "sens"  # "sens" (a derivative) or "solve" (a plain solve, for ratios)
    notes: list[str] = field(default_factory=list)

    def batch(self) -> Batch:
        run = self.run

        def go(k: int) -> None:
            for _ in range(k):
                run()

        return go


def _add(out: list[Contender], notes: list[str], name: str,
         build: Callable[[], Callable[[], np.ndarray]], kind: str = "sens") -> None:
    """Build a contender (timed as setup), call it once (timed as first call), keep it.

    A peer that fails is reported in a note, so the others' numbers still come out.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run, setup_s = timed(build)
            value, first_s = timed(run)
    except Exception as exc:
        notes.append(f"{name}: failed ({type(exc).__name__}: {str(exc)[:200]}); skipped")
        return
    out.append(Contender(name, run, setup_s, first_s, np.asarray(value), kind))


@dataclass
class Peers:
    pe: Any = None  # paramest, only when it has sensitivities
    casadi: Any = None
    torch: Any = None
    torchdiffeq: Any = None
    jax: Any = None
    diffrax: Any = None
    missing: dict[str, str] = field(default_factory=dict)


def detect_peers() -> Peers:
    peers = Peers()
    pe, _, err = timed_import("paramest")
    if pe is not None and not hasattr(pe, "Forward"):
        pe, err = None, NOT_YET
    peers.pe = pe
    if pe is None:
        peers.missing["paramest"] = err or "not installed"
    peers.casadi, _, err = timed_import("casadi")
    if err:
        peers.missing["casadi"] = "not installed (`pip install casadi`)"
    torch, _, err1 = timed_import("torch")
    tde, _, err2 = timed_import("torchdiffeq") if torch is not None else (None, 0.0, "no torch")
    if torch is not None and tde is not None:
        peers.torch, peers.torchdiffeq = torch, tde
        torch.set_num_threads(1)  # tiny tensors: threads only add overhead and noise
    else:
        peers.missing["torchdiffeq"] = "not installed (`pip install torch torchdiffeq`)"
    jax, _, err3 = timed_import("jax")
    dfx, _, err4 = timed_import("diffrax") if jax is not None else (None, 0.0, "no jax")
    if jax is not None and dfx is not None:
        jax.config.update("jax_enable_x64", True)
        peers.jax, peers.diffrax = jax, dfx
    else:
        peers.missing["diffrax"] = "not installed (`pip install diffrax`)"
    return peers


def versions(peers: Peers) -> dict[str, str | None]:
    return {
        "paramest": package_version("paramest"), "numpy": np.__version__,
        "scipy": scipy.__version__,
        "casadi": package_version("casadi") if peers.casadi is not None else None,
        "torch": package_version("torch") if peers.torch is not None else None,
        "torchdiffeq": package_version("torchdiffeq") if peers.torch is not None else None,
        "jax": package_version("jax") if peers.jax is not None else None,
        "diffrax": package_version("diffrax") if peers.jax is not None else None,
    }


# --- helpers -------------------------------------------------------------------------

def verdict(value: float, goal: float) -> str:
    if math.isnan(value):
        return "  (n/a: a contender is missing)"
    return f"  (target <= {goal:g}: {'met' if value <= goal else 'NOT met'})"


def central_differences(fun: Callable[[np.ndarray], np.ndarray], p: np.ndarray,
                        rel_step: float) -> np.ndarray:
    """d fun / dp by central differences; the result has p's axis last."""
    cols = []
    for k in range(len(p)):
        h = rel_step * abs(p[k])
        up, down = p.copy(), p.copy()
        up[k] += h
        down[k] -= h
        cols.append((fun(up) - fun(down)) / (2.0 * h))
    return np.stack(cols, axis=-1)


def print_table(title: str, contenders: list[Contender], timings: dict[str, Any],
                base: str | None, errors: dict[str, float], err_header: str) -> list[dict]:
    base_t = timings[base].median if base in timings else math.nan
    headers = ["contender", "median", "IQR/med", "paramest/this", "setup", "1st call",
               err_header]
    rows, records = [], []
    for c in contenders:
        t = timings[c.name]
        rows.append([c.name, fmt_time(t.median), fmt_pct(t.spread),
                     fmt_num(ratio(base_t, t.median), ".3g"), fmt_time(c.setup_s),
                     fmt_time(c.first_s), fmt_num(errors.get(c.name))])
        records.append({"name": c.name, "kind": c.kind, **t.as_dict(),
                        "paramest_over_this": ratio(base_t, t.median), "setup_s": c.setup_s,
                        "first_call_s": c.first_s, "error": errors.get(c.name)})
    print(title)
    print(format_table(headers, rows))
    return records


# --- (A) Lotka-Volterra gradient -------------------------------------------------------

def lv_solve_augmented(p: np.ndarray, method: str, rtol: float, atol: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    z0 = np.concatenate([LV_Y0, np.zeros(8)])
    sol = solve_ivp(lv_augmented, (LV_T[0], LV_T[-1]), z0, method=method, t_eval=LV_T,
                    args=(p,), rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y[:2], sol.y[2:].reshape(2, 4, -1)


def lv_gradient_from(y: np.ndarray, S: np.ndarray, data: np.ndarray) -> np.ndarray:
    return 2.0 * np.einsum("it,ikt->k", y - data, S)


def lv_scipy(out: list[Contender], notes: list[str], data: np.ndarray) -> None:
    def f(t, y, p):
        return lv_f(y, p)

    for method in ("RK45", "DOP853"):
        def loss(p, method=method):
            sol = solve_ivp(f, (LV_T[0], LV_T[-1]), LV_Y0, method=method, t_eval=LV_T,
                            args=(p,), rtol=RTOL_LV, atol=ATOL_LV)
            return np.sum((sol.y - data) ** 2)

        def fd(loss=loss):
            return central_differences(lambda p: np.array(loss(p)), LV_P0, FD_REL_STEP)

        _add(out, notes, f"scipy {method} central diff.", lambda fd=fd: fd)

    for method in ("RK45", "DOP853"):
        def aug(method=method):
            y, S = lv_solve_augmented(LV_P0, method, RTOL_LV, ATOL_LV)
            return lv_gradient_from(y, S, data)

        _add(out, notes, f"scipy {method} augmented", lambda aug=aug: aug)

    def plain():
        return solve_ivp(f, (LV_T[0], LV_T[-1]), LV_Y0, method="DOP853", t_eval=LV_T,
                         args=(LV_P0,), rtol=RTOL_LV, atol=ATOL_LV).y

    _add(out, notes, "scipy DOP853 plain solve", lambda: plain, kind="solve")


def lv_casadi(ca: Any, out: list[Contender], notes: list[str], data: np.ndarray) -> None:
    # Adams with functional iteration: CVODES's setting for a non-stiff problem
    opts = {"reltol": RTOL_LV, "abstol": ATOL_LV, "linear_multistep_method": "adams",
            "nonlinear_solver_iteration": "functional"}

    def build(mode: str) -> Callable[[], np.ndarray]:
        x, p = ca.SX.sym("x", 2), ca.SX.sym("p", 4)
        ode = ca.vertcat(p[0] * x[0] - p[1] * x[0] * x[1], -p[2] * x[1] + p[3] * x[0] * x[1])
        F = ca.integrator("F", "cvodes", {"x": x, "p": p, "ode": ode}, float(LV_T[0]),
                          [float(t) for t in LV_T], opts)
        P = ca.MX.sym("P", 4)
        xf = F(x0=ca.DM(list(LV_Y0)), p=P)["xf"]  # (2, 101): t0 and the grid
        r = xf - ca.DM(data)
        if mode == "reverse":
            grad = ca.gradient(ca.sumsqr(r), P)  # reverse mode: CVODES adjoint
        else:
            jac = ca.jacobian(ca.vec(xf), P)  # forward sensitivities, 4 directions
            grad = ca.mtimes(jac.T, 2.0 * ca.vec(r))
        G = ca.Function("G", [P], [grad])
        p0 = ca.DM(list(LV_P0))
        return lambda: np.asarray(G(p0)).ravel()

    _add(out, notes, "casadi cvodes gradient (reverse AD)", lambda: build("reverse"))
    _add(out, notes, "casadi cvodes jacobian (forward)", lambda: build("forward"))


def lv_torchdiffeq(torch: Any, tde: Any, out: list[Contender], notes: list[str],
                   data: np.ndarray) -> None:
    def build() -> Callable[[], np.ndarray]:
        t = torch.tensor(LV_T, dtype=torch.float64)
        y0 = torch.tensor(LV_Y0, dtype=torch.float64)
        target = torch.tensor(data.T, dtype=torch.float64)  # odeint returns (n_times, n)

        def run() -> np.ndarray:
            p = torch.tensor(LV_P0, dtype=torch.float64, requires_grad=True)

            def f(_t, y):
                return torch.stack([p[0] * y[0] - p[1] * y[0] * y[1],
                                    -p[2] * y[1] + p[3] * y[0] * y[1]])

            ys = tde.odeint(f, y0, t, rtol=RTOL_LV, atol=ATOL_LV, method="dopri5")
            (g,) = torch.autograd.grad(((ys - target) ** 2).sum(), p)
            return g.numpy()

        return run

    _add(out, notes, "torchdiffeq dopri5 backprop", build)


def diffrax_lv_outputs(jax: Any, dfx: Any, adjoint: Any) -> Callable[[Any], Any]:
    """``ys(p)``: diffrax's Tsit5 solution of the Lotka-Volterra benchmark at LV_T (shape
    (n_times, 2)), differentiated with ``adjoint``; shared with gradients.py."""
    jnp = jax.numpy

    def f(t, y, p):
        return jnp.stack([p[0] * y[0] - p[1] * y[0] * y[1],
                          -p[2] * y[1] + p[3] * y[0] * y[1]])

    ts = jnp.asarray(LV_T)

    def ys(p):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(f), dfx.Tsit5(), float(LV_T[0]), float(LV_T[-1]), None,
            jnp.asarray(LV_Y0), args=p, saveat=dfx.SaveAt(ts=ts),
            stepsize_controller=dfx.PIDController(rtol=RTOL_LV, atol=ATOL_LV),
            max_steps=100_000, adjoint=adjoint)
        return sol.ys

    return ys


def lv_diffrax(jax: Any, dfx: Any, out: list[Contender], notes: list[str],
               data: np.ndarray) -> None:
    jnp = jax.numpy

    def build(mode: str) -> Callable[[], np.ndarray]:
        target = jnp.asarray(data.T)
        adjoint = dfx.ForwardMode() if mode == "forward" else dfx.RecursiveCheckpointAdjoint()
        ys = diffrax_lv_outputs(jax, dfx, adjoint)

        if mode == "forward":
            def grad(p):
                y = ys(p)
                return 2.0 * jnp.einsum("ti,tik->k", y - target, jax.jacfwd(ys)(p))
        else:
            def grad(p):
                return jax.grad(lambda q: jnp.sum((ys(q) - target) ** 2))(p)

        g = jax.jit(grad)
        p0 = jnp.asarray(LV_P0)
        g(p0).block_until_ready()  # compile: part of the setup
        return lambda: np.asarray(g(p0).block_until_ready())

    _add(out, notes, "diffrax Tsit5 grad (reverse)", lambda: build("reverse"))
    _add(out, notes, "diffrax Tsit5 jacfwd (ForwardMode)", lambda: build("forward"))


def lv_paramest(pe: Any, out: list[Contender], notes: list[str], data: np.ndarray) -> None:
    try:
        prob = pe.ODEProblem(lotka_volterra, LV_Y0, (LV_T[0], LV_T[-1]), LV_P0)
    except Exception as exc:
        notes.append(f"paramest ODEProblem failed ({type(exc).__name__}: {exc}); skipped")
        return
    for method in LV_METHODS:
        def plain(method=method):
            return pe.solve(prob, method, t_eval=LV_T, rtol=RTOL_LV, atol=ATOL_LV, p=LV_P0).y

        def grad(method=method):
            # what a user writes: one solve with sensitivities, then the contraction
            sol = pe.solve(prob, method, t_eval=LV_T, rtol=RTOL_LV, atol=ATOL_LV, p=LV_P0,
                           sensitivity=pe.Forward())
            return 2.0 * np.einsum("it,ikt->k", sol.y - data, sol.sens)

        try:  # the cotangent of the loss at the solution (once, outside the timing)
            cot = 2.0 * (np.asarray(plain()) - data)
        except Exception as exc:
            notes.append(f"paramest {method}: solve failed ({type(exc).__name__}: {exc})")
            continue

        def vjp(method=method, cot=cot):
            return pe.vjp(prob, LV_T, cot, sensitivity=pe.Forward(), method=method,
                          rtol=RTOL_LV, atol=ATOL_LV, p=LV_P0)

        def adjoint(method=method, cot=cot):
            return pe.vjp(prob, LV_T, cot, sensitivity=pe.DiscreteAdjoint(), method=method,
                          rtol=RTOL_LV, atol=ATOL_LV, p=LV_P0)

        _add(out, notes, f"paramest {method} Forward + einsum", lambda grad=grad: grad)
        if hasattr(pe, "vjp"):
            _add(out, notes, f"paramest {method} vjp (cotangent given)", lambda vjp=vjp: vjp)
        if hasattr(pe, "DiscreteAdjoint"):
            _add(out, notes, f"paramest {method} DiscreteAdjoint vjp",
                 lambda adjoint=adjoint: adjoint)
        _add(out, notes, f"paramest {method} plain solve", lambda plain=plain: plain,
             kind="solve")


def run_lotka_volterra(peers: Peers, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== (A) Lotka-Volterra loss gradient: 4 parameters, {len(LV_T)} output times "
          f"on [0, 10], rtol={RTOL_LV:g}, atol={ATOL_LV:g}")
    data = lotka_volterra_reference(LV_T)
    (y_ref, S_ref), ref_s = timed(lv_solve_augmented, LV_P0, "DOP853", 1e-12, 1e-14)
    g_ref = lv_gradient_from(y_ref, S_ref, data)
    y_chk, S_chk = lv_solve_augmented(LV_P0, "DOP853", 1e-11, 1e-13)
    est = np.linalg.norm(lv_gradient_from(y_chk, S_chk, data) - g_ref) / np.linalg.norm(g_ref)
    print("data: scipy DOP853 at p = (1.5, 1, 3, 1), rtol = atol = 1e-13")
    print(f"reference gradient: scipy DOP853 augmented, rtol=1e-12 atol=1e-14 ({fmt_time(ref_s)})"
          f" = [{', '.join(f'{g:.10g}' for g in g_ref)}]; its rel. difference to rtol=1e-11: "
          f"{est:.1e}")
    print(f"scipy central differences use h = {FD_REL_STEP:.2g} |p_k| (rtol^(1/3)); "
          "errors are normwise: |g - g_ref| / |g_ref|")

    notes: list[str] = []
    contenders: list[Contender] = []
    if peers.pe is not None:
        lv_paramest(peers.pe, contenders, notes, data)
    else:
        notes.append(NOT_YET if peers.missing.get("paramest") == NOT_YET
                     else f"paramest not available ({peers.missing.get('paramest')})")
    lv_scipy(contenders, notes, data)
    if peers.casadi is not None:
        lv_casadi(peers.casadi, contenders, notes, data)
    if peers.torch is not None:
        lv_torchdiffeq(peers.torch, peers.torchdiffeq, contenders, notes, data)
    if peers.jax is not None:
        lv_diffrax(peers.jax, peers.diffrax, contenders, notes, data)

    timings = interleaved_timings({c.name: c.batch() for c in contenders},
                                  rounds=args.rounds, target_s=args.batch_seconds)
    errors = {}
    for c in contenders:
        if c.kind == "sens" and c.value is not None and c.value.shape == g_ref.shape:
            errors[c.name] = float(np.linalg.norm(c.value - g_ref) / np.linalg.norm(g_ref))
    base = f"paramest {LV_BASE} Forward + einsum"
    records = print_table("", contenders, timings, base, errors, "rel err grad")

    def med(name: str) -> float:
        return timings[name].median if name in timings else math.nan

    grad_t, solve_t = med(base), med(f"paramest {LV_BASE} plain solve")
    summary = {
        f"{base} / paramest {LV_BASE} plain solve":
            (ratio(grad_t, solve_t), TARGETS["lv_grad_over_solve"]),
        f"{base}, time per gradient [us]": (grad_t * 1e6, TARGETS["lv_grad_time_s"] * 1e6),
        f"{base}, rel. error of the gradient":
            (errors.get(base, math.nan), TARGETS["lv_grad_rel_err"]),
    }
    for label, (value, goal) in summary.items():
        print(f"{label}: {fmt_num(value, '.3g')}{verdict(value, goal)}")
    for n in notes:
        print(f"note: {n}")
    return {"reference_gradient": g_ref, "reference_error_estimate": est,
            "results": records, "summary": {k: v[0] for k, v in summary.items()},
            "notes": notes}


# --- (B) Robertson sensitivities -------------------------------------------------------

def rob_solve_augmented(method: str, rtol: float, atol: float, p: np.ndarray = ROB_P
                        ) -> tuple[np.ndarray, np.ndarray]:
    """y (3, n_t) and dy/dp (3, 3, n_t) from the scaled augmented system."""
    z0 = np.concatenate([ROB_Y0, np.zeros(9)])
    sol = solve_ivp(rob_augmented, (0.0, ROB_T[-1]), z0, method=method, t_eval=ROB_T,
                    args=(p,), jac=rob_augmented_jac, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y[:3], sol.y[3:].reshape(3, 3, -1) / p[None, :, None]


def rob_error(S: np.ndarray, S_ref: np.ndarray, y_ref: np.ndarray) -> float:
    """Largest relative error of the sensitivities where the state is resolved.

    max over (i, k, t) with |y_ref[i, t]| > atol of |S - S_ref| / max(|S_ref|, floor_ik),
    floor_ik = 1e-3 max_t |S_ref[i, k, t]|: the floor keeps the ratio finite where a
    sensitivity crosses zero (an error of 1e-6 of the peak there reads as 1e-3, not inf).
    """
    floor = 1e-3 * np.max(np.abs(S_ref), axis=2, keepdims=True)
    rel = np.abs(S - S_ref) / np.maximum(np.abs(S_ref), np.maximum(floor, 1e-300))
    mask = np.broadcast_to((np.abs(y_ref) > ATOL_ROB)[:, None, :], rel.shape)
    return float(np.max(rel[mask])) if np.all(np.isfinite(S)) else math.inf


def rob_scipy(out: list[Contender], notes: list[str]) -> None:
    def f(t, y, p):
        return rob_f(y, p)

    def jac(t, y, p):
        return rob_jac(y, p)

    def solve(p, method="BDF"):
        sol = solve_ivp(f, (0.0, ROB_T[-1]), ROB_Y0, method=method, t_eval=ROB_T, args=(p,),
                        jac=jac, rtol=RTOL_ROB, atol=ATOL_ROB)
        return sol.y

    rel_step = RTOL_ROB ** (1.0 / 3.0)
    def fd():  # -> (3, 3, n_t) like the others
        return np.moveaxis(central_differences(solve, ROB_P, rel_step), -1, 1)

    _add(out, notes, "scipy BDF central diff.", lambda: fd)
    for method in ("BDF", "LSODA"):
        _add(out, notes, f"scipy {method} augmented",
             lambda method=method: lambda: rob_solve_augmented(method, RTOL_ROB, ATOL_ROB)[1])
    _add(out, notes, "scipy BDF plain solve", lambda: lambda: solve(ROB_P), kind="solve")


def rob_casadi(ca: Any, out: list[Contender], notes: list[str]) -> None:
    # p = p_nom * q, differentiated w.r.t. q at q = 1: the sensitivities CVODES integrates
    # (dy/dq = p dy/dp) are of the size of y, as in scipy's augmented system above.
    opts = {"reltol": RTOL_ROB, "abstol": ATOL_ROB}

    def integrator() -> tuple[Any, Any]:
        x, q = ca.SX.sym("x", 3), ca.SX.sym("q", 3)
        k = q * ca.DM(list(ROB_P))
        ode = ca.vertcat(-k[0] * x[0] + k[2] * x[1] * x[2],
                         k[0] * x[0] - k[2] * x[1] * x[2] - k[1] * x[1] * x[1],
                         k[1] * x[1] * x[1])
        F = ca.integrator("F", "cvodes", {"x": x, "p": q, "ode": ode}, 0.0,
                          [float(t) for t in ROB_T], opts)
        return F, ca.MX.sym("Q", 3)

    def build_sens() -> Callable[[], np.ndarray]:
        F, Q = integrator()
        xf = F(x0=ca.DM(list(ROB_Y0)), p=Q)["xf"]  # (3, 51)
        G = ca.Function("G", [Q], [ca.jacobian(ca.vec(xf), Q)])  # forward sensitivities
        one = ca.DM.ones(3)

        def run() -> np.ndarray:
            # rows of vec(xf) are (i, t) column-major; -> (3, 3, n_t), then dy/dp
            J = np.asarray(G(one)).reshape(len(ROB_T), 3, 3)
            return J.transpose(1, 2, 0) / ROB_P[None, :, None]

        return run

    def build_plain() -> Callable[[], np.ndarray]:
        F, _ = integrator()
        x0, one = ca.DM(list(ROB_Y0)), ca.DM.ones(3)
        return lambda: np.asarray(F(x0=x0, p=one)["xf"])

    _add(out, notes, "casadi cvodes forward sens.", build_sens)
    _add(out, notes, "casadi cvodes plain solve", build_plain, kind="solve")


def rob_paramest(pe: Any, out: list[Contender], notes: list[str]) -> None:
    try:
        prob = pe.ODEProblem(robertson, ROB_Y0, (0.0, ROB_T[-1]), ROB_P)
    except Exception as exc:
        notes.append(f"paramest ODEProblem failed ({type(exc).__name__}: {exc}); skipped")
        return
    for method in ROB_METHODS:
        def sens(method=method):
            return pe.solve(prob, method, t_eval=ROB_T, rtol=RTOL_ROB, atol=ATOL_ROB,
                            sensitivity=pe.Forward()).sens

        def plain(method=method):
            return pe.solve(prob, method, t_eval=ROB_T, rtol=RTOL_ROB, atol=ATOL_ROB).y

        _add(out, notes, f"paramest {method} Forward", lambda sens=sens: sens)
        _add(out, notes, f"paramest {method} plain solve", lambda plain=plain: plain,
             kind="solve")


def run_robertson(peers: Peers, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== (B) Robertson sensitivities w.r.t. (k1, k2, k3): t in [0, 1e5], "
          f"{len(ROB_T)} log-spaced outputs from 1e-5, rtol={RTOL_ROB:g}, atol={ATOL_ROB:g}")
    (y_ref, S_ref), ref_s = timed(rob_solve_augmented, "Radau", 1e-12, 1e-20)
    _, S_chk = rob_solve_augmented("Radau", 1e-11, 1e-19)
    est = rob_error(S_chk, S_ref, y_ref)
    print(f"reference: scipy Radau on the augmented system (scaled sensitivities p_k dy/dp_k, "
          f"analytic Jacobian), rtol=1e-12 atol=1e-20 ({fmt_time(ref_s)}); error measure of "
          f"the rtol=1e-11 run against it: {est:.1e}")
    print("error: max over (i, k, t) with |y_i(t)| > atol of |S - S_ref| / max(|S_ref|, "
          "1e-3 max_t |S_ref[i, k, :]|); scipy and CasADi control the error of p_k dy/dp_k")

    notes: list[str] = []
    contenders: list[Contender] = []
    if peers.pe is not None:
        rob_paramest(peers.pe, contenders, notes)
    else:
        notes.append(NOT_YET if peers.missing.get("paramest") == NOT_YET
                     else f"paramest not available ({peers.missing.get('paramest')})")
    rob_scipy(contenders, notes)
    if peers.casadi is not None:
        rob_casadi(peers.casadi, contenders, notes)

    timings = interleaved_timings({c.name: c.batch() for c in contenders},
                                  rounds=args.rounds, target_s=args.batch_seconds)
    errors = {}
    for c in contenders:
        if c.kind == "sens" and c.value is not None and c.value.shape == S_ref.shape:
            errors[c.name] = rob_error(c.value, S_ref, y_ref)
        elif c.kind == "sens":
            c.notes.append(f"sensitivities of shape {getattr(c.value, 'shape', None)}, "
                           f"expected {S_ref.shape}")
    base = f"paramest {ROB_METHODS[0]} Forward"
    records = print_table("", contenders, timings, base, errors, "rel err sens")

    def med(name: str) -> float:
        return timings[name].median if name in timings else math.nan

    summary: dict[str, tuple[float, float | None]] = {}
    for method in ROB_METHODS:
        name = f"paramest {method} Forward"
        summary[f"{name} / paramest {method} plain solve"] = (
            ratio(med(name), med(f"paramest {method} plain solve")),
            TARGETS["rob_sens_over_solve"])
        summary[f"{name}, sensitivity error"] = (errors.get(name, math.nan),
                                                 TARGETS["rob_sens_rel_err"])
        summary[f"{name} / casadi cvodes forward sens."] = (
            ratio(med(name), med("casadi cvodes forward sens.")), None)
    summary["casadi forward sens. / casadi plain solve"] = (
        ratio(med("casadi cvodes forward sens."), med("casadi cvodes plain solve")), None)
    for label, (value, goal) in summary.items():
        tail = verdict(value, goal) if goal is not None else ""
        print(f"{label}: {fmt_num(value, '.3g')}{tail}")
    for c in contenders:
        notes += [f"{c.name}: {n}" for n in c.notes]
    for n in notes:
        print(f"note: {n}")
    return {"reference_error_estimate": est, "results": records,
            "summary": {k: v[0] for k, v in summary.items()}, "notes": notes}


# --- (C) cost against the number of parameters ------------------------------------------

def run_chain(peers: Peers, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== (C) forward sensitivities against the number of parameters: linear "
          f"cascade (tests/problems.py, n states, n rates), t in [0, 10], 11 outputs, "
          f"rtol={RTOL_LV:g}, atol={ATOL_LV:g}")
    pe = peers.pe
    if pe is None:
        why = peers.missing.get("paramest")
        print(f"note: {NOT_YET if why == NOT_YET else f'paramest not available ({why})'}; "
              "skipped")
        return {}
    sizes = tuple(args.sizes or CHAIN_SIZES)
    headers = ["n_params"]
    for m in CHAIN_METHODS:
        headers += [f"{m} solve", f"{m} sens", "ratio", "ratio/(n+1)", "rel err"]
    rows, records, notes = [], [], []
    for n in sizes:
        chain = linear_chain_problem(n)
        contenders: list[Contender] = []
        try:
            prob = pe.ODEProblem(chain.fun, chain.y0, chain.t_span, chain.p)
        except Exception as exc:
            notes.append(f"n={n}: ODEProblem failed ({type(exc).__name__}: {exc})")
            continue
        for m in CHAIN_METHODS:
            def plain(m=m, prob=prob, t_eval=chain.t_eval):
                return pe.solve(prob, m, t_eval=t_eval, rtol=RTOL_LV, atol=ATOL_LV).y

            def sens(m=m, prob=prob, t_eval=chain.t_eval):
                return pe.solve(prob, m, t_eval=t_eval, rtol=RTOL_LV, atol=ATOL_LV,
                                sensitivity=pe.Forward()).sens

            _add(contenders, notes, f"{m} solve", lambda plain=plain: plain, kind="solve")
            _add(contenders, notes, f"{m} sens", lambda sens=sens: sens)
        timings = interleaved_timings({c.name: c.batch() for c in contenders},
                                      rounds=max(3, args.rounds // 3),
                                      target_s=args.batch_seconds, warmup_calls=1)
        exact = None
        if n <= CHAIN_EXACT_MAX:
            _, S_ex, _ = chain.exact(chain.t_eval[-1:])
            exact = S_ex[:, :, 0]
        row, rec = [str(n)], {"n_params": n}
        values = {c.name: c.value for c in contenders}
        for m in CHAIN_METHODS:
            ts = timings[f"{m} solve"].median if f"{m} solve" in timings else math.nan
            tz = timings[f"{m} sens"].median if f"{m} sens" in timings else math.nan
            err = math.nan
            v = values.get(f"{m} sens")
            if exact is not None and v is not None and v.shape[:2] == exact.shape:
                err = float(np.max(np.abs(v[:, :, -1] - exact)) / np.max(np.abs(exact)))
            row += [fmt_time(ts), fmt_time(tz), fmt_num(ratio(tz, ts), ".3g"),
                    fmt_num(ratio(tz, ts) / (n + 1), ".3g"), fmt_num(err)]
            rec[m] = {"solve_s": ts, "sens_s": tz, "ratio": ratio(tz, ts), "rel_err_end": err}
        rows.append(row)
        records.append(rec)
    print(format_table(headers, rows))
    print(f"rel err: max |S - S_exact| / max |S_exact| at t = 10 (Van Loan; n <= "
          f"{CHAIN_EXACT_MAX})")
    for n in notes:
        print(f"note: {n}")
    return {"results": records, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, short batches")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--rounds", type=int, help="timing rounds per contender")
    parser.add_argument("--batch-seconds", type=float, help="target length of one timed batch")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help=f"(C) parameter counts (default {' '.join(map(str, CHAIN_SIZES))})")
    parser.add_argument("--only", choices=("A", "B", "C"), nargs="+",
                        help="run only these workloads")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 11
    if args.batch_seconds is None:
        args.batch_seconds = 0.01 if args.quick else 0.1
    workloads = set(args.only or ("A", "B", "C"))

    peers = detect_peers()
    vers = versions(peers)
    info = machine_info()
    print(f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs")
    print("versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in vers.items()))
    for name, why in peers.missing.items():
        print(f"note: {name}: {why}")
    print(f"timing: {args.rounds} interleaved rounds, batches of ~{fmt_time(args.batch_seconds)}"
          "; median time per call after a warm-up (compilation and graph construction are "
          "the setup column). paramest/this: paramest's time divided by this contender's.")

    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    if "A" in workloads:
        results["lotka_volterra"] = run_lotka_volterra(peers, args)
    if "B" in workloads:
        results["robertson"] = run_robertson(peers, args)
    if "C" in workloads:
        results["chain"] = run_chain(peers, args)
    print(f"\ntotal benchmark time: {fmt_time(time.perf_counter() - t0)}")
    if args.json:
        write_json(args.json, {"benchmark": "sensitivities", "machine": info,
                               "versions": vers, "rounds": args.rounds,
                               "batch_seconds": args.batch_seconds, "targets": TARGETS,
                               **results})
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
