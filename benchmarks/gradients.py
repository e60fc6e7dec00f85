"""Gradients through the solve: paramest's vjp with forward sensitivities, the complex step,
the discrete adjoint and the continuous adjoints (with and without a user vector-Jacobian
product) against adjoints of other tools.

Three workloads:

* (A) the Lotka-Volterra loss gradient of benchmarks/sensitivities.py (A), Tsit5 at
  rtol=1e-6, atol=1e-8: y0 = (1, 1), 101 outputs on [0, 10], data from a tight solve at
  p = (1.5, 1, 3, 1), loss sum((y(t_i; p) - data_i)^2), gradient w.r.t. the 4 parameters
  at p = (1.4, 0.9, 3.1, 1.1). paramest: ``vjp(problem, t, 2 (y - data), sensitivity=...)``
  with ``Forward()``, ``Forward(error_control=False)``, ``ComplexStep()``,
  ``DiscreteAdjoint()``, ``Adjoint()``, ``Adjoint(checkpoints=50)``, ``BacksolveAdjoint()``
  (complex-step vector-Jacobian products) and ``DiscreteAdjoint()`` / ``Adjoint()`` on a
  problem with an analytic ``vjp=``. Errors against the exact gradient (scipy DOP853 on the
  augmented system, rtol=1e-12) and against ``ComplexStep()`` (the derivative of paramest's
  discrete solution, which the discrete adjoint should reproduce to rounding; the continuous
  adjoints differentiate the exact solution and agree with it to the tolerances only).
  Peers: diffrax (Tsit5, RecursiveCheckpointAdjoint and BacksolveAdjoint) and torchdiffeq
  (dopri5, ``odeint_adjoint``).
* (B) the cost of a gradient against the number of parameters, Tsit5 as in (A): the linear
  cascade of tests/problems.py (``rate_chain``, n states, n rates, 11 outputs on [0, 10])
  for n from 2 to 500, a random cotangent, each gradient as a multiple of one plain solve at
  the same n; and the n from which the discrete adjoint (and the continuous ``Adjoint()``)
  is cheaper than forward sensitivities (what ``sensitivity="auto"`` is to use).
* (C) a stiff gradient: Robertson (k1, k2, k3) = (0.04, 3e7, 1e4), y0 = (1, 0, 0), 12
  log-spaced outputs on [1e-3, 1e3], Rodas5P at rtol=1e-8, atol=1e-12, a random cotangent;
  ``Forward()``, ``Forward(error_control=False)``, ``DiscreteAdjoint()``, ``Adjoint()`` and
  ``Adjoint(checkpoints=20)`` for k = 3 columns (the rates) and k = 6 (plus the 3 initial
  states), the same through ``method="auto"`` (with ``sensitivity="auto"``), errors against
  ``Forward(error_control=False)`` (the discrete solution's derivative) and a tight
  ``Forward()`` (rtol=1e-12), and the ratio DiscreteAdjoint / Forward that the library's
  "auto" rule for Rosenbrock methods rests on. Peer: diffrax Kvaerno5 with
  RecursiveCheckpointAdjoint.

Every contender is timed in interleaved rounds in one process after a warm-up (JIT
compilation is reported as setup and excluded); the script reports ratios measured in the
same run and asserts nothing about time.

Run ``python benchmarks/gradients.py`` (about two minutes on 2 cores, half of it the peers'
compilation; ``--quick`` for a smoke run without the peers, ``--json PATH`` to save the
results). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    Timing,
    fmt_num,
    fmt_pct,
    fmt_time,
    format_table,
    interleaved_timings,
    machine_info,
    package_version,
    ratio,
    time_batch,
    timed,
    timed_import,
    write_json,
)
from sensitivities import (
    ATOL_LV,
    LV_P0,
    LV_T,
    ROB_P,
    ROB_Y0,
    RTOL_LV,
    Contender,
    _add,
    diffrax_lv_outputs,
    lv_gradient_from,
    lv_solve_augmented,
    robertson,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.problems import (  # noqa: E402
    LV_Y0,
    linear_chain_problem,
    lotka_volterra,
    lotka_volterra_reference,
    rate_chain,
)

METHOD = "Tsit5"  # (A), (B): an explicit method (BacksolveAdjoint needs one), the same for all
CHAIN_SIZES = (2, 5, 10, 20, 50, 100, 200, 500)
CHAIN_SIZES_QUICK = (2, 10, 50, 200, 500)
#: per-call time above which a contender is timed in few single calls (A), or above which a
#: size is not attempted (B, predicted from the previous size as cost ~ n^2)
SLOW_CALL_S = 0.25
CAP_S, CAP_S_QUICK = 4.0, 0.3

TARGETS = {
    "lv_adjoint_time_s": 150e-6,
    "lv_adjoint_rel_err_vs_complex_step": 1e-6,
    "chain_500_user_vjp_over_solve": 5.0,
}

#: (C) Robertson: outputs, end, tolerances, method, checkpoints, the tight reference
STIFF_T = np.logspace(-3.0, 3.0, 12)
STIFF_T_END = 1e3
STIFF_RTOL, STIFF_ATOL = 1e-8, 1e-12
STIFF_METHOD = "Rodas5P"
STIFF_CHECKPOINTS = 20
STIFF_TIGHT = (1e-12, 1e-16)  # rtol, atol of the reference Forward() solve
STIFF_KS = (3, 6)  # columns: the 3 rates; the rates and the 3 initial states
#: the rule of vjp(sensitivity="auto") for Rosenbrock methods that (C) checks
ROSENBROCK_AUTO_RULE = "DiscreteAdjoint from k >= max(4, n/2), Forward below"

NOT_YET = "paramest has no vjp / DiscreteAdjoint yet"
DA = "DiscreteAdjoint()"
DA_USER = "DiscreteAdjoint() + user vjp"
ADJ = "Adjoint()"
ADJ_CP = "Adjoint(checkpoints=50)"
ADJ_USER = "Adjoint() + user vjp"
BS = "BacksolveAdjoint()"
FWD = "Forward()"
FWD_NOEC = "Forward(error_control=False)"
CS = "ComplexStep()"


# --- user vector-Jacobian products (Numba-compilable, as the models are) ---------------
# vjp(t, y, p, w, out_y, out_p): out_y[j] = sum_i w_i df_i/dy_j, out_p[k] = sum_i w_i df_i/dp_k

def lotka_volterra_vjp(t, y, p, w, out_y, out_p):
    # f0 = p0 x - p1 x z, f1 = -p2 z + p3 x z
    x, z = y[0], y[1]
    out_y[0] = w[0] * (p[0] - p[1] * z) + w[1] * p[3] * z
    out_y[1] = -w[0] * p[1] * x + w[1] * (p[3] * x - p[2])
    out_p[0] = w[0] * x
    out_p[1] = -w[0] * x * z
    out_p[2] = -w[1] * z
    out_p[3] = w[1] * x * z


def rate_chain_vjp(t, y, p, w, out_y, out_p):
    # f_0 = -p_0 y_0, f_i = p_{i-1} y_{i-1} - p_i y_i: y_j and p_j enter f_j (with -) and
    # f_{j+1} (with +), the last state's only f_{n-1}
    n = y.shape[0]
    for j in range(n - 1):
        d = w[j + 1] - w[j]
        out_y[j] = p[j] * d
        out_p[j] = y[j] * d
    out_y[n - 1] = -p[n - 1] * w[n - 1]
    out_p[n - 1] = -y[n - 1] * w[n - 1]


def check_user_vjp(fun: Callable, vjp: Callable, n: int, n_p: int, seed: int = 0) -> float:
    """Largest relative difference of ``vjp`` to w^T J from central differences of ``fun``
    (plain NumPy, at a random point): a guard against a wrong hand-written VJP."""
    rng = np.random.default_rng(seed)
    y, p, w = rng.uniform(0.5, 2.0, n), rng.uniform(0.5, 2.0, n_p), rng.standard_normal(n)
    out_y, out_p = np.empty(n), np.empty(n_p)
    vjp(0.0, y, p, w, out_y, out_p)

    def f(y, p):
        out = np.empty(n)
        fun(0.0, y, p, out)
        return out

    h = 1e-6
    ref_y = np.array([w @ (f(y + h * e, p) - f(y - h * e, p)) / (2 * h) for e in np.eye(n)])
    ref_p = np.array([w @ (f(y, p + h * e) - f(y, p - h * e)) / (2 * h) for e in np.eye(n_p)])
    got, ref = np.concatenate([out_y, out_p]), np.concatenate([ref_y, ref_p])
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


# --- peers ------------------------------------------------------------------------------

def detect(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    mods: dict[str, Any] = {}
    missing: dict[str, str] = {}
    pe, _, err = timed_import("paramest")
    if pe is not None and not (hasattr(pe, "vjp") and hasattr(pe, "DiscreteAdjoint")):
        pe, err = None, NOT_YET
    mods["pe"] = pe
    if pe is None:
        missing["paramest"] = err or "not installed"
    if not args.peers:
        missing["peers"] = "skipped (--quick; pass --peers to time diffrax and torchdiffeq)"
        return mods, missing
    torch, _, _ = timed_import("torch")
    tde = timed_import("torchdiffeq")[0] if torch is not None else None
    if torch is not None and tde is not None:
        torch.set_num_threads(1)  # tiny tensors: threads only add overhead and noise
        mods["torch"], mods["torchdiffeq"] = torch, tde
    else:
        missing["torchdiffeq"] = "not installed (`pip install torch torchdiffeq`)"
    jax = timed_import("jax")[0]
    dfx = timed_import("diffrax")[0] if jax is not None else None
    if jax is not None and dfx is not None:
        jax.config.update("jax_enable_x64", True)
        mods["jax"], mods["diffrax"] = jax, dfx
    else:
        missing["diffrax"] = "not installed (`pip install diffrax`)"
    return mods, missing


def versions(mods: dict[str, Any]) -> dict[str, str | None]:
    out = {"paramest": package_version("paramest"), "numpy": np.__version__}
    for name in ("torch", "torchdiffeq", "jax", "diffrax"):
        out[name] = package_version(name) if name in mods else None
    return out


def user_vjp_problem(pe: Any, fun: Callable, y0: Any, t_span: tuple, p: Any,
                     vjp: Callable) -> tuple[Any, str | None]:
    """``ODEProblem(..., vjp=vjp)``, or (None, why) where paramest does not take one."""
    if "vjp" not in inspect.signature(pe.ODEProblem).parameters:
        return None, "not available (ODEProblem takes no `vjp=`)"
    try:
        return pe.ODEProblem(fun, y0, t_span, p, vjp=vjp), None
    except TypeError as exc:
        if "vjp" in str(exc):
            return None, f"not available ({exc})"
        return None, f"ODEProblem(vjp=...) failed (TypeError: {str(exc)[:200]})"
    except Exception as exc:
        return None, f"ODEProblem(vjp=...) failed ({type(exc).__name__}: {str(exc)[:200]})"


def time_contenders(contenders: list[Contender], rounds: int, target_s: float,
                    slow_rounds: int, warmup_calls: int = 3) -> dict[str, Any]:
    """Interleaved timings; contenders whose first call and a second one took over
    SLOW_CALL_S are timed apart in `slow_rounds` single calls (the second call is the first
    of them; a first call slowed by compilation alone does not make a contender slow)."""
    fast: dict[str, Any] = {}
    slow: dict[str, Any] = {}
    slow_timings: dict[str, Timing] = {}
    for c in contenders:
        batch = c.batch()
        if c.first_s > SLOW_CALL_S:
            again = time_batch(batch, 1)
            if again > SLOW_CALL_S:
                slow[c.name], slow_timings[c.name] = batch, Timing(per_call=[again])
                continue
        fast[c.name] = batch
    timings = interleaved_timings(fast, rounds=rounds, target_s=target_s,
                                  warmup_calls=warmup_calls) if fast else {}
    for _ in range(slow_rounds - 1):  # single calls, no calibration: they are long enough
        for name, batch in slow.items():
            slow_timings[name].per_call.append(time_batch(batch, 1))
    return {**timings, **slow_timings}


def sensitivity_of(pe: Any, notes: list[str], name: str, **kwargs: Any) -> Any:
    """``pe.<name>(**kwargs)``, or None with a note where this paramest lacks it."""
    cls = getattr(pe, name, None)
    if cls is None:
        notes.append(f"paramest {name}: not available in this version")
        return None
    try:
        return cls(**kwargs)
    except Exception as exc:
        notes.append(f"paramest {name}({kwargs}): failed ({type(exc).__name__}: {exc})")
        return None


def verdict(value: float, goal: float) -> str:
    if math.isnan(value):
        return "  (n/a: a contender is missing)"
    return f"  (target <= {goal:g}: {'met' if value <= goal else 'NOT met'})"


def rel_err(value: np.ndarray | None, ref: np.ndarray | None) -> float:
    if value is None or ref is None or value.shape != ref.shape:
        return math.nan
    return float(np.linalg.norm(value - ref) / np.linalg.norm(ref))


# --- (A) Lotka-Volterra ------------------------------------------------------------------

def lv_paramest(pe: Any, out: list[Contender], notes: list[str], data: np.ndarray) -> None:
    t_span = (LV_T[0], LV_T[-1])
    try:
        prob = pe.ODEProblem(lotka_volterra, LV_Y0, t_span, LV_P0)
    except Exception as exc:
        notes.append(f"paramest ODEProblem failed ({type(exc).__name__}: {exc}); skipped")
        return
    opts = {"method": METHOD, "rtol": RTOL_LV, "atol": ATOL_LV, "p": LV_P0}

    def plain():
        return pe.solve(prob, METHOD, t_eval=LV_T, rtol=RTOL_LV, atol=ATOL_LV, p=LV_P0).y

    cot = 2.0 * (np.asarray(plain()) - data)  # the loss's cotangent, outside the timing
    senses = {FWD: pe.Forward(), FWD_NOEC: pe.Forward(error_control=False),
              CS: pe.ComplexStep(), DA: pe.DiscreteAdjoint(),
              ADJ: sensitivity_of(pe, notes, "Adjoint"),
              ADJ_CP: sensitivity_of(pe, notes, "Adjoint", checkpoints=50),
              BS: sensitivity_of(pe, notes, "BacksolveAdjoint")}
    for label, sens in senses.items():
        if sens is None:
            continue

        def grad(sens=sens):
            return pe.vjp(prob, LV_T, cot, sensitivity=sens, **opts)

        _add(out, notes, f"paramest {label}", lambda grad=grad: grad)

    (uprob, why), setup_s = timed(user_vjp_problem, pe, lotka_volterra, LV_Y0, t_span, LV_P0,
                                  lotka_volterra_vjp)
    if uprob is None:
        notes.append(f"paramest {DA_USER}: {why}")
    else:
        user_senses = {DA_USER: pe.DiscreteAdjoint(), ADJ_USER: senses[ADJ]}
        for label, sens in user_senses.items():
            if sens is None:
                continue

            def user(sens=sens):
                return pe.vjp(uprob, LV_T, cot, sensitivity=sens, **opts)

            _add(out, notes, f"paramest {label}", lambda user=user: user)
            if out and out[-1].name == f"paramest {DA_USER}":
                out[-1].setup_s = setup_s  # ODEProblem with the vjp: model check, compilation
    _add(out, notes, f"paramest {METHOD} plain solve", lambda: plain, kind="solve")


def lv_diffrax(jax: Any, dfx: Any, out: list[Contender], notes: list[str],
               data: np.ndarray) -> None:
    jnp = jax.numpy

    def build(adjoint: Any) -> Callable[[], np.ndarray]:
        target = jnp.asarray(data.T)
        ys = diffrax_lv_outputs(jax, dfx, adjoint)
        g = jax.jit(jax.grad(lambda p: jnp.sum((ys(p) - target) ** 2)))
        p0 = jnp.asarray(LV_P0)
        g(p0).block_until_ready()  # compile: part of the setup
        return lambda: np.asarray(g(p0).block_until_ready())

    _add(out, notes, "diffrax Tsit5 RecursiveCheckpointAdjoint",
         lambda: build(dfx.RecursiveCheckpointAdjoint()))
    # the backward solve with the forward solve's solver and controller (diffrax's default)
    _add(out, notes, "diffrax Tsit5 BacksolveAdjoint", lambda: build(dfx.BacksolveAdjoint()))


def lv_torchdiffeq(torch: Any, tde: Any, out: list[Contender], notes: list[str],
                   data: np.ndarray) -> None:
    def build() -> Callable[[], np.ndarray]:
        t = torch.tensor(LV_T, dtype=torch.float64)
        y0 = torch.tensor(LV_Y0, dtype=torch.float64)
        target = torch.tensor(data.T, dtype=torch.float64)  # odeint returns (n_times, n)

        class LV(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.p = torch.nn.Parameter(torch.tensor(LV_P0, dtype=torch.float64))

            def forward(self, _t, y):
                p = self.p
                return torch.stack([p[0] * y[0] - p[1] * y[0] * y[1],
                                    -p[2] * y[1] + p[3] * y[0] * y[1]])

        model = LV()

        def run() -> np.ndarray:
            # the adjoint ODE solved backwards at the same rtol / atol (torchdiffeq's default)
            ys = tde.odeint_adjoint(model, y0, t, rtol=RTOL_LV, atol=ATOL_LV, method="dopri5")
            (g,) = torch.autograd.grad(((ys - target) ** 2).sum(), model.p)
            return g.numpy()

        return run

    _add(out, notes, "torchdiffeq dopri5 odeint_adjoint", build)


def run_lotka_volterra(mods: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== (A) Lotka-Volterra loss gradient: 4 parameters, {len(LV_T)} output times on "
          f"[0, 10], {METHOD}, rtol={RTOL_LV:g}, atol={ATOL_LV:g}")
    data = lotka_volterra_reference(LV_T)
    (y_ref, S_ref), ref_s = timed(lv_solve_augmented, LV_P0, "DOP853", 1e-12, 1e-14)
    g_ref = lv_gradient_from(y_ref, S_ref, data)
    print(f"exact gradient: scipy DOP853 on the augmented system, rtol=1e-12 atol=1e-14 "
          f"({fmt_time(ref_s)}) = [{', '.join(f'{g:.10g}' for g in g_ref)}]")
    chk = check_user_vjp(lotka_volterra, lotka_volterra_vjp, 2, 4)
    print(f"user vjp: max rel. difference to central differences of the model {chk:.1e}")

    notes: list[str] = []
    contenders: list[Contender] = []
    pe = mods.get("pe")
    if pe is not None:
        lv_paramest(pe, contenders, notes, data)
    else:
        notes.append(f"paramest not available ({NOT_YET})")
    if "diffrax" in mods:
        lv_diffrax(mods["jax"], mods["diffrax"], contenders, notes, data)
    if "torchdiffeq" in mods:
        lv_torchdiffeq(mods["torch"], mods["torchdiffeq"], contenders, notes, data)
    if not contenders:
        for n in notes:
            print(f"note: {n}")
        return {"notes": notes}

    timings = time_contenders(contenders, args.rounds, args.batch_seconds,
                              slow_rounds=min(args.rounds, 3))
    values = {c.name: c.value for c in contenders}
    g_cs = values.get(f"paramest {CS}")
    solve_name = f"paramest {METHOD} plain solve"
    solve_t = timings[solve_name].median if solve_name in timings else math.nan
    headers = ["contender", "median", "IQR/med", "/ solve", "setup", "1st call",
               "err vs exact", "err vs CS"]
    rows, records = [], []
    for c in contenders:
        t = timings[c.name]
        sens = c.kind == "sens"
        e_ex = rel_err(c.value, g_ref) if sens else math.nan
        e_cs = rel_err(c.value, g_cs) if sens and c.name.startswith("paramest") else math.nan
        rows.append([c.name, fmt_time(t.median), fmt_pct(t.spread),
                     fmt_num(ratio(t.median, solve_t), ".3g"), fmt_time(c.setup_s),
                     fmt_time(c.first_s), fmt_num(e_ex), fmt_num(e_cs)])
        records.append({"name": c.name, "kind": c.kind, **t.as_dict(),
                        "over_plain_solve": ratio(t.median, solve_t), "setup_s": c.setup_s,
                        "first_call_s": c.first_s, "rel_err_vs_exact": e_ex,
                        "rel_err_vs_complex_step": e_cs, "gradient": c.value})
    print(format_table(headers, rows))
    print("/ solve: time over paramest's plain solve; errors normwise |g - g_ref| / |g_ref|; "
          f"CS: paramest {CS} (the derivative of the discrete solution; paramest rows only)")
    print(f"{ADJ}, {BS}: continuous adjoints, the derivative of the exact solution up to the "
          f"forward and backward tolerances (here both rtol={RTOL_LV:g}): they agree with "
          f"{CS} to about the tolerance, not to rounding as {DA} does")

    def med(name: str) -> float:
        return timings[name].median if name in timings else math.nan

    def err_cs(name: str) -> float:
        return rel_err(values.get(name), g_cs)

    summary: dict[str, tuple[float, float | None]] = {}
    for label in (DA, DA_USER):
        name = f"paramest {label}"
        summary[f"{name}, time per gradient [us]"] = (med(name) * 1e6,
                                                      TARGETS["lv_adjoint_time_s"] * 1e6)
        summary[f"{name}, rel. error vs {CS}"] = (
            err_cs(name), TARGETS["lv_adjoint_rel_err_vs_complex_step"])
        summary[f"{name} / plain solve"] = (ratio(med(name), solve_t), None)
        summary[f"{name} / paramest {FWD}"] = (ratio(med(name), med(f"paramest {FWD}")), None)
    summary[f"{DA_USER} / {DA}"] = (ratio(med(f"paramest {DA_USER}"), med(f"paramest {DA}")),
                                     None)
    for num, den in ((ADJ, DA), (ADJ_USER, DA_USER), (ADJ, FWD), (ADJ_CP, ADJ), (BS, ADJ),
                     (ADJ_USER, ADJ)):
        summary[f"{num} / {den}"] = (ratio(med(f"paramest {num}"), med(f"paramest {den}")),
                                     None)
    for peer in ("diffrax Tsit5 RecursiveCheckpointAdjoint", "diffrax Tsit5 BacksolveAdjoint",
                 "torchdiffeq dopri5 odeint_adjoint"):
        if peer in timings:
            summary[f"{peer} / paramest {DA_USER}"] = (
                ratio(med(peer), med(f"paramest {DA_USER}")), None)
    if "diffrax Tsit5 BacksolveAdjoint" in timings:
        summary[f"diffrax Tsit5 BacksolveAdjoint / paramest {BS}"] = (
            ratio(med("diffrax Tsit5 BacksolveAdjoint"), med(f"paramest {BS}")), None)
    for label, (value, goal) in summary.items():
        tail = verdict(value, goal) if goal is not None else ""
        print(f"{label}: {fmt_num(value, '.3g')}{tail}")
    for n in notes:
        print(f"note: {n}")
    return {"exact_gradient": g_ref, "user_vjp_check": chk, "results": records,
            "summary": {k: v[0] for k, v in summary.items()}, "notes": notes}


# --- (B) cost against the number of parameters -------------------------------------------

CHAIN_COLUMNS = (FWD, FWD_NOEC, DA, DA_USER, ADJ, ADJ_USER)
CHAIN_ERRORS = (FWD, DA, DA_USER, ADJ, ADJ_USER)


def crossover(sizes: list[int], adj: list[float], fwd: list[float]) -> tuple[str, float]:
    """Where adj becomes cheaper than fwd (and stays so over the sizes measured): a text and
    the log-log interpolated n of equal cost (NaN when not bracketed)."""
    pts = [(n, a / f) for n, a, f in zip(sizes, adj, fwd, strict=True)
           if math.isfinite(a) and math.isfinite(f) and f > 0]
    if not pts:
        return "n/a (not measured)", math.nan
    k = len(pts)
    while k > 0 and pts[k - 1][1] < 1.0:
        k -= 1
    if k == len(pts):
        return f"never within n <= {pts[-1][0]} (ratio {pts[-1][1]:.2g} there)", math.nan
    if k == 0:
        return f"at every n measured (from n = {pts[0][0]})", math.nan
    (n0, r0), (n1, r1) = pts[k - 1], pts[k]
    # log r linear in log n between the bracketing sizes
    s = math.log(r0) / (math.log(r0) - math.log(r1))
    n_star = math.exp(math.log(n0) + s * (math.log(n1) - math.log(n0)))
    return f"from n = {n1} on (between {n0} and {n1}; ~{n_star:.0f} log-log interpolated)", n_star


def run_chain(mods: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== (B) gradient cost against the number of parameters: linear cascade "
          f"(tests/problems.py rate_chain, n states, n rates), t in [0, 10], 11 outputs, "
          f"{METHOD}, rtol={RTOL_LV:g}, atol={ATOL_LV:g}, cotangent N(0, 1)")
    pe = mods.get("pe")
    if pe is None:
        print(f"note: paramest not available ({NOT_YET}); skipped")
        return {}
    chk = check_user_vjp(rate_chain, rate_chain_vjp, 7, 7)
    print(f"user vjp: max rel. difference to central differences of the model {chk:.1e}")
    sizes = list(args.sizes or (CHAIN_SIZES_QUICK if args.quick else CHAIN_SIZES))
    cap = args.cap_seconds
    notes: list[str] = []
    last: dict[str, tuple[int, float]] = {}  # contender -> (n, seconds per call) last measured
    rows, records = [], []
    series: dict[str, list[float]] = {c: [] for c in CHAIN_COLUMNS}
    measured_sizes: list[int] = []
    opts = {"method": METHOD, "rtol": RTOL_LV, "atol": ATOL_LV}

    def predicted(label: str, n: int) -> float:
        if label not in last:
            return 0.0
        n0, t0 = last[label]
        return t0 * (n / n0) ** 2

    for n in sizes:
        chain = linear_chain_problem(n)
        t_eval = chain.t_eval
        cot = np.random.default_rng(n).standard_normal((n, len(t_eval)))
        try:
            prob = pe.ODEProblem(chain.fun, chain.y0, chain.t_span, chain.p)
        except Exception as exc:
            notes.append(f"n={n}: ODEProblem failed ({type(exc).__name__}: {exc})")
            continue
        uprob, why = user_vjp_problem(pe, chain.fun, chain.y0, chain.t_span, chain.p,
                                      rate_chain_vjp)
        if uprob is None and n == sizes[0]:
            notes.append(f"{DA_USER}: {why}")
        contenders: list[Contender] = []
        _add(contenders, notes, "solve",
             lambda prob=prob, t_eval=t_eval: lambda: pe.solve(
                 prob, METHOD, t_eval=t_eval, rtol=RTOL_LV, atol=ATOL_LV).y, kind="solve")
        adj = sensitivity_of(pe, notes if n == sizes[0] else [], "Adjoint")
        runs = {FWD: (prob, pe.Forward()), FWD_NOEC: (prob, pe.Forward(error_control=False)),
                DA: (prob, pe.DiscreteAdjoint()), DA_USER: (uprob, pe.DiscreteAdjoint()),
                ADJ: (prob, adj), ADJ_USER: (uprob, adj)}
        for label, (pr, sens) in runs.items():
            if pr is None or sens is None:
                continue
            guess = predicted(label, n)
            if guess > cap:
                notes.append(f"n={n}: {label} skipped (about {fmt_time(guess)} per call "
                             f"predicted, over the cap of {fmt_time(cap)}; --cap-seconds)")
                continue

            def grad(pr=pr, sens=sens, t_eval=t_eval, cot=cot):
                return pe.vjp(pr, t_eval, cot, sensitivity=sens, **opts)

            _add(contenders, notes, label, lambda grad=grad: grad)
        # the reference: ComplexStep (the discrete solution's derivative), once, untimed,
        # where it is not predicted to take long (it costs about what Forward(False) does)
        ref, ref_name = None, CS
        if predicted(FWD_NOEC, n) <= cap:
            try:
                ref = pe.vjp(prob, t_eval, cot, sensitivity=pe.ComplexStep(), **opts)
            except Exception as exc:
                notes.append(f"n={n}: {CS} reference failed ({type(exc).__name__}: {exc})")
        if ref is None:
            ref_name = DA
            ref = next((c.value for c in contenders if c.name == DA), None)
        timings = time_contenders(contenders, args.chain_rounds, args.batch_seconds,
                                  slow_rounds=args.chain_rounds, warmup_calls=0)
        t_solve = timings["solve"].median if "solve" in timings else math.nan
        values = {c.name: c.value for c in contenders}
        row = [str(n), fmt_time(t_solve)]
        rec: dict[str, Any] = {"n_params": n, "solve_s": t_solve, "reference": ref_name}
        for label in CHAIN_COLUMNS:
            t = timings[label].median if label in timings else math.nan
            if math.isfinite(t):
                last[label] = (n, t)
            series[label].append(t)
            err = rel_err(values.get(label), ref) if label != ref_name else math.nan
            row.append(fmt_num(ratio(t, t_solve), ".3g"))
            rec[label] = {"grad_s": t, "over_solve": ratio(t, t_solve), "rel_err": err}
        for label in CHAIN_ERRORS:
            row.append(fmt_num(rec[label]["rel_err"]))
        measured_sizes.append(n)
        rows.append(row)
        records.append(rec)
    headers = ["n_params", "solve", FWD, "Fwd(ec=F)", DA, "DA+vjp", ADJ, "Adj+vjp",
               "err Fwd", "err DA", "err DA+vjp", "err Adj", "err Adj+vjp"]
    print(format_table(headers, rows))
    print(f"gradient columns: time per gradient / time of one plain solve at the same n "
          f"(Fwd(ec=F): {FWD_NOEC}; +vjp: on the problem with the user vjp); err: normwise "
          f"relative difference to {CS} (to {DA} where {CS} is over the cap)")

    summary: dict[str, Any] = {}
    crossings: dict[str, float] = {}
    for adj in (DA, DA_USER, ADJ, ADJ_USER):
        for fwd in (FWD, FWD_NOEC):
            text, n_star = crossover(measured_sizes, series[adj], series[fwd])
            print(f"{adj} cheaper than {fwd}: {text}")
            crossings[f"{adj} vs {fwd}"] = n_star
            summary[f"crossover {adj} vs {fwd}"] = text
    i500 = measured_sizes.index(500) if 500 in measured_sizes else None
    t500 = (ratio(series[DA_USER][i500], records[i500]["solve_s"]) if i500 is not None
            else math.nan)
    print(f"{DA_USER} at 500 parameters / plain solve: {fmt_num(t500, '.3g')}"
          f"{verdict(t500, TARGETS['chain_500_user_vjp_over_solve'])}")
    summary["user_vjp_500_over_solve"] = t500
    for n in notes:
        print(f"note: {n}")
    return {"user_vjp_check": chk, "results": records, "crossover_n": crossings,
            "summary": summary, "notes": notes}


# --- (C) stiff: Robertson with a Rosenbrock method ---------------------------------------

ADJ_STIFF_CP = f"Adjoint(checkpoints={STIFF_CHECKPOINTS})"
AUTO_SENS = 'sensitivity="auto"'
STIFF_PEER = "diffrax Kvaerno5 RecursiveCheckpointAdjoint"


def rosenbrock_auto_rule(k: int, n: int) -> str:
    """What ``vjp(sensitivity="auto")`` is to pick for a Rosenbrock method (the rule that
    (C) checks, ROSENBROCK_AUTO_RULE)."""
    return DA if k >= max(4, n / 2) else FWD


def scaled_err(value: np.ndarray | None, ref: np.ndarray | None, scale: np.ndarray) -> float:
    """max_k |g_k - r_k| / scale_k, scale_k = sum_{i,j} |w_ij dy_i(t_j)/dtheta_k|: the size
    of the terms that gradient component sums. The Robertson gradient's components span ten
    orders of magnitude (d/dk2 ~ 1e-9, d/dy0 ~ 1), which a normwise error would hide, and with
    a random cotangent a component can cancel (d/dk1 here by ~1e3), which a componentwise
    relative error would blow up (rounding in the summation then reads as 1e-10)."""
    if value is None or ref is None or value.shape != ref.shape:
        return math.nan
    k = len(ref)
    return float(np.max(np.abs(value - ref) / np.maximum(scale[:k], 1e-300)))


def stiff_paramest(pe: Any, prob: Any, cot: np.ndarray, out: list[Contender],
                   notes: list[str]) -> dict[str, str]:
    """The paramest contenders of (C), named "<method> <label> [k=<k>]"; returns what
    sensitivity="auto" chose, by contender name."""
    chosen: dict[str, str] = {}
    adj = sensitivity_of(pe, notes, "Adjoint")
    adj_cp = sensitivity_of(pe, notes, "Adjoint", checkpoints=STIFF_CHECKPOINTS)
    for method in (STIFF_METHOD, "auto"):
        def plain(method=method):
            return pe.solve(prob, method, t_eval=STIFF_T, rtol=STIFF_RTOL, atol=STIFF_ATOL).y

        _add(out, notes, f"{method} plain solve", lambda plain=plain: plain, kind="solve")
        senses = {FWD: pe.Forward(), FWD_NOEC: pe.Forward(error_control=False),
                  DA: pe.DiscreteAdjoint(), ADJ: adj, AUTO_SENS: "auto"}
        if method != "auto":
            # checkpoints do not follow method="auto"'s switch (refused with SwitchedToStiff)
            senses[ADJ_STIFF_CP] = adj_cp
        for k in STIFF_KS:
            sens_y0 = None if k == 3 else [0, 1, 2]
            for label, sens in senses.items():
                if sens is None:
                    continue
                name = f"{method} {label} [k={k}]"

                def grad(sens=sens, method=method, sens_y0=sens_y0):
                    return pe.vjp(prob, STIFF_T, cot, sensitivity=sens, sens_y0=sens_y0,
                                  method=method, rtol=STIFF_RTOL, atol=STIFF_ATOL)

                _add(out, notes, name, lambda grad=grad: grad)
                if sens == "auto" and out and out[-1].name == name:
                    chosen[name] = str(getattr(grad(), "sensitivity", "?"))
    return chosen


def stiff_diffrax(jax: Any, dfx: Any, cot: np.ndarray, out: list[Contender],
                  notes: list[str]) -> None:
    jnp = jax.numpy

    def f(t, y, p):
        return jnp.stack([-p[0] * y[0] + p[2] * y[1] * y[2],
                          p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1],
                          p[1] * y[1] * y[1]])

    ts, w = jnp.asarray(STIFF_T), jnp.asarray(cot.T)  # diffrax's ys are (n_times, n)

    def loss(p, y0):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(f), dfx.Kvaerno5(), 0.0, STIFF_T_END, 1e-6, y0, args=p,
            saveat=dfx.SaveAt(ts=ts),
            stepsize_controller=dfx.PIDController(rtol=STIFF_RTOL, atol=STIFF_ATOL),
            max_steps=100_000, adjoint=dfx.RecursiveCheckpointAdjoint())
        return jnp.sum(w * sol.ys)

    def build(k: int) -> Callable[[], np.ndarray]:
        g = jax.jit(jax.grad(loss, argnums=0 if k == 3 else (0, 1)))
        p0, y0 = jnp.asarray(ROB_P), jnp.asarray(ROB_Y0)

        def run() -> np.ndarray:
            r = jax.block_until_ready(g(p0, y0))
            return np.concatenate([np.asarray(x) for x in (r if k != 3 else (r,))])

        run()  # compile: part of the setup
        return run

    for k in STIFF_KS:
        _add(out, notes, f"{STIFF_PEER} [k={k}]", lambda k=k: build(k))


def run_stiff(mods: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n=== (C) stiff gradient: Robertson (k1, k2, k3) = (0.04, 3e7, 1e4), y0 = (1, 0, 0),"
          f" {len(STIFF_T)} log-spaced outputs on [1e-3, 1e3], {STIFF_METHOD} and "
          f'method="auto", rtol={STIFF_RTOL:g}, atol={STIFF_ATOL:g}, cotangent N(0, 1); '
          f"k = 3 (the rates) and k = 6 (rates and initial states)")
    pe = mods.get("pe")
    if pe is None:
        print(f"note: paramest not available ({NOT_YET}); skipped")
        return {}
    notes: list[str] = []
    n = len(ROB_Y0)
    cot = np.random.default_rng(3).standard_normal((n, len(STIFF_T)))
    prob = pe.ODEProblem(robertson, ROB_Y0, (0.0, STIFF_T_END), ROB_P)
    rtol_ref, atol_ref = STIFF_TIGHT

    def tight(rtol: float, atol: float) -> np.ndarray:
        """Forward sensitivities dy/d(p, y0), shape (n, 6, n_times)."""
        return np.asarray(pe.solve(prob, STIFF_METHOD, t_eval=STIFF_T, rtol=rtol, atol=atol,
                                   sensitivity=pe.Forward(), sens_y0=[0, 1, 2]).sens)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            S_ref, ref_s = timed(tight, rtol_ref, atol_ref)
            S_chk = tight(10 * rtol_ref, 10 * atol_ref)
    except Exception as exc:
        print(f"note: the tight reference failed ({type(exc).__name__}: {exc}); skipped")
        return {}
    ref = np.einsum("it,ikt->k", cot, S_ref)
    scale = np.einsum("it,ikt->k", np.abs(cot), np.abs(S_ref))
    est = scaled_err(np.einsum("it,ikt->k", cot, S_chk), ref, scale)
    print(f"tight reference: {STIFF_METHOD} {FWD} sensitivities at rtol={rtol_ref:g} "
          f"atol={atol_ref:g} ({fmt_time(ref_s)}), gradient sum_ij w_ij dy_i(t_j)/dtheta = "
          f"[{', '.join(f'{g:.10g}' for g in ref)}]; error measure of the rtol="
          f"{10 * rtol_ref:g} run against it: {est:.1e}")
    print("error measure: max_k |g_k - r_k| / sum_ij |w_ij dy_i(t_j)/dtheta_k| (the size of "
          "the terms each component sums; the gradient w.r.t. k1 cancels to ~1e-3 of them)")
    # the step counts (and where "auto" switches): Forward() with error control takes its
    # own steps, the other sensitivities those of the plain solve
    for method, label, sens in ((STIFF_METHOD, "solve", None), ("auto", "solve", None),
                                ("auto", f"solve with {FWD}", pe.Forward())):
        try:
            sol = pe.solve(prob, method, t_eval=STIFF_T, rtol=STIFF_RTOL, atol=STIFF_ATOL,
                           **({"sensitivity": sens} if sens is not None else {}))
        except Exception as exc:
            print(f"note: {method} {label} failed ({type(exc).__name__}: {exc})")
            continue
        switches = getattr(sol, "switches", None)
        print(f"{method} {label}: {getattr(sol, 'n_accepted', '?')} accepted, "
              f"{getattr(sol, 'n_rejected', '?')} rejected steps"
              + (f"; switches {[(f'{t:.4g}', a, b) for t, a, b in switches]}"
                 if switches else ""))

    contenders: list[Contender] = []
    chosen = stiff_paramest(pe, prob, cot, contenders, notes)
    if "diffrax" in mods:
        stiff_diffrax(mods["jax"], mods["diffrax"], cot, contenders, notes)
    timings = time_contenders(contenders, args.rounds, args.batch_seconds,
                              slow_rounds=min(args.rounds, 3))
    by_name = {c.name: c for c in contenders}

    def med(name: str) -> float:
        return timings[name].median if name in timings else math.nan

    def value(name: str) -> np.ndarray | None:
        c = by_name.get(name)
        return c.value if c is not None else None

    row_labels = [(STIFF_METHOD, lbl) for lbl in
                  ("plain solve", FWD, FWD_NOEC, DA, ADJ, ADJ_STIFF_CP, AUTO_SENS)]
    row_labels += [("auto", lbl) for lbl in ("plain solve", FWD, FWD_NOEC, DA, ADJ, AUTO_SENS)]
    row_labels += [(None, STIFF_PEER)]
    headers = ["contender"]
    for k in STIFF_KS:
        headers += [f"k={k}", "/ solve", "err vs ec=F", "err vs tight"]
    headers += ["IQR/med", "1st call"]
    rows, records = [], []
    for method, label in row_labels:
        row_name = label if method is None else f"{method} {label}"
        names = ([f"{method} plain solve"] if label == "plain solve"
                 else [f"{row_name} [k={k}]" for k in STIFF_KS])
        if not any(nm in by_name for nm in names):
            continue
        row, spreads, firsts = [row_name], [], []
        for k in STIFF_KS:
            if label == "plain solve" and k != STIFF_KS[0]:
                row += ["", "", "", ""]  # one solve for both k: in the first k's columns
                continue
            name = names[0] if label == "plain solve" else f"{row_name} [k={k}]"
            t = med(name)
            solve_t = med(f"{method or STIFF_METHOD} plain solve")
            is_grad = label != "plain solve"
            r_k = ref[:k]
            noec = value(f"{method} {FWD_NOEC} [k={k}]") if method is not None else None
            e_noec = (scaled_err(value(name), noec, scale)
                      if is_grad and label != FWD_NOEC and method is not None else math.nan)
            e_tight = scaled_err(value(name), r_k, scale) if is_grad else math.nan
            row += [fmt_time(t), fmt_num(ratio(t, solve_t), ".3g"), fmt_num(e_noec),
                    fmt_num(e_tight)]
            if name in timings:
                spreads.append(timings[name].spread)
                c = by_name[name]
                firsts.append((0.0 if math.isnan(c.setup_s) else c.setup_s) + c.first_s)
            rec: dict[str, Any] = {"name": name, "k": k, **(timings[name].as_dict()
                                                              if name in timings else {}),
                                   "over_plain_solve": ratio(t, solve_t),
                                   "rel_err_vs_noec": e_noec, "rel_err_vs_tight": e_tight}
            if name in by_name:
                rec.update(setup_s=by_name[name].setup_s, first_call_s=by_name[name].first_s,
                           gradient=by_name[name].value, chosen=chosen.get(name))
            records.append(rec)
        finite = [x for x in spreads if math.isfinite(x)]
        row += [fmt_pct(max(finite)) if finite else "-",
                fmt_time(max(firsts)) if firsts else "-"]
        rows.append(row)
    print(format_table(headers, rows))
    print(f"k=3 / k=6: median time per gradient; / solve: over the plain solve of the same "
          f"method (the diffrax row: over paramest's {STIFF_METHOD} solve); err (measure "
          f"above): against {FWD_NOEC} of the same method and k (the derivative of the "
          f"discrete solution) and against the tight {FWD}; IQR/med: the larger of the two k; "
          f"1st call: setup and first call (compilation), the larger of the two")
    for name, what in chosen.items():
        print(f"{AUTO_SENS} chose for {name}: {what}")

    summary: dict[str, Any] = {}
    lines: list[str] = []
    for k in STIFF_KS:
        r = ratio(med(f"{STIFF_METHOD} {DA} [k={k}]"), med(f"{STIFF_METHOD} {FWD} [k={k}]"))
        r_noec = ratio(med(f"{STIFF_METHOD} {DA} [k={k}]"),
                       med(f"{STIFF_METHOD} {FWD_NOEC} [k={k}]"))
        rule = rosenbrock_auto_rule(k, n)
        if not math.isfinite(r):
            verdict_k = "n/a"
        elif abs(r - 1.0) < 0.1:
            verdict_k = f"a tie within ~10 % (the rule picks {rule})"
        else:
            cheaper = DA if r < 1.0 else FWD
            verdict_k = (f"{cheaper} is cheaper; the rule picks {rule}: "
                         f"{'supported' if cheaper == rule else 'NOT supported'}")
        summary[f"{STIFF_METHOD} {DA} / {FWD}, k={k}"] = r
        summary[f"{STIFF_METHOD} {DA} / {FWD_NOEC}, k={k}"] = r_noec
        summary[f"rule check k={k}"] = verdict_k
        lines.append(f"{STIFF_METHOD} {DA} / {FWD} at k={k}: {fmt_num(r, '.3g')} "
                     f"(/ {FWD_NOEC}: {fmt_num(r_noec, '.3g')}) -> {verdict_k}")
    for k in STIFF_KS:
        for num, den in ((f"{STIFF_METHOD} {ADJ}", f"{STIFF_METHOD} {FWD}"),
                         (f"{STIFF_METHOD} {ADJ}", f"{STIFF_METHOD} {DA}"),
                         (f"{STIFF_METHOD} {ADJ_STIFF_CP}", f"{STIFF_METHOD} {ADJ}"),
                         (f"auto {DA}", f"auto {FWD}"),
                         (f"auto {AUTO_SENS}", f"auto {FWD}"),
                         (f"{STIFF_PEER}", f"{STIFF_METHOD} {DA}")):
            key = f"{num} / {den}, k={k}"
            summary[key] = ratio(med(f"{num} [k={k}]"), med(f"{den} [k={k}]"))
            if math.isfinite(summary[key]):
                lines.append(f"{key}: {fmt_num(summary[key], '.3g')}")
        e = scaled_err(value(f"{STIFF_METHOD} {DA} [k={k}]"),
                       value(f"{STIFF_METHOD} {FWD_NOEC} [k={k}]"), scale)
        summary[f"{STIFF_METHOD} {DA} vs {FWD_NOEC}, k={k}"] = e
        lines.append(f"{STIFF_METHOD} {DA} vs {FWD_NOEC} at k={k}: {fmt_num(e)} (the same "
                     "derivative of the discrete solution: rounding, ~1e-12, expected)")
    print(f"rule of {AUTO_SENS} for Rosenbrock methods (n = {n}): {ROSENBROCK_AUTO_RULE}")
    for line in lines:
        print(line)
    for note in notes:
        print(f"note: {note}")
    return {"tight_reference": ref, "error_scale": scale,
            "tight_reference_error_estimate": est,
            "auto_chose": chosen, "results": records, "summary": summary, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="few rounds, short batches, fewer sizes, no peers")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--rounds", type=int, help="(A), (C) timing rounds per contender")
    parser.add_argument("--chain-rounds", type=int, help="(B) timing rounds per contender")
    parser.add_argument("--batch-seconds", type=float, help="target length of one timed batch")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help=f"(B) parameter counts (default {' '.join(map(str, CHAIN_SIZES))};"
                             f" --quick {' '.join(map(str, CHAIN_SIZES_QUICK))})")
    parser.add_argument("--cap-seconds", type=float,
                        help=f"(B) skip a gradient predicted to take longer per call "
                             f"(default {CAP_S:g}, --quick {CAP_S_QUICK:g})")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=None,
                        help="time diffrax and torchdiffeq in (A), diffrax in (C) (default: "
                             "yes, not with --quick)")
    parser.add_argument("--only", choices=("A", "B", "C"), nargs="+",
                        help="run only these workloads")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.chain_rounds is None:
        args.chain_rounds = 2 if args.quick else 3
    if args.batch_seconds is None:
        args.batch_seconds = 0.01 if args.quick else 0.05
    if args.cap_seconds is None:
        args.cap_seconds = CAP_S_QUICK if args.quick else CAP_S
    if args.peers is None:
        args.peers = not args.quick
    workloads = set(args.only or ("A", "B", "C"))
    if not workloads & {"A", "C"}:
        args.peers = False

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' import-time deprecation chatter
        mods, missing = detect(args)
    vers = versions(mods)
    info = machine_info()
    print(f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs")
    print("versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in vers.items()))
    for name, why in missing.items():
        print(f"note: {name}: {why}")
    print(f"timing: (A), (C) {args.rounds} interleaved rounds, batches of "
          f"~{fmt_time(args.batch_seconds)} (calls over {fmt_time(SLOW_CALL_S)}: "
          f"{min(args.rounds, 3)} single calls); (B) {args.chain_rounds} rounds; median time "
          "per call after a warm-up (compilation is the setup / 1st call column)")

    results: dict[str, Any] = {}
    if "A" in workloads:
        results["lotka_volterra"] = run_lotka_volterra(mods, args)
    if "B" in workloads:
        results["chain"] = run_chain(mods, args)
    if "C" in workloads:
        results["stiff"] = run_stiff(mods, args)
    print(f"\ntotal benchmark time: {fmt_time(time.perf_counter() - t0)}")
    if args.json:
        write_json(args.json, {"benchmark": "gradients", "machine": info, "versions": vers,
                               "rounds": args.rounds, "chain_rounds": args.chain_rounds,
                               "batch_seconds": args.batch_seconds, "targets": TARGETS,
                               **results})
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
