"""Ensembles on the CPU: many solves of one model, one trajectory per iteration of a
parallel loop over the machine's cores.

Each trajectory runs the very kernels a single solve runs (:func:`explicit.integrate`,
:func:`rosenbrock.integrate_rosenbrock`) with its own state, parameters, step control and
resumable records, so its numbers are bitwise those of :func:`paramest.solve` with the same
method and options. The kernels release the GIL (``nogil``) and allocate nothing in their
step loops; a trajectory's work arrays are allocated once, at its start. ``method="auto"``
hands a trajectory between the explicit and the Rosenbrock method exactly as the
single-solve driver does (the same resets of the resumable records).
"""

import numpy as np
from numba import njit, prange

from . import status as st
from .explicit import integrate
from .rosenbrock import integrate_rosenbrock
from .stepping import restart_after_switch

__all__ = ["FAMILY_EXPLICIT", "FAMILY_ROSENBROCK", "FAMILY_AUTO", "C_SIZE", "solve_ensemble"]

#: ``family`` of :func:`solve_ensemble`: an explicit method, a Rosenbrock method, or the
#: explicit method first, switching as ``method="auto"`` does
FAMILY_EXPLICIT = 0
FAMILY_ROSENBROCK = 1
FAMILY_AUTO = 2

# Columns of the per-trajectory ``counts`` record.
C_NFEV = 0
C_NJEV = 1
C_NLU = 2
C_N_ACCEPTED = 3
C_N_REJECTED = 4
C_N_OUT = 5
C_SWITCHES = 6
C_SIZE = 7


@njit(cache=True, nogil=True, parallel=True)
def solve_ensemble(family, field, stiff_field, Y0, P, atol, fopts, iopts, stiff_iopts, tab,
                   tab_info, stiff_tab, stiff_tab_info, t_eval, Y_out, status, t_final,
                   counts):
    """Solve trajectory ``i`` from ``Y0[i]`` with parameters ``P[i]`` for every ``i`` in
    parallel; its outputs at ``t_eval`` go to ``Y_out[i]`` (``(n_times, N)``), its status
    code to ``status[i]``, the time it reached to ``t_final[i]`` and its counts (``C_*``)
    to ``counts[i]``. ``field``/``iopts``/``tab`` are the explicit method's (or the
    Rosenbrock method's for ``FAMILY_ROSENBROCK``); ``stiff_*`` the Rosenbrock method's
    that ``FAMILY_AUTO`` switches to. One trajectory's failure leaves the others alone."""
    n_traj = Y0.shape[0]
    n_all = Y0.shape[1]
    n_times = t_eval.shape[0]
    for i in prange(n_traj):
        y = Y0[i].copy()
        p = P[i].copy()
        t_out = np.empty(n_times)
        stages = np.empty((tab.shape[0], n_all))
        stiff_stages = np.empty((stiff_tab.shape[0], n_all))
        no_times = np.empty(0)
        no_states = np.empty((0, n_all))
        no_stages = np.empty((0, 0, n_all))
        fstate = np.zeros(st.F_SIZE)
        istate = np.zeros(st.I_SIZE, dtype=np.int64)
        switches = 0
        if family == FAMILY_ROSENBROCK:
            code = integrate_rosenbrock(stiff_field, y, p, atol, fopts, stiff_iopts,
                                        stiff_tab, stiff_tab_info, t_eval, t_out, Y_out[i],
                                        no_times, no_times, no_states, no_stages,
                                        stiff_stages, fstate, istate)
        else:
            code = integrate(field, y, p, atol, fopts, iopts, tab, tab_info, t_eval, t_out,
                             Y_out[i], no_times, no_times, no_states, no_stages, stages,
                             fstate, istate)
            while code == st.SWITCH_TO_STIFF or code == st.SWITCH_TO_NONSTIFF:
                switches += 1
                restart_after_switch(fstate, istate)
                if code == st.SWITCH_TO_STIFF:
                    code = integrate_rosenbrock(stiff_field, y, p, atol, fopts, stiff_iopts,
                                                stiff_tab, stiff_tab_info, t_eval, t_out,
                                                Y_out[i], no_times, no_times, no_states,
                                                no_stages, stiff_stages, fstate, istate)
                else:
                    code = integrate(field, y, p, atol, fopts, iopts, tab, tab_info, t_eval,
                                     t_out, Y_out[i], no_times, no_times, no_states,
                                     no_stages, stages, fstate, istate)
        status[i] = code
        t_final[i] = fstate[st.F_T]
        counts[i, C_NFEV] = istate[st.I_NFEV]
        counts[i, C_NJEV] = istate[st.I_NJEV]
        counts[i, C_NLU] = istate[st.I_NLU]
        counts[i, C_N_ACCEPTED] = istate[st.I_N_ACCEPTED]
        counts[i, C_N_REJECTED] = istate[st.I_N_REJECTED]
        counts[i, C_N_OUT] = istate[st.I_N_OUT]
        counts[i, C_SWITCHES] = switches
