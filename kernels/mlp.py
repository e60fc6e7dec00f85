"""Small multilayer perceptrons on a flat parameter vector, with hand-written derivatives.

The networks live inside model right-hand sides ``fun(t, y, p, dydt)`` that Numba compiles
as cfuncs, so every function here is allocation-free: it reads the weights from a flat
vector ``theta`` (a model's ``p``, or the front of a slice of it), writes into arrays the
caller provides and keeps its intermediate values in a caller-provided ``work`` vector of
length :func:`workspace_size`. Only ``theta[:n_params]`` is read, so ``theta`` may be a
slice ``p[k:]`` of a longer parameter vector; the front end checks lengths, these kernels do
not.

Flat layout of ``theta``
------------------------
For each layer ``l`` (``sizes[l]`` inputs to ``sizes[l + 1]`` outputs), in order: the weight
matrix ``W_l`` of shape ``(sizes[l + 1], sizes[l])`` stored row-major (output-major:
``W_l[j, i]``, at offset ``j * sizes[l] + i`` of the block, multiplies input ``i`` for
output ``j``), then the bias ``b_l`` of length ``sizes[l + 1]``. So
``n_params = sum(sizes[l + 1] * (sizes[l] + 1))``, and the network is::

    a_0 = T(x)                       # the input transform: identity or x**3 elementwise
    z_l = W_l a_l + b_l              # l = 0 .. L-1
    a_{l+1} = act_l(z_l)             # activations[l]; the last entry is the output's

``sizes`` and ``activations`` are tuples of ints (callers capture them as closure constants
in their cfuncs), ``transform`` an int: the codes are the module constants below.

Real and complex
----------------
:func:`forward` compiles for float64 and for complex128 arrays: a model compiled for
complex128 is differentiated by the complex step (``kernels/derivatives.py``), so the complex
activations are the analytic continuations of the real ones, computed so that they do not
overflow for a large real part (Numba's own complex ``tanh`` returns NaN beyond about 355,
and its complex ``log1p`` drops the real part of a tiny argument). The choice between the
real and the complex code is made by type, through an ``overload`` of :func:`_activate`.
:func:`jvp` and :func:`vjp` are real only.

Performance notes (reference network: sizes ``(2, 50, 2)``, tanh hidden layer, cube input):

* There is no SVML in this build of Numba, so ``math.tanh``/``np.tanh`` are scalar libm
  calls that also stop the loop around them from being vectorised. The real activations use
  :func:`fast_exp` and :func:`fast_tanh`, written in plain arithmetic with no branches
  (both sides of every choice are computed and one is selected), so LLVM vectorises the
  loop over a layer's units; they are within a few ulp of libm (tested on 10**6 points).
* A layer's pre-activations are formed first and activated in a separate loop over the
  units, so that the activation loop is a plain elementwise loop.
* A dot product is summed in four interleaved partial sums (fixed order, so results are
  deterministic and the same for real and complex data): without reassociation (which we do
  not allow) one running sum is a chain of dependent additions.
* ``fastmath={"contract"}`` only: multiply-adds become FMAs. Nothing else is relaxed, so
  NaN and infinities propagate as in IEEE arithmetic.
* Weights and work vectors are addressed by offsets, never by slices: a slice is a new
  array with a reference count, updated atomically on every call. Offsets index through
  :func:`_index` (unsigned), which removes Numba's negative-index wraparound; with it, the
  activation loop vectorises and the forward pass took 0.24 us instead of 0.4-0.9 us.
* Helpers are ``inline="always"``: see ``_INLINE``.
* Measured on the reference network (Numba 0.68, one core of a loaded 2-core Xeon):
  forward 0.24 us and VJP 0.52 us; with libm's tanh 0.76 and 0.92 us.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# Activation codes (one per layer in ``activations``).
IDENTITY = 0
TANH = 1
RELU = 2
SOFTPLUS = 3
SIGMOID = 4
SWISH = 5
#: activation names to codes, as the front end spells them
ACTIVATIONS = {
    "identity": IDENTITY,
    "tanh": TANH,
    "relu": RELU,
    "softplus": SOFTPLUS,
    "sigmoid": SIGMOID,
    "swish": SWISH,
}

# Input-transform codes.
TRANSFORM_NONE = 0
#: ``x -> x**3`` elementwise, as in the DiffEqFlux spiral benchmark
TRANSFORM_CUBE = 1
TRANSFORMS = {None: TRANSFORM_NONE, "cube": TRANSFORM_CUBE}

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
# Helpers are inlined in Numba's IR: a function loaded from the on-disk cache is machine
# code that LLVM cannot inline, and a call inside a loop over units stops its vectorisation.
_INLINE = dict(_JIT, inline="always")


def n_params(sizes):
    """Length of the flat parameter vector of a network with layer sizes ``sizes``."""
    return sum(sizes[k + 1] * (sizes[k] + 1) for k in range(len(sizes) - 1))


def workspace_size(sizes):
    """Length of the ``work`` vector the kernels need for layer sizes ``sizes``.

    Layout: the transformed input (``sizes[0]``), then each layer's pre-activations and
    activations (``2 * sizes[l + 1]``), then two vectors of ``max(sizes)`` for the tangents
    (:func:`jvp`) or cotangents (:func:`vjp`) of one layer and the next.
    """
    return sizes[0] + 2 * sum(sizes[1:]) + 2 * max(sizes)


# ---------------------------------------------------------------------------------------
# exp and tanh in plain arithmetic


@intrinsic
def _float_bits(typingctx, x):
    """The IEEE bits of a float64 as an int64 (a bit cast, vectorisable)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def _bits_float(typingctx, k):
    """The float64 whose IEEE bits are the int64 ``k`` (a bit cast, vectorisable)."""
    if k != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(k), codegen


@intrinsic
def _index(typingctx, i):
    """``i`` (an int64, known to be non-negative) as an unsigned index.

    Numba wraps a signed index around (``a[i - n]`` for ``i < 0``): a test and a select on
    every access, which stops LLVM from vectorising a loop over ``a[offset + j]`` since it
    cannot prove the sum non-negative. An unsigned index is used as it is.
    """
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return args[0]

    return types.uint64(i), codegen


_LOG2E = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for |k| < 2**20 (the upper word of ln 2 with its
# low 32 bits zeroed, and the remainder): Cody & Waite's additive range reduction, with the
# constants of fdlibm's e_exp.c (Sun Microsystems, 1993).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Adding 1.5 * 2**52 to |t| < 2**51 rounds t to the nearest integer k and leaves k in the
# low bits of the sum: the integer comes from the bits, with no float-to-int conversion
# (which AVX2 cannot do on vectors of doubles).
_SHIFTER = 6755399441055744.0
_SHIFTER_BITS = 0x4338000000000000
# exp(r) for |r| <= ln(2)/2 by its Taylor series to degree 13: the first omitted term is
# below (ln 2 / 2)**14 / 14! = 4.2e-18, a twenty-sixth of an ulp of exp(r) >= 0.7.
_C2 = 1.0 / math.factorial(2)
_C3 = 1.0 / math.factorial(3)
_C4 = 1.0 / math.factorial(4)
_C5 = 1.0 / math.factorial(5)
_C6 = 1.0 / math.factorial(6)
_C7 = 1.0 / math.factorial(7)
_C8 = 1.0 / math.factorial(8)
_C9 = 1.0 / math.factorial(9)
_C10 = 1.0 / math.factorial(10)
_C11 = 1.0 / math.factorial(11)
_C12 = 1.0 / math.factorial(12)
_C13 = 1.0 / math.factorial(13)


@njit(**_INLINE)
def _exp_reduced(x):
    """``(exp(r), k)`` with ``x = k ln 2 + r``, ``|r| <= ln(2)/2``, for ``|x| < 2**50 ln 2``.

    Cody & Waite's additive range reduction (Software Manual for the Elementary Functions,
    1980, ch. 6), ``exp(r)`` by its Taylor series. NaN gives a NaN first entry.
    """
    shifted = x * _LOG2E + _SHIFTER
    k = _float_bits(shifted) - _SHIFTER_BITS
    kf = shifted - _SHIFTER
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + 1.0
    p = p * r + 1.0
    return p, k


@njit(**_INLINE)
def _pow2(k):
    # 2**k from its exponent bits, for -1022 <= k <= 1023
    return _bits_float((k + 1023) << 52)


@njit(**_INLINE)
def fast_exp(x):
    """``exp(x)`` for float64 in branch-free arithmetic (vectorisable), within about an ulp.

    :func:`_exp_reduced`, then ``2**k`` from its bits in two factors, so that ``k`` down to
    -1077 underflows gradually and up to 1025 overflows to inf without a branch. NaN
    propagates; ``-inf -> 0``, ``inf -> inf``.
    """
    # clamp where the result is already 0 or inf; written so that NaN passes through
    x = -746.0 if x < -746.0 else x
    x = 710.0 if x > 710.0 else x
    p, k = _exp_reduced(x)
    k1 = k >> 1
    return p * _pow2(k1) * _pow2(k - k1)


# tanh(x) = x + x**3 P(x**2) / Q(x**2) for |x| < 0.625: the rational approximation of the
# Cephes Math Library (S. L. Moshier, tanh.c, 1984-1992; peak relative error 2.5e-16 in
# IEEE double), also that of Go's math.Tanh.
_TANH_P0 = -9.64399179425052238628e-1
_TANH_P1 = -9.92877231001918586564e1
_TANH_P2 = -1.61468768441708447952e3
_TANH_Q0 = 1.12811678491632931402e2
_TANH_Q1 = 2.23548839060100448583e3
_TANH_Q2 = 4.84406305325125486048e3


@njit(**_INLINE)
def fast_tanh(x):
    """``tanh(x)`` for float64 in branch-free arithmetic (vectorisable), within a few ulp.

    For ``|x| < 0.625`` the Cephes rational function (full relative accuracy down to the
    tiniest ``x``, where it returns ``x``); above, ``1 - 2 / (exp(2|x|) + 1)`` with
    :func:`fast_exp` (no cancellation: the result is above 0.55), ``|x|`` clamped at 20
    where ``tanh`` rounds to 1. Both are formed and one is selected, with one division. The
    sign is copied from ``x``, so ``tanh(-0.0) = -0.0``; NaN propagates.
    """
    z = math.fabs(x)
    s = z * z
    small = z < 0.625
    zc = 20.0 if z > 20.0 else z  # NaN passes through
    # exp(2 zc) <= exp(40): one power of two, and no clamps for under- or overflow
    p, k = _exp_reduced(zc + zc)
    e = p * _pow2(k)
    base = z if small else 1.0
    num = z * s * ((_TANH_P0 * s + _TANH_P1) * s + _TANH_P2) if small else -2.0
    den = (((s + _TANH_Q0) * s + _TANH_Q1) * s + _TANH_Q2) if small else e + 1.0
    return math.copysign(base + num / den, x)


@njit(**_INLINE)
def _fast_sigmoid(x):
    # 1 / (1 + exp(-x)) for x >= 0, exp(x) / (1 + exp(x)) below: no overflow either way
    e = fast_exp(-math.fabs(x))
    num = 1.0 if x >= 0.0 else e
    return num / (1.0 + e)


# ---------------------------------------------------------------------------------------
# complex activations (analytic continuations, for the complex step)


@njit(**_INLINE)
def _complex_tanh(z):
    # Kahan's formula, as in CPython's cmath.tanh: with t = tanh(x), u = tan(y) and
    # c = 1/cosh(x), tanh(x + iy) = (t (1 + u**2) + i u c**2) / (1 + t**2 u**2), finite for
    # every finite x (c underflows to 0 where cosh overflows). t from fast_tanh, so that on
    # real input the real part is the real path's value exactly.
    t = fast_tanh(z.real)
    u = math.tan(z.imag)
    c = 1.0 / math.cosh(z.real)
    tu = t * u
    den = 1.0 + tu * tu
    return complex(t * (1.0 + u * u) / den, ((u / den) * c) * c)


@njit(**_INLINE)
def _complex_log1p(z):
    # log(1 + z) keeping the real part's relative accuracy for small |z| (Numba's complex
    # log1p returns 0 for the real part of 1e-20 + 1e-30j): |1 + z|**2 - 1 = x (2 + x) + y**2
    x = z.real
    y = z.imag
    if math.fabs(x) < 0.5 and math.fabs(y) < 0.5:
        re = 0.5 * math.log1p(x * (2.0 + x) + y * y)
    else:
        re = math.log(math.hypot(1.0 + x, y))
    return complex(re, math.atan2(y, 1.0 + x))


@njit(**_INLINE)
def _complex_sigmoid(z):
    if z.real >= 0.0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(**_INLINE)
def _complex_softplus(z):
    if z.real > 0.0:
        return z + _complex_log1p(np.exp(-z))
    return _complex_log1p(np.exp(z))


def _activate(z, z_off, a, a_off, n, code):
    """``a[a_off + j] = act(z[z_off + j])`` for ``j < n``: real or complex by the arrays'
    dtype (overloaded below)."""
    raise NotImplementedError


@overload(_activate, inline="always", jit_options=_JIT)
def _activate_overload(z, z_off, a, a_off, n, code):
    if not isinstance(z, types.Array) or not isinstance(a, types.Array):
        return None
    if isinstance(z.dtype, types.Float):

        def real(z, z_off, a, a_off, n, code):
            # one loop per code, so each is a plain elementwise (vectorisable) loop
            if code == TANH:
                for j in range(n):
                    a[_index(a_off + j)] = fast_tanh(z[_index(z_off + j)])
            elif code == IDENTITY:
                for j in range(n):
                    a[_index(a_off + j)] = z[_index(z_off + j)]
            elif code == RELU:
                for j in range(n):
                    v = z[_index(z_off + j)]
                    a[_index(a_off + j)] = 0.0 if v <= 0.0 else v  # NaN passes through
            elif code == SIGMOID:
                for j in range(n):
                    a[_index(a_off + j)] = _fast_sigmoid(z[_index(z_off + j)])
            elif code == SOFTPLUS:
                # softplus(v) = max(v, 0) + log1p(exp(-|v|)): no overflow, and exp(v) to
                # full relative accuracy far below zero
                for j in range(n):
                    v = z[_index(z_off + j)]
                    tail = math.log1p(fast_exp(-math.fabs(v)))
                    a[_index(a_off + j)] = (v if v > 0.0 else 0.0) + tail
            elif code == SWISH:
                for j in range(n):
                    v = z[_index(z_off + j)]
                    a[_index(a_off + j)] = v * _fast_sigmoid(v)

        return real
    if isinstance(z.dtype, types.Complex):

        def cplx(z, z_off, a, a_off, n, code):
            for j in range(n):
                v = z[_index(z_off + j)]
                if code == TANH:
                    a[_index(a_off + j)] = _complex_tanh(v)
                elif code == RELU:
                    a[_index(a_off + j)] = 0.0 if v.real <= 0.0 else v
                elif code == SIGMOID:
                    a[_index(a_off + j)] = _complex_sigmoid(v)
                elif code == SOFTPLUS:
                    a[_index(a_off + j)] = _complex_softplus(v)
                elif code == SWISH:
                    a[_index(a_off + j)] = v * _complex_sigmoid(v)
                else:
                    a[_index(a_off + j)] = v

        return cplx
    return None


@njit(**_INLINE)
def _scale_by_derivative(work, z_off, a_off, g, g_off, n, code):
    """``g[g_off + j] *= act'(z_j)`` (real), with ``z_j``, ``act(z_j)`` in ``work`` at
    ``z_off``, ``a_off``: a tangent or cotangent through one layer's activation."""
    if code == TANH:
        for j in range(n):
            a = work[_index(a_off + j)]
            g[_index(g_off + j)] *= 1.0 - a * a
    elif code == RELU:
        for j in range(n):
            g[_index(g_off + j)] *= 0.0 if work[_index(z_off + j)] <= 0.0 else 1.0
    elif code == SIGMOID:
        for j in range(n):
            a = work[_index(a_off + j)]
            g[_index(g_off + j)] *= a * (1.0 - a)
    elif code == SOFTPLUS:
        for j in range(n):
            g[_index(g_off + j)] *= _fast_sigmoid(work[_index(z_off + j)])
    elif code == SWISH:
        # d/dz z s(z) = s + z s (1 - s) = s + a (1 - s), with a = z s
        for j in range(n):
            s = _fast_sigmoid(work[_index(z_off + j)])
            a = work[_index(a_off + j)]
            g[_index(g_off + j)] *= s + a * (1.0 - s)


# ---------------------------------------------------------------------------------------
# dense layers


@njit(**_INLINE)
def _dense(theta, w_off, n_in, n_out, a, a_off, z, z_off):
    """``z[z_off:][:n_out] = W a[a_off:][:n_in] + b`` for the layer at ``theta[w_off:]``.

    Each sum starts from the bias and runs over the inputs in order (with few inputs) or in
    four interleaved partial sums (with many): either way a fixed order, the same for real
    and complex data.
    """
    b_off = w_off + n_in * n_out
    if n_in < 8:
        # short rows (a network's first layer): the loop over outputs is the long one, so
        # it is the inner loop (vectorised, W read by column)
        for j in range(n_out):
            z[_index(z_off + j)] = theta[_index(b_off + j)]
        for i in range(n_in):
            v = a[_index(a_off + i)]
            for j in range(n_out):
                z[_index(z_off + j)] += theta[_index(w_off + j * n_in + i)] * v
        return
    n4 = n_in - n_in % 4
    for j in range(n_out):
        row = w_off + j * n_in
        s0 = theta[_index(b_off + j)]
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for i in range(0, n4, 4):
            s0 += theta[_index(row + i)] * a[_index(a_off + i)]
            s1 += theta[_index(row + i + 1)] * a[_index(a_off + i + 1)]
            s2 += theta[_index(row + i + 2)] * a[_index(a_off + i + 2)]
            s3 += theta[_index(row + i + 3)] * a[_index(a_off + i + 3)]
        for i in range(n4, n_in):
            s0 += theta[_index(row + i)] * a[_index(a_off + i)]
        z[_index(z_off + j)] = (s0 + s1) + (s2 + s3)


@njit(**_INLINE)
def _dense_tangent(theta, dtheta, w_off, n_in, n_out, a, a_off, da, da_off, dz, dz_off):
    """``dz = W da + dW a + db``: the tangent of :func:`_dense` in the input and weights."""
    b_off = w_off + n_in * n_out
    for j in range(n_out):
        row = w_off + j * n_in
        s = dtheta[_index(b_off + j)]
        for i in range(n_in):
            k = _index(row + i)
            s += theta[k] * da[_index(da_off + i)] + dtheta[k] * a[_index(a_off + i)]
        dz[_index(dz_off + j)] = s


@njit(**_INLINE)
def _outer(g, g_off, n_out, a, a_off, n_in, out, out_off):
    """``out[out_off:]`` = the ``(n_out, n_in)`` outer product of ``g`` and ``a``, row-major:
    a layer's weight gradient."""
    if n_in < 8:
        # short rows: outputs inner, as in _dense
        for i in range(n_in):
            v = a[_index(a_off + i)]
            for j in range(n_out):
                out[_index(out_off + j * n_in + i)] = g[_index(g_off + j)] * v
        return
    for j in range(n_out):
        c = g[_index(g_off + j)]
        row = out_off + j * n_in
        for i in range(n_in):
            out[_index(row + i)] = c * a[_index(a_off + i)]


@njit(**_INLINE)
def _dense_transpose(theta, w_off, n_in, n_out, g, g_off, h, h_off):
    """``h[h_off:][:n_in] = W^T g[g_off:][:n_out]``: the cotangent of a layer's input."""
    if n_in >= 8:
        # W's rows are contiguous: a sum of rows, vectorised along each row
        for i in range(n_in):
            h[_index(h_off + i)] = 0.0
        for j in range(n_out):
            row = w_off + j * n_in
            c = g[_index(g_off + j)]
            for i in range(n_in):
                h[_index(h_off + i)] += theta[_index(row + i)] * c
    else:
        # few long columns: one dot product per column, four partial sums each
        n4 = n_out - n_out % 4
        for i in range(n_in):
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for j in range(0, n4, 4):
                s0 += theta[_index(w_off + j * n_in + i)] * g[_index(g_off + j)]
                s1 += theta[_index(w_off + (j + 1) * n_in + i)] * g[_index(g_off + j + 1)]
                s2 += theta[_index(w_off + (j + 2) * n_in + i)] * g[_index(g_off + j + 2)]
                s3 += theta[_index(w_off + (j + 3) * n_in + i)] * g[_index(g_off + j + 3)]
            for j in range(n4, n_out):
                s0 += theta[_index(w_off + j * n_in + i)] * g[_index(g_off + j)]
            h[_index(h_off + i)] = (s0 + s1) + (s2 + s3)


@njit(**_INLINE)
def _transform_input(x, x_off, work, n, transform):
    if transform == TRANSFORM_CUBE:
        for i in range(n):
            v = x[_index(x_off + i)]
            work[_index(i)] = v * v * v
    else:
        for i in range(n):
            work[_index(i)] = x[_index(x_off + i)]


@njit(**_INLINE)
def _forward_layers(theta, x, x_off, sizes, activations, transform, work):
    """Fill ``work`` with the transformed input and every layer's pre-activations and
    activations (layer ``l``'s at ``z_off``, ``z_off + sizes[l + 1]``); returns the offset
    of the output layer's activations."""
    _transform_input(x, x_off, work, sizes[0], transform)
    w_off = 0
    a_off = 0
    z_off = sizes[0]
    for layer in range(len(sizes) - 1):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        _dense(theta, w_off, n_in, n_out, work, a_off, work, z_off)
        _activate(work, z_off, work, z_off + n_out, n_out, activations[layer])
        w_off += n_out * (n_in + 1)
        a_off = z_off + n_out
        z_off += 2 * n_out
    return a_off


@njit(**_JIT)
def forward(theta, x, out, sizes, activations, transform, work):
    """``out = network(transform(x))``: float64 or complex128 arrays, all of one dtype.

    ``work`` needs :func:`workspace_size` entries; afterwards it holds the transformed input
    and every layer's pre-activations and activations (layout in :func:`workspace_size`).
    """
    a_off = _forward_layers(theta, x, 0, sizes, activations, transform, work)
    for j in range(sizes[len(sizes) - 1]):
        out[j] = work[a_off + j]


@njit(**_JIT)
def batch_forward(theta, xs, outs, sizes, activations, transform, work):
    """``outs[k] = network(transform(xs[k]))`` for each row of the C-contiguous ``xs``
    ``(N, sizes[0])``, into the C-contiguous ``outs`` ``(N, sizes[-1])``."""
    n_in = sizes[0]
    n_out = sizes[len(sizes) - 1]
    flat_x = xs.reshape(xs.size)
    flat_out = outs.reshape(outs.size)
    for k in range(xs.shape[0]):
        a_off = _forward_layers(theta, flat_x, k * n_in, sizes, activations, transform, work)
        for j in range(n_out):
            flat_out[k * n_out + j] = work[a_off + j]


@njit(**_INLINE)
def _tangent_offset(sizes):
    # where the two tangent/cotangent vectors start in ``work``, and their length
    start = sizes[0]
    widest = sizes[0]
    for layer in range(1, len(sizes)):
        start += 2 * sizes[layer]
        widest = max(widest, sizes[layer])
    return start, widest


@njit(**_JIT)
def jvp(theta, x, dtheta, dx, out, dout, sizes, activations, transform, work):
    """``out = f(theta, x)`` and ``dout = J_theta dtheta + J_x dx`` (float64 only).

    Forward-mode: each layer's tangent is carried with its value, in one pass.
    """
    n0 = sizes[0]
    ta, widest = _tangent_offset(sizes)
    tb = ta + widest
    _transform_input(x, 0, work, n0, transform)
    if transform == TRANSFORM_CUBE:
        for i in range(n0):
            v = x[i]
            work[ta + i] = 3.0 * v * v * dx[i]
    else:
        for i in range(n0):
            work[ta + i] = dx[i]
    w_off = 0
    a_off = 0
    z_off = n0
    for layer in range(len(sizes) - 1):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        code = activations[layer]
        _dense(theta, w_off, n_in, n_out, work, a_off, work, z_off)
        _dense_tangent(theta, dtheta, w_off, n_in, n_out, work, a_off, work, ta, work, tb)
        _activate(work, z_off, work, z_off + n_out, n_out, code)
        _scale_by_derivative(work, z_off, z_off + n_out, work, tb, n_out, code)
        ta, tb = tb, ta
        w_off += n_out * (n_in + 1)
        a_off = z_off + n_out
        z_off += 2 * n_out
    for j in range(sizes[len(sizes) - 1]):
        out[j] = work[a_off + j]
        dout[j] = work[ta + j]


@njit(**_JIT)
def vjp(theta, x, w, out_x, out_theta, sizes, activations, transform, work):
    """``out_x = J_x^T w`` and ``out_theta = J_theta^T w`` (float64 only; every entry of
    both is written).

    One forward pass keeps every layer's pre-activations and activations in ``work``; the
    backward pass turns the output cotangent ``w`` into each layer's weight and bias
    gradients (outer products, written row by row) and the cotangent of its input, down to
    ``x`` through the input transform.
    """
    n_layers = len(sizes) - 1
    _forward_layers(theta, x, 0, sizes, activations, transform, work)
    ga, widest = _tangent_offset(sizes)
    gb = ga + widest
    for j in range(sizes[n_layers]):
        work[ga + j] = w[j]
    z_end = ga
    w_end = 0
    for layer in range(n_layers):
        w_end += sizes[layer + 1] * (sizes[layer] + 1)
    for layer in range(n_layers - 1, -1, -1):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        z_off = z_end - 2 * n_out
        in_off = z_off - n_in  # the previous layer's activations, or the transformed input
        w_off = w_end - n_out * (n_in + 1)
        b_off = w_off + n_in * n_out
        _scale_by_derivative(work, z_off, z_off + n_out, work, ga, n_out, activations[layer])
        for j in range(n_out):
            out_theta[b_off + j] = work[ga + j]
        _outer(work, ga, n_out, work, in_off, n_in, out_theta, w_off)
        _dense_transpose(theta, w_off, n_in, n_out, work, ga, work, gb)
        ga, gb = gb, ga
        z_end = z_off
        w_end = w_off
    if transform == TRANSFORM_CUBE:
        for i in range(sizes[0]):
            v = x[i]
            out_x[i] = 3.0 * v * v * work[ga + i]
    else:
        for i in range(sizes[0]):
            out_x[i] = work[ga + i]


@njit(**_JIT)
def fast_tanh_vector(x):
    """:func:`fast_tanh` of each entry of a float64 vector (for tests and benchmarks)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fast_tanh(x[i])
    return out


@njit(**_JIT)
def fast_exp_vector(x):
    """:func:`fast_exp` of each entry of a float64 vector (for tests and benchmarks)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fast_exp(x[i])
    return out
