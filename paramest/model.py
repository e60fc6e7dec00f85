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

Every version is compiled with IEEE arithmetic (``error_model="numpy"``) under a name that
carries a hash of the code and of the values it reads from outside its arguments
(:mod:`paramest.fingerprint`), so that a changed global, closure value or helper is never
served from a stale compiled version.

The model check then runs the model once at the initial state and compares a
complex-step Jacobian with central differences, which catches models that break the
complex step without failing to compile (``abs``, ``np.sign``, ``conj`` on the state).
"""

import dis
import inspect
import re
import sys
import types
import warnings

import numpy as np
from numba import cfunc, njit
from numba.core.errors import NumbaError

from paramest.errors import ComplexStepWarning, ModelError
from paramest.fingerprint import model_dependencies
from paramest.kernels.derivatives import (
    CENTRAL_BASE_STEP,
    evaluate_model,
    jacobians_central,
    jacobians_complex_step,
    time_derivative_central,
    time_derivative_complex_step,
)
from paramest.kernels.fields import model_addresses
from paramest.kernels.fnptr import (
    JAC_SIG_F64,
    RHS_SIG_C128,
    RHS_SIG_C128_T,
    RHS_SIG_F64,
    VJP_SIG_F64,
)

#: IEEE arithmetic in compiled models: ``x / 0.0`` is inf or NaN, which the kernels detect,
#: instead of a ZeroDivisionError that a compiled callback can only print and ignore.
_ERROR_MODEL = "numpy"

__all__ = ["CompiledModel", "CompiledObservation", "compile_model", "compile_observation"]

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
    jac_address : int
        Address of the user's ``jac`` (0 when not given).
    vjp_address : int
        Address of the user's ``vjp`` (0 when not given).
    dependencies : paramest.fingerprint.ModelDependencies
        The hash of the code and outside values the model was compiled with, and where
        they were read (``watches``, checked before each solve).
    autonomous : bool
        Whether ``fun`` never reads its ``t`` argument (found from its bytecode), so that
        ``df/dt`` is exactly zero and stiff solvers skip computing it.
    central_jacobian_warned : bool
        Whether a stiff solve has already warned that its Jacobians come from finite
        differences (the warning is given once per model).
    stiff_setups : dict
        The stiff solvers' per-model records (model addresses, derivative modes), per
        option record.
    addresses : ndarray of int64
        The kernels' address record of the compiled versions (``kernels.fields.A_*``).
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
        "vjp_address",
        "autonomous",
        "dependencies",
        "watches",
        "central_jacobian_warned",
        "stiff_setups",
        "addresses",
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
        except Exception:  # noqa: BLE001 - no complex t: differences in t instead
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


_KEY_SUFFIX = re.compile(r"__pe[0-9a-f]{20}")


def _name(fun):
    """The name a user gave ``fun`` (without the key of its compiled clone)."""
    name = getattr(fun, "__qualname__", getattr(fun, "__name__", repr(fun)))
    return _KEY_SUFFIX.sub("", name)


def _python_function(fun, arg_name):
    """The plain Python function behind ``fun`` (unwrapping Numba dispatchers)."""
    py_func = getattr(fun, "py_func", fun)
    if not isinstance(py_func, types.FunctionType):
        raise TypeError(
            f"`{arg_name}` must be a plain Python function {arg_name}(t, y, p, out) "
            f"(a def or lambda that Numba can compile), got {type(fun).__name__}"
        )
    return py_func


_SCIPY_STYLE_HINT = """
paramest models write the derivative into their last argument instead of returning it, and
read parameters from `p` instead of extra arguments. A scipy-style

    def f(t, y, k):
        return [-k * y[0], k * y[0]]

becomes

    def f(t, y, p, dydt):
        dydt[0] = -p[0] * y[0]
        dydt[1] = p[0] * y[0]

with the parameter values passed as ODEProblem(f, y0, t_span, p=[k])."""


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
    count = len(names.split(", "))
    if len(positional) != count and not (variadic and len(positional) < count):
        listed = ", ".join(q.name for q in positional)
        hint = _SCIPY_STYLE_HINT if arg_name == "fun" and len(positional) < 4 else ""
        raise TypeError(
            f"`{arg_name}` must take {count} arguments {arg_name}({names}); "
            f"it takes {len(positional)} ({listed}).{hint}"
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
    (interactive sessions have no file to cache next to), with IEEE arithmetic."""
    options.setdefault("error_model", _ERROR_MODEL)
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
    cause = _compile_cause(py_func, exc, complex_build=False)
    return ModelError(
        f"`{arg_name}` ({_name(py_func)}) could not be compiled by Numba. "
        + (cause + " " if cause else "Write it with NumPy/math operations on the arrays it "
           "receives, call only Numba-compiled helpers, and do not create Python objects "
           "inside it. ")
        + f"Numba said:\n{_numba_message(exc)}"
    )


#: functions and methods whose complex-step derivative is wrong or undefined
_NON_ANALYTIC = (
    "abs", "absolute", "fabs", "sign", "conj", "conjugate", "angle", "floor", "ceil",
    "round", "rint", "trunc", "fix", "mod", "fmod", "remainder", "maximum", "minimum",
    "fmax", "fmin", "max", "min", "clip", "heaviside",
)
#: how Numba names a comparison it cannot do on complex numbers
_COMPARISON = re.compile(r"built-in function (gt|lt|ge|le)>|operator\.(gt|lt|ge|le)\b")


def _names_in_code(py_func):
    names = set()
    stack = [py_func.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def _compile_cause(py_func, exc, complex_build):
    """A sentence naming the likely cause of a Numba compile failure and its fix, or ''."""
    text = _ANSI_ESCAPE.sub("", str(exc))
    names = _names_in_code(py_func)
    if "to none" in text and "No conversion from" in text:
        return (
            "It returns a value: models write the derivative into their last argument and "
            "return nothing (write `dydt[0] = ...`, `dydt[1] = ...` instead of "
            "`return np.array([...])`)."
        )
    if not complex_build:
        return ""
    if _COMPARISON.search(text) or (
        "lowering" in text and ("max" in names or "min" in names)
    ):
        return (
            "It compares complex numbers (a comparison, min() or max() applied to the state "
            "or to p), which the complex step cannot do: compare real parts instead, e.g. "
            "`y[0] if y[0].real > 0.0 else 0.0` for max(y[0], 0.0), or `if y[0].real > 1.0:`."
        )
    if "math" in names and "complex128" in text and (
        "No implementation" in text or "built-in function" in text
    ):
        return (
            "It calls a `math` function on complex values: `math.exp`, `math.sqrt`, "
            "`math.log`, ... accept real numbers only; use NumPy's (`np.exp`, `np.sqrt`, "
            "`np.log`), which also accept the complex numbers of the complex step."
        )
    if "complex128" in text and ("float64" in text or "setitem" in text):
        return (
            "It stores complex values in a real array made inside the function "
            "(np.zeros(n), np.empty(n), np.ones(n) or np.array of floats): create work "
            "arrays with the state's dtype, e.g. `np.zeros(n, dtype=y.dtype)` or "
            "`np.empty_like(y)`."
        )
    return (
        "The complex step runs the model on complex numbers: use NumPy functions, no "
        "comparisons on the state, work arrays with `dtype=y.dtype`; or pass `jac=` to "
        "ODEProblem."
    )


class _ModelExceptions:
    """Exceptions raised inside compiled models during a solve or a model check.

    A ``cfunc`` cannot hand an exception to the kernel that calls it: Numba's wrapper passes
    it to ``sys.unraisablehook`` (which prints it) and returns with the output partly
    written. The models themselves use IEEE arithmetic and do not raise, but a helper they
    call may (one compiled earlier with Python's error model dividing by zero, a ``raise``
    statement). While a solve runs, :func:`record_model_exception` is the hook: it counts
    such exceptions and keeps the first, so the solve reports them as a failure instead of
    flooding stderr and returning wrong values as a success.
    """

    __slots__ = ("count", "first")

    def __init__(self):
        self.count = 0
        self.first = None


MODEL_EXCEPTIONS = _ModelExceptions()


def record_model_exception(unraisable):
    """``sys.unraisablehook`` while compiled models run (see :class:`_ModelExceptions`)."""
    source = unraisable.object
    if isinstance(source, str) and "numba" in source:
        MODEL_EXCEPTIONS.count += 1
        if MODEL_EXCEPTIONS.first is None:
            MODEL_EXCEPTIONS.first = unraisable.exc_value
        return
    sys.__unraisablehook__(unraisable)


def describe_model_exception(exc):
    """The sentence a failed solve or model check gives for an exception a model raised."""
    kind = type(exc).__name__ if exc is not None else "an exception"
    detail = f": {exc}" if exc is not None and str(exc) else ""
    advice = (
        "Guard the denominator, or compile helpers with @njit(error_model='numpy') so that "
        "division by zero gives inf/NaN"
        if isinstance(exc, ZeroDivisionError)
        else "Check the model and the helpers it calls"
    )
    return f"the model raised {kind}{detail} inside compiled code. {advice}."


def _call_model(address, t, y, p, out):
    """Call the compiled model once from Python; an exception it raises is re-raised as a
    ModelError naming it."""
    previous_hook = sys.unraisablehook
    sys.unraisablehook = record_model_exception
    MODEL_EXCEPTIONS.first = None
    before = MODEL_EXCEPTIONS.count
    try:
        evaluate_model(address, t, y, p, out)
    finally:
        sys.unraisablehook = previous_hook
    if MODEL_EXCEPTIONS.count != before:
        raise ModelError(
            f"`fun` failed at t={t}, y=y0: {describe_model_exception(MODEL_EXCEPTIONS.first)}"
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


def _guarded_call(address, t0, y0, p, output_fill, guard_fill, m):
    """Call the model on views of padded buffers (an output of ``m`` entries); return the
    whole padded output buffer."""
    n, n_p = y0.shape[0], p.shape[0]
    y_buffer = np.full(n + _GUARD, guard_fill)
    y_buffer[:n] = y0
    p_buffer = np.full(n_p + _GUARD, guard_fill)
    p_buffer[:n_p] = p
    out_buffer = np.full(m + _GUARD, guard_fill)
    out_buffer[:m] = output_fill
    _call_model(address, t0, y_buffer[:n], p_buffer[:n_p], out_buffer[:m])
    return out_buffer


def _guarded_probe(address, t0, y0, p, m):
    """Three guarded calls: returns ``(output, zero_filled_output, outside)``, the output
    with NaN beforehand, the output with zeros beforehand, and whether the function wrote
    past the end of its output or read past the end of ``y`` or ``p`` (its output then
    depends on the padding's value)."""
    huge = 1.5e300
    first = _guarded_call(address, t0, y0, p, np.nan, np.nan, m)  # padding NaN, output NaN
    second = _guarded_call(address, t0, y0, p, 0.0, huge, m)  # padding huge, output 0
    third = _guarded_call(address, t0, y0, p, 0.0, np.nan, m)  # padding NaN, output 0
    wrote_past_end = not (np.all(np.isnan(first[m:])) and np.all(second[m:] == huge))
    same = (second[:m] == third[:m]) | (np.isnan(second[:m]) & np.isnan(third[:m]))
    return first[:m], third[:m], wrote_past_end or not np.all(same)


def _check_model_output(py_func, address, t0, y0, p):
    """Run the compiled model at y0 and check its output.

    The arrays it receives are views of larger buffers: writing past the end of ``dydt``
    alters the padding, and reading past the end of ``y`` or ``p`` makes the output depend
    on the padding's value. Only when either is seen is a bounds-checked version compiled,
    to give Numba's precise error; a correct model costs no extra compilation.
    """
    n = y0.shape[0]
    output, zero_filled, outside = _guarded_probe(address, t0, y0, p, n)
    if outside:
        checked = _compile(njit, _renamed(py_func, "__checked"), boundscheck=True)
        _call_checked(checked, "fun", py_func, (t0, y0.copy(), p.copy(), np.empty(n)))
        raise ModelError(  # out of bounds beyond what the bounds-checked call exercised
            f"`fun` ({_name(py_func)}) wrote or read past the end of an array: its output "
            "depends on memory outside y, p or dydt. Check the indices it uses against the "
            f"sizes it receives (y: {n}, p: {p.shape[0]}, output: ({n},))."
        )
    if np.all(np.isfinite(output)):
        return
    bad = int(np.argwhere(~np.isfinite(output))[0, 0])
    if np.isnan(output[bad]) and np.isfinite(zero_filled[bad]):
        raise ModelError(
            f"`fun` ({_name(py_func)}) did not assign out[{bad}]: every entry of its output "
            "array must be written on every call (it is not zeroed beforehand)."
        )
    raise ModelError(
        f"`fun` ({_name(py_func)}) returned a non-finite output at y0: out[{bad}] = "
        f"{output[bad]} at t={t0}. Likely causes: a division by zero (a state or parameter "
        "that is zero at y0 in a denominator), log or sqrt of zero or a negative value, or "
        "an overflow. Check the model and the initial values."
    )


def compile_model(fun, y0, p, t0, jac=None, jac_p=None, vjp=None):
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
    vjp : callable, optional
        ``vjp(t, y, p, w, out_y, out_p)`` filling ``out_y = J^T w`` (n) and ``out_p =
        (df/dp)^T w`` (n_params), for the adjoints; checked against the model's own
        derivative.

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
    _refuse_print(py_func, "fun")
    n, n_p = y0.shape[0], p.shape[0]
    keep_alive = []
    # Compiled under a name that carries a hash of the code and of every value it reads from
    # outside (globals, closure, helpers): a changed value is a different compiled model,
    # in this process and in Numba's on-disk cache.
    dependencies = model_dependencies(py_func, "fun")
    keyed = _renamed(py_func, "__pe" + dependencies.key)

    try:
        real = _compile(cfunc, keyed, sig=RHS_SIG_F64)
    except Exception as exc:  # Numba raises NotImplementedError etc. besides NumbaError
        raise _compile_error("fun", py_func, exc) from None
    keep_alive.append(real)
    _check_model_output(keyed, real.address, t0, y0, p)

    model = CompiledModel()
    model.fun = fun
    model.n_states = n
    model.n_params = n_p
    model.address = real.address
    model.address_complex = 0
    model.complex_step_safe = False
    model.complex_step_problem = None
    model.jac_address = 0
    model.autonomous = not _reads_first_argument(py_func)
    model.central_jacobian_warned = False
    model.stiff_setups = {}
    model.dependencies = dependencies
    model.watches = dependencies.watches
    model._py_func = keyed
    model._time_address = None

    cause = _compile_complex_version(model, keyed, py_func, keep_alive, "states",
                                     lambda: _complex_step_disagreement(model, t0, y0, p))
    if not model.complex_step_safe:
        warnings.warn(
            f"`fun` ({_name(py_func)}) is not complex-step safe: {model.complex_step_problem}. "
            f"{cause} Derivatives will use finite differences, which are slower and less "
            "accurate.",
            ComplexStepWarning,
            stacklevel=3,
        )

    if jac is not None:
        model.jac_address = _compile_jacobian(jac, "jac", (n, n), model, t0, y0, p, keep_alive)
    if jac_p is not None:
        # checked now; the forward sensitivities that will use it compile it then
        _check_jacobian(jac_p, "jac_p", (n, n_p), model, t0, y0, p)
    model.vjp_address = 0
    if vjp is not None:
        model.vjp_address = _compile_vjp(vjp, model, t0, y0, p, keep_alive)
    model._keep_alive = tuple(keep_alive)
    model.addresses = model_addresses(
        rhs=model.address, rhs_complex=model.address_complex, jac=model.jac_address,
        vjp=model.vjp_address,
    )
    return model


def _compile_complex_version(compiled, keyed, py_func, keep_alive, what, disagreement):
    """Compile the complex128 version of a model or observation function and check its
    complex-step derivative (``disagreement()`` says why it is wrong, or None); set
    ``address_complex``, ``complex_step_problem`` and ``complex_step_safe`` on ``compiled``.
    Returns the likely cause and fix for the warning, "" when safe."""
    try:
        complex_version = _compile(cfunc, keyed, sig=RHS_SIG_C128)
    except Exception as exc:  # noqa: BLE001 - any failure means: no complex step
        compiled.complex_step_problem = (
            f"it does not compile for complex128 {what} ("
            + _numba_message(exc).splitlines()[0] + ")"
        )
        return _compile_cause(py_func, exc, complex_build=True)
    keep_alive.append(complex_version)
    compiled.address_complex = complex_version.address
    compiled.complex_step_problem = disagreement()
    compiled.complex_step_safe = compiled.complex_step_problem is None
    return "" if compiled.complex_step_safe else _non_analytic_cause(py_func)


def _compile_vjp(user_vjp, model, t0, y0, p, keep_alive):
    """Compile a user ``vjp(t, y, p, w, out_y, out_p)`` after checking it, at two points
    and a random ``w``, against the model's own vector-Jacobian product (complex-step
    columns, or central differences for a model that is not complex-step safe). Its
    dependencies join the model's watch list."""
    from paramest.kernels.adjoint import VJP_CENTRAL, VJP_COMPLEX_STEP, reference_vjp

    if not callable(user_vjp):
        raise TypeError(
            "`vjp` must be a callable vjp(t, y, p, w, out_y, out_p), got "
            f"{type(user_vjp).__name__}"
        )
    py_func = _python_function(user_vjp, "vjp")
    _check_arity(py_func, "vjp", "t, y, p, w, out_y, out_p")
    _refuse_print(py_func, "vjp")
    dependencies = model_dependencies(py_func, "vjp")
    model.watches = model.watches + dependencies.watches
    keyed = _renamed(py_func, "__pe" + dependencies.key)
    checked = _compile(njit, _renamed(keyed, "__checked"), boundscheck=True)
    n, n_p = y0.shape[0], p.shape[0]
    method = VJP_COMPLEX_STEP if model.complex_step_safe else VJP_CENTRAL
    addresses = model_addresses(rhs=model.address, rhs_complex=model.address_complex)
    rng = np.random.default_rng(20240602)
    for y in _check_points(y0, p):
        w = rng.standard_normal(n)
        out_y, out_p = np.full(n, np.nan), np.full(n_p, np.nan)
        try:
            checked(t0, y.copy(), p.copy(), w.copy(), out_y, out_p)
        except NumbaError as exc:
            raise _compile_error("vjp", py_func, exc) from None
        except IndexError as exc:
            raise ModelError(
                f"`vjp` ({_name(py_func)}) wrote or read past the end of an array: {exc}. It "
                f"receives y ({n},), p ({n_p},), w ({n},), out_y ({n},), out_p ({n_p},)."
            ) from None
        for label, values in (("out_y", out_y), ("out_p", out_p)):
            if not np.all(np.isfinite(values)):
                bad = int(np.flatnonzero(~np.isfinite(values))[0])
                raise ModelError(
                    f"`vjp` ({_name(py_func)}) left {label}[{bad}] = {values[bad]}: it must "
                    "write a finite value into every entry of out_y and out_p (they are not "
                    "zeroed beforehand)"
                )
        ref_y, ref_p = np.empty(n), np.empty(n_p)
        reference_vjp(addresses, method, t0, y.copy(), p.copy(), w, ref_y, ref_p)
        if not (np.all(np.isfinite(ref_y)) and np.all(np.isfinite(ref_p))):
            continue
        tolerance = 1e-6 if method == VJP_COMPLEX_STEP else 1e-4
        for label, given, reference in (("out_y", out_y, ref_y), ("out_p", out_p, ref_p)):
            scale = tolerance * max(1.0, float(np.max(np.abs(reference), initial=0.0)))
            bad = ~(np.abs(given - reference) <= tolerance * np.abs(reference) + scale)
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                what = "J^T w" if label == "out_y" else "(df/dp)^T w"
                raise ModelError(
                    f"`vjp` disagrees with the derivative of `fun`: {label}[{i}] is "
                    f"{given[i]:.6g}, expected about {reference[i]:.6g} ({what}: "
                    f"{label}[j] = sum_i w[i] * df_i/d{'y' if label == 'out_y' else 'p'}_j)."
                )
    try:
        compiled = _compile(cfunc, keyed, sig=VJP_SIG_F64)
    except Exception as exc:  # pragma: no cover - the checked compile fails first
        raise _compile_error("vjp", py_func, exc) from None
    keep_alive.append(compiled)
    return compiled.address


def _refuse_print(py_func, arg_name):
    if "print" in _names_in_code(py_func) and "print" not in py_func.__globals__:
        raise ModelError(
            f"`{arg_name}` ({_name(py_func)}) calls print(): a compiled model runs without the "
            "Python interpreter and cannot print. Remove the print() call; to look at "
            f"values, call the function yourself from Python, e.g. `{py_func.__name__}(0.0, "
            "np.array(y0), np.array(p), out)` with `out = np.empty(len(y0))`."
        )


def _non_analytic_cause(py_func):
    used = sorted(_names_in_code(py_func) & set(_NON_ANALYTIC))
    if used:
        listed = ", ".join(f"{name}()" for name in used)
        return (
            f"It uses {listed}, whose complex-step derivative is wrong: branch on real "
            "parts instead (`y[i] if y[i].real > 0 else -y[i]` for abs(y[i])), or pass "
            "`jac=` to ODEProblem."
        )
    return (
        "Usual causes are abs(), np.sign(), conj(), min()/max() or comparisons applied to "
        "the state: branch on real parts instead (`y[i] if y[i].real > 0 else -y[i]` for "
        "abs(y[i])), or pass `jac=` to ODEProblem."
    )


def _check_points(y0, p):
    # y0 itself, and a nearby generic point: models can be accidentally right at special
    # points (abs at a positive state is, for instance), so look at two.
    rng = np.random.default_rng(20240601)
    y1 = y0 * (1.0 + 0.05 * rng.uniform(-1.0, 1.0, y0.shape)) + 1e-3 * rng.uniform(
        -1.0, 1.0, y0.shape
    )
    # both writable: the derivative kernels are then compiled for one signature only
    return [y0.copy(), y1]


def _jacobians(model, t0, y, p, method):
    n, n_p = model.n_states, model.n_params
    jac_y = np.empty((n, n))
    jac_p = np.empty((n, n_p))
    if method == "complex":
        jacobians_complex_step(model.address_complex, t0, y, p, jac_y, jac_p)
    else:
        jacobians_central(model.address, t0, y, p, jac_y, jac_p)
    return jac_y, jac_p


def _worst_mismatch(approx, reference, uncertainty=0.0):
    scale = _CHECK_ATOL * max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    excess = np.abs(approx - reference) - (
        _CHECK_RTOL * np.abs(reference) + scale + uncertainty
    )
    if excess.size == 0 or not np.any(excess > 0):
        return None
    return np.unravel_index(int(np.argmax(excess)), excess.shape)


def _central_differences(model, t0, y, p, factor):
    """``df/dy`` and ``df/dp`` by central differences with ``factor`` times the usual step
    (:func:`paramest.kernels.derivatives.central_step`), dividing by the step actually
    taken (``(x + h) - (x - h)`` in floating point)."""
    n, n_p = model.n_states, model.n_params
    jac = np.empty((n, n + n_p))
    floor = 1e-3 * float(np.max(np.abs(y), initial=0.0))
    f_plus = np.empty(n)
    f_minus = np.empty(n)
    for col in range(n + n_p):
        yw, pw = y.copy(), p.copy()
        vector, index = (yw, col) if col < n else (pw, col - n)
        x = vector[index]
        scale = max(abs(x), floor if col < n else 0.0)
        step = factor * CENTRAL_BASE_STEP * (scale if scale > 0.0 else 1.0)
        vector[index] = x + step
        upper = vector[index]
        evaluate_model(model.address, t0, yw, pw, f_plus)
        vector[index] = x - step
        lower = vector[index]
        evaluate_model(model.address, t0, yw, pw, f_minus)
        jac[:, col] = (f_plus - f_minus) / (upper - lower)
    return jac[:, :n], jac[:, n:]


def _complex_step_disagreement(model, t0, y0, p):
    """Why the complex-step Jacobians of the model cannot be trusted, or None.

    Central differences are the reference, but their own error can exceed the quantity
    measured: rounding contributes about ``eps * |terms of f| / h``, and in chemical
    kinetics ``f`` is often a small difference of large terms, with a parameter of 1e-5
    that makes ``h`` tiny. So the differences are taken with three step sizes (h/4, h,
    4h), whose spread estimates their error (rounding grows as the step shrinks,
    truncation as it grows), and the complex step is called wrong only where it differs
    from them by much more than that spread. ``abs``, ``sign`` or ``conj`` on the state
    change the derivative by O(1) while the differences of such piecewise-linear
    functions agree to rounding, so they are still caught.
    """
    for y in _check_points(y0, p):
        cs_y, cs_p = _jacobians(model, t0, y, p, "complex")
        estimates = [_central_differences(model, t0, y, p, f) for f in (1.0, 0.25, 4.0)]
        (fd_y, fd_p), (small_y, small_p), (large_y, large_p) = estimates
        if not all(np.all(np.isfinite(a)) for pair in estimates for a in pair):
            continue  # outside the model's domain: no verdict from this point
        for label, cs, fd, small, large in (
            ("df/dy", cs_y, fd_y, small_y, large_y),
            ("df/dp", cs_p, fd_p, small_p, large_p),
        ):
            uncertainty = np.maximum(np.abs(fd - small), np.abs(fd - large))
            where = _worst_mismatch(cs, fd, 2.0 * uncertainty)
            if where is not None:
                return (
                    f"its complex-step {label}[{where[0]}, {where[1]}] = {cs[where]:.6g} "
                    f"disagrees with central differences ({fd[where]:.6g}, uncertain by "
                    f"about {uncertainty[where]:.2g})"
                )
    return None


def _user_function(user_jac, arg_name):
    if not callable(user_jac):
        raise TypeError(
            f"`{arg_name}` must be a callable {arg_name}(t, y, p, out), got "
            f"{type(user_jac).__name__}"
        )
    py_func = _python_function(user_jac, arg_name)
    _check_arity(py_func, arg_name, "t, y, p, out")
    _refuse_print(py_func, arg_name)
    dependencies = model_dependencies(py_func, arg_name)
    return py_func, _renamed(py_func, "__pe" + dependencies.key), dependencies


def _compile_jacobian(user_jac, arg_name, shape, model, t0, y0, p, keep_alive):
    py_func, keyed = _check_jacobian(user_jac, arg_name, shape, model, t0, y0, p)
    try:
        compiled = _compile(cfunc, keyed, sig=JAC_SIG_F64)
    except Exception as exc:  # pragma: no cover - the checked compile fails first
        raise _compile_error(arg_name, py_func, exc) from None
    keep_alive.append(compiled)
    return compiled.address


def _check_jacobian(user_jac, arg_name, shape, model, t0, y0, p):
    """Check a user Jacobian against the model's own derivative at two points; returns the
    Python function and its keyed clone. Its dependencies join the model's watch list."""
    py_func, keyed, dependencies = _user_function(user_jac, arg_name)
    model.watches = model.watches + dependencies.watches
    checked = _compile(njit, _renamed(keyed, "__checked"), boundscheck=True)
    out = np.empty(shape)
    _check_output(arg_name, py_func, checked, t0, y0, p, out, f"t={t0}, y=y0")

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
    return py_func, keyed


class CompiledObservation:
    """A user's observation function ``observe(t, y, p, out)`` compiled for the kernels
    (a fit's observables), like :class:`CompiledModel` but with ``n_observables`` outputs.

    Attributes
    ----------
    fun : callable
    n_observables : int
    address, address_complex : int
        Addresses of the float64 and complex128 ``cfunc`` (``address_complex`` is 0 when it
        could not be compiled).
    complex_step_safe : bool
        Whether its complex-step derivatives agree with central differences; otherwise its
        sensitivities come from central differences.
    complex_step_problem : str or None
    watches : tuple
        Outside values it read when compiled (checked before each fit, like the model's).
    """

    __slots__ = (
        "fun", "n_observables", "address", "address_complex", "complex_step_safe",
        "complex_step_problem", "dependencies", "watches", "_keep_alive",
    )


def _check_observation_output(py_func, address, t0, y0, p, m):
    """The model check's guarded calls (see :func:`_check_model_output`) for an output of
    ``m`` entries."""
    n, n_p = y0.shape[0], p.shape[0]
    output, zero_filled, outside = _guarded_probe(address, t0, y0, p, m)
    if outside:
        raise ModelError(
            f"`observe` ({_name(py_func)}) wrote or read past the end of an array: its output "
            f"depends on memory outside y, p or out. It receives y ({n},), p ({n_p},) and "
            f"out ({m},), one entry per row of the data."
        )
    if np.all(np.isfinite(output)):
        return
    bad = int(np.argwhere(~np.isfinite(output))[0, 0])
    if np.isnan(output[bad]) and np.isfinite(zero_filled[bad]):
        raise ModelError(
            f"`observe` ({_name(py_func)}) did not assign out[{bad}]: every entry of its "
            f"output array ({m} observables, one per row of the data) must be written on "
            "every call."
        )
    raise ModelError(
        f"`observe` ({_name(py_func)}) returned a non-finite value out[{bad}] = "
        f"{output[bad]} at t={t0}, y=y0."
    )


def _observation_disagreement(observation, t0, y0, p):
    """Why the complex-step derivatives of ``observe`` cannot be trusted, or None."""
    from paramest.kernels.observation import (
        observe_sensitivities,
        observe_sensitivities_central,
    )

    n, n_p, m = y0.shape[0], p.shape[0], observation.n_observables
    directions = np.zeros((1, n + n_p, n))
    directions[0, :n, :] = np.eye(n)
    param_columns = np.array([-1] * n + list(range(n_p)), dtype=np.int64)
    times = np.array([t0])
    for y in _check_points(y0, p):
        states = y.reshape(1, n)
        complex_step = np.empty((1, n + n_p, m))
        central = np.empty((1, n + n_p, m))
        observe_sensitivities(observation.address_complex, times, states, directions, p,
                              param_columns, complex_step)
        observe_sensitivities_central(observation.address, times, states, directions, p,
                                      param_columns, central)
        if not np.all(np.isfinite(central)):
            continue
        scale = max(1.0, float(np.max(np.abs(central))))
        bad = np.abs(complex_step - central) > 1e-5 * np.abs(central) + 1e-6 * scale
        if np.any(bad):
            _, column, row = np.argwhere(bad)[0]
            what = f"y[{column}]" if column < n else f"p[{column - n}]"
            return (
                f"its complex-step derivative of out[{row}] by {what} is "
                f"{complex_step[0, column, row]:.6g}, central differences give "
                f"{central[0, column, row]:.6g}"
            )
    return None


def compile_observation(observe, n_observables, y0, p, t0):
    """Compile an observation function ``observe(t, y, p, out)`` and check it at ``y0``.

    Parameters
    ----------
    observe : callable
        Writes the ``n_observables`` model outputs that the data measure into ``out``.
    n_observables : int
    y0, p : ndarray
    t0 : float

    Returns
    -------
    CompiledObservation

    Raises
    ------
    TypeError, ModelError
        Not a function of four arguments, does not compile, indexes past an array, leaves
        an output unassigned or returns a non-finite value at ``y0``.

    Examples
    --------
    >>> import numpy as np
    >>> def total(t, y, p, out):
    ...     out[0] = p[0] * (y[0] + y[1])
    >>> obs = compile_observation(total, 1, np.array([1.0, 2.0]), np.array([0.5]), 0.0)
    >>> obs.complex_step_safe
    True
    """
    if not callable(observe):
        raise TypeError(
            f"`observe` must be a callable observe(t, y, p, out), got {type(observe).__name__}"
        )
    py_func = _python_function(observe, "observe")
    _check_arity(py_func, "observe", "t, y, p, out")
    _refuse_print(py_func, "observe")
    dependencies = model_dependencies(py_func, "observe")
    keyed = _renamed(py_func, "__pe" + dependencies.key)
    try:
        real = _compile(cfunc, keyed, sig=RHS_SIG_F64)
    except Exception as exc:  # Numba raises NotImplementedError etc. besides NumbaError
        raise _compile_error("observe", py_func, exc) from None
    _check_observation_output(keyed, real.address, t0, y0, p, n_observables)
    observation = CompiledObservation()
    observation.fun = observe
    observation.n_observables = n_observables
    observation.address = real.address
    observation.address_complex = 0
    observation.complex_step_safe = False
    observation.dependencies = dependencies
    observation.watches = dependencies.watches
    keep_alive = [real]
    cause = _compile_complex_version(
        observation, keyed, py_func, keep_alive, "values",
        lambda: _observation_disagreement(observation, t0, y0, p),
    )
    if not observation.complex_step_safe:
        warnings.warn(
            f"`observe` ({_name(py_func)}) is not complex-step safe: "
            f"{observation.complex_step_problem}. {cause} Its "
            "derivatives will use central differences.",
            ComplexStepWarning,
            stacklevel=3,
        )
    observation._keep_alive = tuple(keep_alive)
    return observation
