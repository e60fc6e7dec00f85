"""Building the records the integrators read: the one place they are made.

The kernels take their options and their resumable state as small flat arrays laid out by
the constants in :mod:`status` (``O_*``, ``IO_*``, ``F_*``, ``I_*``). Every such record is
built here, by keyword, by the front end (``paramest.solve``) and by the tests alike, so
that a record can never be short or have an unset entry: a kernel indexing past a record
would read whatever memory follows it (Numba checks no bounds unless compiled with
``NUMBA_BOUNDSCHECK=1``, as CI does for the kernel tests).

The packed tableau records (``tab_info``) are built in one place each as well, by
``explicit.pack_tableau`` and ``rosenbrock.pack_rosenbrock_tableau``, next to their layouts.

Records are plain writable C-contiguous float64 / int64 arrays, the types the kernels were
compiled (and cached on disk) for: a read-only or differently typed record would make Numba
compile the integrator a second time.
"""

import math

import numpy as np

from . import status as st

__all__ = [
    "float_options",
    "float_state",
    "int_options",
    "int_options_fields",
    "int_state",
]

_JAC_MODES = (st.JAC_COMPLEX_STEP, st.JAC_USER, st.JAC_CENTRAL)
_TIME_MODES = (
    st.TIME_DERIVATIVE_COMPLEX_STEP, st.TIME_DERIVATIVE_CENTRAL, st.TIME_DERIVATIVE_ZERO,
)

#: field name -> index in the integer options record, for reading a record back
_INT_OPTION_INDEX = {
    "max_steps": st.IO_MAX_STEPS,
    "save_every_step": st.IO_SAVE_EVERY_STEP,
    "store_dense": st.IO_STORE_DENSE,
    "switch": st.IO_SWITCH,
    "jac_mode": st.IO_JAC_MODE,
    "time_mode": st.IO_TIME_MODE,
}


def _record(dtype, size, entries, name):
    """An array of ``size`` entries filled from ``{index: value}``, which must name every
    index exactly once (a layout constant added to ``status`` without a keyword here fails
    at once instead of leaving an entry unset)."""
    if len(entries) != size or sorted(entries) != list(range(size)):
        raise AssertionError(
            f"the {name} record sets entries {sorted(entries)}; its layout has {size}"
        )
    record = np.empty(size, dtype=dtype)
    for index, value in entries.items():
        record[index] = value
    return record


def float_options(t0, t_end, rtol, first_step=0.0, max_step=math.inf, dt=0.0):
    """The float64 options record ``fopts`` (``status.O_*``).

    Parameters
    ----------
    t0, t_end : float
        The integration interval (``t_end < t0`` integrates backwards).
    rtol : float
        Relative tolerance.
    first_step : float, default 0.0
        Initial step size; 0 lets the kernel choose it.
    max_step : float, default inf
        Largest step size.
    dt : float, default 0.0
        Fixed step size; 0 means adaptive steps.
    """
    return _record(np.float64, st.O_SIZE, {
        st.O_T0: float(t0),
        st.O_T_END: float(t_end),
        st.O_RTOL: float(rtol),
        st.O_FIRST_STEP: float(first_step),
        st.O_MAX_STEP: float(max_step),
        st.O_DT: float(dt),
    }, "float options")


def int_options(max_steps, save_every_step, store_dense, switch=False,
                jac_mode=st.JAC_COMPLEX_STEP, time_mode=st.TIME_DERIVATIVE_COMPLEX_STEP):
    """The int64 options record ``iopts`` (``status.IO_*``).

    Parameters
    ----------
    max_steps : int
        Most steps (accepted and rejected) before ``status.MAX_STEPS``.
    save_every_step : bool
        Report every accepted step (True) or the ``t_eval`` times (False).
    store_dense : bool
        Keep the steps for dense output.
    switch : bool, default False
        ``method="auto"``: return ``SWITCH_TO_STIFF`` / ``SWITCH_TO_NONSTIFF`` when the
        stiffness test says so.
    jac_mode : int, default ``status.JAC_COMPLEX_STEP``
        How a Rosenbrock method gets ``df/dy`` (``status.JAC_*``).
    time_mode : int, default ``status.TIME_DERIVATIVE_COMPLEX_STEP``
        How a Rosenbrock method gets ``df/dt`` (``status.TIME_DERIVATIVE_*``).
    """
    if jac_mode not in _JAC_MODES:
        raise ValueError(f"jac_mode must be one of {_JAC_MODES}, got {jac_mode!r}")
    if time_mode not in _TIME_MODES:
        raise ValueError(f"time_mode must be one of {_TIME_MODES}, got {time_mode!r}")
    return _record(np.int64, st.IO_SIZE, {
        st.IO_MAX_STEPS: int(max_steps),
        st.IO_SAVE_EVERY_STEP: int(bool(save_every_step)),
        st.IO_STORE_DENSE: int(bool(store_dense)),
        st.IO_SWITCH: int(bool(switch)),
        st.IO_JAC_MODE: int(jac_mode),
        st.IO_TIME_MODE: int(time_mode),
    }, "integer options")


def int_options_fields(iopts):
    """The keyword arguments of :func:`int_options` that rebuild ``iopts``: change one
    with ``int_options(**{**int_options_fields(iopts), "jac_mode": mode})``."""
    values = iopts.tolist()
    fields = {name: values[index] for name, index in _INT_OPTION_INDEX.items()}
    for name in ("save_every_step", "store_dense", "switch"):
        fields[name] = bool(fields[name])
    return fields


def float_state():
    """A fresh float64 state record ``fstate`` (``status.F_*``): all zero, the kernel's
    "not started" state (``I_STARTED == 0`` makes it initialise every entry)."""
    return np.zeros(st.F_SIZE)


def int_state():
    """A fresh int64 state record ``istate`` (``status.I_*``): all zero, not started."""
    return np.zeros(st.I_SIZE, dtype=np.int64)


# Every option field has its keyword: checked once at import.
if sorted(_INT_OPTION_INDEX.values()) != list(range(st.IO_SIZE)):  # pragma: no cover
    raise AssertionError("records.int_options does not cover the IO_* layout")
