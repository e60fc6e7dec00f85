"""CUDA twins of the CPU kernels: ensembles with one trajectory per GPU thread.

Importing this package does not import ``numba.cuda`` (which probes for a driver and costs
time): :func:`unavailable_reason` does, when asked, and the kernel modules
(:mod:`.ensemble`, :mod:`.arrays`) import it at their top, so the front end imports them
only on the ``device="cuda"`` path.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` in the environment before Numba
is imported) the kernels run as Python on the CPU, one thread at a time: that is how CI,
which has no GPU, tests them.
"""

__all__ = ["CUPY", "HOST", "METHODS", "NUMBA", "array_kind", "simulator_active",
           "unavailable_reason"]

#: the methods the CUDA kernels run (explicit tableaus of :mod:`paramest.kernels.tableaus`)
METHODS = ("Tsit5", "RK4", "Euler")

#: where an array lives: host memory (NumPy), a CuPy array, a Numba device array
HOST = "numpy"
CUPY = "cupy"
NUMBA = "numba"


def array_kind(value):
    """:data:`HOST`, :data:`CUPY` or :data:`NUMBA` for ``value``: CuPy arrays, Numba device
    arrays (and any other object with ``__cuda_array_interface__``, handled as one), and
    everything else as host data. Imports nothing.

    Examples
    --------
    >>> import numpy as np
    >>> array_kind(np.zeros(3))
    'numpy'
    """
    module = type(value).__module__ or ""
    if module.partition(".")[0] == "cupy" and hasattr(value, "__cuda_array_interface__"):
        return CUPY
    if getattr(value, "__cuda_ndarray__", False) or hasattr(value, "__cuda_array_interface__"):
        return NUMBA
    return HOST


def simulator_active():
    """Whether ``numba.cuda`` is Numba's CUDA simulator in this process."""
    from numba.core import config

    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def _one_line(text):
    return " ".join(str(text).split()).strip(" :")


def unavailable_reason():
    """None when the CUDA kernels can run here (a usable GPU, or the simulator), else a
    sentence saying what is missing.

    Examples
    --------
    >>> reason = unavailable_reason()
    >>> reason is None or isinstance(reason, str)
    True
    """
    try:
        from numba import cuda
    except Exception as exc:  # noqa: BLE001 - any failure means "no CUDA target"
        return (
            f"Numba's CUDA target could not be imported ({_one_line(exc)}); install "
            "numba-cuda (pip install 'numba-cuda[cu12]')"
        )
    if simulator_active():
        return None
    try:
        if cuda.is_available():
            return None
    except Exception:  # noqa: BLE001 - fall through to the detailed probe below
        pass
    try:
        # is_available() swallows the reason; asking for the devices raises it
        devices = list(cuda.list_devices())
    except Exception as exc:  # noqa: BLE001 - CudaSupportError, driver errors, ...
        return f"no usable CUDA driver or GPU was found ({_one_line(exc)})"
    if not devices:
        return "the CUDA driver found no GPU"
    return "the CUDA driver reported a GPU that Numba cannot use"
