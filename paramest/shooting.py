"""Multiple shooting for :func:`paramest.fit`: the time series cut into segments, each
solved from its own estimated initial state, with a penalty on the jumps between them.

A long or oscillatory series makes the single-shooting loss landscape rugged: a small
change of a frequency moves late peaks by a whole period, and gradient methods stall in the
nearest local minimum. Cutting the series into K segments whose initial states are
estimated as well (Bock's multiple shooting) keeps every segment short, so each one's
residuals stay close to linear in the unknowns; the segments are tied together by the
continuity residuals ``sqrt(continuity) * (y_i(tau_{i+1}) - s_{i+1})`` (``s_i`` the state
at which segment ``i`` starts), which the optimiser drives to zero along with the data
residuals.

:class:`ShootingObjective` builds one :class:`~paramest.Objective` per segment (the problem
remade on the segment's time span, its data the segment's measurements plus the continuity
"measurements" at the next segment's start, whose values are set to ``s_{i+1}`` before each
evaluation), so every segment gets the same solvers, exact Jacobians and adjoint gradients
as any fit.
"""

import math

import numpy as np

from paramest.data import Data
from paramest.objective import Objective

__all__ = ["ShootingObjective", "shooting_settings"]


def shooting_settings(multiple_shooting):
    """``(segments, continuity, refine)`` from ``fit``'s ``multiple_shooting`` argument, or
    None."""
    if multiple_shooting is None or multiple_shooting is False:
        return None
    if isinstance(multiple_shooting, bool) or isinstance(multiple_shooting, int):
        settings = {"segments": multiple_shooting}
    elif isinstance(multiple_shooting, dict):
        settings = dict(multiple_shooting)
    else:
        raise TypeError(
            "`multiple_shooting` must be a number of segments or a dict with 'segments' and "
            f"optionally 'continuity', got {type(multiple_shooting).__name__}"
        )
    segments = settings.pop("segments", None)
    continuity = settings.pop("continuity", 100.0)
    refine = settings.pop("refine", True)
    if settings:
        raise ValueError(f"`multiple_shooting`: unknown keys {sorted(settings)}; known: "
                         "segments, continuity, refine")
    if not isinstance(refine, bool):
        raise TypeError(f"`multiple_shooting['refine']` must be True or False, got {refine!r}")
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 2:
        raise ValueError(
            f"`multiple_shooting` needs an integer number of segments >= 2, got {segments!r}"
        )
    try:
        continuity = float(continuity)
    except (TypeError, ValueError):
        raise ValueError("`multiple_shooting['continuity']` must be a positive number, got "
                         f"{continuity!r}") from None
    if not (math.isfinite(continuity) and continuity > 0):
        raise ValueError("`multiple_shooting['continuity']` must be a positive number, got "
                         f"{continuity!r}")
    return segments, continuity, refine


class ShootingObjective:
    """The residuals of a multiple-shooting fit, with their Jacobian and gradient.

    The estimated vector is that of ``objective`` (the single-shooting set-up: free
    parameters, then free initial states) followed by the initial state of each segment
    after the first, ``n_states`` entries per segment, labelled ``"y0[state][segment i]"``.
    Residuals are those of each segment's data, in time order, then its continuity
    residuals. The methods mirror :class:`~paramest.Objective`'s, as the optimisers of
    :func:`paramest.fit` use them.

    Parameters
    ----------
    objective : Objective
        The single-shooting objective: one experiment, no ``local`` entries, no
        ``observe`` (the continuity residuals compare states), a forward time span.
    segments : int
        Number of segments (>= 2), each with at least one measurement time.
    continuity : float
        Weight of the squared jumps; the continuity residuals are
        ``sqrt(continuity) * jump`` next to the data residuals (already divided by sigma).
    """

    def __init__(self, objective, segments, continuity):
        (problem, experiments), kwargs = objective._arguments
        if len(experiments) != 1 or kwargs["local"] is not None:
            raise ValueError("`multiple_shooting` needs a single experiment without `local` "
                             "entries")
        if kwargs["observe"] is not None:
            raise ValueError(
                "`multiple_shooting` needs the data to measure states (no `observe=`): the "
                "continuity residuals compare the states at the segments' boundaries"
            )
        t0, t_end = problem.t_span
        if t_end < t0:
            raise ValueError("`multiple_shooting` needs a forward time span (t0 < t_end)")
        data = experiments[0]
        times = data.times
        if times.size < segments:
            raise ValueError(
                f"`multiple_shooting` with {segments} segments needs at least as many "
                f"distinct measurement times; the data have {times.size}"
            )
        self.objective = objective
        self.segments = segments
        self.continuity = continuity
        n = problem.n_states
        self.n_states = n
        self.n_plain = objective.n_free
        first = objective.experiments[0]
        self.n_params = first.param_idx.size
        # segment i holds the distinct times starts[i] .. starts[i+1] - 1
        starts = np.unique(np.round(np.linspace(0, times.size, segments + 1)).astype(int))
        if starts.size != segments + 1:  # pragma: no cover - guarded by the size check
            raise ValueError("`multiple_shooting`: too many segments for the data")
        self.boundaries = times[starts[1:-1]]
        weight = 1.0 / math.sqrt(continuity)
        names = problem.state_names or [str(i) for i in range(n)]
        self.labels = list(objective.labels) + [
            f"y0[{names[j]}][segment {i}]" for i in range(1, segments) for j in range(n)
        ]
        self.n_free = len(self.labels)
        seg_kwargs = dict(kwargs)
        seg_kwargs["scale"] = "lin"
        self.parts = []
        offset = 0
        for i in range(segments):
            keep = (data.time_index >= starts[i]) & (data.time_index < starts[i + 1])
            t, y, sigma = data.t[keep], data.y[:, keep], data.sigma[:, keep]
            if i < segments - 1:
                # the continuity "measurements": every state at the next segment's start
                t = np.append(t, times[starts[i + 1]])
                y = np.hstack([y, np.zeros((y.shape[0], 1))])
                sigma = np.hstack([sigma, np.full((y.shape[0], 1), weight)])
                if y.shape[0] != n:
                    raise ValueError(
                        "`multiple_shooting` needs data with one row per state (NaN rows for "
                        f"unmeasured states); these data have {y.shape[0]} rows for {n} "
                        "states"
                    )
            start_time = t0 if i == 0 else times[starts[i]]
            end_time = t[-1] if i < segments - 1 else max(t[-1], t_end)
            segment_problem = problem.remake(t_span=(start_time, end_time))
            seg_kwargs["free_y0"] = kwargs["free_y0"] if i == 0 else True
            segment = Objective(
                segment_problem,
                Data(t, y, sigma=sigma, y0=data.y0, p=data.p, observables=data.observables,
                     name=data.name),
                **seg_kwargs,
            )
            e = segment.experiments[0]
            last = e.times.size - 1
            pseudo = np.flatnonzero(e.time_pos == last) if i < segments - 1 else \
                np.empty(0, dtype=np.int64)
            part = {
                "objective": segment,
                "rows": slice(offset, offset + segment.n_residuals),
                "pseudo": pseudo,
                "pseudo_states": e.state_rows[e.rows[pseudo]] if pseudo.size else pseudo,
                # where the segment's estimated entries sit in the shooting vector
                "columns": (np.arange(self.n_plain) if i == 0 else np.concatenate(
                    [np.arange(self.n_params), self._state_columns(i)])),
                "next_states": self._state_columns(i + 1) if i < segments - 1 else None,
            }
            offset += segment.n_residuals
            self.parts.append(part)
        self.n_residuals = offset
        self.sqrt_continuity = math.sqrt(continuity)
        self.nfev = self.njev = self.failures = 0
        self.last_failure = None

    def _state_columns(self, segment):
        start = self.n_plain + (segment - 1) * self.n_states
        return np.arange(start, start + self.n_states)

    # -- the optimiser's space: the single-shooting scales, segment states linear ----------
    def public(self, x):
        """The single-shooting part of a shooting vector ``x``."""
        return np.asarray(x, dtype=np.float64)[: self.n_plain]

    def to_internal(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.concatenate([self.objective.to_internal(x[: self.n_plain]),
                               x[self.n_plain:]])

    def from_internal(self, z):
        z = np.asarray(z, dtype=np.float64)
        return np.concatenate([self.objective.from_internal(z[: self.n_plain]),
                               z[self.n_plain:]])

    def internal_derivative(self, x):
        return np.concatenate([self.objective.internal_derivative(x[: self.n_plain]),
                               np.ones(self.n_free - self.n_plain)])

    def extend_bounds(self, bound_z, fill):
        return np.concatenate([bound_z, np.full(self.n_free - self.n_plain, fill)])

    def start(self, x_plain):
        """A shooting vector from single-shooting ``x_plain``: each segment starts where the
        measurements say (states measured at its first time), elsewhere on the solution
        at ``x_plain`` (or the initial state where that does not solve)."""
        problem = self.objective.problem
        data = self.objective._arguments[0][1][0]
        p, y0 = self.objective.conditions(x_plain)[0]
        from paramest.solve import solve

        boundaries = self.boundaries
        try:
            solution = solve(problem, "auto", boundaries, p=p, y0=y0, rtol=1e-6, atol=1e-9)
            states = solution.y if solution.success else None
        except Exception:  # noqa: BLE001 - a start guess; the fit reports failures itself
            states = None
        values = np.tile(y0[:, None], (1, boundaries.size)) if states is None else \
            np.array(states, dtype=np.float64)
        if values.shape != (self.n_states, boundaries.size) or not np.all(np.isfinite(values)):
            values = np.tile(y0[:, None], (1, boundaries.size))
        if data.y.shape[0] == self.n_states:
            for k, tau in enumerate(boundaries):
                at = data.t == tau
                measured = data.y[:, at]
                for j in range(self.n_states):
                    finite = measured[j][np.isfinite(measured[j])]
                    if finite.size:
                        values[j, k] = finite.mean()
        return np.concatenate([np.asarray(x_plain, dtype=np.float64), values.T.reshape(-1)])

    # -- evaluation -----------------------------------------------------------------------
    def _segment_x(self, part, x):
        return x[part["columns"]]

    def _set_targets(self, part, x):
        """Put the next segment's start state into the continuity rows' values."""
        if part["next_states"] is None:
            return
        segment = part["objective"]
        e = segment.experiments[0]
        e.values[part["pseudo"]] = x[part["next_states"]][part["pseudo_states"]]
        segment._cache_x = None  # its values changed under the same x

    def evaluate(self, x, jacobian=False):
        x = np.asarray(x, dtype=np.float64)
        residuals = np.empty(self.n_residuals)
        jac = np.zeros((self.n_residuals, self.n_free)) if jacobian else None
        for part in self.parts:
            segment = part["objective"]
            self._set_targets(part, x)
            result = segment.evaluate(self._segment_x(part, x), jacobian=jacobian)
            if result is None:
                self.failures += 1
                self.last_failure = segment.last_failure
                return None
            rows = part["rows"]
            if jacobian:
                residuals[rows], block = result
                jac[rows, part["columns"]] = block
                if part["next_states"] is not None:
                    jac[rows.start + part["pseudo"],
                        part["next_states"][part["pseudo_states"]]] = -self.sqrt_continuity
            else:
                residuals[rows] = result
        self.nfev += 1
        self.njev += int(jacobian)
        return (residuals, jac) if jacobian else residuals

    def evaluate_gradient(self, x):
        x = np.asarray(x, dtype=np.float64)
        residuals = np.empty(self.n_residuals)
        gradient = np.zeros(self.n_free)
        for part in self.parts:
            segment = part["objective"]
            self._set_targets(part, x)
            result = segment.evaluate_gradient(self._segment_x(part, x))
            if result is None:
                self.failures += 1
                self.last_failure = segment.last_failure
                return None
            r, g = result
            residuals[part["rows"]] = r
            gradient[part["columns"]] += g
            if part["next_states"] is not None:
                # d/ds_{i+1} of 0.5 r^2 with r = sqrt(w) (y_i - s_{i+1}) / 1
                np.add.at(gradient, part["next_states"][part["pseudo_states"]],
                          -self.sqrt_continuity * r[part["pseudo"]])
        self.nfev += 1
        self.njev += 1
        return residuals, gradient

    def defect(self, x):
        """The largest jump between consecutive segments at ``x`` (in state units), or
        NaN when a segment does not solve."""
        residuals = self.evaluate(x)
        if residuals is None:
            return math.nan
        jumps = [residuals[part["rows"]][part["pseudo"]] for part in self.parts
                 if part["next_states"] is not None]
        return float(np.max(np.abs(np.concatenate(jumps)))) / self.sqrt_continuity

    def sensitivity_use(self):
        merged = {}
        for part in self.parts:
            for method, count in part["objective"].sensitivity_use():
                entry = merged.setdefault(id(method), [method, 0])
                entry[1] += count
        return sorted(((m, c) for m, c in merged.values()), key=lambda item: -item[1])
