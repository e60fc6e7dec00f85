"""Calling a user's model through a raw function address.

Integrators are compiled once per machine (``cache=True``) and take the model as an int64
address of a Numba ``cfunc``. Passing an integer from Python costs a fraction of a
microsecond, whereas passing a function object would cost 7-50 microseconds on every call
and would stop the kernels from being cached on disk. Inside a kernel, :func:`call_model`
calls the cfunc's C wrapper at that address directly; the signature follows the argument
types, so a single kernel source serves real solves and complex-step differentiated ones.

The C wrapper of a cfunc takes each argument as Numba's LLVM value type (an array as its
struct, by value) and returns void here; ``tests/kernels/test_fnptr.py`` checks the call
against the cfunc called from Python. An earlier version built a Numba first-class function
from the address; a kernel calling two such functions (the real and the complex model) in
a function inlined into a loop ran about 150 ns slower per call (measured on Numba 0.68),
which the direct call avoids.
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

#: ``fun(t, y, p, dydt)`` for real solves.
RHS_SIG_F64 = types.void(
    types.float64, types.float64[::1], types.float64[::1], types.float64[::1]
)
#: ``fun(t, y, p, dydt)`` with a complex state and parameters (complex step).
RHS_SIG_C128 = types.void(
    types.float64, types.complex128[::1], types.complex128[::1], types.complex128[::1]
)
#: ``fun(t, y, p, dydt)`` with a complex time as well: the complex step in ``t`` gives
#: ``df/dt`` for the Rosenbrock methods. Compiled only for those, since models that use
#: ``math`` functions of ``t`` do not compile for it (they fall back to differences in t).
RHS_SIG_C128_T = types.void(
    types.complex128, types.complex128[::1], types.complex128[::1], types.complex128[::1]
)
#: ``jac(t, y, p, J)``: dense 2-D output, real only (user Jacobians are not complex-stepped).
JAC_SIG_F64 = types.void(
    types.float64, types.float64[::1], types.float64[::1], types.float64[:, ::1]
)
#: ``vjp(t, y, p, w, out_y, out_p)``: a user's vector-Jacobian product, ``out_y = J^T w``
#: and ``out_p = f_p^T w`` (every parameter), for the adjoints.
VJP_SIG_F64 = types.void(
    types.float64, types.float64[::1], types.float64[::1], types.float64[::1],
    types.float64[::1], types.float64[::1],
)



def _is_vector(array, dtype):
    return (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"
            and array.dtype == dtype)


@intrinsic
def call_model(typingctx, address, t, y, p, out):
    """Call the cfunc at ``address`` as ``fun(t, y, p, out)``.

    The argument types select the signature: float64 ``t`` with float64 arrays
    (:data:`RHS_SIG_F64`), with complex128 arrays (:data:`RHS_SIG_C128`), complex128 ``t``
    with complex128 arrays (:data:`RHS_SIG_C128_T`), or float64 arrays with a 2-D ``out``
    (a Jacobian, :data:`JAC_SIG_F64`). Arrays must be C-contiguous, as the cfunc was
    compiled for; anything else fails to compile rather than pass a wrongly typed array.
    """
    if not isinstance(address, types.Integer):
        return None
    f64, c128 = types.float64, types.complex128
    if t == f64 and _is_vector(y, f64) and _is_vector(p, f64) and _is_vector(out, f64):
        declared = RHS_SIG_F64
    elif t == f64 and _is_vector(y, c128) and _is_vector(p, c128) and _is_vector(out, c128):
        declared = RHS_SIG_C128
    elif t == c128 and _is_vector(y, c128) and _is_vector(p, c128) and _is_vector(out, c128):
        declared = RHS_SIG_C128_T
    elif (t == f64 and _is_vector(y, f64) and _is_vector(p, f64)
          and isinstance(out, types.Array) and out.ndim == 2 and out.layout == "C"
          and out.dtype == f64):
        declared = JAC_SIG_F64
    else:
        return None

    def codegen(context, builder, signature, args):
        # the C wrapper's type: Numba's value type of each declared argument
        fnty = ir.FunctionType(
            ir.VoidType(), [context.get_value_type(arg) for arg in declared.args]
        )
        function = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(function, args[1:])
        return context.get_dummy_value()

    return types.void(address, t, y, p, out), codegen


@intrinsic
def call_vjp(typingctx, address, t, y, p, w, out_y, out_p):
    """Call the cfunc at ``address`` as ``vjp(t, y, p, w, out_y, out_p)``
    (:data:`VJP_SIG_F64`; every array a C-contiguous float64 vector)."""
    if not isinstance(address, types.Integer) or t != types.float64:
        return None
    if not all(_is_vector(a, types.float64) for a in (y, p, w, out_y, out_p)):
        return None

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(
            ir.VoidType(), [context.get_value_type(arg) for arg in VJP_SIG_F64.args]
        )
        function = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(function, args[1:])
        return context.get_dummy_value()

    return types.void(address, t, y, p, w, out_y, out_p), codegen
