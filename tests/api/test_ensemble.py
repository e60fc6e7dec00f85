"""solve_ensemble on the CPU: every trajectory is bitwise the single solve with the same
method and options; failures stay with their trajectory; summaries; bad input."""

import numpy as np
import pytest

import paramest as pe
from tests.problems import LV_P, LV_Y0, lotka_volterra

T_EVAL = np.linspace(0.0, 10.0, 21)


def robertson(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] ** 2
    dydt[2] = p[1] * y[1] ** 2


def blowup(t, y, p, dydt):
    dydt[0] = p[0] * y[0] * y[0]  # y(t) = 1 / (1 - p t): blows up at t = 1/p


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P)


@pytest.fixture(scope="module")
def lv_params():
    return np.asarray(LV_P) * np.random.default_rng(0).uniform(0.8, 1.2, (24, 4))


def _single(problem, i, params=None, states=None, **options):
    return pe.solve(problem, t_eval=options.pop("t_eval", T_EVAL),
                    p=None if params is None else params[i],
                    y0=None if states is None else states[i], **options)


@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "RK4"])
def test_every_trajectory_is_bitwise_the_single_solve(lv, lv_params, method):
    options = dict(method=method, rtol=1e-7, atol=1e-9, dt=0.01 if method == "RK4" else None)
    states = np.asarray(LV_Y0) * np.random.default_rng(1).uniform(0.5, 1.5, (24, 2))
    ens = pe.solve_ensemble(lv, p=lv_params, y0=states, t_eval=T_EVAL, **options)
    assert ens.y.shape == (24, 2, T_EVAL.size) and ens.success.all()
    for i in range(24):
        sol = _single(lv, i, lv_params, states, **options)
        np.testing.assert_array_equal(ens.y[i], sol.y)
        assert ens.n_accepted[i] == sol.n_accepted and ens.nfev[i] == sol.nfev


@pytest.mark.parametrize("method", ["Rodas5P", "auto"])
def test_stiff_and_switching_trajectories_are_bitwise_the_single_solve(method):
    problem = pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, 1e3), [0.04, 3e7, 1e4])
    rates = np.array([0.04, 3e7, 1e4]) * np.random.default_rng(2).uniform(0.5, 2.0, (8, 3))
    times = np.logspace(-3, 3, 7)
    options = dict(method=method, rtol=1e-7, atol=1e-12)
    ens = pe.solve_ensemble(problem, p=rates, t_eval=times, **options)
    assert ens.success.all(), ens.message
    for i in range(8):
        sol = _single(problem, i, rates, t_eval=times, **options)
        np.testing.assert_array_equal(ens.y[i], sol.y)
        assert ens.switches[i] == len(sol.switches)
        assert ens.njev[i] == sol.njev and ens.nlu[i] == sol.nlu
    if method == "auto":
        assert (ens.switches >= 1).all()


def test_forward_sensitivities_per_trajectory(lv, lv_params):
    options = dict(method="Tsit5", rtol=1e-8, atol=1e-10, sensitivity=pe.Forward(),
                   sens_y0=[1])
    ens = pe.solve_ensemble(lv, p=lv_params[:6], t_eval=T_EVAL, **options)
    assert ens.sens.shape == (6, 2, 5, T_EVAL.size)
    assert ens.sens_labels == ["p[0]", "p[1]", "p[2]", "p[3]", "y0[1]"]
    for i in range(6):
        sol = _single(lv, i, lv_params, **options)
        np.testing.assert_array_equal(ens.y[i], sol.y)
        np.testing.assert_array_equal(ens.sens[i], sol.sens)


def test_a_failed_trajectory_spoils_nothing():
    problem = pe.ODEProblem(blowup, [1.0], (0.0, 2.0), [0.1])
    rates = np.array([[0.1], [0.2], [0.8], [0.3]])  # 0.8 blows up at t = 1.25
    times = np.linspace(0.0, 2.0, 9)
    ens = pe.solve_ensemble(problem, p=rates, t_eval=times, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(ens.success, [True, True, False, True])
    assert ens.status[2] < 0 and 1.2 < ens.t_final[2] < 1.26
    assert np.isnan(ens.y[2, 0, -1]) and np.isfinite(ens.y[2, 0, :5]).all()
    exact = 1.0 / (1.0 - rates[[0, 1, 3]] * times)
    np.testing.assert_allclose(ens.y[[0, 1, 3], 0], exact, rtol=1e-7)
    assert ens.n_success == 3 and "1 of 4 trajectories failed" in ens.message
    assert "trajectory 2" in ens.message
    np.testing.assert_allclose(ens.mean(), exact.mean(axis=0)[None, :], rtol=1e-7)


def test_summaries(lv, lv_params):
    ens = pe.solve_ensemble(lv, p=lv_params, t_eval=T_EVAL, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ens.mean(), ens.y.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(ens.std(ddof=1), ens.y.std(axis=0, ddof=1), rtol=1e-15)
    bands = ens.quantile([0.05, 0.5, 0.95])
    assert bands.shape == (3, 2, T_EVAL.size)
    assert (bands[0] <= bands[1]).all() and (bands[1] <= bands[2]).all()
    np.testing.assert_array_equal(ens.quantile(0.5), np.median(ens.y, axis=0))
    with pytest.raises(ValueError, match="`q`"):
        ens.quantile(1.5)


def test_broadcasting(lv, lv_params):
    """One parameter vector for many initial states, and the other way round."""
    states = np.array([[1.0, 1.0], [2.0, 0.5], [0.5, 2.0]])
    ens = pe.solve_ensemble(lv, y0=states, t_eval=T_EVAL)
    for i in range(3):
        np.testing.assert_array_equal(ens.y[i], pe.solve(lv, "Tsit5", T_EVAL, y0=states[i]).y)
    one = pe.solve_ensemble(lv, p=lv_params[0], y0=states, t_eval=T_EVAL)
    assert one.y.shape[0] == 3
    np.testing.assert_array_equal(
        one.y[2], pe.solve(lv, "Tsit5", T_EVAL, p=lv_params[0], y0=states[2]).y
    )


def test_bad_input_is_refused_before_any_solve(lv, lv_params):
    with pytest.raises(ValueError, match=r"`p` must have shape \(n_trajectories, 4\)"):
        pe.solve_ensemble(lv, p=np.ones((3, 5)), t_eval=T_EVAL)
    with pytest.raises(ValueError, match="same number of trajectories"):
        pe.solve_ensemble(lv, p=lv_params[:3], y0=np.ones((2, 2)), t_eval=T_EVAL)
    with pytest.raises(ValueError, match="`t_eval` is required"):
        pe.solve_ensemble(lv, p=lv_params)
    with pytest.raises(ValueError, match="`p` must be finite"):
        pe.solve_ensemble(lv, p=[1.0, np.nan, 1.0, 1.0], t_eval=T_EVAL)
    with pytest.raises(ValueError, match="`device` must be 'cpu' or 'cuda'"):
        pe.solve_ensemble(lv, t_eval=T_EVAL, device="gpu")
    with pytest.raises(ValueError, match=r"`dtype` must be float64 on the CPU.*device='cuda'"):
        pe.solve_ensemble(lv, t_eval=T_EVAL, dtype=np.float32)
    with pytest.raises(ValueError, match="Forward"):
        pe.solve_ensemble(lv, t_eval=T_EVAL, sensitivity=pe.ComplexStep())
    with pytest.raises(TypeError, match="real numbers"):
        pe.solve_ensemble(lv, p=["a", "b", "c", "d"], t_eval=T_EVAL)


def _cuda_unavailable():
    from paramest.kernels.cuda import simulator_active, unavailable_reason

    return not simulator_active() and unavailable_reason() is not None


@pytest.mark.skipif(not _cuda_unavailable(), reason="a GPU or Numba's CUDA simulator is here")
def test_cuda_without_a_gpu_says_what_is_missing_before_any_work(lv, lv_params):
    import sys

    with pytest.raises(RuntimeError, match=r"device='cuda' is not available here: .+ "
                       r"Use device='cpu'.*NUMBA_ENABLE_CUDASIM=1"):
        pe.solve_ensemble(lv, p=lv_params, t_eval=T_EVAL, device="cuda")
    # nothing was compiled for the GPU
    kernels = sys.modules.get("paramest.kernels.cuda.ensemble")
    assert kernels is None or not kernels._KERNELS
    # argument errors still name the argument first
    with pytest.raises(ValueError, match="'Vern7' is not available with device='cuda'"):
        pe.solve_ensemble(lv, t_eval=T_EVAL, method="Vern7", device="cuda")


def test_import_paramest_does_not_import_numba_cuda():
    import subprocess
    import sys

    code = "import sys, paramest; print('numba.cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
