"""Argument checks that would cost more than the solve itself if done with NumPy calls
from Python (each NumPy call costs about a microsecond; these loops cost nanoseconds)."""

import numpy as np
from numba import njit

TIMES_OK = 0
TIMES_NOT_FINITE = 1
TIMES_OUTSIDE = 2
TIMES_NOT_MONOTONE = 3


@njit(cache=True)
def check_times(times, t0, t1):
    """Check that ``times`` are finite, inside ``[t0, t1]`` and strictly monotone in the
    direction from ``t0`` to ``t1``; return one of the ``TIMES_*`` codes."""
    low = min(t0, t1)
    high = max(t0, t1)
    direction = 1.0 if t1 > t0 else -1.0
    for i in range(times.shape[0]):
        value = times[i]
        if not np.isfinite(value):
            return TIMES_NOT_FINITE
        if value < low or value > high:
            return TIMES_OUTSIDE
        if i > 0 and direction * (value - times[i - 1]) <= 0.0:
            return TIMES_NOT_MONOTONE
    return TIMES_OK
