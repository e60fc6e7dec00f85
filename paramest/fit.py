"""``fit``: estimate parameters and initial states from data on scipy.optimize.

The optimisers see the estimated vector in their own space (log or log10 where ``scale``
says) and get exact derivatives: least-squares methods the Jacobian of the residuals from
forward sensitivities, ``minimize`` methods and Adam the gradient ``J^T r``, from the same
forward sensitivities or by an adjoint (``sensitivity="auto"`` chooses per experiment, the
result's ``sensitivity`` says which). A trial point where a solve fails is infinitely
bad to the optimiser; the final estimate is solved once more, and a fit whose final solve
fails or gives non-finite residuals never reports success.
"""

import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import optimize

from paramest.data import Data
from paramest.errors import SolveError
from paramest.model import record_model_exception
from paramest.objective import Objective
from paramest.result import FitResult, statistics
from paramest.sensitivity import ADJOINTS
from paramest.shooting import ShootingObjective, shooting_settings

__all__ = ["fit", "LEAST_SQUARES_METHODS", "MINIMIZE_METHODS", "GLOBAL_METHODS"]

#: ``scipy.optimize.least_squares`` methods, with the exact Jacobian.
LEAST_SQUARES_METHODS = ("trf", "lm", "dogbox")
#: ``scipy.optimize.minimize`` methods: with the exact gradient, then derivative-free.
GRADIENT_METHODS = ("L-BFGS-B", "BFGS", "trust-constr", "TNC", "SLSQP")
DERIVATIVE_FREE_METHODS = ("Nelder-Mead", "Powell")
MINIMIZE_METHODS = GRADIENT_METHODS + DERIVATIVE_FREE_METHODS
#: Global methods (need finite bounds); their best point is polished by ``"trf"``.
GLOBAL_METHODS = ("differential_evolution", "dual_annealing")
_ALL_METHODS = LEAST_SQUARES_METHODS + MINIMIZE_METHODS + GLOBAL_METHODS + ("adam",)
_METHODS_BY_LOWER = {name.lower(): name for name in _ALL_METHODS}
_LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")

#: status codes of a fit beyond the optimiser's own
FINAL_SOLVE_FAILED = -10
STOPPED_BY_CALLBACK = -11


class _Stop(Exception):
    """Raised inside the optimiser's calls when the callback asks to stop."""


def _method_name(method):
    name = _METHODS_BY_LOWER.get(method.lower()) if isinstance(method, str) else None
    if name is None:
        raise ValueError(f"`method` must be one of {list(_ALL_METHODS)}, got {method!r}")
    return name


def _bounds(bounds, objective):
    n = objective.n_free
    if bounds is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    try:
        lower, upper = bounds
    except (TypeError, ValueError):
        raise ValueError(
            "`bounds` must be a pair (lower, upper), each a number or one per estimated entry "
            f"({', '.join(objective.labels)})"
        ) from None
    out = []
    for name, value, fill in (("lower", lower, -np.inf), ("upper", upper, np.inf)):
        array = np.full(n, fill) if value is None else np.asarray(value, dtype=np.float64)
        if array.ndim == 0:
            array = np.full(n, float(array))
        if array.shape != (n,):
            raise ValueError(
                f"`bounds` {name} must be a number or {n} values (one per estimated entry: "
                f"{', '.join(objective.labels)}), got shape {array.shape}"
            )
        if np.any(np.isnan(array)):
            raise ValueError(f"`bounds` {name} contains NaN")
        out.append(array.copy())
    lower, upper = out
    bad = np.flatnonzero(lower >= upper)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"`bounds`: the lower bound of {objective.labels[i]!r} ({lower[i]}) must be below "
            f"its upper bound ({upper[i]})"
        )
    for i in np.flatnonzero(objective.scale > 0):
        for name, value in (("lower", lower[i]), ("upper", upper[i])):
            if np.isfinite(value) and value <= 0.0:
                raise ValueError(
                    f"`bounds`: {objective.labels[i]!r} is on log scale, so its {name} bound "
                    f"must be positive, got {value} (the log scale keeps it positive already; "
                    "use None or -inf for no lower bound)"
                )
    return lower, upper


def _start(x0, objective, lower, upper):
    if x0 is None:
        x = objective.x0.copy()
    else:
        x = np.asarray(x0, dtype=np.float64)
        if x.ndim == 0:
            x = np.full(objective.n_free, float(x))
        if x.shape != (objective.n_free,):
            raise ValueError(
                f"`x0` must have {objective.n_free} entries (one per estimated entry: "
                f"{', '.join(objective.labels)}), got shape {x.shape}"
            )
        x = x.copy()
    for i, label in enumerate(objective.labels):
        if not math.isfinite(x[i]):
            raise ValueError(f"`x0` for {label!r} must be finite, got {x[i]}")
        if objective.scale[i] > 0 and x[i] <= 0.0:
            raise ValueError(
                f"`x0` for {label!r} must be positive on log scale, got {x[i]}"
            )
        if not lower[i] <= x[i] <= upper[i]:
            raise ValueError(
                f"`x0` for {label!r} ({x[i]}) lies outside its bounds [{lower[i]}, {upper[i]}]"
            )
    return x


class _Tracker:
    """The functions the optimisers call, in their space, with counting, history, the
    callback, progress, and failed solves turned into infinitely bad points."""

    def __init__(self, objective, callback, progress_bar, shown=None):
        self.objective = objective
        self.callback = callback
        # what the callback sees of a point (multiple shooting: not the segment states)
        self.shown = shown
        self.bar = progress_bar
        self.history = []
        self.eager_jacobian = False
        self.best = math.inf
        self.best_x = None

    def _record(self, x, cost):
        self.history.append(cost)
        if cost < self.best:
            self.best = cost
            self.best_x = x
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(cost=f"{self.best:.6g}", refresh=False)
        if self.callback is not None:
            shown = x.copy() if self.shown is None else self.shown(x).copy()
            if self.callback(shown, cost):
                raise _Stop

    def residuals(self, z):
        x = self.objective.from_internal(z)
        if self.eager_jacobian:
            result = self.objective.evaluate(x, jacobian=True)
            r = None if result is None else result[0]
        else:
            r = self.objective.evaluate(x)
        if r is None:
            return np.full(self.objective.n_residuals, np.inf)
        self._record(x, 0.5 * float(r @ r))
        return r

    def residuals_finite(self, z):
        # Levenberg-Marquardt (MINPACK) cannot step back from non-finite residuals: a large
        # finite value makes the trial step fail the same way.
        r = self.residuals(z)
        if not np.all(np.isfinite(r)):
            return np.full(self.objective.n_residuals, 1e100 / math.sqrt(r.size))
        return r

    def jacobian(self, z):
        x = self.objective.from_internal(z)
        result = self.objective.evaluate(x, jacobian=True)
        if result is None:
            # only reached at a point whose residuals were fine but whose sensitivities
            # failed: report it, the optimiser then stops with a non-finite Jacobian
            return np.full((self.objective.n_residuals, self.objective.n_free), np.nan)
        return result[1] * self.objective.internal_derivative(x)

    def loss(self, z):
        r = self.residuals(z)
        return 0.5 * float(r @ r) if np.all(np.isfinite(r)) else math.inf

    def value_and_grad(self, z):
        x = self.objective.from_internal(z)
        result = self.objective.evaluate_gradient(x)
        if result is None:
            # finite but far worse than anything seen, so that a line search backs off
            # without its interpolation overflowing
            return 1e6 * (abs(self.best) + 1.0), np.zeros(z.size)
        r, gradient = result
        cost = 0.5 * float(r @ r)
        self._record(x, cost)
        # d/dz = d/dx dx/dz: the chain through log and log10 scales
        return cost, gradient * self.objective.internal_derivative(x)

    def gradient(self, z):
        return self.value_and_grad(z)[1]

    def window_value_and_grad(self, window, z):
        """A minibatch's loss and gradient (``window``: an Objective on part of the data,
        with the same estimated vector); the cost recorded and shown is the window's."""
        x = self.objective.from_internal(z)
        result = window.evaluate_gradient(x)
        if result is None:
            self.objective.failures += 1
            self.objective.last_failure = window.last_failure
            return math.inf, np.full(z.size, np.nan)
        r, gradient = result
        cost = 0.5 * float(r @ r)
        self._record(x, cost)
        return cost, gradient * self.objective.internal_derivative(x)


def _check_method(method, objective, lower_z, upper_z, options, n_starts):
    """Refuse a method that cannot run with these arguments, before any solve."""
    bounded = np.any(np.isfinite(lower_z)) or np.any(np.isfinite(upper_z))
    box = np.all(np.isfinite(lower_z)) and np.all(np.isfinite(upper_z))
    if method == "lm":
        if bounded:
            raise ValueError("method='lm' does not support `bounds`; use 'trf' or 'dogbox'")
        if objective.n_residuals < objective.n_free:
            raise ValueError(
                f"method='lm' needs at least as many measured values "
                f"({objective.n_residuals}) as estimated entries ({objective.n_free}); use "
                "'trf'"
            )
    if method == "BFGS" and bounded:
        raise ValueError("method='BFGS' does not support `bounds`; use 'L-BFGS-B'")
    if method in GLOBAL_METHODS and not box:
        raise ValueError(
            f"method={method!r} searches a box: pass finite `bounds` for every estimated "
            f"entry ({', '.join(objective.labels)})"
        )
    if n_starts > 1 and not box:
        raise ValueError(
            "`n_starts` > 1 draws starting points inside the bounds: pass finite `bounds` "
            f"for every estimated entry ({', '.join(objective.labels)})"
        )
    if method == "adam":
        settings = _adam_settings(options)
        if settings["polish"] == "BFGS" and bounded:
            raise ValueError("`options['polish']='BFGS'` does not support `bounds`; use "
                             "'L-BFGS-B'")


def _least_squares(tracker, z0, lower_z, upper_z, method, loss, options):
    settings = {"x_scale": "jac"} | dict(options)
    # trf and dogbox evaluate the Jacobian at every point they accept, which is most of
    # them: one solve with sensitivities gives both, instead of a solve without and then
    # one with (about 15 % less time on the Lotka-Volterra benchmark).
    tracker.eager_jacobian = method != "lm"
    fun = tracker.residuals_finite if method == "lm" else tracker.residuals
    result = optimize.least_squares(
        fun, z0, jac=tracker.jacobian, bounds=(lower_z, upper_z), method=method, loss=loss,
        **settings,
    )
    return result.x, result.success, result.status, result.message, result.nfev, \
        result.njev or 0, result.nfev


def _minimize(tracker, z0, lower_z, upper_z, method, options):
    bounded = np.any(np.isfinite(lower_z)) or np.any(np.isfinite(upper_z))
    bounds = optimize.Bounds(lower_z, upper_z) if bounded else None
    if method in GRADIENT_METHODS:
        result = optimize.minimize(tracker.value_and_grad, z0, jac=True, method=method,
                                   bounds=bounds, options=dict(options) or None)
    else:
        result = optimize.minimize(tracker.loss, z0, method=method, bounds=bounds,
                                   options=dict(options) or None)
    nit = int(getattr(result, "nit", 0) or 0)
    return result.x, bool(result.success), int(getattr(result, "status", 0) or 0), \
        str(result.message), int(getattr(result, "nfev", 0) or 0), \
        int(getattr(result, "njev", 0) or 0), nit


def _global(tracker, z0, lower_z, upper_z, method, seed, options):
    settings = dict(options)
    polish = settings.pop("polish", True)
    box = list(zip(lower_z, upper_z, strict=True))
    if method == "differential_evolution":
        result = optimize.differential_evolution(
            tracker.loss, box, x0=z0, seed=seed, polish=False, **settings
        )
    else:
        settings.setdefault("minimizer_kwargs", {"method": "L-BFGS-B",
                                                 "jac": tracker.gradient})
        result = optimize.dual_annealing(tracker.loss, box, x0=z0, seed=seed, **settings)
    z = result.x
    nit = int(getattr(result, "nit", 0) or 0)
    success, status = bool(result.success), int(getattr(result, "status", 0) or 0)
    message = result.message
    if not isinstance(message, str):  # dual_annealing gives a list of sentences
        message = "; ".join(str(part) for part in message)
    if polish:
        polished = optimize.least_squares(
            tracker.residuals, z, jac=tracker.jacobian, bounds=(lower_z, upper_z),
            method="trf", x_scale="jac",
        )
        if tracker.loss(polished.x) <= tracker.loss(z):
            z = polished.x
        message += f"; polished by least_squares('trf'): {polished.message}"
        success = success and polished.success
        nit += int(polished.nfev)
    return z, success, status, message, 0, 0, nit


_ADAM_POLISH = ("L-BFGS-B", "BFGS")


def _adam_settings(options):
    settings = dict(options)
    values = {}
    for key, default in (("maxiter", 1000), ("learning_rate", 0.01), ("decay", 1.0),
                         ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8), ("gtol", 0.0)):
        value = settings.pop(key, default)
        try:
            values[key] = int(value) if key == "maxiter" else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"`options[{key!r}]` for method='adam' must be a number, "
                             f"got {value!r}") from None
    polish = settings.pop("polish", None)
    polish_options = settings.pop("polish_options", None)
    batch_size = settings.pop("batch_size", None)
    if settings:
        raise ValueError(
            f"`options` for method='adam': unknown {sorted(settings)}; known: maxiter, "
            "learning_rate, decay, beta1, beta2, epsilon, gtol, polish, polish_options, "
            "batch_size"
        )
    if values["maxiter"] < 1 or not values["learning_rate"] > 0 or not (
        0 < values["decay"] <= 1
    ):
        raise ValueError(
            "`options` for method='adam': needs maxiter >= 1, learning_rate > 0 and "
            "0 < decay <= 1"
        )
    if polish is not None:
        polish = _METHODS_BY_LOWER.get(polish.lower()) if isinstance(polish, str) else None
        if polish not in _ADAM_POLISH:
            raise ValueError(
                f"`options['polish']` for method='adam' must be one of {list(_ADAM_POLISH)} "
                f"(a quasi-Newton method started from Adam's result), got "
                f"{options['polish']!r}"
            )
    if polish_options is not None and not isinstance(polish_options, dict):
        raise TypeError("`options['polish_options']` for method='adam' must be a dict, got "
                        f"{type(polish_options).__name__}")
    if polish_options is not None and polish is None:
        raise ValueError("`options['polish_options']` needs `options['polish']`")
    if batch_size is not None and (isinstance(batch_size, bool)
                                   or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(
            "`options['batch_size']` for method='adam' must be a positive integer (the "
            f"number of consecutive measurement times per minibatch), got {batch_size!r}"
        )
    values["polish"] = polish
    values["polish_options"] = dict(polish_options or {})
    values["batch_size"] = batch_size
    return values


def _adam(tracker, z0, lower_z, upper_z, options, windows=None):
    """Adam from ``z0``; with ``windows`` (minibatching) each step's gradient is that of one
    time window's loss. Then the optional quasi-Newton polish on the full loss."""
    settings = _adam_settings(options)
    maxiter, rate, decay = settings["maxiter"], settings["learning_rate"], settings["decay"]
    beta1, beta2 = settings["beta1"], settings["beta2"]
    epsilon, gtol = settings["epsilon"], settings["gtol"]
    z = z0.copy()
    first = np.zeros_like(z)
    second = np.zeros_like(z)
    best_z, best_cost = z.copy(), math.inf
    message = f"maximum number of iterations ({maxiter}) reached"
    failed = False
    for iteration in range(1, maxiter + 1):
        if windows is None:
            cost, grad = tracker.value_and_grad(z)
            if cost < best_cost:
                best_z, best_cost = z.copy(), cost
        else:
            # a window's loss says nothing about the whole series: no "best" point, the
            # last iterate is the result (checked on the full loss below)
            cost, grad = tracker.window_value_and_grad(windows.next(), z)
        if not np.all(np.isfinite(grad)):
            message = (f"a minibatch's solve failed at iteration {iteration}: "
                       f"{tracker.objective.last_failure}")
            failed = True
            break
        if gtol > 0 and np.max(np.abs(grad)) < gtol:
            message = "gradient below gtol"
            break
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad**2
        step = rate * decay ** (iteration - 1)
        z = z - step * (first / (1 - beta1**iteration)) / (
            np.sqrt(second / (1 - beta2**iteration)) + epsilon
        )
        np.clip(z, lower_z, upper_z, out=z)
    cost, _ = tracker.value_and_grad(z)
    if windows is not None or cost < best_cost:
        best_z = z.copy()
    success = not failed
    nit = iteration
    if settings["polish"] is not None and not failed:
        polished = _minimize(tracker, best_z, lower_z, upper_z, settings["polish"],
                             settings["polish_options"])
        z_polished, polish_success, _, polish_message, _, _, polish_nit = polished
        polished_cost, _ = tracker.value_and_grad(z_polished)
        start_cost, _ = tracker.value_and_grad(best_z)
        if polished_cost <= start_cost:
            best_z = np.asarray(z_polished, dtype=np.float64)
        message += (f"; polished by {settings['polish']} ({polish_nit} iterations, cost "
                    f"{start_cost:.6g} -> {min(polished_cost, start_cost):.6g}): "
                    f"{polish_message}")
        success = bool(polish_success)
        nit += polish_nit
    elif failed:
        return best_z, False, FINAL_SOLVE_FAILED, message, 0, 0, nit
    return best_z, success, 0, message, 0, 0, nit


class _TimeWindows:
    """Minibatches over time for Adam: windows of ``batch_size`` consecutive measurement
    times of the (single) experiment, visited in a random order per pass over all of them.
    Each window is an :class:`Objective` of its own (made on first use), solved from t0 to
    the window's last time."""

    def __init__(self, objective, batch_size, seed):
        (problem, experiments), kwargs = objective._arguments
        if len(experiments) != 1 or kwargs["local"] is not None:
            raise ValueError(
                "`options['batch_size']` (minibatches over time) needs a single experiment "
                "without `local` entries"
            )
        data = experiments[0]
        times = data.times
        if batch_size >= times.size:
            raise ValueError(
                f"`options['batch_size']` ({batch_size}) must be smaller than the number of "
                f"distinct measurement times ({times.size}); without minibatches, omit it"
            )
        self.problem, self.data, self.kwargs = problem, data, kwargs
        self.batch_size = batch_size
        self.starts = np.arange(times.size - batch_size + 1)
        self.rng = np.random.default_rng(seed)
        self.order = []
        self.objectives = {}

    def next(self):
        if not self.order:
            self.order = list(self.rng.permutation(self.starts))
        start = int(self.order.pop())
        window = self.objectives.get(start)
        if window is None:
            window = Objective(self.problem, _window_data(self.data, start, self.batch_size),
                               **self.kwargs)
            self.objectives[start] = window
        return window


def _window_data(data, start, size):
    """The measurements of ``data`` at its distinct times ``start .. start + size - 1``."""
    keep = (data.time_index >= start) & (data.time_index < start + size)
    return Data(data.t[keep], data.y[:, keep], sigma=data.sigma[:, keep], y0=data.y0,
                p=data.p, observables=data.observables, name=data.name)


def _progress_bar(progress, total=None, description="fit"):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress=True needs tqdm: pip install tqdm") from None
    return tqdm(total=total, desc=description, unit="eval" if total is None else "start")


def _run_local(objective, z0, lower_z, upper_z, method, loss, seed, options, callback,
               progress, shooting_setup=None):
    """One optimisation from ``z0``; returns a FitResult. With ``shooting_setup``
    (segments, continuity) the optimiser works
    on the multiple-shooting residuals, and the result is that of ``objective`` (single
    shooting) at the parameters found."""
    started = time.perf_counter()
    nfev0, njev0, failures0 = objective.nfev, objective.njev, objective.failures
    if objective.evaluate(objective.from_internal(z0)) is None and shooting_setup is None:
        # a multistart point where the model does not solve: a failed start, not a crash
        return _failed_start(objective, z0, lower_z, upper_z, method, started)
    target, shown = objective, None
    z_start, lower_t, upper_t = z0, lower_z, upper_z
    shooting = None if shooting_setup is None else ShootingObjective(objective,
                                                                     *shooting_setup[:2])
    if shooting is not None:
        target, shown = shooting, shooting.public
        z_start = shooting.to_internal(shooting.start(objective.from_internal(z0)))
        lower_t = shooting.extend_bounds(lower_z, -np.inf)
        upper_t = shooting.extend_bounds(upper_z, np.inf)
        if shooting.evaluate(shooting.from_internal(z_start)) is None:
            objective.last_failure = shooting.last_failure
            return _failed_start(objective, z0, lower_z, upper_z, method, started)
    use_before = {id(m): count for m, count in objective.sensitivity_use()}
    bar = _progress_bar(progress, description=f"fit ({method})")
    tracker = _Tracker(target, callback, bar, shown)
    stopped = False
    try:
        if method in LEAST_SQUARES_METHODS:
            outcome = _least_squares(tracker, z_start, lower_t, upper_t, method, loss,
                                     options)
        elif method in MINIMIZE_METHODS:
            outcome = _minimize(tracker, z_start, lower_t, upper_t, method, options)
        elif method in GLOBAL_METHODS:
            outcome = _global(tracker, z_start, lower_t, upper_t, method, seed, options)
        else:
            batch_size = _adam_settings(options)["batch_size"]
            windows = None if batch_size is None else _TimeWindows(objective, batch_size, seed)
            try:
                outcome = _adam(tracker, z_start, lower_t, upper_t, options, windows)
            finally:
                if windows is not None:
                    for window in windows.objectives.values():
                        for used, count in window.sensitivity_use():
                            objective._note_use(used, count)
                        objective.nfev += window.nfev
                        objective.njev += window.njev
                        objective.failures += window.failures
    except _Stop:
        stopped = True
        best = tracker.best_x
        z_best = target.to_internal(best) if best is not None else z_start
        outcome = (z_best, False, STOPPED_BY_CALLBACK, "stopped by the callback", 0, 0,
                   len(tracker.history))
    finally:
        if bar is not None:
            bar.close()
    z, success, status, message, _, _, nit = outcome
    shooting_report = None
    if shooting is not None:
        x_shooting = shooting.from_internal(np.asarray(z, dtype=np.float64))
        shooting_report = {
            "segments": shooting.segments, "continuity": shooting.continuity,
            "labels": list(shooting.labels), "x": x_shooting,
            "defect": shooting.defect(x_shooting), "nfev": shooting.nfev,
            "failures": shooting.failures,
        }
        z = objective.to_internal(shooting.public(x_shooting))
        for used, count in shooting.sensitivity_use():
            objective._note_use(used, count)
        objective.nfev += shooting.nfev
        objective.njev += shooting.njev
        objective.failures += shooting.failures
        if shooting.failures and shooting.last_failure:
            objective.last_failure = shooting.last_failure
    # what gave the optimiser's derivatives (the final Jacobian for the statistics below
    # is not counted)
    sensitivity = _used_since(objective, use_before)
    x = objective.from_internal(np.asarray(z, dtype=np.float64))
    final = objective.evaluate(x, jacobian=True)
    if final is None and tracker.best_x is not None:
        # The optimiser ended on a point where the model does not solve (a zero gradient
        # there can look stationary): report the best point it evaluated, as a failure.
        failure = objective.last_failure
        x = tracker.best_x.copy() if shown is None else shown(tracker.best_x)
        final = objective.evaluate(x, jacobian=True)
        success, status = False, FINAL_SOLVE_FAILED
        message = (f"{message}; the optimiser's final point does not solve ({failure}); "
                   "the result is the best point it evaluated")
    result = FitResult(
        x=x, labels=list(objective.labels), method=method, nit=nit, history=tracker.history,
        nfev=objective.nfev - nfev0, njev=objective.njev - njev0,
        failures=objective.failures - failures0, starts=[], sensitivity=sensitivity,
    )
    result.attach(objective, tuple(_natural_bound(objective, b) for b in (lower_z, upper_z)))
    conditions = objective.conditions(x)
    result.p = _stacked([c[0] for c in conditions])
    result.y0 = _stacked([c[1] for c in conditions])
    if final is None:
        result.update(
            success=False, status=FINAL_SOLVE_FAILED,
            message=f"the solve at the final estimate failed: {objective.last_failure}",
            cost=math.inf, robust_cost=math.inf, residuals=None, jac=None,
            **_empty_statistics(objective.n_free),
        )
    else:
        residuals, jac = final
        result.update(statistics(objective, x, residuals, jac))
        cost = 0.5 * result.chi2
        result.update(
            success=bool(success) and not stopped, status=int(status), message=str(message),
            cost=cost, residuals=residuals.copy(), jac=jac.copy(),
            robust_cost=_robust_cost(residuals, loss),
        )
    if shooting_report is not None:
        result.shooting = shooting_report
        result.message += (
            f" (multiple shooting with {shooting.segments} segments; largest jump between "
            f"segments at the estimate {shooting_report['defect']:.3g})"
        )
    if result.failures:
        result.message += (
            f" ({result.failures} trial point(s) where a solve failed were rejected; the last: "
            f"{objective.last_failure})"
        )
    result.wall_time = time.perf_counter() - started
    if shooting is not None and shooting_setup[2] and not stopped and final is not None:
        result = _refined(objective, result, lower_z, upper_z, method, loss, seed, options,
                          callback, progress)
        result.wall_time = time.perf_counter() - started
    return result


def _refined(objective, shot, lower_z, upper_z, method, loss, seed, options, callback,
             progress):
    """Single shooting from the multiple-shooting estimate ``shot``: the continuity penalty
    leaves small jumps that bias the parameters, and from inside the right basin single
    shooting converges to the exact optimum. Least-squares and gradient methods refine with
    themselves, the others with ``"trf"``."""
    if method in LEAST_SQUARES_METHODS or method in GRADIENT_METHODS:
        refine_method, refine_options = method, options
    else:
        refine_method, refine_options = "trf", {}
    refined = _run_local(objective, objective.to_internal(shot.x), lower_z, upper_z,
                         refine_method, loss, seed, refine_options, callback, progress)
    if not refined.cost <= shot.cost:
        shot.message += ("; single shooting from this estimate did not lower the cost "
                         f"({refined.message})")
        return shot
    refined.shooting = shot.shooting
    refined.method = method
    refined.nfev += shot.nfev
    refined.njev += shot.njev
    refined.nit += shot.nit
    refined.failures += shot.failures
    refined.history = list(shot.history) + list(refined.history)
    refined.message = (
        f"multiple shooting ({shot.shooting['segments']} segments, {shot.message}), then "
        f"single shooting with {refine_method!r} from its estimate: {refined.message}"
    )
    refined.success = bool(refined.success and shot.success)
    return refined


def _failed_start(objective, z0, lower_z, upper_z, method, started):
    x = objective.from_internal(z0)
    result = FitResult(
        x=x, labels=list(objective.labels), method=method, nit=0, history=[],
        nfev=0, njev=0, failures=1, starts=[], sensitivity=None, success=False,
        status=FINAL_SOLVE_FAILED,
        message=f"the start point does not solve: {objective.last_failure}",
        cost=math.inf, robust_cost=math.inf, residuals=None, jac=None,
        **_empty_statistics(objective.n_free),
    )
    result.attach(objective, tuple(_natural_bound(objective, b) for b in (lower_z, upper_z)))
    conditions = objective.conditions(x)
    result.p = _stacked([c[0] for c in conditions])
    result.y0 = _stacked([c[1] for c in conditions])
    result.wall_time = time.perf_counter() - started
    return result


def _used_since(objective, before):
    """The sensitivity methods that gave derivatives since the counts ``before``: None, one
    method, or a tuple of them, most used first."""
    since = [(count - before.get(id(method), 0), method)
             for method, count in objective.sensitivity_use()]
    used = [method for count, method in sorted(since, key=lambda item: -item[0]) if count > 0]
    if not used:
        return None
    return used[0] if len(used) == 1 else tuple(used)


def _natural_bound(objective, bound_z):
    finite = np.isfinite(bound_z)
    natural = objective.from_internal(np.where(finite, bound_z, 0.0))
    return np.where(finite, natural, bound_z)


def _robust_cost(residuals, loss):
    z = residuals**2
    if loss == "linear":
        rho = z
    elif loss == "soft_l1":
        rho = 2.0 * (np.sqrt(1.0 + z) - 1.0)
    elif loss == "huber":
        rho = np.where(z <= 1.0, z, 2.0 * np.sqrt(z) - 1.0)
    elif loss == "cauchy":
        rho = np.log1p(z)
    else:
        rho = np.arctan(z)
    return 0.5 * float(rho.sum())


def _empty_statistics(n_free):
    nan = np.full(n_free, np.nan)
    return dict(
        chi2=math.inf, dof=0, cov=np.full((n_free, n_free), np.nan), stderr=nan,
        corr=np.full((n_free, n_free), np.nan), ci=np.full((n_free, 2), np.nan), nllh=None,
        aic=math.inf, bic=math.inf, identifiable=False,
    )


def _stacked(vectors):
    first = vectors[0]
    if all(np.array_equal(first, v) for v in vectors[1:]):
        return first.copy()
    return np.vstack(vectors)


def _start_points(objective, x0, lower, upper, n_starts, seed):
    """``x0`` and ``n_starts - 1`` Latin-hypercube points of the box, in the optimiser's
    space (so log-scaled entries are spread over decades)."""
    lower_z = objective.bounds_to_internal(lower)
    upper_z = objective.bounds_to_internal(upper)
    if not (np.all(np.isfinite(lower_z)) and np.all(np.isfinite(upper_z))):
        raise ValueError(
            "`n_starts` > 1 draws starting points inside the bounds: pass finite `bounds` "
            f"for every estimated entry ({', '.join(objective.labels)})"
        )
    from scipy.stats import qmc  # imported here: scipy.stats takes about 1 s to import

    sampler = qmc.LatinHypercube(d=objective.n_free, seed=seed)
    samples = qmc.scale(sampler.random(n_starts - 1), lower_z, upper_z)
    return [objective.to_internal(x0)] + list(samples)


def fit(problem, data, x0=None, method="trf", *, free=None, free_y0=None, local=None,
        bounds=None, scale="lin", observe=None, loss="linear", sensitivity="auto",
        solver="auto", rtol=1e-8, atol=1e-10, n_starts=1, seed=None, executor=None,
        progress=False, callback=None, options=None, multiple_shooting=None):
    """Estimate parameters (and initial states) of an ODE model from measurements.

    Parameters
    ----------
    problem : ODEProblem
    data : Data or list of Data
        One experiment or several; parameters are shared across experiments unless named
        in ``local``.
    x0 : array_like, optional
        Starting point in natural units over the estimated vector (see ``labels`` of the
        result; a scalar is broadcast). Default: the problem's values.
    method : str, default "trf"
        ``"trf"``, ``"dogbox"``, ``"lm"`` (:func:`scipy.optimize.least_squares` with the
        exact Jacobian); ``"L-BFGS-B"``, ``"BFGS"``, ``"trust-constr"``, ``"TNC"``,
        ``"SLSQP"`` (:func:`scipy.optimize.minimize` with the exact gradient);
        ``"Nelder-Mead"``, ``"Powell"`` (derivative-free); ``"differential_evolution"``,
        ``"dual_annealing"`` (global, need finite bounds; polished by ``"trf"``); ``"adam"``
        (``options={"maxiter": 1000, "learning_rate": 0.01, "decay": 1.0}``; the step is
        ``learning_rate * decay**(iteration - 1)``; ``"polish": "L-BFGS-B"`` or ``"BFGS"``
        continues from Adam's result with that quasi-Newton method (its own options in
        ``"polish_options"``); ``"batch_size": m`` makes each step's gradient that of
        a window of ``m`` consecutive measurement times, windows visited in a random order
        (``seed``), one experiment only; the cost that ``callback`` and ``progress`` then
        see is the window's, and the result is Adam's last iterate).
    free : int, str or sequence, optional
        Estimated parameters, by index or name; default all.
    free_y0 : int, str, sequence or True, optional
        Estimated initial states; default none.
    local : str, int or sequence, optional
        Estimated entries with one value per experiment.
    bounds : (lower, upper), optional
        Natural units, each a number or one per estimated entry; None or inf for no bound.
    scale : str or sequence, default "lin"
        ``"lin"``, ``"log"`` or ``"log10"``, for all or per entry: the space the optimiser
        works in. Log scales suit rate constants spanning decades and keep them positive.
    observe : callable, optional
        ``observe(t, y, p, out)``: the observables when the data are not the states
        themselves. Compiled like the model; reads the full parameter vector, so scale
        factors and offsets are ordinary (free or fixed) parameters.
    loss : str, default "linear"
        Least-squares methods: scipy's robust losses ``"soft_l1"``, ``"huber"``,
        ``"cauchy"``, ``"arctan"`` (residuals are already divided by sigma).
    sensitivity : "auto" or SensitivityMethod, default "auto"
        How derivatives are computed. Least-squares methods need the Jacobian of the
        residuals: forward sensitivities (``"auto"`` is ``Forward(error_control=False)``),
        or ``ComplexStep()``, ``FiniteDifferences()``. Gradient methods (minimize's and
        ``"adam"``) need only ``J^T r``, which an adjoint (:class:`paramest.DiscreteAdjoint`)
        gives from one solve and one reverse pass per experiment, whatever the number of
        estimated entries; ``"auto"`` takes it per experiment where it was measured to be
        cheaper (explicit solvers and many columns, as :func:`paramest.vjp` chooses) and
        the forward sensitivities otherwise. An adjoint with a least-squares method is
        refused. The result's ``sensitivity`` says what was used. The statistics at the
        estimate come from the exact Jacobian: forward sensitivities, or, for an experiment
        with a discrete adjoint and at least 4 times more estimated entries than residuals
        (a neural network's weights), the adjoint's reverse pass once per residual (the same
        numbers to rounding, at a fraction of the cost).
    solver : str, default "auto"
        Solve method (see :data:`paramest.METHODS`); ``"auto"`` switches to a Rosenbrock
        method where the model is stiff.
    rtol, atol : float, default 1e-8, 1e-10
        Solver tolerances.
    n_starts : int, default 1
        Multistart: ``x0`` plus ``n_starts - 1`` Latin-hypercube points inside the
        (finite) bounds, each optimised; the best is returned and ``starts`` keeps all.
    seed : int, optional
        Seeds the start points and the global methods.
    executor : concurrent.futures.Executor, optional
        Runs the starts (default: threads on the local cores; the kernels release the GIL).
        A Dask client's ``get_executor()`` works unchanged.
    progress : bool, default False
        Show a tqdm progress bar with the best cost (needs ``tqdm``).
    callback : callable, optional
        ``callback(x, cost)`` after each successful evaluation; return True to stop.
    options : dict, optional
        Passed to the optimiser (``max_nfev``, ``ftol``, ``x_scale`` for least squares;
        ``maxiter`` etc. for minimize and the global methods).
    multiple_shooting : int or dict, optional
        Fit by multiple shooting: the series is cut into this many segments (or
        ``{"segments": K, "continuity": 100.0}``), each solved from its own estimated
        initial state, with residuals ``sqrt(continuity) * jump`` tying consecutive segments
        together; for long or oscillatory series, where single shooting stalls in local
        minima. One experiment, data on the states (no ``observe``). Works with every
        method; ``callback`` sees the single-shooting entries. The penalty leaves small
        jumps that bias the estimate, so by default (``"refine": True``) single shooting
        continues from it (least-squares and gradient methods with themselves, the others
        with ``"trf"``). The result (``x``, cost, statistics) is the single-shooting fit's;
        its ``shooting`` entry holds the segments' estimates and the largest jump between
        segments (``defect``) of the multiple-shooting stage.

    Returns
    -------
    FitResult
        ``x``, ``labels``, ``p``, ``y0``, ``cost``, ``nllh``, ``stderr``, ``cov``,
        ``corr``, ``ci``, ``chi2``, ``dof``, ``aic``, ``bic``, ``success``, ``message``,
        ``nfev``, ``njev``, ``nit``, ``history``, ``starts``, ``sensitivity``, ``wall_time``;
        ``predict(t)``, ``summary()``, ``plot()``.

    Raises
    ------
    TypeError, ValueError
        Malformed arguments, before any solve; the message names the argument (also an
        adjoint ``sensitivity`` with a least-squares ``method``, or with a Rosenbrock
        ``solver`` it does not support).
    paramest.SolveError
        The solve fails at the starting point.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 4.0), [0.5], param_names=["k"])
    >>> t = np.linspace(0.5, 4.0, 8)
    >>> data = pe.Data(t, 2.0 * np.exp(-0.7 * t) + [0.01, -0.01] * 4, sigma=0.01)
    >>> result = pe.fit(problem, data)
    >>> result.success, result.labels
    (True, ['k'])
    >>> print(np.round(result.x, 3), np.round(result.stderr, 4))
    [0.7] [0.0043]
    """
    started = time.perf_counter()
    method = _method_name(method)
    if isinstance(sensitivity, ADJOINTS) and method in LEAST_SQUARES_METHODS:
        raise ValueError(
            f"`sensitivity={sensitivity!r}` gives gradients, not the Jacobian of the "
            f"residuals that the least-squares method={method!r} needs: use the adjoint with "
            "a gradient method (method='L-BFGS-B', 'BFGS', 'TNC', 'SLSQP', 'trust-constr' or "
            "'adam'), or sensitivity='auto' (forward sensitivities for the Jacobian) with "
            f"method={method!r}"
        )
    if loss not in _LOSSES:
        raise ValueError(f"`loss` must be one of {list(_LOSSES)}, got {loss!r}")
    if loss != "linear" and method not in ("trf", "dogbox"):
        raise ValueError(f"`loss={loss!r}` needs a least-squares method ('trf' or 'dogbox')")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        raise TypeError(f"`options` must be a dict, got {type(options).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError("`callback` must be callable as callback(x, cost)")
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"`n_starts` must be a positive integer, got {n_starts!r}")
    objective = Objective(
        problem, data, free=free, free_y0=free_y0, local=local, scale=scale, observe=observe,
        sensitivity=sensitivity, solver=solver, rtol=rtol, atol=atol,
    )
    if objective.n_free == 0:
        raise ValueError("nothing to estimate: `free` is empty and `free_y0` names no state")
    shooting_setup = shooting_settings(multiple_shooting)
    if shooting_setup is not None:
        ShootingObjective(objective, *shooting_setup[:2])  # refuses unsuitable set-ups now
    lower, upper = _bounds(bounds, objective)
    x_start = _start(x0, objective, lower, upper)
    objective.check_not_stale()
    lower_z = objective.bounds_to_internal(lower)
    upper_z = objective.bounds_to_internal(upper)
    _check_method(method, objective, lower_z, upper_z, options, n_starts)
    if progress:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
    points = _start_points(objective, x_start, lower, upper, n_starts, seed) \
        if n_starts > 1 else None
    # The starting point must solve: the optimisers cannot begin from an infinitely bad
    # point, and a failure here is usually a modelling error worth reporting as such.
    if shooting_setup is None and objective.evaluate(x_start) is None:
        raise SolveError(f"fit cannot start: {objective.last_failure}")
    if n_starts == 1:
        result = _run_local(objective, objective.to_internal(x_start), lower_z, upper_z,
                            method, loss, seed, options, callback, progress,
                            shooting_setup)
        result.wall_time = time.perf_counter() - started
        return result

    # Solves report an exception raised inside a compiled model through the unraisable
    # hook; set it once here so that concurrent solves do not swap it under each other.
    previous_hook = sys.unraisablehook
    sys.unraisablehook = record_model_exception
    bar = _progress_bar(progress, total=n_starts, description=f"fit ({method}, starts)")
    try:
        own_pool = executor is None
        pool = ThreadPoolExecutor(max_workers=min(n_starts, os.cpu_count() or 1)) \
            if own_pool else executor
        try:
            futures = [
                pool.submit(_run_local, objective.copy(), z, lower_z, upper_z, method, loss,
                            seed, options, callback, False, shooting_setup)
                for z in points
            ]
            starts = []
            for future in futures:
                starts.append(future.result())
                if bar is not None:
                    bar.update(1)
        finally:
            if own_pool:
                pool.shutdown()
    finally:
        sys.unraisablehook = previous_hook
        if bar is not None:
            bar.close()
    ranked = sorted(starts, key=lambda r: (not r.success, r.cost))
    best = FitResult(ranked[0])
    best.attach(ranked[0]._objective, ranked[0]._bounds)
    best.starts = ranked
    best.nfev = sum(r.nfev for r in starts)
    best.njev = sum(r.njev for r in starts)
    best.failures = sum(r.failures for r in starts)
    best.message = f"best of {n_starts} starts: {best.message}"
    best.wall_time = time.perf_counter() - started
    return best
