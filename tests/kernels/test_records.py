"""The records the kernels read (options, resumable state, packed tableaus): every layout is
dense, every record is built in one place and has every entry set, and the front end's
records drive every path of both integrators.

CI also runs this file with ``NUMBA_BOUNDSCHECK=1`` (see ``.ci/run``), where a kernel that
reads past a record raises ``IndexError`` instead of reading neighbouring memory.
"""

import math
import warnings

import numba
import numpy as np
import pytest

import paramest as pe
from paramest.kernels import explicit, fields, records, rosenbrock
from paramest.kernels import status as st
from paramest.kernels.fields import model_addresses, plain_field
from paramest.kernels.rosenbrock_tableaus import ROSENBROCK_TABLEAUS
from paramest.kernels.tableaus import TABLEAUS
from paramest.solve import _validated_options


def _layout(module, prefix, size_name):
    """The ``prefix*`` constants of ``module`` other than the size, by value."""
    return {
        name: value for name, value in vars(module).items()
        if name.startswith(prefix) and name != size_name and isinstance(value, int)
    }


@pytest.mark.parametrize(
    "module, prefix",
    [(st, "O_"), (st, "IO_"), (st, "F_"), (st, "I_"), (explicit, "T_"), (rosenbrock, "R_"),
     (fields, "A_"), (fields, "SI_")],
)
def test_every_layout_numbers_its_entries_zero_to_size(module, prefix):
    size_name = prefix + "SIZE"
    layout = _layout(module, prefix, size_name)
    assert sorted(layout.values()) == list(range(getattr(module, size_name))), layout


def test_float_options_are_filled_by_keyword():
    fopts = records.float_options(1.0, -2.0, 1e-7, first_step=0.5, max_step=3.0, dt=0.25)
    assert fopts.dtype == np.float64 and fopts.shape == (st.O_SIZE,)
    assert fopts.flags.c_contiguous and fopts.flags.writeable
    assert fopts[st.O_T0] == 1.0 and fopts[st.O_T_END] == -2.0 and fopts[st.O_RTOL] == 1e-7
    assert fopts[st.O_FIRST_STEP] == 0.5 and fopts[st.O_MAX_STEP] == 3.0
    assert fopts[st.O_DT] == 0.25
    defaults = records.float_options(0.0, 1.0, 1e-6)
    assert defaults[st.O_FIRST_STEP] == 0.0 and defaults[st.O_DT] == 0.0
    assert math.isinf(defaults[st.O_MAX_STEP])


def test_int_options_are_filled_by_keyword_and_read_back():
    iopts = records.int_options(
        123, save_every_step=True, store_dense=False, switch=True, jac_mode=st.JAC_CENTRAL,
        time_mode=st.TIME_DERIVATIVE_ZERO,
    )
    assert iopts.dtype == np.int64 and iopts.shape == (st.IO_SIZE,)
    assert iopts.flags.c_contiguous and iopts.flags.writeable
    assert iopts[st.IO_MAX_STEPS] == 123 and iopts[st.IO_SAVE_EVERY_STEP] == 1
    assert iopts[st.IO_STORE_DENSE] == 0 and iopts[st.IO_SWITCH] == 1
    assert iopts[st.IO_JAC_MODE] == st.JAC_CENTRAL
    assert iopts[st.IO_TIME_MODE] == st.TIME_DERIVATIVE_ZERO
    fields = records.int_options_fields(iopts)
    assert fields == dict(max_steps=123, save_every_step=True, store_dense=False, switch=True,
                          jac_mode=st.JAC_CENTRAL, time_mode=st.TIME_DERIVATIVE_ZERO)
    np.testing.assert_array_equal(records.int_options(**fields), iopts)
    defaults = records.int_options(10, save_every_step=False, store_dense=True)
    assert defaults[st.IO_SWITCH] == 0 and defaults[st.IO_JAC_MODE] == st.JAC_COMPLEX_STEP
    assert defaults[st.IO_TIME_MODE] == st.TIME_DERIVATIVE_COMPLEX_STEP


def test_int_options_reject_unknown_modes():
    with pytest.raises(ValueError, match="jac_mode"):
        records.int_options(1, True, False, jac_mode=7)
    with pytest.raises(ValueError, match="time_mode"):
        records.int_options(1, True, False, time_mode=-1)


def test_state_records_start_at_zero():
    fstate, istate = records.float_state(), records.int_state()
    assert fstate.shape == (st.F_SIZE,) and fstate.dtype == np.float64 and not fstate.any()
    assert istate.shape == (st.I_SIZE,) and istate.dtype == np.int64 and not istate.any()


def test_front_end_options_are_the_builders_records():
    entry, _, fopts, (every_step, at_t_eval) = _validated_options(
        "auto", 1e-5, 1e-9, 0.1, 2.0, 500, True, None, 0.0, 3.0, 2
    )
    np.testing.assert_array_equal(
        fopts, records.float_options(0.0, 3.0, 1e-5, first_step=0.1, max_step=2.0)
    )
    np.testing.assert_array_equal(
        every_step, records.int_options(500, save_every_step=True, store_dense=True,
                                        switch=True)
    )
    np.testing.assert_array_equal(
        at_t_eval, records.int_options(500, save_every_step=False, store_dense=True,
                                       switch=True)
    )


@pytest.mark.parametrize(
    "pack, tableaus, size",
    [(explicit.pack_tableau, TABLEAUS, explicit.T_SIZE),
     (rosenbrock.pack_rosenbrock_tableau, ROSENBROCK_TABLEAUS, rosenbrock.R_SIZE)],
)
def test_packed_tableau_records_have_their_layout_size(pack, tableaus, size):
    for tableau in tableaus.values():
        tab, info = pack(tableau)
        assert info.shape == (size,) and info.dtype == np.int64 and info.flags.c_contiguous
        assert tab.dtype == np.float64 and tab.flags.c_contiguous


# Small models that take each path through the records: the complex-step, user and
# central-difference Jacobians; df/dt by the complex step, by differences and not at all.


def relaxation(t, y, p, dydt):
    # stiff for large p[0]: y0 relaxes onto cos t, y1 onto y0
    dydt[0] = -p[0] * (y[0] - np.cos(t))
    dydt[1] = p[0] * (y[0] - y[1])


def relaxation_math(t, y, p, dydt):
    # math.cos(t) does not compile for a complex t (df/dt by differences) and abs() breaks
    # the complex step (df/dy by differences); the state stays positive
    dydt[0] = -p[0] * (abs(y[0]) - 2.0 - math.cos(t))
    dydt[1] = y[0] - y[1]


def linear_decay(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + y[1]
    dydt[1] = -y[1]


def linear_decay_jac(t, y, p, jac):
    jac[0, 0] = -p[0]
    jac[0, 1] = 1.0
    jac[1, 0] = 0.0
    jac[1, 1] = -1.0


def _stiff_modes(problem):
    (_, (_, iopts)), = problem.model.stiff_setups.items()
    return iopts[st.IO_JAC_MODE], iopts[st.IO_TIME_MODE]


def test_explicit_paths_through_the_records():
    problem = pe.ODEProblem(relaxation, [1.0, 0.0], (0.0, 2.0), [3.0])
    t_eval = np.linspace(0.0, 2.0, 5)
    every = pe.solve(problem, "Tsit5", dense_output=True, first_step=0.01, max_step=0.5)
    at_times = pe.solve(problem, "Vern7", t_eval=t_eval, dense_output=True)
    fixed = pe.solve(problem, "RK4", t_eval=t_eval, dt=0.01)
    reverse = pe.ODEProblem(relaxation, every.y[:, -1], (2.0, 0.0), [3.0])
    backwards = pe.solve(reverse, "DP5", t_eval=[2.0, 0.0], rtol=1e-9, atol=1e-11)
    for sol in (every, at_times, fixed, backwards):
        assert sol.success, sol.message
    assert np.allclose(every.sol(t_eval), at_times.y, rtol=1e-5, atol=1e-7)
    assert np.allclose(fixed.y, at_times.y, rtol=1e-6, atol=1e-8)
    assert np.allclose(backwards.y[:, -1], [1.0, 0.0], atol=1e-3)
    limited = pe.solve(problem, "BS3", max_steps=3)
    assert limited.status == st.MAX_STEPS


def test_stiff_paths_through_the_records():
    stiff = pe.ODEProblem(relaxation, [1.0, 0.0], (0.0, 5.0), [1e4])
    t_eval = np.linspace(0.0, 5.0, 6)
    rodas = pe.solve(stiff, "Rodas5P", t_eval=t_eval, rtol=1e-8, atol=1e-10)
    assert _stiff_modes(stiff) == (st.JAC_COMPLEX_STEP, st.TIME_DERIVATIVE_COMPLEX_STEP)
    auto = pe.solve(stiff, t_eval=t_eval, rtol=1e-8, atol=1e-10, dense_output=True)
    assert auto.switches and auto.switches[0][1:] == ("Tsit5", "Rodas5P")
    every = pe.solve(stiff, "Rosenbrock23", dense_output=True, max_step=1.0)
    for sol in (rodas, auto, every):
        assert sol.success, sol.message
    assert np.allclose(auto.y, rodas.y, rtol=1e-5, atol=1e-8)
    assert np.allclose(every.y[:, -1], rodas.y[:, -1], rtol=1e-2)

    with pytest.warns(pe.ComplexStepWarning):
        fallback = pe.ODEProblem(relaxation_math, [3.0, 0.0], (0.0, 5.0), [1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pe.ComplexStepWarning)
        central = pe.solve(fallback, "Rodas4", t_eval=t_eval, rtol=1e-8, atol=1e-10)
    assert central.success, central.message
    assert _stiff_modes(fallback) == (st.JAC_CENTRAL, st.TIME_DERIVATIVE_CENTRAL)
    # the same solution: y0 = 2 + cos t + (y0 of relaxation) shifted by 2
    assert np.allclose(central.y[0], rodas.y[0] + 2.0, rtol=1e-5, atol=1e-6)

    with_jac = pe.ODEProblem(linear_decay, [1.0, 1.0], (0.0, 1.0), [1e3], jac=linear_decay_jac)
    user = pe.solve(with_jac, "Rodas5P", t_eval=[1.0], rtol=1e-10, atol=1e-12)
    assert user.success and _stiff_modes(with_jac) == (st.JAC_USER, st.TIME_DERIVATIVE_ZERO)
    # y1 = e^{-t}; y0 = e^{-t} / (a - 1) + (1 - 1 / (a - 1)) e^{-a t}
    a = 1e3
    exact = math.exp(-1.0) / (a - 1.0) + (1.0 - 1.0 / (a - 1.0)) * math.exp(-a)
    assert np.allclose(user.y[:, -1], [exact, math.exp(-1.0)], rtol=1e-8)


@pytest.mark.skipif(not numba.config.BOUNDSCHECK, reason="needs NUMBA_BOUNDSCHECK=1 (CI)")
def test_a_short_record_is_caught_when_bounds_are_checked():
    """The bounds-checked CI run is real: the kernel reads ``iopts[IO_SWITCH]`` (index 3),
    so an options record of 3 entries raises instead of reading past its end."""
    problem = pe.ODEProblem(relaxation, [1.0, 0.0], (0.0, 1.0), [3.0])
    tab, info = explicit.pack_tableau(TABLEAUS["Tsit5"])
    n, t_eval = 2, np.array([0.0, 1.0])
    short = records.int_options(1000, save_every_step=False, store_dense=False)[:3].copy()
    empty = np.empty(0)
    with pytest.raises(IndexError):
        explicit.integrate(
            plain_field(model_addresses(rhs=problem.model.address)), problem.y0.copy(),
            problem.p.copy(), np.full(n, 1e-8),
            records.float_options(0.0, 1.0, 1e-6), short, tab, info, t_eval, np.empty(2),
            np.empty((2, n)), empty, empty, np.empty((0, 0)), np.empty((0, 0, 0)),
            np.empty((tab.shape[0], n)), records.float_state(), records.int_state(),
        )
