"""``solve()`` with the stiff methods and with ``method="auto"``: results, counters,
switch records, dense output across switches, and failure messages."""

import numpy as np
import pytest

import paramest as pe
from paramest.kernels import status as st
from tests.problems import LV_P, LV_Y0, lotka_volterra


def robertson(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1]
    dydt[2] = p[1] * y[1] * y[1]


def fading_stiffness(t, y, p, dydt):
    # stiff while p0 * exp(-t) is large (y0 is pulled onto cos t), then a plain oscillator
    dydt[0] = -p[0] * np.exp(-t) * (y[0] - np.cos(t)) - np.sin(t)
    dydt[1] = y[2]
    dydt[2] = -y[1]


@pytest.fixture(scope="module")
def rober():
    return pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, 1e5), [0.04, 3e7, 1e4])


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P)


def test_auto_switches_on_robertson_and_not_on_lotka_volterra(rober, lv):
    stiff = pe.solve(rober, "auto", t_eval=[1e5], rtol=1e-6, atol=1e-10)
    assert stiff.success and stiff.method == "auto"
    assert stiff.switches and stiff.switches[0][1:] == ("Tsit5", "Rodas5P")
    assert 0.0 < stiff.switches[0][0] < 1.0  # the fast transient ends early
    assert stiff.njev > 0 and stiff.stiffness_detected
    reference = pe.solve(rober, "Rodas5P", t_eval=[1e5], rtol=1e-10, atol=1e-14)
    assert np.allclose(stiff.y, reference.y, rtol=1e-4, atol=1e-10)

    plain = pe.solve(lv, "auto", t_eval=np.linspace(0.0, 10.0, 11))
    tsit5 = pe.solve(lv, "Tsit5", t_eval=np.linspace(0.0, 10.0, 11))
    assert plain.switches == [] and plain.njev == 0 and not plain.stiffness_detected
    # without a switch "auto" is Tsit5, step for step
    np.testing.assert_array_equal(plain.y, tsit5.y)
    assert plain.nfev == tsit5.nfev


def test_auto_switches_back_when_the_stiffness_fades():
    problem = pe.ODEProblem(fading_stiffness, [1.0, 1.0, 0.0], (0.0, 40.0), [1e6])
    sol = pe.solve(problem, t_eval=np.linspace(0.0, 40.0, 81), rtol=1e-8, atol=1e-10)
    assert sol.success
    assert [s[1:] for s in sol.switches[:2]] == [("Tsit5", "Rodas5P"), ("Rodas5P", "Tsit5")]
    # back to explicit once h * |lambda| is small: lambda = 1e6 exp(-t) is ~100 at t = 9
    assert 4.0 < sol.switches[1][0] < 15.0
    exact = np.vstack([np.cos(sol.t), np.cos(sol.t), -np.sin(sol.t)])
    assert np.max(np.abs(sol.y - exact)) < 1e-6
    # Tsit5 alone cannot get through the stiff stretch in the same number of steps
    explicit = pe.solve(problem, "Tsit5", rtol=1e-8, atol=1e-10, max_steps=sol.n_accepted * 3)
    assert not explicit.success and explicit.stiffness_detected


def test_dense_output_across_switches(rober):
    t_eval = np.logspace(-6, 5, 60)
    sol = pe.solve(rober, t_eval=t_eval, rtol=1e-7, atol=1e-12, dense_output=True)
    assert sol.switches and sol.success
    # the continuous solution and the t_eval output come from the same interpolants
    assert np.allclose(sol.sol(t_eval), sol.y, rtol=1e-12, atol=1e-18)
    # both sides of the switch, and the switch time itself
    t_switch = sol.switches[0][0]
    around = sol.sol(np.array([t_switch * 0.999, t_switch, t_switch * 1.001]))
    assert np.all(np.isfinite(around)) and np.allclose(around.sum(axis=0), 1.0, atol=1e-9)
    assert sol.sol.n_steps == sol.n_accepted


@pytest.mark.parametrize("method", ["Rodas5P", "rodas4", "ROSENBROCK23"])
def test_rosenbrock_counters_and_every_step_output(rober, method):
    sol = pe.solve(rober, method, rtol=1e-6, atol=1e-10)  # every step: buffers must grow
    assert sol.success and sol.t.shape[0] == sol.n_accepted + 1 > 128
    assert sol.njev == sol.n_accepted  # one Jacobian per step; reused after rejections
    assert sol.nlu == sol.n_accepted + sol.n_rejected
    assert np.all(np.diff(sol.t) > 0.0) and sol.t[-1] == 1e5
    # mass is conserved by the model: y1 + y2 + y3 = 1
    assert np.allclose(sol.y.sum(axis=0), 1.0, atol=1e-9)


def test_rosenbrock_max_steps_is_reported(rober):
    sol = pe.solve(rober, "Rodas5P", max_steps=20)
    assert not sol.success and sol.status == st.MAX_STEPS
    assert "max_steps=20" in sol.message


def test_explicit_failure_on_a_stiff_problem_names_the_stiff_methods(rober):
    sol = pe.solve(rober, "Tsit5", max_steps=5000)
    assert not sol.success and sol.stiffness_detected
    assert "method='Rodas5P'" in sol.message and "'auto'" in sol.message


def test_stiff_solve_does_not_recompile_for_new_parameters(rober):
    from paramest.kernels.rosenbrock import integrate_rosenbrock

    pe.solve(rober, "Rodas5P", t_eval=[1.0])
    before = len(integrate_rosenbrock.signatures)
    for k1 in (0.03, 0.05):
        sol = pe.solve(rober, "Rodas5P", t_eval=[1.0], p=[k1, 3e7, 1e4], rtol=1e-5)
        assert sol.success
    assert len(integrate_rosenbrock.signatures) == before
