"""Small multilayer perceptrons whose weights are a flat parameter vector.

An :class:`MLP` is a specification (layer sizes, activations, input transform) plus the
layout of its weights in one float64 vector ``theta``. The arithmetic is done by the
compiled kernels of :mod:`paramest.kernels.mlp` (forward pass, JVP and VJP written by
hand), which a model's right-hand side can call directly with ``spec.sizes``,
``spec.activations`` and ``spec.transform`` as constants; the methods here are the NumPy
face of the same kernels.
"""

import numpy as np
from numba import njit

from paramest.errors import ModelError
from paramest.kernels import mlp as _kernels
from paramest.kernels.derivatives import COMPLEX_STEP

_INITS = ("glorot", "normal", "zeros")
#: standard deviation of every weight and bias with ``init="normal"`` (the DiffEqFlux
#: spiral benchmark's N(0, 0.1**2))
NORMAL_INIT_SCALE = 0.1


def _activation_code(name, argument):
    if name not in _kernels.ACTIVATIONS:
        names = ", ".join(repr(n) for n in _kernels.ACTIVATIONS)
        raise ValueError(f"`{argument}` must be one of {names}; got {name!r}.")
    return _kernels.ACTIVATIONS[name]


class MLP:
    """A multilayer perceptron on a flat parameter vector.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first and output last (at least two entries, all positive).
    activation : str, optional
        Activation of the hidden layers: ``"tanh"`` (default), ``"relu"``, ``"softplus"``,
        ``"sigmoid"``, ``"swish"`` or ``"identity"``.
    output_activation : str or None, optional
        Activation of the output layer; ``None`` (default) is ``"identity"``.
    init : str, optional
        How :meth:`init` draws parameters: ``"glorot"`` (default; weights uniform on
        ``±sqrt(6 / (fan_in + fan_out))``, biases zero), ``"normal"`` (every weight and
        bias from N(0, 0.1**2)) or ``"zeros"``.
    input_transform : None, "cube" or callable, optional
        ``None`` (default), ``"cube"`` (the network sees ``x**3`` elementwise), or a
        function ``g(x)`` of one number that Numba compiles for float and complex
        arguments: the network sees ``g(x)`` elementwise, and derivatives through it come
        from the complex step (checked against finite differences here).

    Attributes
    ----------
    sizes : tuple of int
    n_inputs, n_outputs, n_params : int
        Input and output widths, and the length of the parameter vector.
    activation, output_activation : str
    activations : tuple of int
        The kernels' activation code of each layer (hidden layers, then the output).
    transform : int
        The kernels' input-transform code (``TRANSFORM_NONE`` for a function).
    input_function : numba dispatcher or None
        The compiled ``g`` of a function ``input_transform``.
    workspace_size : int
        Length of the ``work`` vector the kernels need.

    Notes
    -----
    ``theta`` holds, layer after layer, the weight matrix ``W`` of shape
    ``(n_out, n_in)`` in row-major order (``W[j, i]`` multiplies input ``i`` for output
    ``j``) and then the bias (``n_out``); :meth:`layout` lists the blocks. Layer ``l``
    computes ``act(W_l a + b_l)``.

    Examples
    --------
    >>> from paramest.nn import MLP
    >>> net = MLP([2, 16, 2], activation="tanh", input_transform="cube")
    >>> net.n_params
    82
    >>> theta = net.init(seed=0)
    >>> net(theta, [1.0, -0.5]).shape
    (2,)
    """

    def __init__(self, sizes, activation="tanh", output_activation=None, init="glorot",
                 input_transform=None):
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(
                f"`sizes` must be a sequence of at least two positive ints; got {sizes!r}."
            ) from None
        if len(sizes) < 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in sizes
        ):
            raise ValueError(
                "`sizes` must be a sequence of at least two positive ints (input width, "
                f"hidden widths..., output width); got {sizes!r}."
            )
        self.sizes = tuple(int(s) for s in sizes)
        hidden = _activation_code(activation, "activation")
        output_name = "identity" if output_activation is None else output_activation
        output = _activation_code(output_name, "output_activation")
        if init not in _INITS:
            raise ValueError(
                f"`init` must be one of {', '.join(repr(i) for i in _INITS)}; got {init!r}."
            )
        transform, function = elementwise_transform(input_transform)
        self.activation = activation
        self.output_activation = output_name
        self.init_method = init
        self.input_transform = input_transform
        self.input_function = function
        self.activations = (hidden,) * (len(self.sizes) - 2) + (output,)
        self.transform = transform
        self.n_inputs = self.sizes[0]
        self.n_outputs = self.sizes[-1]
        self.n_params = _kernels.n_params(self.sizes)
        self.workspace_size = _kernels.workspace_size(self.sizes)

    def __repr__(self):
        text = f"MLP(sizes={list(self.sizes)}, activation={self.activation!r}"
        if self.output_activation != "identity":
            text += f", output_activation={self.output_activation!r}"
        if self.init_method != "glorot":
            text += f", init={self.init_method!r}"
        if self.input_function is not None:
            name = getattr(self.input_transform, "__name__", "g")
            text += f", input_transform={name}"
        elif self.input_transform is not None:
            text += f", input_transform={self.input_transform!r}"
        return text + ")"

    def layout(self):
        """Where each weight matrix and bias lives in the parameter vector.

        Returns
        -------
        list of (str, slice, tuple)
            ``(name, slice, shape)`` per block, in order: ``"W0"``, ``"b0"``, ``"W1"``,
            ... ``theta[slice].reshape(shape)`` is the block (``W`` row-major, shape
            ``(n_out, n_in)``).

        Examples
        --------
        >>> from paramest.nn import MLP
        >>> MLP([2, 50, 2]).layout()[:2]
        [('W0', slice(0, 100, None), (50, 2)), ('b0', slice(100, 150, None), (50,))]
        """
        blocks = []
        offset = 0
        for layer in range(len(self.sizes) - 1):
            n_in, n_out = self.sizes[layer], self.sizes[layer + 1]
            blocks.append((f"W{layer}", slice(offset, offset + n_in * n_out), (n_out, n_in)))
            offset += n_in * n_out
            blocks.append((f"b{layer}", slice(offset, offset + n_out), (n_out,)))
            offset += n_out
        return blocks

    def init(self, seed=None):
        """Draw a parameter vector by the ``init`` rule chosen at construction.

        Parameters
        ----------
        seed : None, int or numpy.random.Generator, optional
            Passed to :func:`numpy.random.default_rng`.

        Returns
        -------
        numpy.ndarray
            float64 vector of length :attr:`n_params`.

        Examples
        --------
        >>> from paramest.nn import MLP
        >>> net = MLP([1, 4, 1], init="normal")
        >>> bool((net.init(seed=1) == net.init(seed=1)).all())
        True
        """
        rng = np.random.default_rng(seed)
        theta = np.zeros(self.n_params)
        if self.init_method == "zeros":
            return theta
        if self.init_method == "normal":
            return rng.normal(0.0, NORMAL_INIT_SCALE, size=self.n_params)
        for name, block, shape in self.layout():
            if name.startswith("W"):
                n_out, n_in = shape
                limit = np.sqrt(6.0 / (n_in + n_out))
                theta[block] = rng.uniform(-limit, limit, size=n_out * n_in)
        return theta

    def _theta(self, theta):
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 1 or theta.shape[0] != self.n_params:
            raise ValueError(
                f"`theta` must be a vector of length n_params = {self.n_params}; got shape "
                f"{theta.shape}."
            )
        return np.ascontiguousarray(theta)

    def _work(self):
        return np.zeros(self.workspace_size)

    def __call__(self, theta, x):
        """Evaluate the network.

        Parameters
        ----------
        theta : array_like
            Parameter vector of length :attr:`n_params`.
        x : array_like
            One input of shape ``(n_inputs,)`` or a batch ``(N, n_inputs)``.

        Returns
        -------
        numpy.ndarray
            ``(n_outputs,)`` or ``(N, n_outputs)``.

        Raises
        ------
        ValueError
            If ``theta`` or ``x`` has the wrong shape.

        Examples
        --------
        >>> import numpy as np
        >>> from paramest.nn import MLP
        >>> net = MLP([3, 8, 2])
        >>> net(net.init(seed=0), np.ones((5, 3))).shape
        (5, 2)
        """
        theta = self._theta(theta)
        x = self._transformed(np.asarray(x, dtype=np.float64))
        if x.ndim == 1 and x.shape[0] == self.n_inputs:
            out = np.empty(self.n_outputs)
            _kernels.forward(theta, np.ascontiguousarray(x), out, self.sizes,
                             self.activations, self.transform, self._work())
            return out
        if x.ndim == 2 and x.shape[1] == self.n_inputs:
            out = np.empty((x.shape[0], self.n_outputs))
            _kernels.batch_forward(theta, np.ascontiguousarray(x), out, self.sizes,
                                   self.activations, self.transform, self._work())
            return out
        raise ValueError(
            f"`x` must have shape ({self.n_inputs},) or (N, {self.n_inputs}); got shape "
            f"{x.shape}."
        )

    def jacobian(self, theta, x):
        """Derivatives of the output at one input, from the hand-written JVP/VJP kernels.

        Parameters
        ----------
        theta : array_like
            Parameter vector of length :attr:`n_params`.
        x : array_like
            One input, shape ``(n_inputs,)``.

        Returns
        -------
        J_x : numpy.ndarray
            ``(n_outputs, n_inputs)``: d output / d x.
        J_theta : numpy.ndarray
            ``(n_outputs, n_params)``: d output / d theta.

        Examples
        --------
        >>> from paramest.nn import MLP
        >>> net = MLP([2, 4, 3])
        >>> J_x, J_theta = net.jacobian(net.init(seed=0), [0.1, 0.2])
        >>> J_x.shape, J_theta.shape
        ((3, 2), (3, 27))
        """
        theta = self._theta(theta)
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_inputs,):
            raise ValueError(
                f"`x` must have shape ({self.n_inputs},) for `jacobian`; got shape {x.shape}."
            )
        slope = self._slope(x)
        x = np.ascontiguousarray(self._transformed(x))
        work = self._work()
        J_x = np.empty((self.n_outputs, self.n_inputs))
        J_theta = np.empty((self.n_outputs, self.n_params))
        w = np.zeros(self.n_outputs)
        for row in range(self.n_outputs):
            w[:] = 0.0
            w[row] = 1.0
            _kernels.vjp(theta, x, w, J_x[row], J_theta[row], self.sizes, self.activations,
                         self.transform, work)
        return J_x * slope, J_theta

    def _transformed(self, x):
        """``g(x)`` elementwise for a function ``input_transform`` (else ``x``)."""
        if self.input_function is None:
            return x
        return _apply_elementwise(self.input_function, np.ascontiguousarray(x).reshape(-1),
                                  False).reshape(x.shape)

    def _slope(self, x):
        """``g'(x)`` elementwise (ones without a function ``input_transform``)."""
        if self.input_function is None:
            return np.ones_like(x)
        return _apply_elementwise(self.input_function, np.ascontiguousarray(x).reshape(-1),
                                  True).reshape(x.shape)


@njit(cache=False)
def _apply_elementwise(function, values, derivative):
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        if derivative:
            out[i] = function(values[i] + 1j * COMPLEX_STEP).imag / COMPLEX_STEP
        else:
            out[i] = function(values[i])
    return out


def elementwise_transform(transform):
    """``(kernel code, compiled function or None)`` for an ``input_transform``: None,
    ``"cube"``, or a function ``g(x)`` of one number, compiled with Numba and checked: its
    complex-step derivative (what the reverse passes use) must agree with finite
    differences."""
    from paramest.model import _compile, _name, _python_function

    if transform is None or isinstance(transform, str):
        if transform not in _kernels.TRANSFORMS:
            raise ValueError(
                "`input_transform` must be None, 'cube' or a function g(x) of one number "
                f"that Numba compiles; got {transform!r}."
            )
        return _kernels.TRANSFORMS[transform], None
    if not callable(transform):
        raise TypeError(
            "`input_transform` must be None, 'cube' or a function g(x) of one number, got "
            f"{type(transform).__name__}"
        )
    py_func = _python_function(transform, "input_transform")
    compiled = transform if hasattr(transform, "py_func") else _compile(njit, py_func)
    for x in (-1.3, -0.2, 0.35, 1.7):
        try:
            exact = compiled(complex(x, COMPLEX_STEP)).imag / COMPLEX_STEP
            step = 1e-6 * max(1.0, abs(x))
            central = (compiled(x + step) - compiled(x - step)) / (2 * step)
        except Exception as exc:  # noqa: BLE001 - any failure: not usable
            raise ModelError(
                f"`input_transform` ({_name(py_func)}) must compile with Numba for float and "
                f"complex numbers (its derivative is taken by the complex step): {exc}"
            ) from None
        if not abs(exact - central) <= 1e-5 * max(1.0, abs(central)):
            raise ModelError(
                f"`input_transform` ({_name(py_func)}): its complex-step derivative at "
                f"x={x} is {exact:.6g} but finite differences give {central:.6g}; avoid "
                "abs(), min/max and comparisons on x (they are not complex-step safe)"
            )
    return _kernels.TRANSFORM_NONE, compiled
