"""Device arrays for the CUDA kernels: which library an array belongs to, allocation in
that library, layout views, and two small kernels (input checks, status summaries).

Inputs may be NumPy arrays, CuPy arrays or Numba device arrays (anything with
``__cuda_array_interface__`` counts as the latter); outputs are made with the library of the
inputs, so that a caller's data stays where it is.
"""

import math

import numpy as np
from numba import cuda

from . import CUPY, NUMBA, array_kind, config, simulator_active

__all__ = [
    "allocate",
    "as_numba",
    "count_non_finite",
    "launch_shape",
    "permuted",
    "summarise_status",
    "to_device",
]


def as_numba(value):
    """A Numba device array viewing ``value`` (no copy)."""
    if getattr(value, "__cuda_ndarray__", False):
        return value
    return cuda.as_cuda_array(value)


def allocate(kind, shape, dtype):
    """An uninitialised device array of ``kind`` (host kinds get a Numba device array: the
    results are copied back once, at the end)."""
    if kind == CUPY:
        import cupy

        return cupy.empty(shape, dtype=dtype)
    return cuda.device_array(shape, dtype=dtype)


def to_device(kind, host_array):
    """``host_array`` copied to the device as ``kind`` (CuPy, or a Numba device array)."""
    if kind == CUPY:
        import cupy

        return cupy.asarray(host_array)
    return cuda.to_device(np.ascontiguousarray(host_array))


def permuted(array, axes):
    """A view of ``array`` with its axes in the order ``axes`` (NumPy's ``transpose``).

    Numba's device arrays transpose only in two dimensions (by copying); the view here is
    made from the same memory with permuted strides.
    """
    if array_kind(array) != NUMBA or simulator_active():
        return array.transpose(axes)
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(
        tuple(array.shape[a] for a in axes), tuple(array.strides[a] for a in axes),
        array.dtype, stream=array.stream, gpu_data=array.gpu_data,
    )


def launch_shape(n):
    """``(blocks, threads per block)`` for ``n`` threads, one per trajectory."""
    threads = (
        config.SIMULATOR_THREADS_PER_BLOCK if simulator_active() else config.THREADS_PER_BLOCK
    )
    return max(1, (n + threads - 1) // threads), threads


@cuda.jit
def _count_non_finite_kernel(values, counter):
    i = cuda.grid(1)
    if i < values.shape[0]:
        bad = 0
        for j in range(values.shape[1]):
            if not math.isfinite(values[i, j]):
                bad += 1
        if bad:
            cuda.atomic.add(counter, 0, bad)


def count_non_finite(values):
    """How many entries of the 2-D floating-point device array ``values`` are NaN or inf."""
    counter = cuda.to_device(np.zeros(1, dtype=np.int64))
    if values.shape[0] * values.shape[1] > 0:
        blocks, threads = launch_shape(values.shape[0])
        _count_non_finite_kernel[blocks, threads](values, counter)
    return int(counter.copy_to_host()[0])


@cuda.jit
def _summarise_status_kernel(status, success, failures):
    i = cuda.grid(1)
    if i < status.shape[0]:
        ok = status[i] == 0
        success[i] = ok
        if not ok:
            cuda.atomic.add(failures, 0, 1)
            cuda.atomic.min(failures, 1, i)


def summarise_status(status, success):
    """Write ``success = (status == 0)`` on the device and return ``(n_failed, first)``:
    how many trajectories failed and the index of the first (``-1`` when none did)."""
    n = status.shape[0]
    failures = cuda.to_device(np.array([0, n], dtype=np.int64))
    blocks, threads = launch_shape(n)
    _summarise_status_kernel[blocks, threads](status, success, failures)
    n_failed, first = (int(v) for v in failures.copy_to_host())
    return n_failed, (first if n_failed else -1)
