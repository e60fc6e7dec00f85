"""Driving the discrete adjoint: the forward solve that records the steps, then the reverse
pass, segment by segment when the steps are checkpointed.

Without checkpoints the forward solve keeps every accepted step (its dense-output store)
and one reverse pass runs over all of them. With ``DiscreteAdjoint(checkpoints=m)`` the
dense store holds ``m`` steps: each time it fills, the integrator pauses (its
``DENSE_FULL`` status, at a step boundary), the driver keeps a snapshot of the resumable
records (time, step size, controller memory, state, first stage) and lets it continue with
an empty store. The reverse pass then takes the segments from last to first: it restores a
segment's snapshot, replays exactly its ``m`` steps (the same records give the same steps,
which is checked) and runs the reverse kernel over them. Memory: ``m`` steps plus one small
snapshot per segment; cost: about one extra forward solve.
"""

import sys

import numpy as np

from paramest.errors import SolveError
from paramest.kernels import status as st
from paramest.kernels.adjoint import (
    VJP_CENTRAL,
    VJP_COMPLEX_STEP,
    VJP_USER,
    discrete_adjoint_explicit,
)
from paramest.kernels.explicit import integrate
from paramest.kernels.fields import plain_field
from paramest.kernels.records import float_state, int_state
from paramest.model import MODEL_EXCEPTIONS, describe_model_exception, record_model_exception
from paramest.problems import as_vector

__all__ = ["SwitchedToStiff", "discrete_adjoint_vjp"]


class SwitchedToStiff(ValueError):
    """``method="auto"`` switched to its Rosenbrock method, where there is no discrete
    adjoint yet (``vjp(sensitivity="auto")`` then falls back to forward sensitivities)."""


def _vjp_mode(model):
    if model.vjp_address:
        return VJP_USER
    return VJP_COMPLEX_STEP if model.complex_step_safe else VJP_CENTRAL


def _refuse_stiff(entry):
    if entry.kind == "rosenbrock":
        raise ValueError(
            f"sensitivity=DiscreteAdjoint() supports the explicit methods, not "
            f"method='{entry.name}' (the Rosenbrock discrete adjoint is not implemented yet); "
            "use sensitivity=paramest.Forward() for stiff problems"
        )


_SWITCHED = (
    "sensitivity=DiscreteAdjoint(): method='auto' switched to its Rosenbrock method at t = "
    "{t:g} (the problem is stiff there), and the Rosenbrock discrete adjoint is not "
    "implemented yet; use sensitivity=paramest.Forward()"
)


def discrete_adjoint_vjp(problem, t_eval, weights, columns, method, rtol, atol, p, y0,
                         checkpoints, solve_options):
    """The gradient of ``sum(weights * y(t_eval))`` over ``columns`` by the discrete
    adjoint (see :class:`paramest.DiscreteAdjoint`)."""
    from paramest.solve import _AUTO_PAIR, _METHOD_TABLE, _method_entry, solve

    entry = _method_entry(method)
    _refuse_stiff(entry)
    if solve_options.get("dense_output"):
        raise ValueError("`dense_output` is not an option of vjp")
    active = _METHOD_TABLE[_AUTO_PAIR[0]] if entry.kind == "auto" else entry
    model = problem.model
    params = problem.p.copy() if p is None else as_vector(
        p, "p", allow_empty=True, size=problem.n_params, labels=problem.param_names,
        labels_arg="param_names",
    ).copy()
    param_idx = np.array(columns.params, dtype=np.int64)
    lam = np.zeros(problem.n_states)
    grad = np.zeros(max(len(columns.params), 1))
    weights_by_time = np.ascontiguousarray(weights.T)
    if checkpoints is None:
        sol = solve(problem, method, t_eval, rtol=rtol, atol=atol, p=params, y0=y0,
                    dense_output=True, **solve_options)
        if not sol.success:
            raise SolveError(f"vjp: the solve failed: {sol.message}", sol)
        if sol.switches:
            raise SwitchedToStiff(_SWITCHED.format(t=sol.switches[0][0]))
        step_t, step_h, step_y, step_k, _ = sol.sol._segments[0]
        step_end = np.empty_like(step_t)
        step_end[:-1] = step_t[1:]
        step_end[-1] = sol.t_final
        discrete_adjoint_explicit(
            model.addresses, _vjp_mode(model), active.tab, active.tab_info, step_t, step_h,
            step_y, step_k, step_end, np.ascontiguousarray(sol.t), weights_by_time, params,
            param_idx, lam, grad,
        )
    else:
        _checkpointed(problem, t_eval, weights_by_time, method, rtol, atol, params, y0,
                      checkpoints, solve_options, active, param_idx, lam, grad)
    return np.concatenate([grad[: len(columns.params)], lam[columns.y0]])


def _checkpointed(problem, t_eval, weights_by_time, method, rtol, atol, params, y0,
                  checkpoints, solve_options, active, param_idx, lam, grad):
    from paramest.solve import _check_t_eval, _message, _validated_options

    unknown = set(solve_options) - {"first_step", "max_step", "max_steps", "dt"}
    if unknown:
        raise TypeError(f"vjp got unexpected keyword arguments {sorted(unknown)}")
    model = problem.model
    n = problem.n_states
    t0, t_end = problem.t_span
    _, atol_vector, fopts, iopts = _validated_options(
        method, rtol, atol, solve_options.get("first_step"),
        solve_options.get("max_step", np.inf), solve_options.get("max_steps", 100_000), True,
        solve_options.get("dt"), t0, t_end, n,
    )
    iopts = iopts[1]
    times = _check_t_eval(t_eval, t0, t_end)
    state = problem.y0.copy() if y0 is None else as_vector(
        y0, "y0", size=n, labels=problem.state_names, labels_arg="state_names"
    ).copy()
    field = plain_field(model.addresses)
    stages = np.empty((active.s_total, n))
    t_out = np.empty(times.shape[0])
    y_out = np.empty((times.shape[0], n))
    dense_t = np.empty(checkpoints)
    dense_h = np.empty(checkpoints)
    dense_y = np.empty((checkpoints, n))
    dense_k = np.empty((checkpoints, active.s_total, n))
    fstate = float_state()
    istate = int_state()

    def advance():
        """Run the integrator until its store is full or the solve ends; returns the
        status, any exception inside the model turned into a failure."""
        previous_hook = sys.unraisablehook
        sys.unraisablehook = record_model_exception
        before = MODEL_EXCEPTIONS.count
        MODEL_EXCEPTIONS.first = None
        try:
            code = integrate(field, state, params, atol_vector, fopts, iopts, active.tab,
                             active.tab_info, times, t_out, y_out, dense_t, dense_h, dense_y,
                             dense_k, stages, fstate, istate)
        finally:
            sys.unraisablehook = previous_hook
        if MODEL_EXCEPTIONS.count != before:
            raise SolveError(
                "vjp: the solve failed: "
                + describe_model_exception(MODEL_EXCEPTIONS.first)
            )
        return code

    # forward: a snapshot at the start of every segment of ``checkpoints`` steps
    segments = []
    while True:
        snapshot = (fstate.copy(), istate.copy(), state.copy(), stages.copy())
        outputs_before = int(istate[st.I_N_OUT])
        code = advance()
        segments.append((snapshot, int(istate[st.I_N_DENSE]), outputs_before,
                         int(istate[st.I_N_OUT]), float(fstate[st.F_T])))
        if code == st.DENSE_FULL:
            istate[st.I_N_DENSE] = 0
            continue
        if code == st.SUCCESS:
            break
        if code == st.SWITCH_TO_STIFF:
            raise SwitchedToStiff(_SWITCHED.format(t=float(fstate[st.F_T])))
        raise SolveError(
            "vjp: the solve failed: " + _message(
                code, float(fstate[st.F_T]), float(fstate[st.F_H]), t_end,
                int(iopts[st.IO_MAX_STEPS]), bool(istate[st.I_STIFFNESS_DETECTED]),
                float(fstate[st.F_T_STIFF]), active.name,
            )
        )

    # reverse: the last segment's steps are still in the store; replay the others
    mode = _vjp_mode(model)
    for index in range(len(segments) - 1, -1, -1):
        snapshot, n_steps, out_lo, out_hi, t_after = segments[index]
        if index != len(segments) - 1:
            for record, saved in zip((fstate, istate, state, stages), snapshot, strict=True):
                record[...] = saved
            istate[st.I_N_DENSE] = 0
            code = advance()
            if code != st.DENSE_FULL or int(istate[st.I_N_DENSE]) != n_steps:
                raise RuntimeError(  # pragma: no cover - the kernels are deterministic
                    "DiscreteAdjoint: replaying a checkpointed segment took different steps"
                )
        if n_steps == 0:
            continue
        step_end = np.empty(n_steps)
        step_end[:-1] = dense_t[1:n_steps]
        step_end[-1] = t_after
        discrete_adjoint_explicit(
            model.addresses, mode, active.tab, active.tab_info, dense_t[:n_steps],
            dense_h[:n_steps], dense_y[:n_steps], dense_k[:n_steps], step_end,
            np.ascontiguousarray(times[out_lo:out_hi]),
            np.ascontiguousarray(weights_by_time[out_lo:out_hi]), params, param_idx, lam,
            grad,
        )
