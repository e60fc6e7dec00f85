"""solve(): options, output layout, t_eval edge cases, failure reporting, bad arguments."""

import numpy as np
import pytest
from scipy.optimize import OptimizeResult

import paramest as pe
from paramest.kernels.explicit import integrate
from tests.problems import LV_P, LV_Y0, lotka_volterra, lotka_volterra_reference


def decay(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]
    dydt[1] = -y[1]


def blow_up(t, y, p, dydt):
    # y' = y^2, y(0) = 1: y = 1 / (1 - t) is singular at t = 1
    dydt[0] = y[0] * y[0]


def nan_after_one(t, y, p, dydt):
    # well defined until t = 1, NaN afterwards
    dydt[0] = np.sqrt(1.0 - t) if t <= 1.0 else np.nan


def stiff_decay(t, y, p, dydt):
    dydt[0] = -p[0] * (y[0] - np.cos(t))


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P)


@pytest.fixture(scope="module")
def decay_problem():
    return pe.ODEProblem(decay, [1.0, 2.0], (0.0, 1.0), [0.5])


def test_solution_is_an_optimize_result_with_scipy_layout(lv):
    t_eval = np.linspace(0.0, 10.0, 101)
    sol = pe.solve(lv, t_eval=t_eval)
    assert isinstance(sol, OptimizeResult) and isinstance(sol, pe.Solution)
    assert sol.y.shape == (2, 101) and sol.t.shape == (101,)
    assert sol.success and sol.status == 0 and "successfully" in sol.message
    assert sol.method == "auto" and sol.sol is None and sol.switches == []
    assert sol.njev == 0 and sol.nlu == 0  # the default never needed a Jacobian here
    assert sol.nfev > 0 and sol.n_accepted > 0 and sol.n_rejected >= 0
    assert sol.t_final == 10.0
    reference = lotka_volterra_reference(t_eval)
    assert np.max(np.abs(sol.y - reference)) < 1e-4


def test_every_step_output_when_t_eval_is_none(lv):
    sol = pe.solve(lv, "DP5")
    assert sol.t[0] == 0.0 and sol.t[-1] == 10.0
    assert sol.t.size == sol.n_accepted + 1
    assert np.all(np.diff(sol.t) > 0)
    np.testing.assert_array_equal(sol.y[:, 0], LV_Y0)
    # the every-step buffer starts small and grows: a long solve must keep every step
    long = pe.solve(lv.remake(t_span=(0.0, 200.0)), "DP5", rtol=1e-10, atol=1e-10)
    assert long.success and long.t.size == long.n_accepted + 1 > 1000


def test_t_eval_endpoints_and_single_point(lv):
    sol = pe.solve(lv, t_eval=[0.0, 10.0], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(sol.y[:, 0], LV_Y0)
    reference = lotka_volterra_reference(np.array([0.0, 10.0]))
    np.testing.assert_allclose(sol.y[:, 1], reference[:, 1], atol=1e-7)
    single = pe.solve(lv, t_eval=[4.2], rtol=1e-10, atol=1e-10)
    assert single.y.shape == (2, 1) and single.t[0] == 4.2
    at_start = pe.solve(lv, t_eval=[0.0])
    np.testing.assert_array_equal(at_start.y[:, 0], LV_Y0)


@pytest.mark.parametrize(
    ("t_eval", "match"),
    [
        ([0.0, 5.0, 2.0], "`t_eval` must be strictly increasing for a forward t_span"),
        ([0.0, 5.0, 5.0], "`t_eval` must be strictly increasing"),
        ([-1.0, 5.0], r"`t_eval` must lie inside t_span = \(0.0, 10.0\)"),
        ([5.0, 10.5], "`t_eval` must lie inside t_span"),
        ([[1.0, 2.0]], "`t_eval` must be 1-D"),
        ([], "`t_eval` must contain at least one time"),
        ([1.0, np.nan], "`t_eval` must contain finite times"),
        ("abc", "`t_eval` must be a 1-D array of times"),
    ],
)
def test_bad_t_eval(lv, t_eval, match):
    with pytest.raises(ValueError, match=match):
        pe.solve(lv, t_eval=t_eval)


def test_backward_t_eval_must_decrease(lv):
    backward = lv.remake(t_span=(10.0, 0.0))
    with pytest.raises(ValueError, match="strictly decreasing for a backward t_span"):
        pe.solve(backward, t_eval=[0.0, 5.0])
    sol = pe.solve(backward, t_eval=[10.0, 5.0, 0.0])
    assert sol.success and sol.t_final == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(method="RK45"), ValueError, "`method` must be one of 'auto', 'Tsit5'"),
        (dict(method=5), ValueError, "`method` must be one of"),
        (dict(rtol=0.0), ValueError, r"`rtol` must be in \(0, 1\)"),
        (dict(rtol=-1e-6), ValueError, "`rtol` must be in"),
        (dict(rtol="1e-6"), TypeError, "`rtol` must be a real number"),
        (dict(atol=-1.0), ValueError, "`atol` must be a finite non-negative number"),
        (dict(atol=[1e-8, 1e-8, 1e-8]), ValueError, "`atol` must be a number or a vector of 2"),
        (dict(atol=[1e-8, -1.0]), ValueError, "`atol` entries must be finite and non-negative"),
        (dict(atol=np.nan), ValueError, "`atol` must be a finite non-negative number"),
        (dict(method="RK4"), ValueError, "`dt` is required by the fixed-step method 'RK4'"),
        (dict(method="Euler"), ValueError, "`dt` is required by the fixed-step method 'Euler'"),
        (dict(method="Tsit5", dt=0.0), ValueError, "`dt` must be a positive number"),
        (dict(method="Rodas5P", dt=np.inf), ValueError, "`dt` must be a positive number"),
        (dict(dt=0.1), ValueError, "`dt` .fixed steps. cannot be combined with method='auto'"),
        (dict(first_step=-1.0), ValueError, "`first_step` must be a positive number"),
        (dict(first_step=11.0), ValueError, "`first_step` must not exceed"),
        (dict(max_step=0.0), ValueError, "`max_step` must be a positive number"),
        (dict(max_steps=0), ValueError, "`max_steps` must be at least 1"),
        (dict(max_steps=1.5), TypeError, "`max_steps` must be an integer"),
        (dict(p=[1.0, 2.0]), ValueError, "`p` must have 4 entries, got 2"),
        (dict(p=[1.0, 2.0, np.nan, 1.0]), ValueError, "`p` must be finite"),
        (dict(y0=[1.0]), ValueError, "`y0` must have 2 entries, got 1"),
    ],
)
def test_bad_arguments_name_the_argument(lv, kwargs, error, match):
    with pytest.raises(error, match=match):
        pe.solve(lv, **kwargs)


def test_problem_must_be_an_ode_problem():
    with pytest.raises(TypeError, match="`problem` must be an ODEProblem"):
        pe.solve(lotka_volterra)


def test_method_names_are_case_insensitive(lv):
    assert pe.solve(lv, "tsit5").method == "Tsit5"
    assert pe.solve(lv, "VERN7").method == "Vern7"


def test_vector_atol_is_used(decay_problem):
    # rtol tiny so that atol sets the error scale of each component
    loose = pe.solve(decay_problem, atol=[1e-3, 1e-3], rtol=1e-12)
    tight_second = pe.solve(decay_problem, atol=[1e-3, 1e-10], rtol=1e-12)
    assert tight_second.n_accepted > loose.n_accepted


def test_overrides_do_not_recompile(lv):
    t_eval = np.linspace(0.0, 10.0, 11)
    pe.solve(lv, t_eval=t_eval)
    compiled = len(integrate.overloads)
    address = lv.model.address
    a = pe.solve(lv, t_eval=t_eval, p=[1.0, 1.0, 3.0, 1.0])
    b = pe.solve(lv, t_eval=np.linspace(0.0, 10.0, 7), y0=[2.0, 0.5], rtol=1e-3, atol=1e-5)
    c = pe.solve(lv.remake(p=[1.2, 1.0, 3.0, 1.0]), t_eval=t_eval)
    assert a.success and b.success and c.success
    assert len(integrate.overloads) == compiled
    assert lv.model.address == address
    # the overrides took effect
    assert not np.allclose(a.y, pe.solve(lv, t_eval=t_eval).y)
    np.testing.assert_array_equal(b.y[:, 0], [2.0, 0.5])


def test_overrides_leave_the_problem_untouched(lv):
    pe.solve(lv, p=[1.0, 1.0, 1.0, 1.0], y0=[3.0, 3.0])
    np.testing.assert_array_equal(lv.p, LV_P)
    np.testing.assert_array_equal(lv.y0, LV_Y0)


def test_fixed_step_lands_on_the_end(decay_problem):
    sol = pe.solve(decay_problem, "RK4", dt=0.3)
    np.testing.assert_allclose(sol.t, [0.0, 0.3, 0.6, 0.9, 1.0])
    assert sol.n_accepted == 4 and sol.n_rejected == 0
    # RK4 with dt = 0.3: global error about 1e-4 relative
    np.testing.assert_allclose(sol.y[:, -1], [np.exp(-0.5), 2 * np.exp(-1.0)], rtol=3e-4)


def test_dense_output(lv):
    sol = pe.solve(lv, "Tsit5", rtol=1e-10, atol=1e-10, dense_output=True)
    assert isinstance(sol.sol, pe.DenseOutput)
    times = np.linspace(0.0, 10.0, 37)
    reference = lotka_volterra_reference(times)
    np.testing.assert_allclose(sol.sol(times), reference, atol=1e-7)
    assert sol.sol(3.3).shape == (2,)
    np.testing.assert_allclose(sol.sol(10.0), sol.y[:, -1], atol=1e-12)
    with pytest.raises(ValueError, match="`t` must lie inside the solved interval"):
        sol.sol(10.5)
    # many steps: the dense store grows past its first capacity
    assert sol.sol.n_steps > 128


def test_dense_output_backward(lv):
    backward = lv.remake(t_span=(10.0, 0.0), y0=lotka_volterra_reference(np.array([10.0]))[:, 0])
    sol = pe.solve(backward, "DP5", rtol=1e-10, atol=1e-10, dense_output=True)
    np.testing.assert_allclose(sol.sol(0.0), LV_Y0, atol=1e-6)


def test_max_steps_is_reported(lv):
    sol = pe.solve(lv, max_steps=10)
    assert not sol.success and sol.status == -1
    assert "max_steps=10" in sol.message and "t=" in sol.message
    assert sol.t_final < 10.0


def test_blow_up_is_reported_not_raised():
    problem = pe.ODEProblem(blow_up, [1.0], (0.0, 2.0))
    sol = pe.solve(problem, t_eval=np.linspace(0.0, 2.0, 21))
    assert not sol.success and sol.status in (-2, -3)
    assert 0.99 < sol.t_final < 1.0 + 1e-6
    assert f"t={sol.t_final:.6g}" in sol.message
    # outputs before the singularity are kept and correct (a step may land on t = 1.0
    # within rounding of the singularity; its value is huge but finite)
    before = sol.t < 0.95
    assert sol.t.size in (10, 11) and np.count_nonzero(before) == 10
    np.testing.assert_allclose(sol.y[0, before], 1.0 / (1.0 - sol.t[before]), rtol=1e-4)
    assert np.all(np.isfinite(sol.y))


def test_non_finite_derivative_is_reported():
    problem = pe.ODEProblem(nan_after_one, [0.0], (0.0, 2.0))
    sol = pe.solve(problem)
    assert not sol.success and sol.status == -3
    assert "non-finite" in sol.message and "NaN" in sol.message
    assert abs(sol.t_final - 1.0) < 1e-3


def test_non_finite_in_fixed_step_mode():
    problem = pe.ODEProblem(nan_after_one, [0.0], (0.0, 2.0))
    sol = pe.solve(problem, "RK4", dt=0.25)
    assert not sol.success and sol.status == -3
    assert sol.t_final == 1.0 and "non-finite" in sol.message


def test_stiff_problem_is_detected_and_named_in_the_message():
    problem = pe.ODEProblem(stiff_decay, [0.0], (0.0, 10.0), [1e5])
    sol = pe.solve(problem, "DP5", max_steps=2000)
    assert not sol.success and sol.status == -1
    assert sol.stiffness_detected
    assert "looks stiff" in sol.message
    easy = pe.solve(pe.ODEProblem(stiff_decay, [1.0], (0.0, 10.0), [1.0]), "DP5")
    assert easy.success and not easy.stiffness_detected


def test_zero_atol_with_a_component_that_stays_zero(lv):
    # a prey-free system: the prey stays exactly 0, so its error scale is 0 with atol = 0
    sol = pe.solve(lv, y0=[0.0, 1.0], atol=0.0, t_eval=[0.0, 1.0])
    assert sol.success, sol.message
    np.testing.assert_allclose(sol.y[:, -1], [0.0, np.exp(-3.0)], rtol=1e-5)
