"""The least-squares objective of a fit: residuals, their exact Jacobian and gradient.

:class:`Objective` turns a problem, one or more experiments (:class:`paramest.Data`) and a
choice of estimated entries into the weighted residuals ``r = (h(t, y, p) - data) / sigma``,
their Jacobian with respect to the estimated vector ``x`` and the gradient ``J^T r`` of the
loss ``0.5 sum(r^2)``. Each experiment costs one compiled solve: with forward sensitivities
when the Jacobian is wanted, and for the gradient either those or an adjoint's solve and
reverse pass (the cotangent ``r / sigma`` on the outputs at the data), whichever
``sensitivity`` says or ``"auto"`` finds cheaper; the observables and their derivatives
come from one more compiled call when there is an ``observe`` function.
:func:`paramest.fit` is built on it; it is public so that the same residuals and
derivatives can be used inside any NumPy or scipy pipeline.
"""

import math
import numbers
import operator
from collections.abc import Mapping

import numpy as np

from paramest import sensitivity as sens_methods
from paramest.data import Data
from paramest.errors import ModelError, SolveError
from paramest.fingerprint import first_change
from paramest.kernels.observation import (
    observe_outputs,
    observe_sensitivities,
    observe_sensitivities_central,
)
from paramest.model import compile_observation
from paramest.problems import ODEProblem
from paramest.solve import METHODS, PreparedSolve, _method_entry, solve

__all__ = ["Objective"]

_SCALES = {"lin": 0, "log": 1, "log10": 2}
_LN10 = math.log(10.0)


class _Experiment:
    """One experiment's fixed bookkeeping: where its measured values are, which entries of
    ``x`` it reads and where its residuals go."""

    __slots__ = (
        "data", "name", "p", "y0", "times", "rows", "time_pos", "values", "inv_sigma",
        "param_idx", "param_pos", "y0_idx", "y0_pos", "sens_params", "sens_y0", "column_x",
        "offset", "stop", "state_rows", "param_columns", "prepared", "flat_plain",
        "flat_sens_state", "flat_sens", "inv_sigma_column", "all_columns", "columns",
        "gradient_sensitivity", "weight_index", "observe_directions", "observe_columns",
    )


def _experiment_list(data):
    if isinstance(data, Data):
        return [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, Data) for d in data):
        return list(data)
    raise TypeError(
        "`data` must be a paramest.Data or a non-empty list of them (one per experiment), "
        f"got {type(data).__name__}"
    )


def _condition(value, base, names, arg, what, experiment):
    """An experiment's own ``y0`` or ``p`` over the problem's values."""
    vector = base.copy()
    if value is None:
        return vector
    if isinstance(value, Mapping):
        for key, entry in value.items():
            if isinstance(key, str):
                if names is None or key not in names:
                    raise ValueError(
                        f"`data` ({experiment}): `{arg}` names {what} {key!r}, which is not "
                        f"one of the problem's {what} names {list(names or [])}"
                    )
                index = list(names).index(key)
            else:
                try:
                    index = operator.index(key)
                except TypeError:
                    raise ValueError(
                        f"`data` ({experiment}): `{arg}` keys must be {what} names or indices, "
                        f"got {key!r}"
                    ) from None
                if not 0 <= index < base.size:
                    raise ValueError(
                        f"`data` ({experiment}): `{arg}` index {index} is out of range for "
                        f"{base.size} {what}s"
                    )
            if not isinstance(entry, numbers.Real) or not math.isfinite(entry):
                raise ValueError(
                    f"`data` ({experiment}): `{arg}[{key!r}]` must be a finite number, "
                    f"got {entry!r}"
                )
            vector[index] = float(entry)
        return vector
    array = np.asarray(value, dtype=np.float64)
    if array.shape != base.shape:
        raise ValueError(
            f"`data` ({experiment}): `{arg}` must have {base.size} entries (a full vector) "
            f"or be a dict by name, got shape {array.shape}"
        )
    return array.copy()


def _local_entries(local, problem, free_params, free_states):
    """``local`` as (parameter indices, state indices), each of them free."""
    if local is None:
        return [], []
    items = [local] if isinstance(local, (str, numbers.Integral)) else list(local)
    params, states = [], []
    param_names = list(problem.param_names or [])
    state_names = list(problem.state_names or [])
    for item in items:
        if isinstance(item, bool):
            raise TypeError("`local` entries must be parameter names or indices, got a bool")
        if isinstance(item, str):
            label = item[3:-1] if item.startswith("y0[") and item.endswith("]") else None
            in_params = item in param_names and label is None
            state = label if label is not None else item
            in_states = state in state_names or (
                label is not None and label.isdigit() and int(label) < problem.n_states
            )
            if in_params and in_states:
                raise ValueError(
                    f"`local`: {item!r} is both a parameter and a state name; write "
                    f"'y0[{item}]' for the initial state"
                )
            if in_params:
                index = param_names.index(item)
                if index not in free_params:
                    raise ValueError(
                        f"`local` names parameter {item!r}, which is not estimated: add it "
                        "to `free`"
                    )
                params.append(index)
            elif in_states:
                index = state_names.index(state) if state in state_names else int(state)
                if index not in free_states:
                    raise ValueError(
                        f"`local` names initial state {item!r}, which is not estimated: add "
                        "it to `free_y0`"
                    )
                states.append(index)
            else:
                raise ValueError(
                    f"`local`: unknown name {item!r}; it must be an estimated parameter "
                    f"({[param_names[i] for i in free_params] if param_names else 'by index'})"
                    " or an estimated initial state"
                )
            continue
        try:
            index = operator.index(item)
        except TypeError:
            raise TypeError(
                f"`local` entries must be names or parameter indices, got {type(item).__name__}"
            ) from None
        if index not in free_params:
            raise ValueError(
                f"`local`: parameter index {index} is not estimated (the free parameters are "
                f"{free_params})"
            )
        params.append(index)
    if len(set(params)) != len(params) or len(set(states)) != len(states):
        raise ValueError(f"`local` names an entry twice: {items}")
    return params, states


def _scales(scale, n_free, labels):
    if isinstance(scale, str):
        scale = [scale] * n_free
    try:
        entries = list(scale)
    except TypeError:
        raise TypeError(
            f"`scale` must be 'lin', 'log', 'log10' or one of them per estimated entry, got "
            f"{scale!r}"
        ) from None
    if len(entries) != n_free:
        raise ValueError(
            f"`scale` must be one string or {n_free} of them (one per estimated entry: "
            f"{labels}), got {len(entries)}"
        )
    codes = []
    for label, entry in zip(labels, entries, strict=True):
        if entry not in _SCALES:
            raise ValueError(
                f"`scale` for {label!r} must be 'lin', 'log' or 'log10', got {entry!r}"
            )
        codes.append(_SCALES[entry])
    return np.array(codes, dtype=np.int64)


def _is_auto(sensitivity):
    return sensitivity is None or (isinstance(sensitivity, str) and sensitivity == "auto")


def _jacobian_sensitivity(sensitivity):
    """The method that gives the Jacobian of the residuals for ``sensitivity`` as passed."""
    if _is_auto(sensitivity) or isinstance(sensitivity, sens_methods.ADJOINTS):
        # The Jacobian of a least-squares fit needs the sensitivities at the data to the
        # accuracy of the states, which the states' own step control already gives; error
        # control on the sensitivity columns as well costs about 1.5x more steps for no
        # gain in the fit (see the W1-5 note). An adjoint gives gradients, not Jacobians.
        return sens_methods.Forward(error_control=False)
    if isinstance(sensitivity, sens_methods.SensitivityMethod):
        return sensitivity
    raise TypeError(
        "`sensitivity` must be 'auto' or a paramest sensitivity method (Forward(), "
        f"DiscreteAdjoint(), ComplexStep(), FiniteDifferences()), got {sensitivity!r}"
    )


def _check_adjoint(sensitivity, entry):
    """Refuse an adjoint the solver cannot run with, before any solve."""
    if entry.kind == "rosenbrock" and not sensitivity.stiff:
        raise ValueError(
            f"`sensitivity={sensitivity!r}` supports the explicit methods, not "
            f"solver={entry.name!r}; use sensitivity='auto' or paramest.Forward() for a "
            "stiff solver"
        )


class Objective:
    """Weighted residuals of a model against data, with their exact Jacobian.

    The estimated vector ``x`` (natural units) holds the free parameters, then the free
    initial states, shared by all experiments; then, experiment by experiment, the entries
    named in ``local`` (one value per experiment). ``labels`` names its entries.

    Parameters
    ----------
    problem : ODEProblem
    data : Data or list of Data
        One experiment, or several (each with its own times, observables' values, sigma,
        and optionally its own initial state and parameter values).
    free : int, str or sequence, optional
        The estimated parameters (indices or ``param_names``); default all.
    free_y0 : int, str, sequence or True, optional
        The estimated initial states (indices or ``state_names``; ``True`` for all);
        default none.
    local : str, int or sequence, optional
        Estimated entries that take one value per experiment instead of one shared value:
        parameter names or indices, state names (or ``"y0[name]"``) for initial states.
    scale : str or sequence of str, default "lin"
        ``"lin"``, ``"log"`` or ``"log10"`` for all entries or one per entry: the space an
        optimiser works in (see :meth:`to_internal`). The methods here take and return
        natural units.
    observe : callable, optional
        ``observe(t, y, p, out)`` writing the observables (one per row of the data) into
        ``out``; compiled like the model, differentiated by the complex step. Default: the
        states, in order (or matched by name when the data name their rows after states).
    sensitivity : "auto" or SensitivityMethod, default "auto"
        How derivatives are computed. The Jacobian (:meth:`jacobian`) comes from
        sensitivities of the residuals: ``Forward(error_control=False)`` under ``"auto"``
        or an adjoint, else the method given (``Forward()``, ``ComplexStep()``,
        ``FiniteDifferences()``); where an experiment's gradient uses
        :class:`paramest.DiscreteAdjoint` and it has at least 4 times more columns than
        residuals (a network's weights), its rows come from the adjoint's reverse pass, one
        per residual. The gradient (:meth:`gradient`, :meth:`value_and_grad`)
        is ``J^T r`` from that Jacobian, or, with an adjoint such as
        :class:`paramest.DiscreteAdjoint`, one solve and one reverse pass per experiment
        whatever the number of columns. ``"auto"`` chooses per experiment, as
        :func:`paramest.vjp` does: the adjoint for explicit solvers once the experiment has
        many gradient columns (k >= 6 and k >= n_states / 2, or k >= 3 when the problem
        has its own ``vjp``), the Jacobian's forward sensitivities otherwise; where
        ``solver="auto"`` turns stiff in an evaluation, forward sensitivities there. An
        adjoint given explicitly with a Rosenbrock solver is refused.
    solver : str, default "auto"
        The solve method (see :data:`paramest.METHODS`).
    rtol, atol : float, default 1e-8, 1e-10
        Solver tolerances. Tight by default: the optimum of a fit moves with the solver's
        error, so loose solves give noisy costs and a Jacobian that disagrees with them.
    max_steps : int, default 100000
        Per solve.

    Attributes
    ----------
    labels : list of str
    x0 : ndarray
        The default starting point: the problem's values (an experiment's own values for
        its local entries).
    n_free, n_residuals : int
    nfev, njev : int
        Evaluations of the residuals so far, and how many of them also gave the Jacobian
        (a solve with sensitivities).
    failures : int
        Evaluations whose solve failed.
    sensitivity : "auto" or SensitivityMethod
        As passed.
    jacobian_sensitivity : SensitivityMethod
        The method that gives :meth:`jacobian`.
    gradient_sensitivity : list of SensitivityMethod
        The method each experiment's gradient uses, ``"auto"`` resolved (the
        ``jacobian_sensitivity`` object where the gradient is ``J^T r``).
    last_gradient_sensitivity : SensitivityMethod, tuple or None
        What the latest :meth:`gradient` or :meth:`value_and_grad` used: one method, or a
        tuple (most used first) when experiments differed.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [2.0], (0.0, 4.0), [0.5], param_names=["k"])
    >>> t = np.linspace(0.5, 4.0, 8)
    >>> data = pe.Data(t, 2.0 * np.exp(-0.7 * t), sigma=0.01)
    >>> objective = pe.Objective(problem, data)
    >>> objective.labels, objective.n_residuals
    (['k'], 8)
    >>> float(np.round(objective.loss([0.7]), 12))
    0.0
    >>> objective.jacobian([0.7]).shape
    (8, 1)
    >>> objective.gradient_sensitivity   # one column: forward sensitivities are cheaper
    [Forward(error_control=False)]
    """

    def __init__(self, problem, data, *, free=None, free_y0=None, local=None, scale="lin",
                 observe=None, sensitivity="auto", solver="auto", rtol=1e-8, atol=1e-10,
                 max_steps=100_000):
        if not isinstance(problem, ODEProblem):
            raise TypeError(f"`problem` must be an ODEProblem, got {type(problem).__name__}")
        self.problem = problem
        experiments = _experiment_list(data)
        self._arguments = (
            (problem, experiments),
            dict(free=free, free_y0=free_y0, local=local, scale=scale, observe=observe,
                 sensitivity=sensitivity, solver=solver, rtol=rtol, atol=atol,
                 max_steps=max_steps),
        )
        try:
            entry = _method_entry(solver)
        except ValueError:
            raise ValueError(
                f"`solver` must be 'auto' or one of {list(METHODS)}, got {solver!r}"
            ) from None
        self.solver = solver
        self._automatic = _is_auto(sensitivity)
        self.sensitivity = "auto" if self._automatic else sensitivity
        self.jacobian_sensitivity = _jacobian_sensitivity(sensitivity)
        sens_methods.check_method(self.jacobian_sensitivity, entry.kind, entry.name)
        adjoint = sensitivity if isinstance(sensitivity, sens_methods.ADJOINTS) else None
        if adjoint is not None:
            _check_adjoint(adjoint, entry)
        self.rtol, self.atol, self.max_steps = rtol, atol, max_steps
        n, n_p = problem.n_states, problem.n_params
        t0, t1 = problem.t_span

        free_params = sens_methods._indices(
            free, problem.param_names, n_p, "free", "parameter", "param_names",
            default_all=True,
        )
        if free_y0 is True:
            free_states = list(range(n))
        elif free_y0 is False:
            free_states = []
        else:
            free_states = sens_methods._indices(
                free_y0, problem.state_names, n, "free_y0", "state", "state_names",
                default_all=False,
            )
        local_params, local_states = _local_entries(local, problem, free_params, free_states)

        def param_label(i):
            return problem.param_names[i] if problem.param_names else f"p[{i}]"

        def state_label(i):
            return f"y0[{problem.state_names[i] if problem.state_names else i}]"

        shared_params = [i for i in free_params if i not in local_params]
        shared_states = [i for i in free_states if i not in local_states]
        labels = [param_label(i) for i in shared_params] + [
            state_label(i) for i in shared_states
        ]
        x0 = [problem.p[i] for i in shared_params] + [problem.y0[i] for i in shared_states]

        # observables
        m = experiments[0].n_observables
        for k, experiment in enumerate(experiments):
            if experiment.n_observables != m and observe is not None:
                raise ValueError(
                    f"`data`: every experiment must have the same observables (rows of y) as "
                    f"`observe` writes; experiment {k} has {experiment.n_observables}, "
                    f"experiment 0 has {m}"
                )
        if observe is not None:
            self.observation = compile_observation(observe, m, problem.y0, problem.p, t0)
        else:
            self.observation = None
        self.n_observables = m

        self.experiments = []
        self._auto_choices = {}
        offset = 0
        for k, experiment in enumerate(experiments):
            name = experiment.name if experiment.name else str(k)
            where = f"experiment {name!r}" if experiment.name else f"experiment {k}"
            e = _Experiment()
            e.data = experiment
            e.name = name
            e.p = _condition(experiment.p, problem.p, problem.param_names, "p", "parameter",
                             where)
            e.y0 = _condition(experiment.y0, problem.y0, problem.state_names, "y0", "state",
                              where)
            lo, hi = min(t0, t1), max(t0, t1)
            if experiment.times[0] < lo or experiment.times[-1] > hi:
                raise ValueError(
                    f"`data` ({where}): measurement times must lie inside the problem's "
                    f"t_span = {problem.t_span}; got times in [{experiment.times[0]:g}, "
                    f"{experiment.times[-1]:g}]"
                )
            e.state_rows = self._state_rows(experiment, where)
            rows, cols = np.nonzero(experiment.measured)
            time_pos = experiment.time_index[cols]
            times = np.ascontiguousarray(experiment.times, dtype=np.float64)
            if t1 < t0:  # a backward problem: solve at decreasing times
                times = np.ascontiguousarray(times[::-1])
                time_pos = times.size - 1 - time_pos
            e.times = times
            e.rows = rows
            e.time_pos = time_pos
            e.values = experiment.y[rows, cols].copy()
            e.inv_sigma = 1.0 / experiment.sigma[rows, cols]
            # columns: shared entries, then this experiment's local ones
            own_params = [i for i in free_params if i in local_params]
            own_states = [i for i in free_states if i in local_states]
            start = len(labels)
            labels += [f"{param_label(i)}[{name}]" for i in own_params]
            labels += [f"{state_label(i)}[{name}]" for i in own_states]
            x0 += [e.p[i] for i in own_params] + [e.y0[i] for i in own_states]
            e.param_idx = np.array(shared_params + own_params, dtype=np.int64)
            e.param_pos = np.array(
                list(range(len(shared_params)))
                + list(range(start, start + len(own_params))), dtype=np.int64,
            )
            e.y0_idx = np.array(shared_states + own_states, dtype=np.int64)
            e.y0_pos = np.array(
                list(range(len(shared_params), len(shared_params) + len(shared_states)))
                + list(range(start + len(own_params), start + len(own_params)
                             + len(own_states))), dtype=np.int64,
            )
            # Sensitivity columns in solve's order (parameters, then initial states)
            e.sens_params = tuple(int(i) for i in e.param_idx)
            e.sens_y0 = tuple(int(i) for i in e.y0_idx)
            e.column_x = np.concatenate([e.param_pos, e.y0_pos]).astype(np.int64)
            e.param_columns = np.concatenate(
                [e.param_idx, np.full(e.y0_idx.size, -1, dtype=np.int64)]
            )
            e.prepared = [None, None]  # plain and with sensitivities, made on first use
            # Where each residual's model value sits in a solve's output rows (state, then
            # each sensitivity column), as flat indices: one take() per evaluation.
            e.flat_plain = e.flat_sens_state = e.flat_sens = None
            if e.state_rows is not None:
                states = e.state_rows[rows]
                k = e.column_x.size
                width = n * (1 + k)
                e.flat_plain = time_pos * n + states
                e.flat_sens_state = time_pos * width + states
                e.flat_sens = (time_pos * width + states)[:, None] + n * (
                    1 + np.arange(k)
                )[None, :]
            e.inv_sigma_column = e.inv_sigma[:, None].copy()
            self._gradient_setup(e, adjoint, entry.kind)
            e.offset = offset
            offset += rows.size
            e.stop = offset
            self.experiments.append(e)
        if len(labels) != len(set(labels)):
            raise ValueError(
                f"`data`: experiments need distinct names for their local entries: {labels}"
            )
        self.labels = labels
        self.n_free = len(labels)
        for e in self.experiments:
            e.all_columns = np.array_equal(e.column_x, np.arange(self.n_free))
        self.n_residuals = offset
        self.x0 = np.array(x0, dtype=np.float64)
        self.scale = _scales(scale, self.n_free, labels)
        self._log = np.flatnonzero(self.scale == 1)
        self._log10 = np.flatnonzero(self.scale == 2)
        self.sigma_known = all(e.data.sigma_known for e in self.experiments)
        self.log_sigma_sum = float(sum(np.sum(-np.log(e.inv_sigma)) for e in self.experiments))
        self.nfev = 0
        self.njev = 0
        self.failures = 0
        self.last_failure = None
        self.last_gradient_sensitivity = None
        self._sensitivity_use = {}
        self._cache_x = None
        self._cache_r = None
        self._cache_jac = None
        self._cache_grad = None
        self._cache_grad_sensitivity = None

    @property
    def gradient_sensitivity(self):
        """The method each experiment's gradient uses (``"auto"`` resolved): a list, one per
        experiment. ``"auto"`` may still fall back to :class:`paramest.Forward` in an
        evaluation where ``solver="auto"`` turns stiff; ``last_gradient_sensitivity`` says
        what the latest gradient used."""
        return [e.gradient_sensitivity for e in self.experiments]

    # -- set-up helpers -------------------------------------------------------------------
    def _state_rows(self, experiment, where):
        """For each row of the data, the state it measures (no ``observe``)."""
        problem = self.problem
        n = problem.n_states
        if self.observation is not None:
            return None
        names = experiment.observables
        if names is not None and problem.state_names is not None and set(names) <= set(
            problem.state_names
        ):
            return np.array([problem.state_names.index(x) for x in names], dtype=np.int64)
        if experiment.n_observables != n:
            raise ValueError(
                f"`data` ({where}) has {experiment.n_observables} observables (rows of y) but "
                f"the model has {n} states; without `observe=` the rows must be the states "
                "in order (NaN rows for unmeasured states), or be named after "
                "`state_names`, or pass `observe=` to compute the observables"
            )
        return np.arange(n, dtype=np.int64)

    def _gradient_setup(self, e, adjoint, entry_kind):
        """Choose how experiment ``e``'s gradient is computed, and lay out what an adjoint
        needs: where each residual's weight goes in the cotangent, and the unit directions
        that give the observation's derivatives."""
        k = e.column_x.size
        choice = self.jacobian_sensitivity
        if k == 0:
            pass  # nothing to differentiate
        elif adjoint is not None:
            choice = adjoint
        elif self._automatic:
            picked = sens_methods._auto_sensitivity(self.problem, k, entry_kind, fit=True)
            # where auto prefers forward sensitivities, the gradient stays J^T r from the
            # Jacobian's own solve, as before there was a choice
            if isinstance(picked, sens_methods.ADJOINTS):
                # one object for the experiments that pick the same, so that results
                # name it once
                choice = self._auto_choices.setdefault(repr(picked), picked)
        e.gradient_sensitivity = choice
        e.columns = e.weight_index = e.observe_directions = e.observe_columns = None
        if not isinstance(choice, sens_methods.ADJOINTS):
            return
        e.columns = sens_methods.Columns(self.problem, e.sens_params, e.sens_y0)
        n, n_times = self.problem.n_states, e.times.size
        if self.observation is None:
            # the residual's weight r / sigma lands on (state, time) of the model output
            e.weight_index = e.state_rows[e.rows] * n_times + e.time_pos
            return
        # ... or on (time, observable); then dh/dy and dh/dp turn it into weights on the
        # states and a direct parameter term: one derivative per state and per parameter
        # column, the compiled observation helpers' directions being unit vectors
        m = self.n_observables
        e.weight_index = e.time_pos * m + e.rows
        n_direct = e.param_idx.size
        directions = np.zeros((n_times, n + n_direct, n))
        directions[:, np.arange(n), np.arange(n)] = 1.0
        e.observe_directions = directions
        e.observe_columns = np.concatenate(
            [np.full(n, -1, dtype=np.int64), e.param_idx]
        ).astype(np.int64)

    # -- scales ----------------------------------------------------------------------------
    def to_internal(self, x):
        """``x`` (natural units) in the optimiser's space (log or log10 where ``scale``
        says)."""
        z = np.array(x, dtype=np.float64)
        if self._log.size:
            z[self._log] = np.log(z[self._log])
        if self._log10.size:
            z[self._log10] = np.log10(z[self._log10])
        return z

    def bounds_to_internal(self, bound):
        """A bound vector (natural units) in the optimiser's space; an infinite bound stays
        infinite (``-inf`` on a log scale means no lower bound)."""
        bound = np.array(bound, dtype=np.float64)
        finite = np.isfinite(bound)
        out = np.where(finite, 0.0, bound)
        out[finite] = self.to_internal(np.where(finite, bound, 1.0))[finite]
        return out

    def from_internal(self, z):
        """The inverse of :meth:`to_internal`."""
        x = np.array(z, dtype=np.float64)
        # far-out trial points overflow to inf, which evaluate() reports as a failure
        with np.errstate(over="ignore"):
            if self._log.size:
                x[self._log] = np.exp(x[self._log])
            if self._log10.size:
                x[self._log10] = 10.0 ** x[self._log10]
        return x

    def internal_derivative(self, x):
        """``dx/dz`` for each entry at natural ``x``."""
        factor = np.ones(self.n_free)
        if self._log.size:
            factor[self._log] = x[self._log]
        if self._log10.size:
            factor[self._log10] = x[self._log10] * _LN10
        return factor

    # -- conditions ------------------------------------------------------------------------
    def conditions(self, x):
        """The full parameter vector and initial state of each experiment at ``x``: a list of
        ``(p, y0)``."""
        x = self._vector(x)
        out = []
        for e in self.experiments:
            p = e.p.copy()
            p[e.param_idx] = x[e.param_pos]
            y0 = e.y0.copy()
            y0[e.y0_idx] = x[e.y0_pos]
            out.append((p, y0))
        return out

    def _vector(self, x):
        vector = np.asarray(x, dtype=np.float64)
        if vector.shape != (self.n_free,):
            raise ValueError(
                f"`x` must have {self.n_free} entries ({', '.join(self.labels)}), got shape "
                f"{vector.shape}"
            )
        return vector

    def check_not_stale(self):
        """Refuse an ``observe`` whose outside values changed since it was compiled."""
        if self.observation is not None and self.observation.watches:
            change = first_change(self.observation.watches)
            if change is not None:
                raise ModelError(
                    f"`observe` was compiled when this fit was set up, and since then "
                    f"{change}; set the fit up again (or pass the value through p)"
                )

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, x, jacobian=False):
        """Residuals (and the Jacobian) at natural ``x``, or ``None`` when a solve failed
        (``last_failure`` then says why). Results are cached for the last ``x``."""
        x = self._vector(x)
        cached = self._cache_x
        if cached is not None and (x == cached).all():
            if not jacobian or self._cache_jac is not None:
                return (self._cache_r, self._cache_jac) if jacobian else self._cache_r
        if not self._evaluable(x):
            return None
        residuals = np.empty(self.n_residuals)
        jac = np.zeros((self.n_residuals, self.n_free)) if jacobian else None
        with_sensitivities = jacobian and self.n_free > 0
        by_forward = 0
        for e in self.experiments:
            p, y0 = self._experiment_conditions(e, x)
            if with_sensitivities and self._rows_by_adjoint(e):
                done = self._adjoint_jacobian(e, p, y0, x, residuals, jac)
                if done is False:
                    return None
                if done:
                    continue
            outputs = self._solve(e, p, y0, with_sensitivities, x)
            if outputs is None:
                return None
            self._experiment_rows(e, p, outputs, with_sensitivities, residuals, jac)
            by_forward += 1
        if not np.all(np.isfinite(residuals)) or (
            jac is not None and not np.all(np.isfinite(jac))
        ):
            self.failures += 1
            self.last_failure = f"non-finite residuals or Jacobian at x = {x}"
            return None
        self.nfev += 1
        if jacobian:
            self.njev += 1
            if with_sensitivities and by_forward:
                self._note_use(self.jacobian_sensitivity, by_forward)
        self._cache_x = x.copy()
        self._cache_r = residuals
        self._cache_jac = jac
        self._cache_grad = self._cache_grad_sensitivity = None
        return (residuals, jac) if jacobian else residuals

    def evaluate_gradient(self, x):
        """Residuals and the gradient of :meth:`loss` at natural ``x``, ``(r, g)``, or
        ``None`` when a solve failed (``last_failure`` then says why).

        Each experiment's gradient comes from the method in ``gradient_sensitivity``: an
        adjoint (one solve and one reverse pass, whatever the number of columns), or the
        Jacobian's forward sensitivities (``g = J^T r``). ``last_gradient_sensitivity`` says
        which were used. Results are cached for the last ``x``.
        """
        x = self._vector(x)
        cached = self._cache_x
        if cached is not None and (x == cached).all():
            if self._cache_grad is not None:
                self.last_gradient_sensitivity = self._cache_grad_sensitivity
                return self._cache_r, self._cache_grad
            if self._cache_jac is not None:
                self.last_gradient_sensitivity = self.jacobian_sensitivity
                return self._cache_r, self._cache_jac.T @ self._cache_r
        if all(e.gradient_sensitivity is self.jacobian_sensitivity for e in self.experiments):
            # no adjoint anywhere: J^T r from one solve with sensitivities, as it always was
            result = self.evaluate(x, jacobian=True)
            if result is None:
                return None
            residuals, jac = result
            gradient = jac.T @ residuals
            used = [self.jacobian_sensitivity] if self.n_free > 0 else []
        else:
            if not self._evaluable(x):
                return None
            outcome = self._gradient_by_experiment(x)
            if outcome is None:
                return None
            residuals, gradient, used = outcome
        self.last_gradient_sensitivity = _summary(used)
        self._cache_grad = gradient
        self._cache_grad_sensitivity = self.last_gradient_sensitivity
        return residuals, gradient

    def _gradient_by_experiment(self, x):
        """:meth:`evaluate_gradient` where some experiment uses an adjoint: residuals,
        gradient and the method each experiment used, or None after a failure."""
        from paramest.adjoint import SwitchedToStiff, adjoint_forward

        residuals = np.empty(self.n_residuals)
        gradient = np.zeros(self.n_free)
        jac = None
        used = []
        for e in self.experiments:
            p, y0 = self._experiment_conditions(e, x)
            method = e.gradient_sensitivity
            if isinstance(method, sens_methods.ADJOINTS):
                try:
                    run = adjoint_forward(
                        self.problem, method, e.times, e.columns, self.solver, self.rtol,
                        self.atol, p, y0, {"max_steps": self.max_steps},
                        follow_switches=not self._automatic,
                    )
                except SwitchedToStiff:
                    if not self._automatic:
                        raise
                    # solver="auto" switched: forward sensitivities for this experiment in
                    # this evaluation (their solve switches earlier, see adjoint_forward)
                    method = self.jacobian_sensitivity
                except SolveError as error:
                    solution = getattr(error, "solution", None)
                    self._record_failure(
                        e, x, solution.message if solution is not None else str(error)
                    )
                    return None
                else:
                    gradient[e.column_x] += self._adjoint_gradient(e, p, run, residuals)
                    used.append(method)
                    continue
            if jac is None:
                jac = np.zeros((self.n_residuals, self.n_free))
            outputs = self._solve(e, p, y0, True, x)
            if outputs is None:
                return None
            self._experiment_rows(e, p, outputs, True, residuals, jac)
            used.append(method)
        if jac is not None:
            # the adjoint experiments' rows of jac are zero
            gradient += jac.T @ residuals
        if not (np.all(np.isfinite(residuals)) and np.all(np.isfinite(gradient))):
            self.failures += 1
            self.last_failure = f"non-finite residuals or gradient at x = {x}"
            return None
        self.nfev += 1
        self.njev += 1
        for method in used:
            self._note_use(method, 1)
        self._cache_x = x.copy()
        self._cache_r = residuals
        self._cache_jac = None
        return residuals, gradient, used

    def _adjoint_gradient(self, e, p, run, residuals):
        """Experiment ``e``'s residuals (written into ``residuals``) and its gradient over
        its columns from an adjoint's forward ``run``: ``sum(r dr/dtheta)`` as the reverse
        pass of the cotangent ``r / sigma`` on the model's outputs."""
        block = slice(e.offset, e.stop)
        n_times = e.times.size
        if self.observation is None:
            model = np.ascontiguousarray(run.y).reshape(-1).take(e.weight_index)
            r = (model - e.values) * e.inv_sigma
            residuals[block] = r
            return self._adjoint_pullback(e, p, run, r)
        states = np.ascontiguousarray(run.y.T)
        observed = np.empty((n_times, self.n_observables))
        observe_outputs(self.observation.address, e.times, states, p, observed)
        r = (observed.reshape(-1).take(e.weight_index) - e.values) * e.inv_sigma
        residuals[block] = r
        return self._adjoint_pullback(e, p, run, r, states)

    def _adjoint_pullback(self, e, p, run, v, states=None, derivative=None):
        """``J_e^T v`` over experiment ``e``'s columns for a cotangent ``v`` on its
        residuals: one reverse pass of ``run`` with ``v / sigma`` on the outputs (through
        ``observe``'s derivatives ``derivative``, computed here when not given)."""
        n, n_times = self.problem.n_states, e.times.size
        if self.observation is None:
            # replicates and several rows on one state add up in the same (state, time)
            weights = np.bincount(e.weight_index, weights=v * e.inv_sigma,
                                  minlength=n * n_times).reshape(n, n_times)
            return run.gradient(weights)
        m = self.n_observables
        on_observables = np.bincount(e.weight_index, weights=v * e.inv_sigma,
                                     minlength=n_times * m).reshape(n_times, m)
        if derivative is None:
            derivative = self._observe_derivative(e, p, run, states)
        weights = np.einsum("tcm,tm->ct", derivative[:, :n], on_observables)
        gradient = run.gradient(weights)
        # h reads p directly too (a scale, an offset): (dh/dp)^T (v / sigma)
        gradient[: e.param_idx.size] += np.einsum("tcm,tm->c", derivative[:, n:],
                                                  on_observables)
        return gradient

    def _observe_derivative(self, e, p, run, states=None):
        """``derivative[j, c] = dh/dy_c`` at output time j (c < n), then ``dh/dp`` of each
        parameter column, along the adjoint's forward ``run``."""
        observation = self.observation
        if states is None:
            states = np.ascontiguousarray(run.y.T)
        derivative = np.empty((e.times.size, e.observe_directions.shape[1],
                               self.n_observables))
        if observation.complex_step_safe:
            observe_sensitivities(observation.address_complex, e.times, states,
                                  e.observe_directions, p, e.observe_columns, derivative)
        else:
            observe_sensitivities_central(observation.address, e.times, states,
                                          e.observe_directions, p, e.observe_columns,
                                          derivative)
        return derivative

    def _rows_by_adjoint(self, e):
        """Whether experiment ``e``'s Jacobian is cheaper row by row, one reverse pass of
        the discrete adjoint per residual, than by forward sensitivities (one column per
        estimated entry): a network's hundreds of weights against tens of data. The discrete
        adjoint differentiates the same discrete solution, so the rows are the same
        numbers to rounding; the factor 4 is about the cost of a reverse pass against a
        forward-sensitivity column on such models."""
        return (isinstance(e.gradient_sensitivity, sens_methods.DiscreteAdjoint)
                and 4 * (e.stop - e.offset) <= e.column_x.size)

    def _adjoint_jacobian(self, e, p, y0, x, residuals, jac):
        """Experiment ``e``'s residuals and Jacobian rows by the discrete adjoint; False
        after a failure (recorded), None where ``solver="auto"`` switched (the caller then
        uses forward sensitivities)."""
        from paramest.adjoint import SwitchedToStiff, adjoint_forward

        try:
            run = adjoint_forward(
                self.problem, e.gradient_sensitivity, e.times, e.columns, self.solver,
                self.rtol, self.atol, p, y0, {"max_steps": self.max_steps},
                follow_switches=not self._automatic,
            )
        except SwitchedToStiff:
            if not self._automatic:
                raise
            return None
        except SolveError as error:
            solution = getattr(error, "solution", None)
            self._record_failure(e, x, solution.message if solution is not None else
                                 str(error))
            return False
        self._adjoint_gradient(e, p, run, residuals)
        states = derivative = None
        if self.observation is not None:
            states = np.ascontiguousarray(run.y.T)
            derivative = self._observe_derivative(e, p, run, states)
        rows = e.stop - e.offset
        unit = np.zeros(rows)
        block = np.empty((rows, e.column_x.size))
        for i in range(rows):
            unit[i] = 1.0
            block[i] = self._adjoint_pullback(e, p, run, unit, states, derivative)
            unit[i] = 0.0
        jac[e.offset:e.stop, e.column_x] = block
        self._note_use(e.gradient_sensitivity, 1)
        return True

    def _evaluable(self, x):
        """Whether ``x`` can be solved at all (recording why not); refuses a stale
        ``observe``."""
        if not np.isfinite(x).all():
            self.failures += 1
            self.last_failure = f"non-finite estimate x = {x}"
            return False
        if self.observation is not None and self.observation.watches:
            self.check_not_stale()
        return True

    def _experiment_conditions(self, e, x):
        p = e.p.copy()
        p[e.param_idx] = x[e.param_pos]
        y0 = e.y0.copy()
        y0[e.y0_idx] = x[e.y0_pos]
        return p, y0

    def _experiment_rows(self, e, p, outputs, with_sensitivities, residuals, jac):
        """Experiment ``e``'s residuals (and Jacobian rows) from its solve's output rows."""
        n = self.problem.n_states
        block = slice(e.offset, e.stop)
        observation = self.observation
        k = e.column_x.size
        if observation is None:
            if with_sensitivities:
                residuals[block] = (outputs.take(e.flat_sens_state) - e.values) \
                    * e.inv_sigma
                columns = outputs.take(e.flat_sens)
                columns *= e.inv_sigma_column
                if e.all_columns:
                    jac[block] = columns
                else:
                    jac[block, e.column_x] = columns
            else:
                residuals[block] = (outputs.take(e.flat_plain) - e.values) * e.inv_sigma
            return
        states = np.ascontiguousarray(outputs[:, :n])
        observed = np.empty((e.times.size, self.n_observables))
        observe_outputs(observation.address, e.times, states, p, observed)
        residuals[block] = (observed[e.time_pos, e.rows] - e.values) * e.inv_sigma
        if with_sensitivities:
            directions = np.ascontiguousarray(outputs[:, n:]).reshape(-1, k, n)
            derivative = np.empty((e.times.size, k, self.n_observables))
            if observation.complex_step_safe:
                observe_sensitivities(observation.address_complex, e.times, states,
                                      directions, p, e.param_columns, derivative)
            else:
                observe_sensitivities_central(observation.address, e.times, states,
                                              directions, p, e.param_columns,
                                              derivative)
            jac[block, e.column_x] = (
                derivative[e.time_pos, :, e.rows] * e.inv_sigma[:, None]
            )

    def _note_use(self, method, count):
        entry = self._sensitivity_use.setdefault(id(method), [method, 0])
        entry[1] += count

    def sensitivity_use(self):
        """The sensitivity methods that gave derivatives so far, with the number of
        experiment solves each served: a list of ``(method, count)``, most used first."""
        return sorted(((m, c) for m, c in self._sensitivity_use.values()),
                      key=lambda item: -item[1])

    def _record_failure(self, e, x, message):
        self.failures += 1
        self.last_failure = (
            f"the solve of experiment {e.name!r} failed at x = "
            f"{np.array2string(x, precision=6)}: {message}"
        )

    def _solve(self, e, p, y0, with_sensitivities, x):
        """One experiment's output rows ``(n_times, n (1 + k))`` (state, then sensitivity
        columns), or None after recording why the solve failed."""
        sensitivity = self.jacobian_sensitivity
        if with_sensitivities and not isinstance(sensitivity, sens_methods.Forward):
            sol = solve(self.problem, self.solver, e.times, rtol=self.rtol, atol=self.atol,
                        max_steps=self.max_steps, p=p, y0=y0, sensitivity=sensitivity,
                        sens_params=e.sens_params, sens_y0=e.sens_y0)
            code, message = sol.status, sol.message
            outputs = None
            if sol.success:
                outputs = np.concatenate(
                    [sol.y.T, sol.sens.transpose(2, 1, 0).reshape(e.times.size, -1)], axis=1
                )
        else:
            prepared = e.prepared[1 if with_sensitivities else 0]
            if prepared is None:
                prepared = PreparedSolve(
                    self.problem, self.solver, e.times, rtol=self.rtol, atol=self.atol,
                    max_steps=self.max_steps,
                    sensitivity=sensitivity if with_sensitivities else None,
                    sens_params=e.sens_params, sens_y0=e.sens_y0,
                )
                e.prepared[1 if with_sensitivities else 0] = prepared
            code, outputs = prepared.run(p, y0)
            message = prepared.message(code) if code != 0 else ""
        if code != 0:
            self._record_failure(e, x, message)
            return None
        return outputs

    def __reduce__(self):
        # rebuilt from its arguments in another process (compiled code does not pickle)
        args, kwargs = self._arguments
        return (_rebuild_objective, (args, kwargs))

    def copy(self):
        """An independent evaluator over the same set-up, with its own solve buffers and
        counters (for another thread)."""
        clone = object.__new__(Objective)
        clone.__dict__.update(self.__dict__)
        experiments = []
        for e in self.experiments:
            twin = _Experiment()
            for slot in _Experiment.__slots__:
                setattr(twin, slot, getattr(e, slot))
            twin.prepared = [None, None]
            experiments.append(twin)
        clone.experiments = experiments
        clone.nfev = clone.njev = clone.failures = 0
        clone.last_failure = clone.last_gradient_sensitivity = None
        clone._sensitivity_use = {}
        clone._cache_x = clone._cache_r = clone._cache_jac = None
        clone._cache_grad = clone._cache_grad_sensitivity = None
        return clone

    def _checked(self, x, jacobian):
        result = self.evaluate(x, jacobian)
        if result is None:
            raise SolveError(self.last_failure)
        return result

    def residuals(self, x):
        """``(h(t, y, p) - data) / sigma`` at every measured value, experiments in order.

        Raises
        ------
        paramest.SolveError
            A solve failed at ``x``.
        """
        return self._checked(x, False).copy()

    def jacobian(self, x):
        """``d residuals / dx`` (natural units), shape ``(n_residuals, n_free)``."""
        return self._checked(x, True)[1].copy()

    def loss(self, x):
        """``0.5 * sum(residuals**2)`` (scipy's ``cost``)."""
        r = self._checked(x, False)
        return 0.5 * float(r @ r)

    def gradient(self, x):
        """The gradient of :meth:`loss` in natural units, ``J^T r``: from the Jacobian's
        forward sensitivities, or by an adjoint (see ``gradient_sensitivity``;
        ``last_gradient_sensitivity`` then says which was used)."""
        return self._checked_gradient(x)[1].copy()

    def value_and_grad(self, x):
        """:meth:`loss` and :meth:`gradient` from one evaluation: a solve with forward
        sensitivities, or an adjoint's solve and reverse pass."""
        r, gradient = self._checked_gradient(x)
        return 0.5 * float(r @ r), gradient.copy()

    def _checked_gradient(self, x):
        result = self.evaluate_gradient(x)
        if result is None:
            raise SolveError(self.last_failure)
        return result

    def __repr__(self):
        return (
            f"Objective({len(self.experiments)} experiment(s), {self.n_residuals} residuals, "
            f"free: {', '.join(self.labels)})"
        )



def _summary(methods):
    """One method when all experiments used the same, else a tuple (most used first)."""
    distinct = []
    for method in methods:
        if not any(method is seen for seen in distinct):
            distinct.append(method)
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0]
    return tuple(sorted(distinct, key=lambda m: -sum(1 for u in methods if u is m)))


def _rebuild_objective(args, kwargs):
    return Objective(*args, **kwargs)
