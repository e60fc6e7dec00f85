"""Result objects of :func:`paramest.solve`."""

import numpy as np
from scipy.optimize import OptimizeResult

from paramest.kernels.explicit import evaluate_dense

__all__ = ["Solution", "DenseOutput"]


class Solution(OptimizeResult):
    """The result of :func:`paramest.solve`, a :class:`scipy.optimize.OptimizeResult`.

    Attributes
    ----------
    t : ndarray, shape (n_times,)
        Output times: ``t_eval``, or every accepted step (with ``t0``) when it was None.
    y : ndarray, shape (n_states, n_times)
        The state at ``t``. After a failure, the outputs up to the failure time.
    sens : ndarray, shape (n_states, n_sens, n_times), or None
        With ``sensitivity=``: ``sens[i, c, j] = d y_i(t_j) / d theta_c``, the columns
        ``theta`` being the chosen parameters, then the chosen initial states.
    sens_labels : list of str
        The columns' names (``"k1"`` or ``"p[0]"``, ``"y0[A]"`` or ``"y0[0]"``).
    sol : DenseOutput or None
        The continuous solution ``sol(t)`` when ``dense_output=True``.
    success : bool
        True when the end of ``t_span`` was reached.
    status : int
        0 success; -1 ``max_steps`` reached; -2 step size became too small; -3 non-finite
        values (NaN or inf) in the state or its derivative.
    message : str
        What happened, at which ``t``, and what to try.
    t_final : float
        The time the solver reached (``t_span[1]`` on success).
    nfev : int
        Number of evaluations of the model.
    n_accepted, n_rejected : int
        Accepted and rejected steps.
    method : str
        The method used.
    njev, nlu : int
        Jacobian evaluations and LU factorisations (Rosenbrock methods; 0 otherwise). A
        complex-step Jacobian costs ``n_states + 1`` complex evaluations of the model,
        which are not counted in ``nfev``.
    switches : list of (float, str, str)
        ``method="auto"``: each switch as ``(t, from_method, to_method)``.
    stiffness_detected : bool
        Whether the explicit method's stiffness test fired (its step size was limited by
        stability rather than accuracy), or ``"auto"`` switched to its stiff method.
    """


class DenseOutput:
    """The continuous solution of a solve, evaluated by each method's own interpolant.

    Call it with a time or an array of times inside the solved interval; it returns an
    array of shape ``(n_states,)`` or ``(n_states, len(t))``. After ``method="auto"``
    switched methods, each stretch is interpolated by the method that solved it.

    Examples
    --------
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -y[0]
    >>> sol = pe.solve(pe.ODEProblem(decay, [1.0], (0.0, 1.0)), dense_output=True)
    >>> round(float(sol.sol(0.5)[0]), 6)
    0.606531
    """

    def __init__(self, t_start, t_end, segments, n_states=None, split=None):
        self.t_min = min(t_start, t_end)
        self.t_max = max(t_start, t_end)
        self.t_start = t_start
        self.t_end = t_end
        # (step_t, step_h, step_y, step_k, dense) per method stretch, in solve order
        self._segments = [segment for segment in segments if segment[0].shape[0]]
        self._forward = t_end >= t_start
        self._starts = np.array([segment[0][0] for segment in self._segments])
        # a solve with sensitivities stores the augmented state; ``split`` separates it
        self._n_states = n_states
        self._split = split

    @property
    def n_steps(self):
        return sum(segment[0].shape[0] for segment in self._segments)

    def __call__(self, t):
        values, scalar = self._evaluate(t)
        if self._split is not None:
            values = self._split(values)[0].T
        return values[0] if scalar else values.T

    def sens(self, t):
        """The sensitivities at ``t``: shape ``(n_states, n_sens)`` for a scalar ``t``,
        ``(n_states, n_sens, len(t))`` for an array (solves with ``sensitivity=`` only)."""
        if self._split is None:
            raise ValueError(
                "this solve has no sensitivities: pass `sensitivity=` (e.g. paramest.Forward())"
            )
        values, scalar = self._evaluate(t)
        sens = self._split(values)[1]
        return sens[:, :, 0] if scalar else sens

    def _evaluate(self, t):
        t_array = np.asarray(t, dtype=np.float64)
        scalar = t_array.ndim == 0
        queries = np.ascontiguousarray(t_array.reshape(-1))
        if not np.all(np.isfinite(queries)):
            raise ValueError("`t` must be finite")
        if queries.size and (queries.min() < self.t_min or queries.max() > self.t_max):
            raise ValueError(
                f"`t` must lie inside the solved interval [{self.t_min}, {self.t_max}]"
            )
        if not self._segments:
            raise ValueError("the solve took no step: there is no dense output to evaluate")
        n = self._segments[0][2].shape[1]
        out = np.empty((queries.size, n), dtype=self._segments[0][2].dtype)
        if len(self._segments) == 1:
            which = np.zeros(queries.size, dtype=np.intp)
        elif self._forward:
            which = np.searchsorted(self._starts, queries, side="right") - 1
        else:
            which = np.searchsorted(-self._starts, -queries, side="right") - 1
        np.maximum(which, 0, out=which)
        for k, (step_t, step_h, step_y, step_k, dense) in enumerate(self._segments):
            mask = which == k
            if not mask.any():
                continue
            if mask.all():
                evaluate_dense(queries, step_t, step_h, step_y, step_k, dense, out)
                continue
            part = np.empty((int(mask.sum()), n), dtype=out.dtype)
            evaluate_dense(np.ascontiguousarray(queries[mask]), step_t, step_h, step_y,
                           step_k, dense, part)
            out[mask] = part
        return out, scalar

    def __repr__(self):
        return f"DenseOutput(t in [{self.t_min}, {self.t_max}], {self.n_steps} steps)"
