"""Ensembles: many solves of one model with different parameters or initial states, in
parallel on every CPU core (GPUs come with the CUDA kernels).

:func:`solve_ensemble` validates once, sets up the compiled fields and option records once,
and runs :func:`paramest.kernels.ensemble.solve_ensemble`, a parallel loop that gives each
trajectory the same kernels (and so the same numbers) as :func:`paramest.solve`.
"""

import sys

import numpy as np
from scipy.optimize import OptimizeResult

from paramest import sensitivity as sens_methods
from paramest.kernels import ensemble as ens
from paramest.kernels import status as st
from paramest.kernels.fields import plain_field
from paramest.model import MODEL_EXCEPTIONS, record_model_exception
from paramest.problems import ODEProblem

__all__ = ["EnsembleSolution", "solve_ensemble"]


class EnsembleSolution(OptimizeResult):
    """The result of :func:`solve_ensemble`, a :class:`scipy.optimize.OptimizeResult`.

    Attributes
    ----------
    t : ndarray, shape (n_times,)
        The output times.
    y : ndarray, shape (n_trajectories, n_states, n_times)
        Each trajectory's states at ``t``; NaN at the times a failed trajectory did not
        reach.
    sens : ndarray, shape (n_trajectories, n_states, n_sens, n_times), or None
        With ``sensitivity=``: each trajectory's sensitivities (NaN where not reached).
    sens_labels : list of str
    status : ndarray of int, shape (n_trajectories,)
        Each trajectory's status code, as :attr:`Solution.status` (0 success).
    success : ndarray of bool, shape (n_trajectories,)
        ``status == 0``. One failed trajectory never hides or spoils the others.
    t_final : ndarray, shape (n_trajectories,)
        The time each trajectory reached.
    nfev, njev, nlu, n_accepted, n_rejected, switches : ndarray of int
        Per-trajectory counts (``switches``: how often ``method="auto"`` switched).
    n_success : int
    method : str
    message : str
        How many trajectories succeeded, and the first failure's status.
    """

    def _successful(self):
        if self.n_success == 0:
            raise ValueError("no trajectory of this ensemble succeeded: nothing to summarise")
        return self.y[self.success]

    def mean(self):
        """The mean state over the successful trajectories, shape ``(n_states, n_times)``."""
        return self._successful().mean(axis=0)

    def std(self, ddof=0):
        """The standard deviation over the successful trajectories (``ddof`` as NumPy's)."""
        return self._successful().std(axis=0, ddof=ddof)

    def quantile(self, q):
        """Quantiles over the successful trajectories: shape ``(n_states, n_times)`` for a
        scalar ``q``, ``(len(q), n_states, n_times)`` for a sequence."""
        q_array = np.asarray(q, dtype=np.float64)
        if not np.all((q_array >= 0.0) & (q_array <= 1.0)):
            raise ValueError(f"`q` must lie in [0, 1], got {q!r}")
        return np.quantile(self._successful(), q_array, axis=0)


def _stack(value, name, size, labels, labels_arg, default):
    """``value`` as ``(N, size)`` rows (a single vector is one row, broadcast later)."""
    if value is None:
        return default[np.newaxis, :]
    array = np.asarray(value)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(
        array
    ):
        raise TypeError(f"`{name}` must be an array of real numbers, got {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != size:
        raise ValueError(
            f"`{name}` must have shape (n_trajectories, {size}) or ({size},), got "
            f"{np.shape(value)}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite")
    return array


def solve_ensemble(problem, p=None, y0=None, t_eval=None, method="Tsit5", *, rtol=1e-6,
                   atol=1e-8, dt=None, max_step=np.inf, max_steps=100_000, sensitivity=None,
                   sens_params=None, sens_y0=None, device="cpu", dtype=np.float64):
    """Solve one model for many parameter vectors and/or initial states at once.

    Trajectory ``i`` uses ``p[i]`` and ``y0[i]``; either may be a single vector (or None:
    the problem's), broadcast to every trajectory. On the CPU the trajectories run in
    parallel over all cores (Numba's threads; ``NUMBA_NUM_THREADS`` or
    ``numba.set_num_threads`` sets how many), each with its own step-size control: the
    result of each is bitwise that of :func:`paramest.solve` with the same method and
    options.

    Parameters
    ----------
    problem : ODEProblem
    p : array_like, shape (n_trajectories, n_params) or (n_params,), optional
    y0 : array_like, shape (n_trajectories, n_states) or (n_states,), optional
    t_eval : array_like, shape (n_times,)
        Output times (required: every trajectory is saved at the same times).
    method : str, default "Tsit5"
        Any method of :func:`paramest.solve`, ``"auto"`` included.
    rtol, atol, dt, max_step, max_steps :
        As for :func:`paramest.solve`.
    sensitivity : Forward, optional
        Forward sensitivities for every trajectory (``sens_params``/``sens_y0`` choose the
        columns, as in :func:`paramest.solve`).
    device : {"cpu", "cuda"}, default "cpu"
        Where to run. ``"cuda"`` (one trajectory per GPU thread) is not available in this
        release and raises a clear error.
    dtype : numpy dtype, default float64
        float64 on the CPU.

    Returns
    -------
    EnsembleSolution
        ``y`` of shape ``(n_trajectories, n_states, n_times)``, per-trajectory ``status``
        and ``success``, counts, and ``mean()``, ``std()``, ``quantile(q)`` over the
        successful trajectories.

    Raises
    ------
    TypeError, ValueError
        For malformed arguments, before any solve; the message names the argument.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> problem = pe.ODEProblem(decay, [1.0], (0.0, 1.0), [1.0])
    >>> rates = np.linspace(0.5, 2.0, 4)[:, None]
    >>> ens = pe.solve_ensemble(problem, p=rates, t_eval=[1.0], rtol=1e-10, atol=1e-12)
    >>> ens.y.shape, bool(ens.success.all())
    ((4, 1, 1), True)
    >>> np.round(ens.y[:, 0, -1], 6)
    array([0.606531, 0.367879, 0.22313 , 0.135335])
    """
    from paramest.solve import (
        _AUTO_PAIR,
        _METHOD_TABLE,
        _check_not_stale,
        _check_t_eval,
        _message,
        _rosenbrock_setup,
        _sensitivity_setup,
        _validated_options,
    )

    if not isinstance(problem, ODEProblem):
        raise TypeError(f"`problem` must be an ODEProblem, got {type(problem).__name__}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"`device` must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        raise NotImplementedError(
            "device='cuda' is not available yet: the CUDA ensemble kernels are not in this "
            "release; use device='cpu' (every core)"
        )
    if np.dtype(dtype) != np.float64:
        raise ValueError(f"`dtype` must be float64 on the CPU, got {np.dtype(dtype)}")
    if t_eval is None:
        raise ValueError("`t_eval` is required: every trajectory is saved at the same times")
    model = problem.model
    n = problem.n_states
    t0, t_end = problem.t_span
    params = _stack(p, "p", problem.n_params, problem.param_names, "param_names", problem.p)
    states = _stack(y0, "y0", n, problem.state_names, "state_names", problem.y0)
    if params.shape[0] != states.shape[0] and 1 not in (params.shape[0], states.shape[0]):
        raise ValueError(
            f"`p` has {params.shape[0]} rows and `y0` {states.shape[0]}: give them the same "
            "number of trajectories, or a single vector for one of them"
        )
    n_traj = max(params.shape[0], states.shape[0])
    params = np.ascontiguousarray(np.broadcast_to(params, (n_traj, params.shape[1])))
    states = np.broadcast_to(states, (n_traj, n))
    entry, atol_vector, fopts, iopts = _validated_options(
        method, rtol, atol, None, max_step, max_steps, False, dt, t0, t_end, n
    )
    iopts = iopts[1]
    times = _check_t_eval(t_eval, t0, t_end)
    if model.watches:
        _check_not_stale(model)

    columns = None
    wrap = plain_field
    kernel_atol = atol_vector
    if sensitivity is not None:
        sens_methods.check_method(sensitivity, entry.kind, entry.name)
        if not isinstance(sensitivity, sens_methods.Forward):
            raise ValueError(
                "`sensitivity` in an ensemble must be paramest.Forward(), got "
                f"{sensitivity!r}"
            )
        setup = _sensitivity_setup(problem, sensitivity, sens_params, sens_y0)
        columns = setup.columns
        wrap = setup.wrap
        kernel_atol = setup.tolerances(atol_vector)
        start = np.stack([sens_methods.initial_augmented_state(row, columns)
                          for row in states])
    elif sens_params is not None or sens_y0 is not None:
        raise ValueError(
            "`sens_params` and `sens_y0` choose sensitivity columns: pass `sensitivity=` as "
            "well (paramest.Forward())"
        )
    else:
        start = np.ascontiguousarray(states)
    n_all = start.shape[1]

    explicit = _METHOD_TABLE[_AUTO_PAIR[0]] if entry.kind == "auto" else entry
    stiff = _METHOD_TABLE[_AUTO_PAIR[1]] if entry.kind != "rosenbrock" else entry
    stiff_addresses, stiff_record = _rosenbrock_setup(model, states[0], params[0], t0, iopts)
    if entry.kind == "rosenbrock":
        family = ens.FAMILY_ROSENBROCK
        explicit = _METHOD_TABLE[_AUTO_PAIR[0]]  # unused; any explicit tableau types the call
    elif entry.kind == "auto":
        family = ens.FAMILY_AUTO
    else:
        family = ens.FAMILY_EXPLICIT

    y_out = np.full((n_traj, times.shape[0], n_all), np.nan)
    status = np.empty(n_traj, dtype=np.int64)
    t_final = np.empty(n_traj)
    counts = np.zeros((n_traj, ens.C_SIZE), dtype=np.int64)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = record_model_exception
    exceptions_before = MODEL_EXCEPTIONS.count
    try:
        ens.solve_ensemble(
            family, wrap(model.addresses), wrap(stiff_addresses), start, params,
            kernel_atol, fopts, iopts, stiff_record, explicit.tab, explicit.tab_info,
            stiff.tab, stiff.tab_info, times, y_out, status, t_final, counts,
        )
    finally:
        sys.unraisablehook = previous_hook
    if MODEL_EXCEPTIONS.count != exceptions_before:
        # a model that raised inside a parallel loop cannot say which trajectory it was in
        raise RuntimeError(
            "the model raised an exception inside the ensemble; solve the trajectories "
            "one by one with paramest.solve to see which and why"
        )

    outputs = np.moveaxis(y_out, 1, 2)  # (N, n_all, n_times)
    y = np.ascontiguousarray(outputs[:, :n])
    sens = None
    labels = []
    if columns is not None:
        k = len(columns)
        sens = np.ascontiguousarray(
            outputs[:, n:].reshape(n_traj, k, n, times.shape[0]).transpose(0, 2, 1, 3)
        )
        labels = list(columns.labels)
    success = status == st.SUCCESS
    n_success = int(success.sum())
    if n_success == n_traj:
        message = f"All {n_traj} trajectories reached the end of the interval."
    else:
        first = int(np.flatnonzero(~success)[0])
        message = (
            f"{n_traj - n_success} of {n_traj} trajectories failed; the first, trajectory "
            f"{first}: " + _message(
                int(status[first]), float(t_final[first]), 0.0, t_end,
                int(iopts[st.IO_MAX_STEPS]), False, float("nan"), entry.name,
                columns is not None,
            )
        )
    return EnsembleSolution(
        t=times.copy(), y=y, sens=sens, sens_labels=labels, status=status, success=success,
        t_final=t_final, nfev=counts[:, ens.C_NFEV], njev=counts[:, ens.C_NJEV],
        nlu=counts[:, ens.C_NLU], n_accepted=counts[:, ens.C_N_ACCEPTED],
        n_rejected=counts[:, ens.C_N_REJECTED], switches=counts[:, ens.C_SWITCHES],
        n_success=n_success, method=entry.name, message=message,
    )
