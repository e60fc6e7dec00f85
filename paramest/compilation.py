"""Compiling paramest's kernels: a notice on the first (slow) compile, and
:func:`precompile` to pay for it ahead of time.

The integrators are Numba kernels compiled on first use on a machine (each takes seconds)
and loaded from Numba's on-disk cache afterwards (a fraction of a second). So that a first
run is not silent for that long, the first real compile of each kernel prints one line to
stderr saying what is being compiled, why, for about how long, and that it happens once;
then a short line with the time it took. Nothing is printed when a kernel is loaded from
the cache.

The notices come from Numba's event API: a ``"numba:compile"`` listener, called by Numba
only when it really compiles (never on a cache load, and never on a call of a compiled
kernel), so they add nothing to the cost of a solve.
"""

import math
import sys
import threading
import time
from typing import NamedTuple

import numpy as np
from numba.core import event as numba_event

from paramest.kernels import adjoint, derivatives, ensemble, explicit, rosenbrock
from paramest.kernels.fields import model_addresses, plain_field

__all__ = ["KernelTime", "precompile"]


class _Kernel(NamedTuple):
    describe: object  # (numba argument types) -> str
    expected: str  # about how long a first compile takes, in words
    group: str  # one notice per group and process ("" for none: compiled silently)
    done_line: bool  # also print the time it took


def _state_dtype(args):
    """The dtype of an integrator's state array ``y`` (its second argument)."""
    try:
        return str(args[1].dtype)
    except (IndexError, AttributeError):  # pragma: no cover - not an array
        return "these"


def _field_kind(args):
    """What an integrator's field (its first argument, kernels.fields) adds to the model:
    "" for the plain model."""
    # the field is the first argument of the integrators, the second of the ensemble
    # driver (after its method family)
    fields = [arg for arg in args[:2] if hasattr(arg, "types")]
    if not fields:  # pragma: no cover - no field tuple
        return ""
    members = fields[0].types
    if len(members) == 3:
        return (" with forward sensitivities" if members[2].ndim == 1
                else " for complex-step sensitivities")
    if len(members) == 2:
        return " for BacksolveAdjoint"
    if len(members) == 7:
        return " for the continuous adjoint"
    return ""


#: paramest's top-level kernels (not the helpers they call, which compile inside them)
#: by ``id`` of the dispatcher -> (dispatcher, _Kernel). Cold compile times measured on a
#: 2-core machine (benchmarks/compile_latency.py): 13-30 s for each integrator, state dtype
#: and field (plain, forward sensitivities, complex-step directions), 2-3 s for the
#: model-check helpers together, under a second for the others.
_KERNELS = {}


def _register(dispatcher, describe, expected, group, done_line):
    _KERNELS[id(dispatcher)] = (dispatcher, _Kernel(describe, expected, group, done_line))


_register(
    explicit.integrate,
    lambda args: (f"the explicit Runge-Kutta integrator for {_state_dtype(args)} states"
                  f"{_field_kind(args)}"),
    "15-30 s", "explicit:{dtype}:{field}", True,
)
_register(
    rosenbrock.integrate_rosenbrock,
    lambda args: f"the Rosenbrock integrator for stiff problems{_field_kind(args)}",
    "15-30 s", "rosenbrock:{field}", True,
)
for _helper in (
    derivatives.evaluate_model, derivatives.jacobians_complex_step,
    derivatives.jacobians_central,
):
    _register(
        _helper, lambda args: "the model-check helpers (derivatives of the model)",
        "a few seconds", "model check", False,
    )
_register(
    adjoint.discrete_adjoint_explicit,
    lambda args: "the discrete adjoint of the explicit methods (reverse pass)",
    "5-15 s", "adjoint:discrete-explicit", True,
)
_register(
    adjoint.discrete_adjoint_rosenbrock,
    lambda args: "the discrete adjoint of the Rosenbrock methods (reverse pass)",
    "15-40 s", "adjoint:discrete-rosenbrock", True,
)
for _sweep, _family in ((adjoint.backward_sweep_explicit, "explicit"),
                        (adjoint.backward_sweep_rosenbrock, "Rosenbrock")):
    _register(
        _sweep,
        lambda args, family=_family: (
            f"the backward pass of the {family} methods{_field_kind(args)}"
        ),
        "20-60 s", f"adjoint:sweep-{_family}:{{field}}", True,
    )
_register(
    ensemble.solve_ensemble,
    lambda args: f"the parallel ensemble driver{_field_kind(args)}",
    "50-150 s", "ensemble:{field}", True,
)
# under a second each, no notice: the df/dt helpers (compiled on the first stiff solve of a
# model that reads t, just before the Rosenbrock integrator, whose notice follows) and the
# dense-output evaluator
for _helper in (derivatives.time_derivative_complex_step, derivatives.time_derivative_central,
                explicit.evaluate_dense):
    _register(_helper, None, "", "", False)
del _helper, _sweep, _family


class _Notices(numba_event.Listener):
    """Prints the first-compile notices; also records compile times for :func:`precompile`."""

    def __init__(self):
        self.enabled = True
        self.local = threading.local()
        self.announced = set()
        #: while :func:`precompile` runs: a list it reads the compiled kernels from
        self.recording = None

    def _starts(self):
        starts = getattr(self.local, "starts", None)
        if starts is None:
            starts = self.local.starts = {}
        return starts

    def on_start(self, event):
        entry = _KERNELS.get(id(event.data["dispatcher"]))
        if entry is None:
            return
        args = event.data["args"]
        self._starts()[(id(entry[0]), tuple(args))] = time.perf_counter()
        kernel = entry[1]
        if not (self.enabled and kernel.group and kernel.describe):
            return
        group = kernel.group.format(dtype=_state_dtype(args), field=_field_kind(args))
        if group in self.announced:
            return
        self.announced.add(group)
        _print(
            f"paramest: compiling {kernel.describe(args)} (first use on this machine or "
            f"after an update; takes {kernel.expected}, once: Numba caches it on disk)..."
        )

    def on_end(self, event):
        dispatcher = event.data["dispatcher"]
        entry = _KERNELS.get(id(dispatcher))
        if entry is None:
            return
        args = tuple(event.data["args"])
        start = self._starts().pop((id(dispatcher), args), None)
        if start is None or args not in dispatcher.overloads:  # the compile failed
            return
        seconds = time.perf_counter() - start
        if self.recording is not None:
            self.recording.append((dispatcher, seconds))
        kernel = entry[1]
        if self.enabled and kernel.done_line and kernel.describe:
            _print(f"paramest: compiled {kernel.describe(args)} in {seconds:.1f} s.")


def _print(line):
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # pragma: no cover - no usable stderr: stay silent
        pass


_NOTICES = _Notices()
numba_event.register("numba:compile", _NOTICES)


def _warmup_model(t, y, p, dydt):
    # a damped, forced oscillator: reads t, so a stiff solve also compiles the df/dt helpers
    dydt[0] = y[1]
    dydt[1] = -p[0] * y[0] - p[1] * y[1] + np.cos(t)


class KernelTime(NamedTuple):
    """What :func:`precompile` reports for one kernel."""

    #: seconds to make the kernel ready: a real compile, or a load from Numba's disk cache
    #: (near zero when it was already loaded in this process)
    seconds: float
    #: True when nothing had to be compiled (loaded from the cache, or already loaded)
    from_cache: bool


_KINDS = ("explicit", "stiff")


def precompile(kinds=_KINDS, complex_step=False, sensitivities=False, adjoints=False,
               ensembles=False, verbose=True):
    """Compile paramest's kernels now (or load them from Numba's disk cache).

    The integrators are compiled the first time they are used on a machine, which takes
    seconds per kernel (later runs load them from the on-disk cache in well under a
    second). Call this once after installing paramest, in a set-up script or a container
    build, so that no later solve pays for it. It runs tiny solves of a built-in model.

    Parameters
    ----------
    kinds : sequence of {"explicit", "stiff"}, default ("explicit", "stiff")
        Which integrators: ``"explicit"`` the explicit Runge-Kutta methods (and the dense
        output), ``"stiff"`` the Rosenbrock methods. ``method="auto"`` uses both.
    complex_step : bool, default False
        Also compile the explicit integrator for complex128 states (the whole solve
        differentiated by the complex step; with ``sensitivities`` also the variant
        ``sensitivity=ComplexStep()`` uses).
    sensitivities : bool, default False
        Also compile the integrators of ``kinds`` for forward sensitivities
        (``sensitivity=Forward()``).
    adjoints : bool, default False
        Also compile the adjoints for ``kinds``: the discrete adjoint's reverse passes
        (``DiscreteAdjoint()``), the continuous adjoint's backward passes (``Adjoint()``)
        and, for the explicit methods, ``BacksolveAdjoint()``'s.
    ensembles : bool, default False
        Also compile the parallel ensemble driver of :func:`paramest.solve_ensemble` (with
        ``sensitivities`` also its variant with forward sensitivities). It calls both
        integrator families, whatever ``kinds`` says.
    verbose : bool, default True
        Print the usual one-line notice for each kernel that is really compiled. With False
        nothing is printed.

    Returns
    -------
    dict
        Kernel name -> :class:`KernelTime` ``(seconds, from_cache)``, in the order done:
        ``"model check"`` (always), ``"explicit float64"``, ``"dense output"``,
        ``"explicit complex128"``, ``"rosenbrock float64"``, then with ``sensitivities``
        ``"explicit forward"``, ``"explicit complex directions"``, ``"rosenbrock forward"``,
        then with ``adjoints`` ``"explicit discrete adjoint"``, ``"explicit adjoint"``,
        ``"explicit backsolve"``, ``"rosenbrock discrete adjoint"``, ``"rosenbrock
        adjoint"``, then with ``ensembles`` ``"ensemble"`` (and ``"ensemble forward"``).

    Raises
    ------
    ValueError
        For an unknown entry of ``kinds``.

    Examples
    --------
    >>> import paramest as pe
    >>> times = pe.precompile(kinds=("explicit",), verbose=False)
    >>> list(times)
    ['model check', 'explicit float64', 'dense output']
    >>> all(t.seconds >= 0.0 for t in times.values())
    True
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    for kind in kinds:
        if kind not in _KINDS:
            raise ValueError(
                f"`kinds` entries must be 'explicit' or 'stiff', got {kind!r}"
            )
    from paramest.problems import ODEProblem
    from paramest.solve import solve

    steps = []
    problem = None

    def make_problem():
        nonlocal problem
        problem = ODEProblem(_warmup_model, [1.0, 0.0], (0.0, 1.0), [4.0, 0.5])

    steps.append(("model check", make_problem))
    t_eval = np.linspace(0.0, 1.0, 3)
    if "explicit" in kinds:
        steps.append(("explicit float64", lambda: solve(problem, "Tsit5", t_eval=t_eval)))
        steps.append((
            "dense output", lambda: solve(problem, "Tsit5", dense_output=True).sol(t_eval)
        ))
    if complex_step:
        steps.append(("explicit complex128", lambda: _complex_solve(problem, t_eval)))
    if "stiff" in kinds:
        steps.append(("rosenbrock float64", lambda: solve(problem, "Rodas5P", t_eval=t_eval)))
    if sensitivities:
        from paramest.sensitivity import ComplexStep, Forward

        if "explicit" in kinds:
            steps.append(("explicit forward", lambda: solve(
                problem, "Tsit5", t_eval=t_eval, sensitivity=Forward()
            )))
        if complex_step:
            steps.append(("explicit complex directions", lambda: solve(
                problem, "Tsit5", t_eval=t_eval, sensitivity=ComplexStep()
            )))
        if "stiff" in kinds:
            steps.append(("rosenbrock forward", lambda: solve(
                problem, "Rodas5P", t_eval=t_eval, sensitivity=Forward()
            )))

    if adjoints:
        from paramest.sensitivity import Adjoint, BacksolveAdjoint, DiscreteAdjoint, vjp

        cotangent = np.ones((2, t_eval.size))
        chosen = [("explicit", "Tsit5")] if "explicit" in kinds else []
        chosen += [("rosenbrock", "Rodas5P")] if "stiff" in kinds else []
        for family, method in chosen:
            for name, sensitivity in (("discrete adjoint", DiscreteAdjoint()),
                                      ("adjoint", Adjoint()),
                                      ("backsolve", BacksolveAdjoint())):
                if name == "backsolve" and family == "rosenbrock":
                    continue
                steps.append((f"{family} {name}", lambda m=method, s=sensitivity: vjp(
                    problem, t_eval, cotangent, sensitivity=s, method=m
                )))

    if ensembles:
        from paramest.ensemble import solve_ensemble

        rows = np.array([[4.0, 0.5], [3.0, 0.5]])
        steps.append(("ensemble", lambda: solve_ensemble(problem, p=rows, t_eval=t_eval)))
        if sensitivities:
            from paramest.sensitivity import Forward

            steps.append(("ensemble forward", lambda: solve_ensemble(
                problem, p=rows, t_eval=t_eval, sensitivity=Forward()
            )))

    times = {}
    enabled = _NOTICES.enabled
    _NOTICES.enabled = enabled and bool(verbose)
    try:
        for name, step in steps:
            _NOTICES.recording = compiled = []
            start = time.perf_counter()
            step()
            seconds = time.perf_counter() - start
            times[name] = KernelTime(seconds, not compiled)
    finally:
        _NOTICES.recording = None
        _NOTICES.enabled = enabled
    return times


def _complex_solve(problem, t_eval):
    """One solve of the explicit integrator with complex128 states, as the complex-step
    tests call it (the same argument types, so the same compiled kernel)."""
    from paramest.kernels import records
    from paramest.kernels.tableaus import get_tableau

    model = problem.model
    tab, info = explicit.pack_tableau(get_tableau("Tsit5"))
    n = problem.y0.shape[0]
    y = problem.y0.astype(np.complex128)
    p = problem.p.astype(np.complex128)
    p[0] += 1e-30j
    t_out = np.empty(t_eval.shape[0])
    y_out = np.empty((t_eval.shape[0], n), dtype=np.complex128)
    empty1 = np.empty(0)
    field = plain_field(model_addresses(rhs_complex=model.address_complex))
    code = explicit.integrate(
        field, y, p, np.full(n, 1e-8), records.float_options(
            float(t_eval[0]), float(t_eval[-1]), 1e-6
        ), records.int_options(1000, save_every_step=False, store_dense=False), tab, info,
        t_eval, t_out, y_out, empty1, empty1, np.empty((0, 0), dtype=np.complex128),
        np.empty((0, 0, 0), dtype=np.complex128), np.empty((tab.shape[0], n), np.complex128),
        records.float_state(), records.int_state(),
    )
    if code != 0 or not math.isfinite(y_out[-1, 0].real):  # pragma: no cover
        raise RuntimeError(f"precompile: the complex-step solve failed (status {code})")
