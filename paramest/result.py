"""The result of :func:`paramest.fit`: estimates, uncertainties and a report."""

import math

import numpy as np
from scipy import special
from scipy.optimize import OptimizeResult

from paramest.solve import solve

__all__ = ["FitResult"]


class FitResult(OptimizeResult):
    """The result of :func:`paramest.fit`, a :class:`scipy.optimize.OptimizeResult`.

    Attributes
    ----------
    x : ndarray
        The estimates in natural units, named by ``labels``.
    labels : list of str
        Parameter names, ``"y0[state]"`` for initial states, with ``"[experiment]"``
        appended for per-experiment (``local``) entries.
    p, y0 : ndarray
        The full parameter vector and initial state at the estimate: 1-D when every
        experiment uses the same values, else shape ``(n_experiments, n)``.
    cost : float
        ``0.5 * sum(residuals**2)``, residuals ``(model - data) / sigma`` (scipy's cost
        without a robust loss). ``robust_cost`` is the optimised cost with ``loss=``.
    nllh : float or None
        The Gaussian negative log-likelihood, normalisation included; None when the data
        gave no ``sigma``.
    residuals : ndarray
    jac : ndarray
        ``d residuals / d x`` at the estimate, in natural units.
    cov : ndarray
        Covariance of the estimate, ``(J^T J)^-1``; scaled by the residual variance
        ``chi2 / dof`` when the data gave no ``sigma``. Infinite when the Jacobian is
        rank-deficient (some combination of the estimates is not determined by the data;
        ``identifiable`` is then False).
    stderr : ndarray
        Standard errors, ``sqrt(diag(cov))``.
    corr : ndarray
        Correlation matrix of the estimates.
    ci : ndarray, shape (n_free, 2)
        95 % Wald confidence intervals, ``x -/+ q stderr`` (``q`` the normal quantile with
        known sigma, Student's t with ``dof`` degrees of freedom otherwise).
    chi2, dof : float, int
        ``sum(residuals**2)`` and ``n_residuals - n_free``.
    aic, bic : float
        Akaike and Bayesian information criteria, from ``nllh`` (or, without sigma, from the
        likelihood with the residual variance estimated, as lmfit reports them).
    nfev, njev, nit : int
        Evaluations of the residuals (each one solve per experiment), how many of them also
        gave the Jacobian or gradient (solves with sensitivities), optimiser iterations.
        Both counts include the evaluation at the start and at the final estimate.
    success : bool
        True only when the optimiser converged and the final solve succeeded with finite
        residuals.
    status : int
        The optimiser's status; -10 when the final solve failed, -11 when stopped by the
        callback.
    message : str
    failures : int
        Trial points where a solve failed (the optimiser was told they were infinitely
        bad).
    wall_time : float
        Seconds.
    history : list of float
        The cost at every successful evaluation, in order.
    starts : list of FitResult
        With ``n_starts > 1``: every start's result, best first.
    method : str
    sensitivity : SensitivityMethod, tuple or None
        What gave the optimiser its derivatives, ``sensitivity="auto"`` resolved: the
        Jacobian's method for least-squares methods (``Forward(error_control=False)`` by
        default), the gradient's for minimize methods and ``"adam"`` (for example
        ``DiscreteAdjoint(checkpoints=None)``). A tuple, most used first, when evaluations
        used more than one (``"auto"`` choosing differently for different experiments,
        falling back to ``Forward`` where ``solver="auto"`` turned stiff, or a global
        method's local searches and its ``"trf"`` polish); None for derivative-free
        methods. ``jac``, ``cov`` and the other statistics come from the exact Jacobian
        (forward sensitivities, or the discrete adjoint row by row where the estimated
        entries outnumber the residuals four to one).
    """

    def attach(self, objective, bounds):
        """Keep the objective and the natural-unit bounds the result came from (outside the
        result's entries, for predict(), summary() and plot())."""
        object.__setattr__(self, "_objective", objective)
        object.__setattr__(self, "_bounds", bounds)

    def __repr__(self):
        keys = ("success", "message", "x", "labels", "cost", "stderr", "nfev", "njev")
        shown = [f"{key}={self.get(key)!r}" for key in keys if key in self]
        if self.get("starts"):
            shown.append(f"starts=[{len(self['starts'])} results]")
        return "FitResult(" + ", ".join(shown) + ")"

    def __reduce__(self):
        # an OptimizeResult is a dict; keep the objective (rebuilt on unpickling) and the
        # bounds, which predict(), summary() and plot() use
        return (_rebuild_result, (dict(self), self._objective, self._bounds))

    def predict(self, t, experiment=0):
        """The observables at times ``t`` with the estimated values, for one experiment (by
        index or name): shape ``(n_observables, len(t))``.

        Examples
        --------
        >>> result.predict(np.linspace(0.0, 10.0, 5)).shape  # doctest: +SKIP
        (2, 5)
        """
        objective = self._objective
        index = _experiment_index(objective, experiment)
        p, y0 = objective.conditions(self.x)[index]
        times = np.asarray(t, dtype=np.float64).reshape(-1)
        problem = objective.problem
        t0, t1 = problem.t_span
        if times.size == 0:
            raise ValueError("`t` must contain at least one time")
        lo, hi = min(t0, t1), max(t0, t1)
        if not np.all(np.isfinite(times)) or times.min() < lo or times.max() > hi:
            raise ValueError(f"`t` must be finite and lie inside t_span = {problem.t_span}")
        unique, inverse = np.unique(times, return_inverse=True)
        if t1 < t0:
            unique = unique[::-1].copy()
            inverse = unique.size - 1 - inverse
        sol = solve(problem, objective.solver, np.ascontiguousarray(unique), p=p, y0=y0,
                    rtol=objective.rtol, atol=objective.atol, max_steps=objective.max_steps)
        if not sol.success:
            raise RuntimeError(f"predict: the solve failed: {sol.message}")
        if objective.observation is None:
            values = sol.y
            rows = objective.experiments[index].state_rows
            values = values[rows]
        else:
            from paramest.kernels.observation import observe_outputs

            outputs = np.empty((unique.size, objective.n_observables))
            observe_outputs(objective.observation.address, np.ascontiguousarray(unique),
                            np.ascontiguousarray(sol.y.T), p, outputs)
            values = outputs.T
        result = values[:, inverse]
        return result

    def summary(self):
        """A readable report: the fit's statistics, then one line per estimate (value,
        standard error, relative error, 95 % interval, bounds hit), then correlations
        above 0.9 in magnitude."""
        lines = [
            f"paramest fit ({self.method}): {'success' if self.success else 'FAILED'}",
            f"  {self.message}",
            f"  cost {self.cost:.6g}   chi2 {self.chi2:.6g}   dof {self.dof}   "
            f"reduced chi2 {self.chi2 / self.dof if self.dof > 0 else float('nan'):.4g}",
        ]
        if self.nllh is not None:
            lines.append(f"  nllh {self.nllh:.6g}   aic {self.aic:.6g}   bic {self.bic:.6g}")
        else:
            lines.append(f"  aic {self.aic:.6g}   bic {self.bic:.6g}   (no sigma given: "
                         "uncertainties use the residual variance)")
        lines.append(
            f"  nfev {self.nfev}   njev {self.njev}   nit {self.nit}   "
            f"time {self.wall_time:.3g} s" + (f"   failed solves {self.failures}"
                                              if self.failures else "")
        )
        if not self.identifiable:
            lines.append("  WARNING: the Jacobian is rank-deficient: the data do not "
                         "determine every estimate (stderr is inf)")
        width = max(12, max((len(label) for label in self.labels), default=0))
        lines.append("")
        lines.append(f"  {'name':<{width}} {'value':>12} {'stderr':>11} {'rel.err':>8} "
                     f"{'95% interval':>27}  note")
        for i, label in enumerate(self.labels):
            value, err = self.x[i], self.stderr[i]
            rel = abs(err / value) if value != 0 else math.inf
            lo, hi = self.ci[i]
            note = self._bound_note(i)
            lines.append(
                f"  {label:<{width}} {value:>12.6g} {err:>11.4g} {rel:>7.2%} "
                f"[{lo:>11.5g}, {hi:>11.5g}]  {note}"
            )
        pairs = []
        n = len(self.labels)
        for i in range(n):
            for j in range(i + 1, n):
                if np.isfinite(self.corr[i, j]) and abs(self.corr[i, j]) > 0.9:
                    pairs.append((abs(self.corr[i, j]), i, j))
        if pairs:
            lines.append("")
            lines.append("  correlations above 0.9:")
            for _, i, j in sorted(pairs, reverse=True):
                lines.append(f"    {self.labels[i]} ~ {self.labels[j]}: {self.corr[i, j]:+.4f}")
        return "\n".join(lines)

    def _bound_note(self, i):
        lower, upper = self._bounds
        x = self.x[i]
        span = max(abs(x), 1e-300)
        if np.isfinite(lower[i]) and abs(x - lower[i]) <= 1e-6 * span:
            return "at lower bound"
        if np.isfinite(upper[i]) and abs(x - upper[i]) <= 1e-6 * span:
            return "at upper bound"
        return ""

    def plot(self, ax=None, n_points=200):
        """Data (with error bars when sigma was given) and the fitted observables, one panel
        per experiment. Needs matplotlib (``pip install paramest[plot]``); returns the
        figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "FitResult.plot() needs matplotlib: pip install matplotlib"
            ) from None
        objective = self._objective
        experiments = objective.experiments
        if ax is None:
            fig, axes = plt.subplots(1, len(experiments), figsize=(5 * len(experiments), 3.6),
                                     squeeze=False)
            axes = axes[0]
        else:
            axes = np.atleast_1d(ax)
            fig = axes[0].figure
        t0, t1 = objective.problem.t_span
        grid = np.linspace(t0, t1, n_points)
        names = _observable_names(objective)
        for k, (axis, e) in enumerate(zip(axes, experiments, strict=False)):
            curves = self.predict(grid, experiment=k)
            for row in range(curves.shape[0]):
                line, = axis.plot(grid, curves[row], label=names[row])
                measured = e.data.measured[row]
                if not measured.any():
                    continue
                kwargs = dict(fmt="o", ms=3, color=line.get_color(), alpha=0.8)
                if e.data.sigma_known:
                    axis.errorbar(e.data.t[measured], e.data.y[row, measured],
                                  yerr=e.data.sigma[row, measured], **kwargs)
                else:
                    axis.plot(e.data.t[measured], e.data.y[row, measured], "o", ms=3,
                              color=line.get_color(), alpha=0.8)
            axis.set_title(f"experiment {e.name}")
            axis.set_xlabel("t")
            axis.legend(fontsize="small")
        fig.tight_layout()
        return fig


def _observable_names(objective):
    first = objective.experiments[0].data
    if first.observables is not None:
        return list(first.observables)
    problem = objective.problem
    if objective.observation is None and problem.state_names is not None:
        return [problem.state_names[i] for i in objective.experiments[0].state_rows]
    return [f"observable {i}" for i in range(objective.n_observables)]


def _experiment_index(objective, experiment):
    if isinstance(experiment, str):
        names = [e.name for e in objective.experiments]
        if experiment not in names:
            raise ValueError(f"`experiment`: unknown name {experiment!r}; names are {names}")
        return names.index(experiment)
    index = int(experiment)
    if not -len(objective.experiments) <= index < len(objective.experiments):
        raise ValueError(
            f"`experiment` must be an index below {len(objective.experiments)}, got {experiment}"
        )
    return index % len(objective.experiments)


def statistics(objective, x, residuals, jac):
    """Uncertainties and information criteria at an estimate (see :class:`FitResult`)."""
    n_res, n_free = jac.shape
    chi2 = float(residuals @ residuals)
    dof = n_res - n_free
    # The covariance from the SVD of J: (J^T J)^-1 = V diag(1/s^2) V^T, with
    # rank deficiency judged as numpy's matrix_rank does.
    identifiable = True
    if n_free == 0:
        cov = np.zeros((0, 0))
    else:
        _, singular, vt = np.linalg.svd(jac, full_matrices=False)
        threshold = singular.max(initial=0.0) * max(jac.shape) * np.finfo(float).eps
        if singular.size < n_free or singular.min() <= threshold:
            identifiable = False
            cov = np.full((n_free, n_free), np.inf)
        else:
            cov = (vt.T / singular**2) @ vt
            if not objective.sigma_known:
                cov = cov * (chi2 / dof if dof > 0 else np.inf)
    stderr = np.sqrt(np.diag(cov)) if n_free else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(stderr, stderr) if identifiable else np.full_like(cov, np.nan)
    if objective.sigma_known:
        quantile = special.ndtri(0.975)
    else:
        quantile = special.stdtrit(dof, 0.975) if dof > 0 else np.inf
    ci = np.column_stack([x - quantile * stderr, x + quantile * stderr])
    if objective.sigma_known:
        nllh = 0.5 * chi2 + objective.log_sigma_sum + 0.5 * n_res * math.log(2.0 * math.pi)
        aic = 2.0 * nllh + 2.0 * n_free
        bic = 2.0 * nllh + n_free * math.log(n_res)
    else:
        nllh = None
        variance_term = n_res * math.log(chi2 / n_res) if chi2 > 0 else -np.inf
        aic = variance_term + 2.0 * n_free
        bic = variance_term + n_free * math.log(n_res)
    return dict(
        chi2=chi2, dof=dof, cov=cov, stderr=stderr, corr=corr, ci=ci, nllh=nllh, aic=aic,
        bic=bic, identifiable=identifiable,
    )


def _rebuild_result(entries, objective, bounds):
    result = FitResult(entries)
    result.attach(objective, bounds)
    return result
