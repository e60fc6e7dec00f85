"""Problem descriptions: immutable, validated on construction."""

import math
from collections.abc import Mapping

import numpy as np

from paramest.model import compile_model

__all__ = ["ODEProblem"]


def _labelled(value):
    """``(labels, values)`` when ``value`` carries labels (a dict, or a pandas Series whose
    index is not just 0, 1, 2, ...), else None. pandas is not imported for this."""
    if isinstance(value, Mapping):
        return list(value.keys()), list(value.values())
    if type(value).__module__.partition(".")[0] == "pandas" and getattr(value, "ndim", 0) == 1:
        labels = list(value.index)
        if labels == list(range(len(labels))):
            return None
        return labels, list(value.to_numpy())
    return None


def _aligned(value, name, labels, labels_arg):
    """``value`` in the order of ``labels`` when it is given by label."""
    labelled = _labelled(value)
    if labelled is None:
        return value
    keys, values = labelled
    shown = ", ".join(repr(k) for k in keys[:8]) + (", ..." if len(keys) > 8 else "")
    if labels is None:
        raise ValueError(
            f"`{name}` is given by label ({shown}) but the problem has no `{labels_arg}`, so "
            f"the labels cannot be matched to positions: pass `{labels_arg}` to ODEProblem, "
            f"or give `{name}` as a plain sequence in the model's order"
        )
    labels = list(labels)
    if len(set(keys)) != len(keys):
        raise ValueError(f"`{name}` has repeated labels: {shown}")
    missing = [label for label in labels if label not in keys]
    unknown = [key for key in keys if key not in labels]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(x) for x in missing))
        if unknown:
            parts.append("not in `" + labels_arg + "`: " + ", ".join(repr(x) for x in unknown))
        raise ValueError(
            f"`{name}` is given by label and its labels must be exactly `{labels_arg}` "
            f"({', '.join(labels)}); " + "; ".join(parts)
        )
    position = {key: i for i, key in enumerate(keys)}
    return [values[position[label]] for label in labels]


def as_vector(value, name, *, allow_empty=False, size=None, labels=None, labels_arg=None):
    """``value`` as a read-only 1-D float64 array of finite numbers, or a ValueError that
    names the argument.

    A dict or a labelled pandas Series is put in the order of ``labels`` (the problem's
    ``state_names`` or ``param_names``, named ``labels_arg`` in messages); without labels
    it is refused rather than read by position.
    """
    value = _aligned(value, name, labels, labels_arg)
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a 1-D sequence of real numbers, got {value!r:.80}"
        ) from None
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got an array of shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise ValueError(f"`{name}` must not be empty")
    if size is not None and array.size != size:
        raise ValueError(f"`{name}` must have {size} entries, got {array.size}")
    if not np.all(np.isfinite(array)):
        bad = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise ValueError(f"`{name}` must be finite, but {name}[{bad}] = {array[bad]}")
    array.setflags(write=False)
    return array


def _as_t_span(t_span):
    try:
        t0, t1 = t_span
        t0, t1 = float(t0), float(t1)
    except (TypeError, ValueError):
        raise ValueError(
            f"`t_span` must be two numbers (t0, t_end), got {t_span!r:.80}"
        ) from None
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 == t1:
        raise ValueError(
            f"`t_span` must be two distinct finite numbers (t0, t_end), got ({t0}, {t1})"
        )
    return (t0, t1)


def _names_list(names):
    # the names as given, for matching labels before they are validated (strings only)
    if names is None or isinstance(names, str):
        return None
    return [str(x) for x in names]


def _as_names(names, name, size):
    if names is None:
        return None
    if isinstance(names, str):
        raise ValueError(f"`{name}` must be a sequence of strings, not a single string")
    names = tuple(names)
    if not all(isinstance(x, str) and x for x in names):
        raise ValueError(f"`{name}` must contain non-empty strings, got {names!r}")
    if len(names) != size:
        raise ValueError(f"`{name}` must have {size} entries (one per value), got {len(names)}")
    if len(set(names)) != len(names):
        duplicates = sorted({x for x in names if names.count(x) > 1})
        raise ValueError(f"`{name}` must be unique; repeated: {', '.join(duplicates)}")
    return names


class ODEProblem:
    """An ordinary differential equation ``dy/dt = fun(t, y, p)`` with its initial value.

    Construction validates the arguments, compiles ``fun`` with Numba (float64 and
    complex128 versions) and runs the model check: it calls the model once at ``y0`` and
    turns indexing past the end of ``y``, ``p`` or ``dydt``, non-finite or unassigned
    output, and code Numba cannot compile into clear errors before any solve.

    Numba freezes the values ``fun`` reads from outside its arguments (module-level
    numbers and arrays, closure variables, helper functions) into the compiled code. The
    problem is compiled with the values current at construction (a hash of them names the
    compiled version, on disk too), and :func:`paramest.solve` refuses to run it once one
    of them has been rebound or changed in place. Pass values that vary through ``p``.

    Parameters
    ----------
    fun : callable
        ``fun(t, y, p, dydt)``: writes the derivative into ``dydt`` in place. A plain Python
        function in the subset of Python and NumPy that Numba compiles; no decorator needed.
        For complex-step derivatives avoid ``abs``, ``np.sign``, ``min``/``max`` and
        comparisons on the state (branch on ``y[i].real`` instead).
    y0 : array_like, shape (n,), or dict / pandas Series
        Initial state at ``t_span[0]``. Values given by label (a dict or a labelled
        Series) are put in the order of ``state_names``, which they then require.
    t_span : (float, float)
        Start and end of the integration; ``t_end < t0`` integrates backwards.
    p : array_like, shape (n_params,), or dict / pandas Series, optional
        Parameters passed to ``fun``; an empty vector when omitted. By label, as for
        ``y0``, with ``param_names``.
    jac : callable, optional
        ``jac(t, y, p, J)`` filling the (n, n) Jacobian ``df/dy``; checked against the
        model's own derivative.
    jac_p : callable, optional
        ``jac_p(t, y, p, Jp)`` filling the (n, n_params) Jacobian ``df/dp``.
    vjp : callable, optional
        ``vjp(t, y, p, w, out_y, out_p)`` writing the vector-Jacobian products ``out_y[j] =
        sum_i w[i] df_i/dy_j`` and ``out_p[k] = sum_i w[i] df_i/dp_k`` (every parameter).
        :class:`paramest.DiscreteAdjoint` then calls it once per stage instead of taking
        ``n + k`` complex evaluations, so a gradient's cost no longer grows with the number
        of parameters. Checked against the model's own derivative.
    state_names, param_names : sequence of str, optional
        Unique names of the states and parameters, used in results and messages.

    Attributes
    ----------
    n_states, n_params : int
    complex_step_safe : bool
        False when the model check found that complex-step derivatives of ``fun`` are wrong
        (a :class:`~paramest.ComplexStepWarning` was issued).

    Raises
    ------
    ValueError
        An argument is malformed (the message names it).
    TypeError
        ``fun`` is not a function of four arguments.
    paramest.ModelError
        The model check failed.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> def lotka_volterra(t, y, p, dydt):
    ...     dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    ...     dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1]
    >>> problem = pe.ODEProblem(lotka_volterra, [1.0, 1.0], (0.0, 10.0), [1.5, 1.0, 3.0, 1.0],
    ...                         state_names=["prey", "predator"])
    >>> problem.n_states, problem.n_params
    (2, 4)
    """

    __slots__ = (
        "fun", "y0", "t_span", "p", "jac", "jac_p", "vjp", "state_names", "param_names",
        "model",
    )

    def __init__(
        self, fun, y0, t_span, p=None, *, jac=None, jac_p=None, vjp=None, state_names=None,
        param_names=None,
    ):
        if not callable(fun):
            raise TypeError(
                f"`fun` must be a callable fun(t, y, p, dydt), got {type(fun).__name__}"
            )
        y0 = as_vector(y0, "y0", labels=_names_list(state_names), labels_arg="state_names")
        p = as_vector([] if p is None else p, "p", allow_empty=True,
                      labels=_names_list(param_names), labels_arg="param_names")
        t_span = _as_t_span(t_span)
        state_names = _as_names(state_names, "state_names", y0.size)
        param_names = _as_names(param_names, "param_names", p.size)
        model = compile_model(fun, y0, p, t_span[0], jac=jac, jac_p=jac_p, vjp=vjp)
        self._set(fun, y0, t_span, p, jac, jac_p, vjp, state_names, param_names, model)

    def _set(self, fun, y0, t_span, p, jac, jac_p, vjp, state_names, param_names, model):
        for key, value in zip(
            ODEProblem.__slots__,  # a subclass's own slots are its business
            (fun, y0, t_span, p, jac, jac_p, vjp, state_names, param_names, model),
            strict=True,
        ):
            object.__setattr__(self, key, value)

    def __setattr__(self, key, value):
        raise AttributeError(
            "ODEProblem is immutable; use problem.remake(...) for a modified copy"
        )

    @property
    def n_states(self):
        return self.y0.shape[0]

    @property
    def n_params(self):
        return self.p.shape[0]

    @property
    def complex_step_safe(self):
        return self.model.complex_step_safe

    def remake(self, *, y0=None, t_span=None, p=None):
        """A copy with a new ``y0``, ``t_span`` or ``p``, sharing the compiled model (nothing
        is recompiled).

        Examples
        --------
        >>> import paramest as pe
        >>> def decay(t, y, p, dydt):
        ...     dydt[0] = -p[0] * y[0]
        >>> problem = pe.ODEProblem(decay, [1.0], (0.0, 1.0), [0.5])
        >>> problem.remake(p=[2.0]).p
        array([2.])
        """
        new = object.__new__(ODEProblem)
        y0 = self.y0 if y0 is None else as_vector(
            y0, "y0", size=self.n_states, labels=self.state_names, labels_arg="state_names"
        )
        p = self.p if p is None else as_vector(
            p, "p", allow_empty=True, size=self.n_params, labels=self.param_names,
            labels_arg="param_names",
        )
        t_span = self.t_span if t_span is None else _as_t_span(t_span)
        new._set(
            self.fun, y0, t_span, p, self.jac, self.jac_p, self.vjp, self.state_names,
            self.param_names, self.model,
        )
        return new

    def __reduce__(self):
        # Compiled code does not pickle; the problem is rebuilt from its definition in the
        # receiving process (its compiled model then loads from Numba's on-disk cache).
        # This is what lets fit's multistart run on a process pool or a Dask cluster.
        return (
            _rebuild_problem,
            (self.fun, self.y0, self.t_span, self.p, self.jac, self.jac_p, self.vjp,
             self.state_names,
             self.param_names),
        )

    def __repr__(self):
        name = getattr(self.fun, "__name__", "fun")
        return (
            f"ODEProblem({name}, n_states={self.n_states}, n_params={self.n_params}, "
            f"t_span={self.t_span})"
        )


def _rebuild_problem(fun, y0, t_span, p, jac, jac_p, vjp, state_names, param_names):
    return ODEProblem(fun, y0, t_span, p, jac=jac, jac_p=jac_p, vjp=vjp,
                      state_names=state_names,
                      param_names=param_names)
