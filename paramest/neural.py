"""Neural and universal differential equations: networks inside the right-hand side.

A :class:`NeuralODE` is an ODE whose right-hand side is a small multilayer perceptron
(:class:`paramest.nn.MLP`) and whose parameters are the network's weights; a
:class:`UDEProblem` is a mechanistic model ``fun(t, y, nn, p, dydt)`` with an unknown term
``nn`` given by a network, its estimated vector ``[p, theta]``. Both are
:class:`~paramest.ODEProblem` objects: solves, sensitivities, :func:`paramest.vjp` and
:func:`paramest.fit` take them as they take any model.

The right-hand side is compiled like a user's model (a Numba ``cfunc``, float64 and
complex128), with the network's forward kernel inlined. Each problem also brings its own
vector-Jacobian product (the ``vjp`` slot of :class:`~paramest.ODEProblem`): the network's
hand-written reverse pass, chained for a UDE with the complex step of ``fun`` over its
``n + n_nn + k`` inputs. The adjoints (:class:`paramest.DiscreteAdjoint`) call it once per
stage, so a gradient costs about as much as a few solves however many weights the network
has; forward sensitivities still work (they take the complex step of the whole right-hand
side) and pay off for small networks.
"""

import numpy as np
from numba import njit

from paramest.errors import ModelError
from paramest.kernels import mlp as mlp_kernels
from paramest.kernels.derivatives import COMPLEX_STEP
from paramest.model import _check_arity, _compile, _name, _python_function
from paramest.nn import MLP, elementwise_transform
from paramest.problems import ODEProblem, as_vector

__all__ = ["NeuralODE", "UDEProblem"]

_forward = mlp_kernels.forward
_vjp = mlp_kernels.vjp


def _weight_names(mlp, prefix=""):
    """A name per weight, from the network's layout: ``W0[j,i]``, ``b0[j]``, ..."""
    names = []
    for name, _, shape in mlp.layout():
        if len(shape) == 2:
            names += [f"{prefix}{name}[{j},{i}]" for j in range(shape[0])
                      for i in range(shape[1])]
        else:
            names += [f"{prefix}{name}[{j}]" for j in range(shape[0])]
    return names


def _neural_functions(mlp, transform_code, custom):
    """The right-hand side ``fun(t, y, p, dydt)`` and its ``vjp`` for a NeuralODE."""
    sizes = tuple(int(s) for s in mlp.sizes)
    activations = tuple(int(a) for a in mlp.activations)
    n_work = int(mlp.workspace_size)
    n = sizes[0]
    if custom is None:
        def neural_ode(t, y, p, dydt):
            work = np.empty(n_work, dydt.dtype)
            _forward(p, y, dydt, sizes, activations, transform_code, work)

        def neural_ode_vjp(t, y, p, w, out_y, out_p):
            work = np.empty(n_work)
            _vjp(p, y, w, out_y, out_p, sizes, activations, transform_code, work)

        return neural_ode, neural_ode_vjp

    def neural_ode_transformed(t, y, p, dydt):
        x = np.empty(n, dydt.dtype)
        for i in range(n):
            x[i] = custom(y[i])
        work = np.empty(n_work, dydt.dtype)
        _forward(p, x, dydt, sizes, activations, 0, work)

    def neural_ode_transformed_vjp(t, y, p, w, out_y, out_p):
        x = np.empty(n)
        slope = np.empty(n)
        for i in range(n):
            x[i] = custom(y[i])
            slope[i] = custom(y[i] + 1j * COMPLEX_STEP).imag / COMPLEX_STEP
        work = np.empty(n_work)
        _vjp(p, x, w, out_y, out_p, sizes, activations, 0, work)
        for i in range(n):
            out_y[i] *= slope[i]

    return neural_ode_transformed, neural_ode_transformed_vjp


class NeuralODE(ODEProblem):
    """An ODE whose right-hand side is a neural network: ``dy/dt = mlp(theta, g(y))``.

    The parameters ``p`` are the network's weights ``theta`` (layout in
    :meth:`paramest.nn.MLP.layout`, names such as ``"W0[3,1]"`` in ``param_names``). A
    :class:`~paramest.ODEProblem` in every respect: solve it, take its sensitivities, fit
    its weights with :func:`paramest.fit` (``method="adam"``, then a quasi-Newton polish).
    Its own vector-Jacobian product is the network's reverse pass, so
    :class:`paramest.DiscreteAdjoint` gives the gradient over all weights for about the
    cost of three solves.

    Parameters
    ----------
    mlp : paramest.nn.MLP
        The network; ``n_inputs`` and ``n_outputs`` must both equal the number of states.
    y0 : array_like, shape (n,)
    t_span : (float, float)
    p : array_like, shape (mlp.n_params,), optional
        The weights; default ``mlp.init(seed=0)``.
    input_transform : None, "cube" or callable, optional
        A fixed elementwise transform of the state before the first layer (``"cube"``:
        ``y**3``, as in DiffEqFlux's spiral example; or a function ``g(x)`` of one number
        that Numba compiles for float and complex arguments, differentiated by the complex
        step). Default: the network's own ``input_transform``.
    state_names : sequence of str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> from paramest.nn import MLP, elementwise_transform
    >>> net = MLP([2, 16, 2], activation="tanh")
    >>> problem = pe.NeuralODE(net, [2.0, 0.0], (0.0, 1.5), input_transform="cube")
    >>> problem.n_params
    82
    >>> sol = pe.solve(problem, "Tsit5", np.linspace(0.0, 1.5, 4))
    >>> sol.y.shape
    (2, 4)
    """

    __slots__ = ("mlp", "input_transform")

    def __init__(self, mlp, y0, t_span, p=None, *, input_transform=None, state_names=None):
        if not isinstance(mlp, MLP):
            raise TypeError(f"`mlp` must be a paramest.nn.MLP, got {type(mlp).__name__}")
        y0 = as_vector(y0, "y0")
        if mlp.n_inputs != y0.size or mlp.n_outputs != y0.size:
            raise ValueError(
                f"`mlp` must map the {y0.size} states to {y0.size} derivatives; it has "
                f"{mlp.n_inputs} inputs and {mlp.n_outputs} outputs"
            )
        if input_transform is None:
            input_transform = mlp.input_transform
            code, custom = mlp.transform, mlp.input_function
        elif mlp.input_transform is not None:
            raise ValueError(
                "`input_transform` is given here and the network has its own "
                f"({mlp.input_transform!r}); give one of them"
            )
        else:
            code, custom = elementwise_transform(input_transform)
        p = mlp.init(seed=0) if p is None else as_vector(p, "p", size=mlp.n_params)
        fun, vjp = _neural_functions(mlp, code, custom)
        super().__init__(fun, y0, t_span, p, vjp=vjp, state_names=state_names,
                         param_names=_weight_names(mlp))
        object.__setattr__(self, "mlp", mlp)
        object.__setattr__(self, "input_transform", input_transform)

    def remake(self, *, y0=None, t_span=None, p=None):
        """A copy with a new ``y0``, ``t_span`` or weights ``p``, sharing the compiled
        model."""
        return _same_kind(self, super().remake(y0=y0, t_span=t_span, p=p))

    def __reduce__(self):
        # a transform that came with the network is rebuilt with it
        own = self.input_transform if self.mlp.input_transform is None else None
        return (_rebuild_neural, (self.mlp, self.y0, self.t_span, self.p, own,
                                  self.state_names))

    def __repr__(self):
        return (f"NeuralODE({self.mlp!r}, n_states={self.n_states}, "
                f"t_span={self.t_span})")


def _same_kind(problem, plain):
    """``plain`` (an ODEProblem made by ``remake``) as an object of ``problem``'s class."""
    new = object.__new__(type(problem))
    for key in ODEProblem.__slots__:
        object.__setattr__(new, key, getattr(plain, key))
    for key in type(problem).__slots__:
        object.__setattr__(new, key, getattr(problem, key))
    return new


def _rebuild_neural(mlp, y0, t_span, p, input_transform, state_names):
    return NeuralODE(mlp, y0, t_span, p, input_transform=input_transform,
                     state_names=state_names)


@njit(cache=True)
def _state_input(t, y, out):
    # the network's inputs are the states themselves
    for i in range(y.shape[0]):
        out[i] = y[i]


def _transformed_input(base, function):
    def transformed_input(t, y, out):
        base(t, y, out)
        for i in range(out.shape[0]):
            out[i] = function(out[i])

    return transformed_input


def _ude_functions(user, mlp, n, n_p, nn_input):
    """The right-hand side ``fun(t, y, P, dydt)`` of a UDE over ``P = [p, theta]``, and
    its vector-Jacobian product: the complex step of the user's function over (y, nn, p)
    (and of ``nn_input`` over y), chained with the network's reverse pass."""
    sizes = tuple(int(s) for s in mlp.sizes)
    activations = tuple(int(a) for a in mlp.activations)
    transform = int(mlp.transform)
    n_work = int(mlp.workspace_size)
    m_in, m_out = sizes[0], sizes[len(sizes) - 1]
    h = COMPLEX_STEP

    if nn_input is None:
        nn_input = _state_input
    if mlp.input_function is not None:
        # the network's own elementwise g: part of its inputs, whose complex step below
        # then differentiates it too
        nn_input = _compile(njit, _transformed_input(nn_input, mlp.input_function))

    def universal_ode(t, y, P, dydt):
        theta = P[n_p:]
        x = np.empty(m_in, dydt.dtype)
        nn_input(t, y, x)
        nn = np.empty(m_out, dydt.dtype)
        work = np.empty(n_work, dydt.dtype)
        _forward(theta, x, nn, sizes, activations, transform, work)
        user(t, y, nn, P[:n_p], dydt)

    def universal_ode_vjp(t, y, P, w, out_y, out_P):
        theta = P[n_p:]
        x = np.empty(m_in)
        nn_input(t, y, x)
        nn = np.empty(m_out)
        work = np.empty(n_work)
        _forward(theta, x, nn, sizes, activations, transform, work)
        # one complex vector z = [y, nn, p] with views into it: the complex step of fun
        # over each of its n + m_out + n_p inputs in one loop
        z = np.empty(n + m_out + n_p, np.complex128)
        z[:n] = y
        z[n:n + m_out] = nn
        z[n + m_out:] = P[:n_p]
        yc, nnc, pc = z[:n], z[n:n + m_out], z[n + m_out:]
        fc = np.empty(n, np.complex128)
        g = np.empty(z.shape[0])
        for j in range(z.shape[0]):
            saved = z[j]
            z[j] = saved + 1j * h
            user(t, yc, nnc, pc, fc)
            z[j] = saved
            total = 0.0
            for i in range(n):
                total += w[i] * fc[i].imag
            g[j] = total / h
        out_y[:] = g[:n]
        g_nn = g[n:n + m_out]
        out_P[:n_p] = g[n + m_out:]
        g_x = np.empty(m_in)
        _vjp(theta, x, g_nn, g_x, out_P[n_p:], sizes, activations, transform, work)
        # through nn_input: (dx/dy)^T g_x, by the complex step of nn_input over y
        xc = np.empty(m_in, np.complex128)
        for j in range(n):
            yc[j] = y[j] + 1j * h
            nn_input(t, yc, xc)
            yc[j] = y[j]
            total = 0.0
            for i in range(m_in):
                total += g_x[i] * xc[i].imag
            out_y[j] += total / h

    return universal_ode, universal_ode_vjp


class UDEProblem(ODEProblem):
    """A universal differential equation: a mechanistic model with a term learnt by a
    neural network, ``dy/dt = fun(t, y, nn, p)`` with ``nn = mlp(theta, y)``.

    The estimated vector is ``[p, theta]``: the model's own parameters first (named by
    ``param_names``), then the network's weights (``"nn.W0[j,i]"``, ``"nn.b0[j]"``, ...).
    Fit the parameters and the network together with :func:`paramest.fit`, or fix ``p``
    with ``free=``. Gradients with :class:`paramest.DiscreteAdjoint` take the complex step
    of ``fun`` over its ``n + n_nn + k`` inputs and the network's reverse pass once per
    stage, so their cost does not grow with the number of weights.

    Parameters
    ----------
    fun : callable
        ``fun(t, y, nn, p, dydt)``: writes the derivative into ``dydt``; ``nn`` holds the
        network's outputs at this state. Compiled by Numba like an ODEProblem's model, and
        differentiated by the complex step (so: no ``abs``, ``min``/``max`` or comparisons
        on ``y``, ``nn``, ``p``).
    mlp : paramest.nn.MLP
        The network; its inputs are the states (``n_inputs == n``) unless ``nn_input`` is
        given.
    y0 : array_like, shape (n,)
    t_span : (float, float)
    p : array_like, shape (k,), optional
        The model's own parameters (may be empty).
    theta : array_like, shape (mlp.n_params,), optional
        The initial weights; default ``mlp.init(seed=0)``.
    nn_input : callable, optional
        ``nn_input(t, y, out)`` writing the network's ``mlp.n_inputs`` inputs (for example
        a subset or a scaling of the states); compiled, differentiated by the complex step.
    state_names, param_names : sequence of str, optional
        ``param_names`` names ``p`` only.

    Examples
    --------
    >>> import numpy as np
    >>> import paramest as pe
    >>> from paramest.nn import MLP, elementwise_transform
    >>> def lotka_volterra_ude(t, y, nn, p, dydt):
    ...     dydt[0] = p[0] * y[0] + nn[0]
    ...     dydt[1] = -p[1] * y[1] + nn[1]
    >>> net = MLP([2, 8, 2], activation="tanh")
    >>> problem = pe.UDEProblem(lotka_volterra_ude, net, [1.0, 1.0], (0.0, 5.0),
    ...                         p=[1.3, 1.8], param_names=["alpha", "delta"])
    >>> problem.n_params, problem.param_names[:3]
    (44, ('alpha', 'delta', 'nn.W0[0,0]'))
    """

    __slots__ = ("mlp", "ude_fun", "nn_input", "n_model_params")

    def __init__(self, fun, mlp, y0, t_span, p=None, *, theta=None, nn_input=None,
                 state_names=None, param_names=None):
        if not callable(fun):
            raise TypeError(
                f"`fun` must be a callable fun(t, y, nn, p, dydt), got {type(fun).__name__}"
            )
        py_func = _python_function(fun, "fun")
        _check_arity(py_func, "fun", "t, y, nn, p, dydt")
        if not isinstance(mlp, MLP):
            raise TypeError(f"`mlp` must be a paramest.nn.MLP, got {type(mlp).__name__}")
        y0 = as_vector(y0, "y0")
        p = as_vector([] if p is None else p, "p", allow_empty=True)
        theta = mlp.init(seed=0) if theta is None else as_vector(theta, "theta",
                                                                  size=mlp.n_params)
        if param_names is not None:
            param_names = list(param_names)
            if len(param_names) != p.size:
                raise ValueError(f"`param_names` must name the {p.size} entries of `p`, got "
                                 f"{len(param_names)}")
        input_function = None
        if nn_input is None:
            if mlp.n_inputs != y0.size:
                raise ValueError(
                    f"`mlp` has {mlp.n_inputs} inputs but the model has {y0.size} states; "
                    "pass `nn_input(t, y, out)` to choose the network's inputs"
                )
        else:
            input_py = _python_function(nn_input, "nn_input")
            _check_arity(input_py, "nn_input", "t, y, out")
            input_function = nn_input if hasattr(nn_input, "py_func") else _compile(
                njit, input_py)
        user = fun if hasattr(fun, "py_func") else _compile(njit, py_func)
        rhs, vjp = _ude_functions(user, mlp, y0.size, p.size, input_function)
        names = None
        if param_names is not None:
            names = list(param_names) + _weight_names(mlp, "nn.")
        try:
            super().__init__(rhs, y0, t_span, np.concatenate([p, theta]), vjp=vjp,
                             state_names=state_names, param_names=names)
        except ModelError as exc:
            if "`vjp`" in str(exc):
                raise ModelError(
                    f"UDEProblem differentiates `fun` ({_name(py_func)}) by the complex "
                    "step, and that derivative is wrong here: avoid abs(), min/max, "
                    f"comparisons and non-analytic functions on y, nn and p. ({exc})"
                ) from None
            raise
        object.__setattr__(self, "mlp", mlp)
        object.__setattr__(self, "ude_fun", fun)
        object.__setattr__(self, "nn_input", nn_input)
        object.__setattr__(self, "n_model_params", p.size)

    @property
    def theta(self):
        """The network's weights (the tail of ``p``)."""
        return self.p[self.n_model_params:]

    def network(self, x, p=None):
        """The network's output at inputs ``x`` (shape ``(n_inputs,)`` or a batch
        ``(N, n_inputs)``) with the weights in ``p`` (the full estimated vector, e.g. a fit
        result's ``x``; default the problem's)."""
        p = self.p if p is None else as_vector(p, "p", size=self.n_params)
        return self.mlp(p[self.n_model_params:], x)

    def remake(self, *, y0=None, t_span=None, p=None):
        """A copy with a new ``y0``, ``t_span`` or ``p`` (the full ``[p, theta]``), sharing
        the compiled model."""
        return _same_kind(self, super().remake(y0=y0, t_span=t_span, p=p))

    def __reduce__(self):
        names = None if self.param_names is None else self.param_names[: self.n_model_params]
        return (_rebuild_ude, (self.ude_fun, self.mlp, self.y0, self.t_span,
                               self.p[: self.n_model_params], self.theta, self.nn_input,
                               self.state_names, names))

    def __repr__(self):
        return (f"UDEProblem({_name(self.ude_fun)}, {self.mlp!r}, n_states={self.n_states}, "
                f"n_params={self.n_model_params} + {self.mlp.n_params} weights)")


def _rebuild_ude(fun, mlp, y0, t_span, p, theta, nn_input, state_names, param_names):
    return UDEProblem(fun, mlp, y0, t_span, p, theta=theta, nn_input=nn_input,
                      state_names=state_names, param_names=param_names)
