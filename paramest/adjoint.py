"""Driving the adjoints: a forward pass that records what the reverse pass needs, then the
reverse pass for any cotangent of the outputs.

:func:`adjoint_forward` runs the forward solve and returns an :class:`AdjointRun`: its
outputs ``t, y`` (the same numbers as a plain solve with the same options) and
``gradient(weights)``, the reverse pass for the loss ``sum(weights * y)``. A caller whose
cotangent depends on the outputs (a least-squares loss) thus pays one forward solve.

Discrete adjoint (:class:`paramest.DiscreteAdjoint`). Without checkpoints the forward solve
keeps every accepted step (its dense-output store) and one reverse pass runs over them,
piece by piece when ``method="auto"`` switched between its explicit and Rosenbrock method.
With ``checkpoints=m`` the dense store holds ``m`` steps: each time it fills, the integrator
pauses (its ``DENSE_FULL`` status, at a step boundary), the driver keeps a snapshot of the
resumable records (time, step size, controller memory, state, first stage) and lets it
continue with an empty store. The reverse pass then takes the segments from last to first:
it restores a segment's snapshot, replays exactly its ``m`` steps (the same records give the
same steps, which is checked) and runs the reverse kernel over them. Memory: ``m`` steps plus
one small snapshot per segment; cost: about one extra forward solve.

Continuous adjoint (:class:`paramest.Adjoint`). The same forward pieces (stored, or replayed
from their snapshots) are handed, last to first, to a compiled backward sweep that
integrates ``lambda' = -J^T lambda`` through the piece with the piece's own method family,
``y(t)`` interpolated from the piece's store (``kernels.fields.adjoint_field``), jumping by
each output's cotangent and adding the parameter gradient by quadrature as it goes.
:class:`paramest.BacksolveAdjoint` keeps nothing but the final state and integrates ``[y,
lambda]`` back from it (``kernels.fields.backsolve_field``).
"""

import sys

import numpy as np

from paramest.errors import SolveError
from paramest.kernels import status as st
from paramest.kernels.adjoint import (
    VJP_CENTRAL,
    VJP_COMPLEX_STEP,
    VJP_USER,
    backward_sweep_explicit,
    backward_sweep_rosenbrock,
    discrete_adjoint_explicit,
    discrete_adjoint_rosenbrock,
)
from paramest.kernels.explicit import integrate
from paramest.kernels.fields import (
    A_VJP,
    adjoint_field,
    adjoint_info,
    backsolve_field,
    plain_field,
)
from paramest.kernels.records import float_options, float_state, int_options, int_state
from paramest.kernels.rosenbrock import integrate_rosenbrock
from paramest.model import MODEL_EXCEPTIONS, describe_model_exception, record_model_exception
from paramest.problems import as_vector
from paramest.sensitivity import BacksolveAdjoint, DiscreteAdjoint

__all__ = ["AdjointRun", "SwitchedToStiff", "adjoint_forward", "discrete_adjoint_vjp"]


class SwitchedToStiff(ValueError):
    """The adjoint cannot follow the solve where ``method="auto"`` switched to its
    Rosenbrock method (``"auto"`` choices then fall back to forward sensitivities)."""


def _vjp_mode(model):
    if model.vjp_address:
        return VJP_USER
    return VJP_COMPLEX_STEP if model.complex_step_safe else VJP_CENTRAL


_SWITCHED = (
    "sensitivity={name}(checkpoints=...): method='auto' switched to its Rosenbrock "
    "method at t = {t:g} (the problem is stiff there), and checkpoints do not follow a "
    "switch; choose the method (for example method='Rodas5P') or checkpoints=None"
)


def _stiff_derivatives(problem, y, params):
    """The addresses and derivative modes a Rosenbrock solve of ``problem`` uses."""
    from paramest.solve import _rosenbrock_setup

    addresses, record = _rosenbrock_setup(problem.model, y, params, problem.t_span[0],
                                          int_options(1, False, False))
    return addresses, int(record[st.IO_JAC_MODE]), int(record[st.IO_TIME_MODE]), record


def _reverse_piece(problem, entry, params, atol, param_idx, store, t_after, times, weights,
                   lam, grad):
    """The reverse kernel of ``entry``'s family over the stored steps ``store`` (those
    ending at ``t_after``) with the outputs ``times`` (cotangents ``weights``, by time)."""
    step_t, step_h, step_y, step_k = store
    n_steps = step_t.shape[0]
    if n_steps == 0:
        return
    step_end = np.empty(n_steps)
    step_end[:-1] = step_t[1:]
    step_end[-1] = t_after
    model = problem.model
    mode = _vjp_mode(model)
    times = np.ascontiguousarray(times)
    weights = np.ascontiguousarray(weights)
    if entry.kind == "explicit":
        discrete_adjoint_explicit(model.addresses, mode, entry.tab, entry.tab_info, step_t,
                                  step_h, step_y, step_k, step_end, times, weights, params,
                                  param_idx, lam, grad)
        return
    addresses, jac_mode, time_mode, _ = _stiff_derivatives(problem, step_y[0], params)
    addresses = addresses.copy()
    addresses[A_VJP] = model.addresses[A_VJP]
    if not discrete_adjoint_rosenbrock(addresses, mode, jac_mode, time_mode, entry.tab,
                                       entry.tab_info, atol, step_t, step_h, step_y, step_k,
                                       step_end, times, weights, params, param_idx, lam,
                                       grad):
        raise SolveError(  # pragma: no cover - the forward steps had regular matrices
            "DiscreteAdjoint: a Rosenbrock iteration matrix was singular on the reverse pass"
        )


def _split_outputs(times, ends, direction):
    """Index ranges of the outputs that belong to consecutive pieces ending at ``ends``: an
    output belongs to the first piece whose end reaches it, as in the kernels."""
    if len(ends) == 1:
        return [(0, times.shape[0])]
    bounds = np.searchsorted(direction * times, direction * np.asarray(ends), side="right")
    starts = np.concatenate([[0], bounds[:-1]])
    return list(zip(starts.tolist(), bounds.tolist(), strict=True))


class AdjointRun:
    """A forward pass recorded for the reverse pass: ``t`` and ``y`` (shape ``(n_states,
    n_times)``) are the outputs, :meth:`gradient` the reverse pass."""

    def __init__(self, problem, columns, params, atol, times, y_out, sensitivity):
        self.problem = problem
        self.columns = columns
        self.params = params
        self.atol = atol
        self.t = times
        self.y = y_out
        self.sensitivity = sensitivity
        self.param_idx = np.array(columns.params, dtype=np.int64)

    def gradient(self, weights):
        """The gradient of ``sum(weights * y)`` over the columns (parameters, then initial
        states); ``weights`` has the shape of ``y``."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != self.y.shape:
            raise ValueError(f"`weights` must have shape {self.y.shape}, got {weights.shape}")
        lam = np.zeros(self.problem.n_states)
        grad = np.zeros(max(len(self.columns.params), 1))
        weights_by_time = np.ascontiguousarray(weights.T)
        if isinstance(self.sensitivity, DiscreteAdjoint):
            for entry, store, t_after, lo, hi in self._pieces_backward():
                _reverse_piece(self.problem, entry, self.params, self.atol, self.param_idx,
                               store, t_after, self.t[lo:hi], weights_by_time[lo:hi], lam,
                               grad)
        elif isinstance(self.sensitivity, BacksolveAdjoint):
            _backsolve_reverse(self, weights_by_time, lam, grad)
        else:
            _continuous_reverse(self, weights_by_time, lam, grad)
        return np.concatenate([grad[: len(self.columns.params)], lam[self.columns.y0]])


class _StoredRun(AdjointRun):
    """Every accepted step kept: one or more pieces (one per method of ``"auto"``)."""

    def __init__(self, pieces, t_final, direction, **kwargs):
        super().__init__(**kwargs)
        self.pieces = pieces
        ends = [piece[2][0][0] for piece in pieces[1:]] + [t_final]
        self.ends = ends
        self.ranges = _split_outputs(self.t, ends, direction)

    def _pieces_backward(self):
        for index in range(len(self.pieces) - 1, -1, -1):
            entry, _, store = self.pieces[index]
            lo, hi = self.ranges[index]
            yield entry, store, self.ends[index], lo, hi


#: the solver's methods by their dense-output coefficients, which a solve's dense-output
#: segments carry (filled on first use: solve.py imports this module lazily)
_METHODS_BY_DENSE = {}


def adjoint_forward(problem, sensitivity, t_eval, columns, method, rtol, atol, p, y0,
                    solve_options, follow_switches=True):
    """The forward pass of ``sensitivity`` (an adjoint) for the outputs at ``t_eval``.

    Raises :class:`SolveError` when the solve fails and :class:`SwitchedToStiff` where the
    adjoint cannot follow it, or, with ``follow_switches=False``, where ``method="auto"``
    switched at all: a plain ``"auto"`` solve of a stiff problem tends to switch later
    than one carrying forward sensitivities (whose stiffness test sees them too), so that
    an automatic choice is better off with :class:`paramest.Forward` there (Robertson:
    6890 Tsit5 steps before the switch at t = 10, against 1825 and t = 2). See the module
    docstring.
    """
    from paramest.solve import _METHOD_TABLE, _method_entry, _solve, _tolerances

    entry = _method_entry(method)
    if solve_options.get("dense_output"):
        raise ValueError("`dense_output` is not an option of vjp")
    params = problem.p.copy() if p is None else as_vector(
        p, "p", allow_empty=True, size=problem.n_params, labels=problem.param_names,
        labels_arg="param_names",
    ).copy()
    _, atol_vector = _tolerances(rtol, atol, problem.n_states)
    common = dict(problem=problem, columns=columns, params=params, atol=atol_vector,
                  sensitivity=sensitivity)
    if isinstance(sensitivity, BacksolveAdjoint):
        return _backsolve_forward(problem, entry, t_eval, rtol, atol, y0, solve_options,
                                  common)
    checkpoints = sensitivity.checkpoints
    if checkpoints is not None:
        run = _CheckpointedRun.start(entry, t_eval, rtol, (atol,), y0, checkpoints,
                                     solve_options, **common)
        return _backward_settings(run, rtol, solve_options)
    unknown = set(solve_options) - {"first_step", "max_step", "max_steps", "dt"}
    if unknown:
        raise TypeError(f"vjp got unexpected keyword arguments {sorted(unknown)}")
    sol = _solve(problem, method, t_eval, rtol, atol, solve_options.get("first_step"),
                 solve_options.get("max_step", np.inf), solve_options.get("max_steps", 100_000),
                 True, params, y0, solve_options.get("dt"), None, None, None,
                 not follow_switches)
    if sol.status == st.SWITCH_TO_STIFF:
        raise SwitchedToStiff(
            f"method='auto' switched to its stiff method at t = {sol.t_final:g}"
        )
    if not sol.success:
        raise SolveError(f"vjp: the solve failed: {sol.message}", sol)
    by_dense = _METHODS_BY_DENSE or _METHODS_BY_DENSE.update(
        {id(m.tableau.dense): m for m in _METHOD_TABLE.values() if m.tableau}
    ) or _METHODS_BY_DENSE
    pieces = [(by_dense[id(segment[4])], None, segment[:4]) for segment in sol.sol._segments]
    t0, _ = problem.t_span
    direction = 1.0 if sol.t_final >= t0 else -1.0
    run = _StoredRun(pieces, sol.t_final, direction, times=np.asarray(sol.t), y_out=sol.y,
                     **common)
    return _backward_settings(run, rtol, solve_options)


def _backward_settings(run, rtol, solve_options):
    """What a continuous backward pass inherits from the forward solve."""
    run.rtol = rtol
    run.max_steps = int(solve_options.get("max_steps", 100_000))
    run.backward_steps = 0
    dt = solve_options.get("dt")
    run.dt = 0.0 if dt is None else float(abs(dt))
    return run


def _backsolve_forward(problem, entry, t_eval, rtol, atol, y0, solve_options, common):
    from paramest.solve import _AUTO_PAIR, _METHOD_TABLE, solve

    if entry.kind == "rosenbrock":
        raise ValueError(
            f"sensitivity=BacksolveAdjoint() needs an explicit method, not "
            f"method='{entry.name}': re-solving a stiff problem backwards is unstable; use "
            "sensitivity=paramest.Adjoint() or DiscreteAdjoint()"
        )
    times = np.asarray(t_eval, dtype=np.float64)
    t_end = problem.t_span[1]
    with_end = times if times.size and times[-1] == t_end else np.append(times, t_end)
    sol = solve(problem, entry.name, with_end, rtol=rtol, atol=atol, p=common["params"],
                y0=y0, **solve_options)
    if not sol.success:
        raise SolveError(f"vjp: the solve failed: {sol.message}", sol)
    if sol.switches:
        raise SwitchedToStiff(
            f"sensitivity=BacksolveAdjoint(): method='auto' switched to its Rosenbrock method "
            f"at t = {sol.switches[0][0]:g} (the problem is stiff there), where re-solving "
            "backwards is unstable; use sensitivity=paramest.Adjoint()"
        )
    run = _BacksolveRun(times=np.asarray(sol.t[: times.size]),
                        y_out=sol.y[:, : times.size], **common)
    run.entry = _METHOD_TABLE[_AUTO_PAIR[0]] if entry.kind == "auto" else entry
    run.y_final = sol.y[:, -1].copy()
    run.t_final = float(sol.t[-1])
    return _backward_settings(run, rtol, solve_options)


def discrete_adjoint_vjp(problem, t_eval, weights, columns, method, rtol, atol, p, y0,
                         sensitivity, solve_options, follow_switches=True):
    """The gradient of ``sum(weights * y(t_eval))`` over ``columns`` by an adjoint."""
    run = adjoint_forward(problem, sensitivity, t_eval, columns, method, rtol, atol, p, y0,
                          solve_options, follow_switches)
    return run.gradient(weights)


class _CheckpointedRun(AdjointRun):
    """Steps held ``checkpoints`` at a time; the reverse pass replays earlier segments."""

    @classmethod
    def start(cls, entry, t_eval, rtol, atol_option, y0, checkpoints, solve_options,
              **common):
        from paramest.solve import _AUTO_PAIR, _METHOD_TABLE, _check_t_eval, _validated_options

        unknown = set(solve_options) - {"first_step", "max_step", "max_steps", "dt"}
        if unknown:
            raise TypeError(f"vjp got unexpected keyword arguments {sorted(unknown)}")
        problem = common["problem"]
        params = common["params"]
        n = problem.n_states
        t0, t_end = problem.t_span
        _, atol_vector, fopts, iopts = _validated_options(
            entry.name, rtol, atol_option[0], solve_options.get("first_step"),
            solve_options.get("max_step", np.inf), solve_options.get("max_steps", 100_000),
            True, solve_options.get("dt"), t0, t_end, n,
        )
        iopts = iopts[1]
        active = _METHOD_TABLE[_AUTO_PAIR[0]] if entry.kind == "auto" else entry
        times = _check_t_eval(t_eval, t0, t_end)
        state = problem.y0.copy() if y0 is None else as_vector(
            y0, "y0", size=n, labels=problem.state_names, labels_arg="state_names"
        ).copy()
        if active.kind == "explicit":
            kernel, field, record = integrate, plain_field(problem.model.addresses), iopts
        else:
            addresses, _, _, stiff_record = _stiff_derivatives(problem, state, params)
            kernel, field = integrate_rosenbrock, plain_field(addresses)
            record = int_options(**{**_int_fields(iopts),
                                    "jac_mode": int(stiff_record[st.IO_JAC_MODE]),
                                    "time_mode": int(stiff_record[st.IO_TIME_MODE])})
        run = cls(times=times, y_out=np.empty((times.shape[0], n)), **common)
        run.entry = active
        run.kernel, run.field, run.record = kernel, field, record
        run.fopts, run.atol_kernel = fopts, atol_vector
        run.state = state
        run.stages = np.empty((active.s_total, n))
        run.t_out = np.empty(times.shape[0])
        run.store = (np.empty(checkpoints), np.empty(checkpoints), np.empty((checkpoints, n)),
                     np.empty((checkpoints, active.s_total, n)))
        run.fstate, run.istate = float_state(), int_state()
        run._forward(t_end)
        run.y = np.ascontiguousarray(run.y_out_by_time.T)
        return run

    def __init__(self, times, y_out, **common):
        super().__init__(times=times, y_out=None, **common)
        self.y_out_by_time = y_out

    def _advance(self):
        """Run the integrator until its store is full or the solve ends; returns the
        status, any exception inside the model turned into a failure."""
        return _guarded(lambda: self.kernel(
            self.field, self.state, self.params, self.atol_kernel, self.fopts, self.record,
            self.entry.tab, self.entry.tab_info, self.t, self.t_out, self.y_out_by_time,
            *self.store, self.stages, self.fstate, self.istate,
        ))

    def _forward(self, t_end):
        """A snapshot at the start of every segment of ``checkpoints`` steps."""
        from paramest.solve import _message

        self.segments = []
        fstate, istate = self.fstate, self.istate
        while True:
            snapshot = (fstate.copy(), istate.copy(), self.state.copy(), self.stages.copy())
            outputs_before = int(istate[st.I_N_OUT])
            code = self._advance()
            self.segments.append((snapshot, int(istate[st.I_N_DENSE]), outputs_before,
                                  int(istate[st.I_N_OUT]), float(fstate[st.F_T])))
            if code == st.DENSE_FULL:
                istate[st.I_N_DENSE] = 0
                continue
            if code == st.SUCCESS:
                break
            if code == st.SWITCH_TO_STIFF:
                raise SwitchedToStiff(_SWITCHED.format(
                    name=type(self.sensitivity).__name__, t=float(fstate[st.F_T])))
            raise SolveError(
                "vjp: the solve failed: " + _message(
                    code, float(fstate[st.F_T]), float(fstate[st.F_H]), t_end,
                    int(self.record[st.IO_MAX_STEPS]), bool(istate[st.I_STIFFNESS_DETECTED]),
                    float(fstate[st.F_T_STIFF]), self.entry.name,
                )
            )
        self.in_store = len(self.segments) - 1

    def _replay(self, index):
        """Fill the store with segment ``index``'s steps again, from its snapshot."""
        snapshot, n_steps = self.segments[index][:2]
        for record, saved in zip((self.fstate, self.istate, self.state, self.stages), snapshot,
                                 strict=True):
            record[...] = saved
        self.istate[st.I_N_DENSE] = 0
        code = self._advance()
        if int(self.istate[st.I_N_DENSE]) != n_steps or code not in (st.DENSE_FULL,
                                                                     st.SUCCESS):
            raise RuntimeError(  # pragma: no cover - the kernels are deterministic
                "DiscreteAdjoint: replaying a checkpointed segment took different steps"
            )
        self.in_store = index

    def _pieces_backward(self):
        for index in range(len(self.segments) - 1, -1, -1):
            _, n_steps, out_lo, out_hi, t_after = self.segments[index]
            if n_steps == 0:
                continue
            if self.in_store != index:
                self._replay(index)
            yield (self.entry, tuple(array[:n_steps] for array in self.store), t_after, out_lo,
                   out_hi)


def _int_fields(record):
    from paramest.kernels.records import int_options_fields

    return int_options_fields(record)


#: backward steps held before their quadrature is added up (the adjoint solution is
#: consumed in chunks this long, never stored whole)
QUADRATURE_CHUNK = 256


class _Backward:
    """One backward integration (of ``lambda``, or of ``[y, lambda]`` for backsolve) with a
    method of either family, driven through its stops by a compiled sweep
    (:func:`~paramest.kernels.adjoint.backward_sweep_explicit` and its Rosenbrock twin)."""

    def __init__(self, problem, entry, state, t_start, rtol, atol, max_steps, param_idx,
                 params, grad, backsolve, dt=0.0):
        from paramest.solve import _tolerances

        self.problem = problem
        self.entry = entry
        self.state = state
        self.params = params
        self.param_idx = param_idx
        self.grad = grad
        self.backsolve = backsolve
        width = state.shape[0]
        if np.ndim(atol) == 0:
            _, atol_vector = _tolerances(rtol, atol, width)
        else:  # the forward solve's per-state atol, for each block of the backward state
            atol_vector = np.ascontiguousarray(np.tile(atol, width // len(atol)))
        self.atol = atol_vector
        self.fopts = float_options(t_start, t_start, rtol, dt=dt)
        self.kernel = (backward_sweep_explicit if entry.kind == "explicit"
                       else backward_sweep_rosenbrock)
        self.iopts = int_options(max_steps, False, True, jac_mode=st.JAC_COMPLEX_STEP,
                                 time_mode=st.TIME_DERIVATIVE_ZERO)
        self.stages = np.empty((entry.s_total, width))
        self.store = (np.empty(QUADRATURE_CHUNK), np.empty(QUADRATURE_CHUNK),
                      np.empty((QUADRATURE_CHUNK, width)),
                      np.empty((QUADRATURE_CHUNK, entry.s_total, width)))
        self.dense = np.ascontiguousarray(entry.tableau.dense, dtype=np.float64)
        self.fstate, self.istate = float_state(), int_state()
        self.counts = np.zeros(1, dtype=np.int64)
        self.offset = problem.n_states if backsolve else 0

    def sweep(self, field, stops, jumps, forward_store, forward_dense):
        """Integrate through ``stops``, jumping by ``jumps[i]`` at each."""
        code = _guarded(lambda: self.kernel(
            field, self.state, self.params, self.atol, self.fopts, self.iopts,
            self.entry.tab, self.entry.tab_info, self.stages, *self.store, self.dense,
            self.fstate, self.istate, stops, jumps, self.offset, self.backsolve,
            *forward_store, forward_dense, self.param_idx, self.grad, self.counts,
        ))
        if code != st.SUCCESS:
            raise SolveError(
                f"vjp: the backward (adjoint) solve failed at t = "
                f"{float(self.fstate[st.F_T]):g}: status {code}"
                + (" (the re-solved state is unstable backwards: the problem is stiff "
                   "or chaotic; use paramest.Adjoint(checkpoints=...))"
                   if self.backsolve else "")
            )

    def jump(self, weights):
        """``lambda`` jumps by an output's cotangent: the stored first stage is stale."""
        self.state[self.offset:self.offset + weights.shape[0]] += weights
        self.istate[st.I_K0_VALID] = 0


def _stops(times, weights_by_time, j, t_begin, direction):
    """The stops of a backward sweep down to ``t_begin`` from the output ``j`` down: each
    distinct output time after ``t_begin``, then ``t_begin``; the jumps are the summed
    cotangents of the outputs at each (none at ``t_begin`` unless outputs lie there).
    Returns ``(stops, jumps, j)`` with ``j`` the first output not reached."""
    stops = []
    jumps = []
    while True:
        if j >= 0 and direction * (times[j] - t_begin) > 0.0:
            stop = times[j]
        else:
            stop = t_begin
        jump = np.zeros(weights_by_time.shape[1])
        while j >= 0 and times[j] == stop:
            jump += weights_by_time[j]
            j -= 1
        stops.append(stop)
        jumps.append(jump)
        if stop == t_begin:
            break
    return np.array(stops, dtype=np.float64), np.array(jumps), j


def _guarded(call):
    previous_hook = sys.unraisablehook
    sys.unraisablehook = record_model_exception
    before = MODEL_EXCEPTIONS.count
    MODEL_EXCEPTIONS.first = None
    try:
        code = call()
    finally:
        sys.unraisablehook = previous_hook
    if MODEL_EXCEPTIONS.count != before:
        raise SolveError(
            "vjp: the solve failed: " + describe_model_exception(MODEL_EXCEPTIONS.first)
        )
    return code


_NO_STORE = (np.empty(1), np.ones(1), np.zeros((1, 1)), np.zeros((1, 1, 1)))
_NO_DENSE = np.zeros((1, 1))


def _backward_options(run):
    sensitivity = run.sensitivity
    rtol = sensitivity.rtol if sensitivity.rtol is not None else run.rtol
    atol = sensitivity.atol if sensitivity.atol is not None else run.atol
    return rtol, atol


def _continuous_reverse(run, weights_by_time, lam, grad):
    """The continuous adjoint's backward pass over the forward pieces of ``run``."""
    problem = run.problem
    model = problem.model
    info = adjoint_info(problem.n_states, _vjp_mode(model))
    rtol, atol = _backward_options(run)
    times = run.t
    backward = None
    j = times.shape[0] - 1
    for entry, store, t_after, _, _ in run._pieces_backward():
        if backward is None or backward.entry is not entry:
            if backward is not None:
                lam[:] = backward.state
            backward = _Backward(problem, entry, lam.copy(), t_after, rtol, atol,
                                 run.max_steps, run.param_idx, run.params, grad, False,
                                 run.dt)
        while j >= 0 and times[j] == t_after:  # outputs at the very end
            backward.jump(weights_by_time[j])
            j -= 1
        addresses = model.addresses
        if entry.kind == "rosenbrock":
            addresses = _stiff_derivatives(problem, store[2][0], run.params)[0].copy()
            addresses[A_VJP] = model.addresses[A_VJP]
        field = adjoint_field(addresses, info, *store, entry.tableau.dense)
        direction = 1.0 if store[1][0] > 0.0 else -1.0
        stops, jumps, j = _stops(times, weights_by_time, j, float(store[0][0]), direction)
        backward.sweep(field, stops, jumps, store, field[6])
        backward.istate[st.I_K0_VALID] = 0  # the next piece interpolates another store
    lam[:] = backward.state
    run.backward_steps = int(backward.counts[0])


class _BacksolveRun(AdjointRun):
    """The outputs and the final state; the reverse pass re-solves the state backwards."""


def _backsolve_reverse(run, weights_by_time, lam, grad):
    problem = run.problem
    n = problem.n_states
    info = adjoint_info(n, _vjp_mode(problem.model))
    rtol, atol = _backward_options(run)
    state = np.concatenate([run.y_final, np.zeros(n)])
    backward = _Backward(problem, run.entry, state, run.t_final, rtol, atol, run.max_steps,
                         run.param_idx, run.params, grad, True, run.dt)
    times = run.t
    j = times.shape[0] - 1
    while j >= 0 and times[j] == run.t_final:
        backward.jump(weights_by_time[j])
        j -= 1
    t0 = problem.t_span[0]
    stops, jumps, j = _stops(times, weights_by_time, j, t0,
                             1.0 if run.t_final >= t0 else -1.0)
    backward.sweep(backsolve_field(problem.model.addresses, info), stops, jumps, _NO_STORE,
                   _NO_DENSE)
    lam[:] = backward.state[n:]
    run.backward_steps = int(backward.counts[0])
