"""Ensembles: many solves of one model with different parameters or initial states, in
parallel on every CPU core or on an NVIDIA GPU, one trajectory per thread.

:func:`solve_ensemble` validates once, sets up the compiled fields and option records once,
and runs :func:`paramest.kernels.ensemble.solve_ensemble`, a parallel loop that gives each
trajectory the same kernels (and so the same numbers) as :func:`paramest.solve`; with
``device="cuda"`` it runs the CUDA twin (:mod:`paramest.kernels.cuda.ensemble`) instead,
whose results stay on the device the inputs came from. ``numba.cuda`` (and CuPy) are
imported only on that path.
"""

import sys

import numpy as np
from scipy.optimize import OptimizeResult

from paramest import sensitivity as sens_methods
from paramest.errors import ModelError
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
        """``(array module, the successful trajectories' y, back)``: NumPy on the host,
        CuPy for CuPy arrays and (when CuPy is installed) for Numba device arrays, whose
        summaries are otherwise computed on the host; ``back`` returns a result to where
        ``y`` lives."""
        if self.n_success == 0:
            raise ValueError("no trajectory of this ensemble succeeded: nothing to summarise")
        kind = _array_kind(self.y)
        if kind == "numpy":
            return np, self.y[self.success], _unchanged
        if kind == "cupy":
            import cupy

            return cupy, self.y[self.success], _unchanged
        return _numba_successful(self.y, self.success)

    def mean(self):
        """The mean state over the successful trajectories, shape ``(n_states, n_times)``,
        on the device ``y`` is on."""
        _, successful, back = self._successful()
        return back(successful.mean(axis=0))

    def std(self, ddof=0):
        """The standard deviation over the successful trajectories (``ddof`` as NumPy's),
        on the device ``y`` is on."""
        _, successful, back = self._successful()
        return back(successful.std(axis=0, ddof=ddof))

    def quantile(self, q):
        """Quantiles over the successful trajectories: shape ``(n_states, n_times)`` for a
        scalar ``q``, ``(len(q), n_states, n_times)`` for a sequence; on the device ``y`` is
        on."""
        q_array = np.asarray(q, dtype=np.float64)
        if not np.all((q_array >= 0.0) & (q_array <= 1.0)):
            raise ValueError(f"`q` must lie in [0, 1], got {q!r}")
        xp, successful, back = self._successful()
        if xp is np:
            return back(np.quantile(successful, q_array, axis=0))
        return back(xp.quantile(successful, xp.asarray(q_array), axis=0))


def _unchanged(value):
    return value


def _array_kind(value):
    """"numpy", "cupy" or "numba" (see ``paramest.kernels.cuda.array_kind``)."""
    from paramest.kernels.cuda import array_kind

    return array_kind(value)


def _numba_successful(y, success):
    """:meth:`EnsembleSolution._successful` for Numba device arrays."""
    from numba import cuda

    from paramest.kernels.cuda import simulator_active

    cupy = None
    if not simulator_active():
        try:
            import cupy
        except ImportError:
            cupy = None
    if cupy is not None:
        return cupy, cupy.asarray(y)[cupy.asarray(success)], cuda.as_cuda_array
    return np, y.copy_to_host()[success.copy_to_host()], cuda.to_device


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

    With ``device="cuda"`` each trajectory runs in one thread of an NVIDIA GPU (the CUDA
    twins of the CPU kernels: the same tableaus, error norm, step-size controller and dense
    output, so the same steps up to rounding), for the methods ``"Tsit5"`` (adaptive, or
    fixed steps with ``dt``), ``"RK4"`` and ``"Euler"`` (fixed steps), in float64 or
    float32 (``dtype``). ``fun`` is compiled as a CUDA device function from the same Python
    source. ``p`` and ``y0`` may be NumPy arrays, CuPy arrays or Numba device arrays (any
    object with ``__cuda_array_interface__``), and the per-trajectory results (``y``,
    ``status``, ``success``, ``t_final``, counts) stay where the inputs were: NumPy in,
    NumPy out; CuPy in, CuPy out; Numba device arrays in, Numba device arrays out (``y``
    is then a ``(n_trajectories, n_states, n_times)`` view of the kernel's coalesced
    ``(n_states, n_times, n_trajectories)`` buffer). ``mean``/``std``/``quantile`` of a
    device result are computed on the device (with CuPy).

    Parameters
    ----------
    problem : ODEProblem
    p : array_like, shape (n_trajectories, n_params) or (n_params,), optional
    y0 : array_like, shape (n_trajectories, n_states) or (n_states,), optional
    t_eval : array_like, shape (n_times,)
        Output times (required: every trajectory is saved at the same times).
    method : str, default "Tsit5"
        Any method of :func:`paramest.solve`, ``"auto"`` included; on ``"cuda"``:
        ``"Tsit5"``, ``"RK4"``, ``"Euler"``.
    rtol, atol, dt, max_step, max_steps :
        As for :func:`paramest.solve`.
    sensitivity : Forward, optional
        Forward sensitivities for every trajectory (``sens_params``/``sens_y0`` choose the
        columns, as in :func:`paramest.solve`). CPU only.
    device : {"cpu", "cuda"}, default "cpu"
        Where to run. ``"cuda"`` needs an NVIDIA GPU, its driver and numba-cuda (CuPy is
        optional); without them it raises a RuntimeError saying what is missing, before
        any work. Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the CUDA
        kernels run, slowly, on the CPU.
    dtype : numpy dtype, default float64
        float64 on the CPU; float64 or float32 on ``"cuda"`` (the states, stages and model
        in float32; times and step-size control stay float64).

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
    NotImplementedError
        ``sensitivity=`` with ``device="cuda"``.
    RuntimeError
        ``device="cuda"`` where no GPU (or no numba-cuda) is available.
    ModelError
        ``device="cuda"`` and ``fun`` cannot be compiled as a CUDA device function.

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

    On a GPU (or under ``NUMBA_ENABLE_CUDASIM=1``), in float32 with fixed RK4 steps:

    >>> ens = pe.solve_ensemble(problem, p=rates, t_eval=[1.0], method="RK4", dt=0.01,
    ...                         device="cuda", dtype=np.float32)  # doctest: +SKIP
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
        return _solve_ensemble_cuda(
            problem, p, y0, t_eval, method, rtol, atol, dt, max_step, max_steps,
            sensitivity, sens_params, sens_y0, dtype,
        )
    if np.dtype(dtype) != np.float64:
        raise ValueError(
            f"`dtype` must be float64 on the CPU, got {np.dtype(dtype)} (float32 runs with "
            "device='cuda')"
        )
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


# --- device="cuda" ----------------------------------------------------------------------

_CUDA_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: NumPy functions and methods that create arrays: CUDA device code cannot allocate
_ARRAY_CREATION = frozenset({
    "array", "asarray", "empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like",
    "full", "full_like", "arange", "linspace", "eye", "identity", "copy", "concatenate",
    "stack", "hstack", "vstack", "dot", "outer",
})


def _array_creation_in(py_func):
    """The names of array-creating calls ``py_func`` (or a function nested in it) makes."""
    from paramest.model import _names_in_code

    return sorted(_names_in_code(py_func) & _ARRAY_CREATION)


def _cuda_model(model, dtype):
    """The device function of ``model`` for ``dtype``: compiled (once per model and dtype)
    and checked, with a :class:`ModelError` naming ``fun`` and the construct when CUDA
    cannot run it."""
    from numba.core import errors as numba_errors

    from paramest.kernels.cuda import ensemble as kens
    from paramest.kernels.cuda import simulator_active
    from paramest.model import _compile_cause, _name, _numba_message

    py_func = model._py_func  # its name carries the hash of its code and outside values
    key = (py_func.__module__, py_func.__qualname__)
    created = _array_creation_in(py_func)
    allocation_hint = (
        f"It creates arrays ({', '.join('`' + name + '`' for name in created)}), and CUDA "
        "device code cannot allocate memory: write the derivative straight into `dydt` "
        "and keep intermediate values in scalar variables."
    ) if created else ""
    if created and simulator_active():
        # the simulator runs the Python source and would accept it; a GPU would not
        raise ModelError(
            f"`fun` ({_name(py_func)}) cannot run as a CUDA device function (device='cuda'). "
            + allocation_hint + " (Numba's CUDA simulator would run it, a GPU cannot "
            "compile it.)"
        )
    try:
        return kens.device_model(key, py_func, dtype)
    except (numba_errors.TypingError, numba_errors.LoweringError,
            numba_errors.UnsupportedError) as exc:
        cause = _compile_cause(py_func, exc, complex_build=False) or allocation_hint or (
            "CUDA device code compiles a smaller subset than the CPU: arithmetic and `math` "
            "functions on the arrays it receives and on scalars; no array creation, no "
            "Python objects, no calls to functions Numba cannot compile for CUDA."
        )
        raise ModelError(
            f"`fun` ({_name(py_func)}) could not be compiled as a CUDA device function "
            f"(device='cuda', dtype={np.dtype(dtype).name}). {cause} Numba said:\n"
            f"{_numba_message(exc)}"
        ) from None


def _cuda_rows(value, name, size, default):
    """``value`` as ``(rows, size)``, either validated host float64 rows or the caller's
    device array (a 1-D one reshaped to one row), and its kind."""
    from paramest.kernels.cuda import HOST, array_kind

    kind = HOST if value is None else array_kind(value)
    if kind == HOST:
        return _stack(value, name, size, None, None, default), kind
    dtype = np.dtype(value.dtype)
    if dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must be an array of real numbers, got {dtype}")
    shape = tuple(value.shape)
    if len(shape) not in (1, 2) or shape[-1] != size:
        raise ValueError(
            f"`{name}` must have shape (n_trajectories, {size}) or ({size},), got {shape}"
        )
    if len(shape) == 1:
        value = value.reshape(1, size)
    return value, kind


def _solve_ensemble_cuda(problem, p, y0, t_eval, method, rtol, atol, dt, max_step,
                         max_steps, sensitivity, sens_params, sens_y0, dtype):
    """:func:`solve_ensemble` with ``device="cuda"``."""
    from paramest.kernels.cuda import CUPY, HOST, METHODS, NUMBA, unavailable_reason
    from paramest.solve import (
        _check_not_stale,
        _check_t_eval,
        _message,
        _method_entry,
        _validated_options,
    )

    entry = _method_entry(method)
    if entry.name not in METHODS:
        raise ValueError(
            f"`method` {entry.name!r} is not available with device='cuda': the CUDA kernels "
            "run 'Tsit5' (adaptive, or fixed steps with `dt`), 'RK4' and 'Euler' (fixed "
            f"steps, `dt` required). Use device='cpu' for {entry.name!r}."
        )
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`dtype` must be np.float32 or np.float64, got {dtype!r}") from None
    if dtype not in _CUDA_DTYPES:
        raise ValueError(f"`dtype` must be float32 or float64 with device='cuda', got {dtype}")
    if sensitivity is not None or sens_params is not None or sens_y0 is not None:
        raise NotImplementedError(
            "`sensitivity` (and `sens_params`/`sens_y0`) is not available with "
            "device='cuda': the CUDA kernels solve the states only. Use device='cpu' for "
            "forward sensitivities of every trajectory."
        )
    if t_eval is None:
        raise ValueError("`t_eval` is required: every trajectory is saved at the same times")
    model = problem.model
    n = problem.n_states
    n_params = problem.n_params
    t0, t_end = problem.t_span
    _, atol_vector, fopts, iopts = _validated_options(
        method, rtol, atol, None, max_step, max_steps, False, dt, t0, t_end, n
    )
    max_steps = int(iopts[1][st.IO_MAX_STEPS])
    times = _check_t_eval(t_eval, t0, t_end)
    params, p_kind = _cuda_rows(p, "p", n_params, problem.p)
    states, y_kind = _cuda_rows(y0, "y0", n, problem.y0)
    if params.shape[0] != states.shape[0] and 1 not in (params.shape[0], states.shape[0]):
        raise ValueError(
            f"`p` has {params.shape[0]} rows and `y0` {states.shape[0]}: give them the same "
            "number of trajectories, or a single vector for one of them"
        )
    n_traj = max(params.shape[0], states.shape[0])
    if model.watches:
        _check_not_stale(model)
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(
            f"device='cuda' is not available here: {reason}. The CUDA kernels need an "
            "NVIDIA GPU with its driver and the numba-cuda package. Use device='cpu' (every "
            "core), or set NUMBA_ENABLE_CUDASIM=1 before Numba is imported to run the CUDA "
            "kernels in Numba's simulator (slow; for tests)."
        )

    from paramest.kernels.cuda import arrays
    from paramest.kernels.cuda import ensemble as kens

    # device inputs are checked on the device (their host twins were checked by _stack)
    for value, name, kind in ((params, "p", p_kind), (states, "y0", y_kind)):
        if kind != HOST and np.dtype(value.dtype).kind == "f":
            if arrays.count_non_finite(value) > 0:
                raise ValueError(f"`{name}` must be finite")
    device_model = _cuda_model(model, dtype)
    kernel = kens.ensemble_kernel(
        (model._py_func.__module__, model._py_func.__qualname__), device_model, entry.name,
        dt is None, n, n_params, dtype,
    )
    out_kind = CUPY if CUPY in (p_kind, y_kind) else NUMBA if NUMBA in (p_kind, y_kind) else HOST
    if n_params == 0:
        params = np.zeros((1, 1))  # a device array needs an element; the kernel reads none
    if p_kind == HOST:
        params = arrays.to_device(NUMBA, params)
    if y_kind == HOST:
        states = arrays.to_device(NUMBA, states)
    y_buffer = arrays.allocate(out_kind, (n, times.shape[0], n_traj), dtype)
    status = arrays.allocate(out_kind, n_traj, np.int32)
    t_final = arrays.allocate(out_kind, n_traj, np.float64)
    counts = arrays.allocate(out_kind, (kens.COUNT_ROWS, n_traj), np.int32)
    try:
        kens.launch(
            kernel, n_traj, states, params, arrays.to_device(NUMBA, atol_vector),
            arrays.to_device(NUMBA, fopts), max_steps, arrays.to_device(NUMBA, times),
            y_buffer, status, t_final, counts,
        )
    except Exception as exc:
        from paramest.kernels.cuda import simulator_active

        if not simulator_active():
            raise
        # the simulator runs the model as Python, so it can raise (a GPU cannot)
        raise RuntimeError(
            "the model raised an exception inside the CUDA ensemble (Numba's simulator): "
            f"{type(exc).__name__}: {exc}"
        ) from exc

    success = arrays.allocate(out_kind, n_traj, np.bool_)
    n_failed, first = arrays.summarise_status(status, success)
    if out_kind == HOST:
        y = np.ascontiguousarray(y_buffer.copy_to_host().transpose(2, 0, 1))
        status = status.copy_to_host().astype(np.int64)
        success = success.copy_to_host()
        t_final = t_final.copy_to_host()
        counts = counts.copy_to_host().astype(np.int64)
    else:
        y = arrays.permuted(y_buffer, (2, 0, 1))
    if n_failed == 0:
        message = f"All {n_traj} trajectories reached the end of the interval."
    else:
        message = (
            f"{n_failed} of {n_traj} trajectories failed; the first, trajectory {first}: "
            + _message(int(status[first]), float(t_final[first]), 0.0, t_end, max_steps,
                       False, float("nan"), entry.name)
        )
    return EnsembleSolution(
        t=times.copy(), y=y, sens=None, sens_labels=[], status=status, success=success,
        t_final=t_final, nfev=counts[ens.C_NFEV], njev=counts[ens.C_NJEV],
        nlu=counts[ens.C_NLU], n_accepted=counts[ens.C_N_ACCEPTED],
        n_rejected=counts[ens.C_N_REJECTED], switches=counts[ens.C_SWITCHES],
        n_success=n_traj - n_failed, method=entry.name, message=message,
    )
