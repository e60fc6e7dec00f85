"""Gradients through the solve: paramest's vjp with forward sensitivities, the complex step
and the discrete adjoint (with and without a user vector-Jacobian product) against adjoints
of other tools.

Two workloads, both Tsit5 at rtol=1e-6, atol=1e-8:

* (A) the Lotka-Volterra loss gradient of benchmarks/sensitivities.py (A): y0 = (1, 1), 101
  outputs on [0, 10], data from a tight solve at p = (1.5, 1, 3, 1), loss
  sum((y(t_i; p) - data_i)^2), gradient w.r.t. the 4 parameters at p = (1.4, 0.9, 3.1, 1.1).
  paramest: ``vjp(problem, t, 2 (y - data), sensitivity=...)`` with ``Forward()``,
  ``Forward(error_control=False)``, ``ComplexStep()``, ``DiscreteAdjoint()`` (complex-step
  vector-Jacobian products) and ``DiscreteAdjoint()`` on a problem with an analytic
  ``vjp=``. Errors against the exact gradient (scipy DOP853 on the augmented system,
  rtol=1e-12) and against ``ComplexStep()`` (the derivative of paramest's discrete solution,
  which the adjoint should reproduce to rounding). Peers: diffrax (Tsit5,
  RecursiveCheckpointAdjoint and BacksolveAdjoint) and torchdiffeq (dopri5,
  ``odeint_adjoint``).
* (B) the cost of a gradient against the number of parameters: the linear cascade of
  tests/problems.py (``rate_chain``, n states, n rates, 11 outputs on [0, 10]) for n from 2
  to 500, a random cotangent, each gradient as a multiple of one plain solve at the same n;
  and the n from which the discrete adjoint is cheaper than forward sensitivities (what
  ``sensitivity="auto"`` is to use).

Every contender is timed in interleaved rounds in one process after a warm-up (JIT
compilation is reported as setup and excluded); the script reports ratios measured in the
same run and asserts nothing about time.

Run ``python benchmarks/gradients.py`` (about a minute on 2 cores; ``--quick`` for a smoke
run without the peers, ``--json PATH`` to save the results). See benchmarks/README.md.
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
    RTOL_LV,
    Contender,
    _add,
    diffrax_lv_outputs,
    lv_gradient_from,
    lv_solve_augmented,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.problems import (  # noqa: E402
    LV_Y0,
    linear_chain_problem,
    lotka_volterra,
    lotka_volterra_reference,
    rate_chain,
)

METHOD = "Tsit5"  # DiscreteAdjoint needs an explicit method; the same one for every contender
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

NOT_YET = "paramest has no vjp / DiscreteAdjoint yet"
DA = "DiscreteAdjoint()"
DA_USER = "DiscreteAdjoint() + user vjp"
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
    """Interleaved timings; contenders whose first call took over SLOW_CALL_S are timed
    apart in `slow_rounds` single calls (their first call was the warm-up)."""
    fast = {c.name: c.batch() for c in contenders if not c.first_s > SLOW_CALL_S}
    slow = {c.name: c.batch() for c in contenders if c.first_s > SLOW_CALL_S}
    timings = interleaved_timings(fast, rounds=rounds, target_s=target_s,
                                  warmup_calls=warmup_calls) if fast else {}
    slow_timings = {name: Timing() for name in slow}
    for _ in range(slow_rounds):  # single calls, no calibration: they are long enough
        for name, batch in slow.items():
            slow_timings[name].per_call.append(time_batch(batch, 1))
    return {**timings, **slow_timings}


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
              CS: pe.ComplexStep(), DA: pe.DiscreteAdjoint()}
    for label, sens in senses.items():
        def grad(sens=sens):
            return pe.vjp(prob, LV_T, cot, sensitivity=sens, **opts)

        _add(out, notes, f"paramest {label}", lambda grad=grad: grad)

    (uprob, why), setup_s = timed(user_vjp_problem, pe, lotka_volterra, LV_Y0, t_span, LV_P0,
                                  lotka_volterra_vjp)
    if uprob is None:
        notes.append(f"paramest {DA_USER}: {why}")
    else:
        def user():
            return pe.vjp(uprob, LV_T, cot, sensitivity=pe.DiscreteAdjoint(), **opts)

        _add(out, notes, f"paramest {DA_USER}", lambda: user)
        if out and out[-1].name == f"paramest {DA_USER}":
            out[-1].setup_s = setup_s  # ODEProblem with the vjp: model check and compilation
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
    for peer in ("diffrax Tsit5 RecursiveCheckpointAdjoint", "diffrax Tsit5 BacksolveAdjoint",
                 "torchdiffeq dopri5 odeint_adjoint"):
        if peer in timings:
            summary[f"{peer} / paramest {DA_USER}"] = (
                ratio(med(peer), med(f"paramest {DA_USER}")), None)
    for label, (value, goal) in summary.items():
        tail = verdict(value, goal) if goal is not None else ""
        print(f"{label}: {fmt_num(value, '.3g')}{tail}")
    for n in notes:
        print(f"note: {n}")
    return {"exact_gradient": g_ref, "user_vjp_check": chk, "results": records,
            "summary": {k: v[0] for k, v in summary.items()}, "notes": notes}


# --- (B) cost against the number of parameters -------------------------------------------

CHAIN_COLUMNS = (FWD, FWD_NOEC, DA, DA_USER)


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
        runs = {FWD: (prob, pe.Forward()), FWD_NOEC: (prob, pe.Forward(error_control=False)),
                DA: (prob, pe.DiscreteAdjoint()), DA_USER: (uprob, pe.DiscreteAdjoint())}
        for label, (pr, sens) in runs.items():
            if pr is None:
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
        for label in (FWD, DA, DA_USER):
            row.append(fmt_num(rec[label]["rel_err"]))
        measured_sizes.append(n)
        rows.append(row)
        records.append(rec)
    headers = ["n_params", "solve", FWD, "Fwd(ec=False)", DA, "DA+user vjp", f"err {FWD}",
               "err DA", "err DA+vjp"]
    print(format_table(headers, rows))
    print(f"gradient columns: time per gradient / time of one plain solve at the same n; "
          f"err: normwise relative difference to {CS} (to {DA} where {CS} is over the cap)")

    summary: dict[str, Any] = {}
    crossings: dict[str, float] = {}
    for adj in (DA, DA_USER):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="few rounds, short batches, fewer sizes, no peers")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--rounds", type=int, help="(A) timing rounds per contender")
    parser.add_argument("--chain-rounds", type=int, help="(B) timing rounds per contender")
    parser.add_argument("--batch-seconds", type=float, help="target length of one timed batch")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help=f"(B) parameter counts (default {' '.join(map(str, CHAIN_SIZES))};"
                             f" --quick {' '.join(map(str, CHAIN_SIZES_QUICK))})")
    parser.add_argument("--cap-seconds", type=float,
                        help=f"(B) skip a gradient predicted to take longer per call "
                             f"(default {CAP_S:g}, --quick {CAP_S_QUICK:g})")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=None,
                        help="time diffrax and torchdiffeq in (A) (default: yes, not with "
                             "--quick)")
    parser.add_argument("--only", choices=("A", "B"), nargs="+", help="run only these workloads")
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
    workloads = set(args.only or ("A", "B"))
    if "A" not in workloads:
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
    print(f"timing: (A) {args.rounds} interleaved rounds, batches of "
          f"~{fmt_time(args.batch_seconds)} (calls over {fmt_time(SLOW_CALL_S)}: "
          f"{min(args.rounds, 3)} single calls); (B) {args.chain_rounds} rounds; median time "
          "per call after a warm-up (compilation is the setup / 1st call column)")

    results: dict[str, Any] = {}
    if "A" in workloads:
        results["lotka_volterra"] = run_lotka_volterra(mods, args)
    if "B" in workloads:
        results["chain"] = run_chain(mods, args)
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
