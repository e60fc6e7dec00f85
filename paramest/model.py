"""Turning a user's Python model into compiled callables, and checking it.

A model is a plain function ``fun(t, y, p, dydt)`` that writes ``dy/dt`` into ``dydt``.
:func:`compile_model` compiles it three ways:

- a float64 ``cfunc`` whose address the integrators call (compiled once, cached on disk
  next to the user's source file, so a new process loads it in milliseconds);
- a complex128 ``cfunc`` for complex-step derivatives;
- on first use by a stiff (Rosenbrock) method, a ``cfunc`` with complex ``t`` as well, for
  the complex-step ``df/dt`` (:meth:`CompiledModel.time_derivative_address`);
- a bounds-checked float64 version used only by the model check, so that writing or
  reading past the end of ``dydt``, ``y`` or ``p`` becomes an error here rather than
  silent memory corruption inside a solve.

The model check then runs the model once at the initial state and compares a
complex-step Jacobian with central differences, which catches models that break the
complex step without failing to compile (``abs``, ``np.sign``, ``conj`` on the state).
"""

import dis
import inspect
import re
import types
import warnings

import numpy as np
from numba import cfunc, njit
from numba.core.errors import NumbaError

from paramest.errors import ComplexStepWarning, ModelError
from paramest.kernels.derivatives import (
    evaluate_model,
    jacobians_central,
    jacobians_complex_step,
    time_derivative_central,
    time_derivative_complex_step,
)
from paramest.kernels.fnptr import JAC_SIG_F64, RHS_SIG_C128, RHS_SIG_C128_T, RHS_SIG_F64

__all__ = ["CompiledModel", "compile_model"]

# A complex-step Jacobian entry may differ from central differences by the latter's
# truncation and rounding error (about eps**(2/3) relative); anything far beyond that
# means the complex step does not see the model's derivative.
_CHECK_RTOL = 1e-5
_CHECK_ATOL = 1e-7


class CompiledModel:
    """A user's model compiled for the kernels.

    Attributes
    ----------
    fun : callable
        The user's Python function.
    address : int
        Address of the float64 ``cfunc``.
    address_complex : int
        Address of the complex128 ``cfunc`` (0 when it could not be compiled).
    complex_step_safe : bool
        Whether complex-step derivatives of this model can be trusted.
    complex_step_problem : str or None
        Why not, when ``complex_step_safe`` is False.
    jac_address, jac_p_address : int
        Addresses of the user's ``jac`` / ``jac_p`` (0 when not given).
    autonomous : bool
        Whether ``fun`` never reads its ``t`` argument (found from its bytecode), so that
        ``df/dt`` is exactly zero and stiff solvers skip computing it.
    central_jacobian_warned : bool
        Whether a stiff solve has already warned that its Jacobians come from finite
        differences (the warning is given once per model).
    stiff_setups : dict
        The stiff solvers' per-model records (model addresses, derivative modes), per
        option record.
    """

    __slots__ = (
        "fun",
        "n_states",
        "n_params",
        "address",
        "address_complex",
        "complex_step_safe",
        "complex_step_problem",
        "jac_address",
        "jac_p_address",
        "autonomous",
        "central_jacobian_warned",
        "stiff_setups",
        "_py_func",
        "_time_address",
        "_keep_alive",
    )

    def time_derivative_address(self, t, y, p):
        """Address of the model compiled with complex ``t``, ``y`` and ``p``, whose complex
        step in ``t`` gives ``df/dt`` exactly; 0 when it cannot be used, and ``df/dt``
        then comes from central differences.

        Compiled on first call (cached on disk like the other versions) and checked once
        against central differences at ``(t, y, p)``. Models that apply ``math``
        functions to ``t`` (``math.sin(t)``) do not compile for a complex ``t``; NumPy's
        (``np.sin(t)``) do.
        """
        if self._time_address is None:
            self._time_address = self._compile_time_derivative(t, y, p)
        return self._time_address

    def _compile_time_derivative(self, t, y, p):
        if not self.complex_step_safe:
            return 0
        try:
            compiled = _compile(cfunc, self._py_func, sig=RHS_SIG_C128_T)
        except NumbaError:
            return 0
        y = np.array(y, dtype=np.float64)  # writable copies: the kernels take plain arrays
        p = np.array(p, dtype=np.float64)
        complex_step = np.empty(self.n_states)
        central = np.empty(self.n_states)
        time_derivative_complex_step(compiled.address, t, y, p, complex_step)
        time_derivative_central(self.address, t, y, p, central)
        if np.all(np.isfinite(central)) and _worst_mismatch(complex_step, central) is not None:
            return 0
        self._keep_alive = self._keep_alive + (compiled,)
        return compiled.address

    def __repr__(self):
        return (
            f"CompiledModel({_name(self.fun)}, n_states={self.n_states}, "
            f"n_params={self.n_params}, complex_step_safe={self.complex_step_safe})"
        )


def _name(fun):
    return getattr(fun, "__qualname__", getattr(fun, "__name__", repr(fun)))


def _python_function(fun, arg_name):
    """The plain Python function behind ``fun`` (unwrapping Numba dispatchers)."""
    py_func = getattr(fun, "py_func", fun)
    if not isinstance(py_func, types.FunctionType):
        raise TypeError(
            f"`{arg_name}` must be a plain Python function {arg_name}(t, y, p, out) "
            f"(a def or lambda that Numba can compile), got {type(fun).__name__}"
        )
    return py_func


def _check_arity(py_func, arg_name, names):
    try:
        params = list(inspect.signature(py_func).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - functions always have one
        return
    positional = [
        q for q in params
        if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD) and q.default is q.empty
    ]
    variadic = any(q.kind is q.VAR_POSITIONAL for q in params)
    if len(positional) != 4 and not (variadic and len(positional) < 4):
        listed = ", ".join(q.name for q in positional)
        raise TypeError(
            f"`{arg_name}` must take 4 arguments {arg_name}({names}); "
            f"it takes {len(positional)} ({listed})"
        )


def _reads_first_argument(py_func):
    """Whether any instruction of ``py_func`` (or a closure made inside it) refers to its
    first argument; a model that never does is autonomous."""
    code = py_func.__code__
    name = code.co_varnames[0]
    if name in code.co_cellvars:
        return True
    return any(
        instruction.argval == name and instruction.opname != "STORE_FAST"
        for instruction in dis.get_instructions(code)
        if instruction.opname.startswith(("LOAD_", "DELETE_"))
    )


def _renamed(py_func, suffix):
    """A copy of ``py_func`` with its own qualified name, so that Numba's on-disk cache
    keeps its compiled versions apart from those of the original."""
    clone = types.FunctionType(
        py_func.__code__, py_func.__globals__, py_func.__name__ + suffix,
        py_func.__defaults__, py_func.__closure__,
    )
    clone.__qualname__ = py_func.__qualname__ + suffix
    clone.__module__ = py_func.__module__
    return clone


def _compile(decorator_factory, py_func, **options):
    """Compile with the on-disk cache when the source lives in a file, without it otherwise
    (interactive sessions have no file to cache next to)."""
    try:
        return decorator_factory(cache=True, **options)(py_func)
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        return decorator_factory(cache=False, **options)(py_func)


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _numba_message(exc):
    """Numba's own explanation, shortened to what locates the problem: its headline, the
    reason, and the offending source line (Numba also lists every candidate overload)."""
    lines = [line.rstrip() for line in _ANSI_ESCAPE.sub("", str(exc)).splitlines()]
    lines = [line for line in lines if line.strip()]
    kept = lines[:3]
    for i, line in enumerate(lines):
        if line.lstrip().startswith("File \"") and ", line " in line:
            location = lines[i : i + 3]
            kept += [entry for entry in location if entry not in kept]
            break
    return "\n".join(kept)


def _compile_error(arg_name, py_func, exc):
    return ModelError(
        f"`{arg_name}` ({_name(py_func)}) could not be compiled by Numba. Write it with "
        "NumPy/math operations on the arrays it receives, call only Numba-compiled helpers, "
        f"and do not create Python objects inside it. Numba said:\n{_numba_message(exc)}"
    )


def _call_checked(checked, arg_name, py_func, args):
    try:
        checked(*args)
    except NumbaError as exc:
        raise _compile_error(arg_name, py_func, exc) from None
    except IndexError as exc:
        raise ModelError(
            f"`{arg_name}` ({_name(py_func)}) wrote or read past the end of an array: {exc}. "
            f"Check the indices it uses against the sizes it receives (y: {args[1].shape[0]}, "
            f"p: {args[2].shape[0]}, output: {args[3].shape})."
        ) from None


def _check_output(arg_name, py_func, checked, t0, y0, p, out, where):
    out.fill(np.nan)
    _call_checked(checked, arg_name, py_func, (t0, y0.copy(), p.copy(), out))
    if np.all(np.isfinite(out)):
        return
    bad = np.argwhere(~np.isfinite(out))[0]
    first_nan = out.copy()
    out.fill(0.0)
    _call_checked(checked, arg_name, py_func, (t0, y0.copy(), p.copy(), out))
    index = ", ".join(str(int(i)) for i in bad)
    if np.isnan(first_nan[tuple(bad)]) and np.isfinite(out[tuple(bad)]):
        raise ModelError(
            f"`{arg_name}` ({_name(py_func)}) did not assign out[{index}]: every entry of its "
            "output array must be written on every call (it is not zeroed beforehand)."
        )
    raise ModelError(
        f"`{arg_name}` ({_name(py_func)}) returned a non-finite value out[{index}] = "
        f"{first_nan[tuple(bad)]} at {where}. Check the model and the initial values."
    )


#: entries past the end of each array that the model check watches
_GUARD = 32


def _guarded_call(address, t0, y0, p, output_fill, guard_fill):
    """Call the model on views of padded buffers; return the whole padded output buffer."""
    n, n_p = y0.shape[0], p.shape[0]
    y_buffer = np.full(n + _GUARD, guard_fill)
    y_buffer[:n] = y0
    p_buffer = np.full(n_p + _GUARD, guard_fill)
    p_buffer[:n_p] = p
    out_buffer = np.full(n + _GUARD, guard_fill)
    out_buffer[:n] = output_fill
    evaluate_model(address, t0, y_buffer[:n], p_buffer[:n_p], out_buffer[:n])
    return out_buffer


def _check_model_output(py_func, address, t0, y0, p):
    """Run the compiled model at y0 and check its output.

    The arrays it receives are views of larger buffers: writing past the end of ``dydt``
    alters the padding, and reading past the end of ``y`` or ``p`` makes the output depend
    on the padding's value. Only when either is seen is a bounds-checked version compiled,
    to give Numba's precise error; a correct model costs no extra compilation.
    """
    n = y0.shape[0]
    huge = 1.5e300
    first = _guarded_call(address, t0, y0, p, np.nan, np.nan)  # padding NaN, output NaN
    second = _guarded_call(address, t0, y0, p, 0.0, huge)  # padding huge, output 0
    third = _guarded_call(address, t0, y0, p, 0.0, np.nan)  # padding NaN, output 0
    wrote_past_end = not (np.all(np.isnan(first[n:])) and np.all(second[n:] == huge))
    same = (second[:n] == third[:n]) | (np.isnan(second[:n]) & np.isnan(third[:n]))
    if wrote_past_end or not np.all(same):
        checked = _compile(njit, _renamed(py_func, "__checked"), boundscheck=True)
        _call_checked(checked, "fun", py_func, (t0, y0.copy(), p.copy(), np.empty(n)))
        raise ModelError(  # out of bounds beyond what the bounds-checked call exercised
            f"`fun` ({_name(py_func)}) wrote or read past the end of an array: its output "
            "depends on memory outside y, p or dydt. Check the indices it uses against the "
            f"sizes it receives (y: {n}, p: {p.shape[0]}, output: ({n},))."
        )
    output = first[:n]
    if np.all(np.isfinite(output)):
        return
    bad = int(np.argwhere(~np.isfinite(output))[0, 0])
    if np.isnan(output[bad]) and np.isfinite(third[bad]):
        raise ModelError(
            f"`fun` ({_name(py_func)}) did not assign out[{bad}]: every entry of its output "
            "array must be written on every call (it is not zeroed beforehand)."
        )
    raise ModelError(
        f"`fun` ({_name(py_func)}) returned a non-finite value out[{bad}] = {output[bad]} "
        f"at t={t0}, y=y0. Check the model and the initial values."
    )


def compile_model(fun, y0, p, t0, jac=None, jac_p=None):
    """Compile ``fun`` (and optional user Jacobians) and run the model check.

    Parameters
    ----------
    fun : callable
        ``fun(t, y, p, dydt)``, writing ``dy/dt`` into ``dydt`` in place.
    y0, p : ndarray
        Validated float64 initial state and parameters (sizes used by the check).
    t0 : float
        Time at which the check evaluates the model.
    jac, jac_p : callable, optional
        ``jac(t, y, p, J)`` filling ``df/dy`` (n, n) and ``jac_p(t, y, p, Jp)`` filling
        ``df/dp`` (n, n_params).

    Returns
    -------
    CompiledModel

    Raises
    ------
    TypeError
        ``fun`` is not a function of four arguments.
    ModelError
        Numba cannot compile it, it indexes past the end of an array, its output at
        ``y0`` is not finite or incomplete, or a user Jacobian disagrees with finite
        differences.

    Warns
    -----
    ComplexStepWarning
        The model's complex-step derivative disagrees with finite differences.

    Examples
    --------
    >>> import numpy as np
    >>> def decay(t, y, p, dydt):
    ...     dydt[0] = -p[0] * y[0]
    >>> model = compile_model(decay, np.array([1.0]), np.array([0.5]), 0.0)
    >>> model.complex_step_safe
    True
    """
    if not callable(fun):
        raise TypeError(f"`fun` must be a callable fun(t, y, p, dydt), got {type(fun).__name__}")
    py_func = _python_function(fun, "fun")
    _check_arity(py_func, "fun", "t, y, p, dydt")
    n, n_p = y0.shape[0], p.shape[0]
    keep_alive = []

    try:
        real = _compile(cfunc, py_func, sig=RHS_SIG_F64)
    except NumbaError as exc:
        raise _compile_error("fun", py_func, exc) from None
    keep_alive.append(real)
    _check_model_output(py_func, real.address, t0, y0, p)

    model = CompiledModel()
    model.fun = fun
    model.n_states = n
    model.n_params = n_p
    model.address = real.address
    model.address_complex = 0
    model.complex_step_safe = False
    model.complex_step_problem = None
    model.jac_address = 0
    model.jac_p_address = 0
    model.autonomous = not _reads_first_argument(py_func)
    model.central_jacobian_warned = False
    model.stiff_setups = {}
    model._py_func = py_func
    model._time_address = None

    try:
        complex_version = _compile(cfunc, py_func, sig=RHS_SIG_C128)
    except NumbaError as exc:
        model.complex_step_problem = (
            "it does not compile for complex128 states (" + _numba_message(exc).splitlines()[0]
            + ")"
        )
    else:
        keep_alive.append(complex_version)
        model.address_complex = complex_version.address
        model.complex_step_problem = _complex_step_disagreement(model, t0, y0, p)
        model.complex_step_safe = model.complex_step_problem is None
    if not model.complex_step_safe:
        warnings.warn(
            f"`fun` ({_name(py_func)}) is not complex-step safe: {model.complex_step_problem}. "
            "Derivatives will use finite differences, which are slower and less accurate. "
            "Usual causes are abs(), np.sign(), conj(), min()/max() or comparisons applied "
            "to the state; branch on y[i].real instead (e.g. `y[i] if y[i].real > 0 else "
            "-y[i]` for abs).",
            ComplexStepWarning,
            stacklevel=3,
        )

    if jac is not None:
        model.jac_address = _compile_jacobian(jac, "jac", (n, n), model, t0, y0, p, keep_alive)
    if jac_p is not None:
        model.jac_p_address = _compile_jacobian(
            jac_p, "jac_p", (n, n_p), model, t0, y0, p, keep_alive
        )
    model._keep_alive = tuple(keep_alive)
    return model


def _check_points(y0, p):
    # y0 itself, and a nearby generic point: models can be accidentally right at special
    # points (abs at a positive state is, for instance), so look at two.
    rng = np.random.default_rng(20240601)
    y1 = y0 * (1.0 + 0.05 * rng.uniform(-1.0, 1.0, y0.shape)) + 1e-3 * rng.uniform(
        -1.0, 1.0, y0.shape
    )
    return [y0, y1]


def _jacobians(model, t0, y, p, method):
    n, n_p = model.n_states, model.n_params
    jac_y = np.empty((n, n))
    jac_p = np.empty((n, n_p))
    if method == "complex":
        jacobians_complex_step(model.address_complex, t0, y, p, jac_y, jac_p)
    else:
        jacobians_central(model.address, t0, y, p, jac_y, jac_p)
    return jac_y, jac_p


def _worst_mismatch(approx, reference):
    scale = _CHECK_ATOL * max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    excess = np.abs(approx - reference) - (_CHECK_RTOL * np.abs(reference) + scale)
    if excess.size == 0 or not np.any(excess > 0):
        return None
    return np.unravel_index(int(np.argmax(excess)), excess.shape)


def _complex_step_disagreement(model, t0, y0, p):
    for y in _check_points(y0, p):
        cs_y, cs_p = _jacobians(model, t0, y, p, "complex")
        fd_y, fd_p = _jacobians(model, t0, y, p, "central")
        if not (np.all(np.isfinite(fd_y)) and np.all(np.isfinite(fd_p))):
            continue  # outside the model's domain: no verdict from this point
        for label, cs, fd in (("df/dy", cs_y, fd_y), ("df/dp", cs_p, fd_p)):
            where = _worst_mismatch(cs, fd)
            if where is not None:
                return (
                    f"its complex-step {label}[{where[0]}, {where[1]}] = {cs[where]:.6g} "
                    f"disagrees with central differences ({fd[where]:.6g})"
                )
    return None


def _compile_jacobian(user_jac, arg_name, shape, model, t0, y0, p, keep_alive):
    if not callable(user_jac):
        raise TypeError(
            f"`{arg_name}` must be a callable {arg_name}(t, y, p, out), got "
            f"{type(user_jac).__name__}"
        )
    py_func = _python_function(user_jac, arg_name)
    _check_arity(py_func, arg_name, "t, y, p, out")
    checked = _compile(njit, _renamed(py_func, "__checked"), boundscheck=True)
    out = np.empty(shape)
    _check_output(arg_name, py_func, checked, t0, y0, p, out, f"t={t0}, y=y0")
    try:
        compiled = _compile(cfunc, py_func, sig=JAC_SIG_F64)
    except NumbaError as exc:  # pragma: no cover - the checked compile fails first
        raise _compile_error(arg_name, py_func, exc) from None
    keep_alive.append(compiled)

    method = "complex" if model.complex_step_safe else "central"
    for y in _check_points(y0, p):
        ref_y, ref_p = _jacobians(model, t0, y, p, method)
        reference = ref_y if arg_name == "jac" else ref_p
        if not np.all(np.isfinite(reference)):
            continue
        given = np.full(shape, np.nan)
        _call_checked(checked, arg_name, py_func, (t0, y.copy(), p.copy(), given))
        tolerance = 1e-6 if method == "complex" else 1e-4
        scale = tolerance * max(1.0, float(np.max(np.abs(reference), initial=0.0)))
        bad = ~(np.abs(given - reference) <= tolerance * np.abs(reference) + scale)
        if np.any(bad):
            i, j = np.argwhere(bad)[0]
            source = "complex-step" if method == "complex" else "central-difference"
            raise ModelError(
                f"`{arg_name}` disagrees with the {source} derivative of `fun`: "
                f"entry [{i}, {j}] is {given[i, j]:.6g}, expected about {reference[i, j]:.6g}. "
                f"Check `{arg_name}` (row i is the derivative of dydt[i])."
            )
    return compiled.address
