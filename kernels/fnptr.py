"""Calling a user's model through a raw function address.

Integrators are compiled once per machine (``cache=True``) and take the model as an int64
address of a Numba ``cfunc``. Passing an integer from Python costs a fraction of a
microsecond, whereas passing a function object would cost 7-50 microseconds on every call
and would stop the kernels from being cached on disk. Inside the kernel, :func:`as_rhs`
turns the address back into a first-class function of the right signature; the choice
between the float64 and complex128 signatures follows the dtype of the state array, so a
single kernel source serves real solves and complex-step differentiated solves.

The lowering fills Numba's ``FunctionType`` record (``c_addr``, ``py_addr``, ``jit_addr``),
which is internal to Numba; ``setup.cfg`` pins the Numba range this was checked against and
``tests/kernels/test_fnptr.py`` exercises it.
"""

from numba import types
from numba.core import cgutils
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

_RHS_F64 = types.FunctionType(RHS_SIG_F64)
_RHS_C128 = types.FunctionType(RHS_SIG_C128)
_RHS_C128_T = types.FunctionType(RHS_SIG_C128_T)
_JAC_F64 = types.FunctionType(JAC_SIG_F64)


def _function_from_address(fnty):
    def codegen(context, builder, signature, args):
        record = cgutils.create_struct_proxy(fnty)(context, builder)
        voidptr = context.get_value_type(types.voidptr)
        record.c_addr = builder.inttoptr(args[0], voidptr)
        # Null Python and JIT addresses make Numba call through the C wrapper, which is all
        # a cfunc provides and needs no Python object.
        record.py_addr = cgutils.get_null_value(voidptr)
        record.jit_addr = cgutils.get_null_value(voidptr)
        return record._getvalue()

    return codegen


@intrinsic
def as_rhs(typingctx, address, like):
    """Return the model at ``address`` typed for arrays of ``like``'s dtype."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    fnty = _RHS_C128 if isinstance(like.dtype, types.Complex) else _RHS_F64
    return fnty(address, like), _function_from_address(fnty)


@intrinsic
def as_jac(typingctx, address):
    """Return the user Jacobian ``jac(t, y, p, J)`` at ``address``."""
    if not isinstance(address, types.Integer):
        return None
    return _JAC_F64(address), _function_from_address(_JAC_F64)


@intrinsic
def as_rhs_complex_time(typingctx, address):
    """Return the model at ``address`` compiled with complex ``t``, ``y`` and ``p``."""
    if not isinstance(address, types.Integer):
        return None
    return _RHS_C128_T(address), _function_from_address(_RHS_C128_T)
