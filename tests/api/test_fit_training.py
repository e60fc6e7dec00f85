"""fit's training tools: Adam's quasi-Newton polish, minibatches over time windows, and
multiple shooting (objective derivatives, recovery where single shooting fails)."""

import numpy as np
import pytest

import paramest as pe
from paramest.shooting import ShootingObjective


def lotka_volterra(t, y, p, dydt):
    dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1]


TRUTH = np.array([1.5, 1.0, 3.0, 1.0])


def _data(t_end, n_times, noise, seed=1):
    problem = pe.ODEProblem(lotka_volterra, [1.0, 1.0], (0.0, t_end), TRUTH)
    t = np.linspace(t_end / n_times, t_end, n_times)
    sol = pe.solve(problem, "Tsit5", t, rtol=1e-11, atol=1e-12)
    rng = np.random.default_rng(seed)
    return problem, pe.Data(t, sol.y + noise * rng.standard_normal(sol.y.shape), sigma=noise)


@pytest.fixture(scope="module")
def short():
    return _data(10.0, 40, 0.02)


@pytest.fixture(scope="module")
def long_series():
    return _data(30.0, 120, 0.05)


START = [1.2, 0.8, 2.5, 0.8]


def test_adam_polish_reaches_the_least_squares_optimum(short):
    problem, data = short
    reference = pe.fit(problem, data, START, scale="log")
    result = pe.fit(problem, data, START, method="adam", scale="log",
                    options={"maxiter": 100, "learning_rate": 0.02, "polish": "L-BFGS-B"})
    assert result.success
    assert "polished by L-BFGS-B" in result.message
    np.testing.assert_allclose(result.x, reference.x, rtol=2e-4)
    assert result.cost == pytest.approx(reference.cost, rel=1e-6)
    # Adam alone, same iterations: far from it
    plain = pe.fit(problem, data, START, method="adam", scale="log",
                   options={"maxiter": 100, "learning_rate": 0.02})
    assert plain.cost > 2 * reference.cost


@pytest.mark.parametrize("options, error, match", [
    ({"polish": "Nelder-Mead"}, ValueError, "polish"),
    ({"polish_options": {"maxiter": 3}}, ValueError, "needs `options\\['polish'\\]`"),
    ({"polish": "L-BFGS-B", "polish_options": 3}, TypeError, "polish_options"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 40}, ValueError, "smaller than the number"),
])
def test_adam_options_are_checked_before_solving(short, options, error, match):
    problem, data = short
    with pytest.raises(error, match=match):
        pe.fit(problem, data, START, method="adam", options=options)


def test_bfgs_polish_refuses_bounds(short):
    problem, data = short
    with pytest.raises(ValueError, match="BFGS"):
        pe.fit(problem, data, START, method="adam", bounds=(0.1, 10.0),
               options={"polish": "BFGS"})


def test_minibatches_over_time_windows(short):
    problem, data = short
    options = {"maxiter": 300, "learning_rate": 0.02, "batch_size": 10}
    seen = []
    first = pe.fit(problem, data, START, method="adam", scale="log", seed=3, options=options,
                   callback=lambda x, cost: seen.append(cost) and False)
    again = pe.fit(problem, data, START, method="adam", scale="log", seed=3, options=options)
    np.testing.assert_array_equal(first.x, again.x)  # the seed fixes the window order
    start_cost = pe.Objective(problem, data).loss(START)
    assert first.cost < start_cost / 10
    # every step evaluated a window (10 of 40 times), then the full loss at the end; all
    # of them counted in nfev
    assert len(seen) == 301 and first.nfev >= 301
    other = pe.fit(problem, data, START, method="adam", scale="log", seed=4, options=options)
    assert not np.array_equal(other.x, first.x)


def test_minibatches_need_one_experiment(short):
    problem, data = short
    with pytest.raises(ValueError, match="single experiment"):
        pe.fit(problem, [data, data], START, method="adam", options={"batch_size": 5})


def test_multiple_shooting_escapes_the_local_minima_of_a_long_oscillatory_series(
        long_series):
    problem, data = long_series
    reference = pe.fit(problem, data, TRUTH, scale="log")  # started at the truth
    for start in ([1.0, 0.6, 2.0, 0.6], [2.2, 1.4, 2.2, 1.4]):
        single = pe.fit(problem, data, start, scale="log")
        assert single.cost > 100 * reference.cost  # stuck in a local minimum
        shooting = pe.fit(problem, data, start, scale="log", multiple_shooting=10)
        assert shooting.success
        np.testing.assert_allclose(shooting.x, reference.x, rtol=5e-3)
        assert shooting.cost == pytest.approx(reference.cost, rel=1e-3)
        assert shooting.shooting["segments"] == 10
        assert shooting.shooting["defect"] < 0.2  # continuity 100: jumps of a few sigma
        assert "multiple shooting with 10 segments" in shooting.message


def test_shooting_jacobian_and_gradient_against_finite_differences(short):
    problem, data = short
    objective = pe.Objective(problem, data, free_y0=True)
    shooting = ShootingObjective(objective, 4, 50.0)
    assert shooting.n_free == 6 + 3 * 2
    assert shooting.labels[-2:] == ["y0[0][segment 3]", "y0[1][segment 3]"]
    rng = np.random.default_rng(5)
    x = shooting.start(np.array([1.4, 0.9, 3.2, 1.1, 1.05, 0.95]))
    x[6:] *= 1 + 0.05 * rng.standard_normal(6)  # segments not continuous
    residuals, jac = shooting.evaluate(x, jacobian=True)
    step = 1e-6
    for j in range(x.size):
        up, down = x.copy(), x.copy()
        up[j] += step
        down[j] -= step
        column = (shooting.evaluate(up) - shooting.evaluate(down)) / (2 * step)
        # differences of adaptive solves (rtol 1e-8) are good to about 1e-4
        np.testing.assert_allclose(jac[:, j], column, rtol=2e-4, atol=2e-4)
    r, gradient = shooting.evaluate_gradient(x)
    np.testing.assert_allclose(r, residuals, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gradient, jac.T @ residuals, rtol=1e-6, atol=1e-8)
    # with an adjoint for each segment's gradient
    adjoint = ShootingObjective(
        pe.Objective(problem, data, free_y0=True, sensitivity=pe.DiscreteAdjoint()), 4, 50.0)
    np.testing.assert_allclose(adjoint.evaluate_gradient(x)[1], gradient, rtol=1e-6,
                               atol=1e-8)


def test_multiple_shooting_callback_sees_the_single_shooting_entries(short):
    problem, data = short
    shapes = set()
    pe.fit(problem, data, START, method="L-BFGS-B", multiple_shooting=3,
           callback=lambda x, cost: shapes.add(x.shape) and False)
    assert shapes == {(4,)}


@pytest.mark.parametrize("setting, error, match", [
    (1, ValueError, "segments >= 2"),
    ({"segments": 3, "continuity": -1.0}, ValueError, "continuity"),
    ({"segments": 3, "weight": 1.0}, ValueError, "unknown keys"),
    ("3", TypeError, "multiple_shooting"),
    (41, ValueError, "at least as many"),
])
def test_multiple_shooting_arguments(short, setting, error, match):
    problem, data = short
    with pytest.raises(error, match=match):
        pe.fit(problem, data, START, multiple_shooting=setting)


def test_multiple_shooting_refuses_observables_and_several_experiments(short):
    problem, data = short

    def total(t, y, p, out):
        out[0] = y[0] + y[1]

    summed = pe.Data(data.t, data.y.sum(axis=0, keepdims=True), sigma=0.03)
    with pytest.raises(ValueError, match="observe"):
        pe.fit(problem, summed, START, observe=total, multiple_shooting=3)
    with pytest.raises(ValueError, match="single experiment"):
        pe.fit(problem, [data, data], START, multiple_shooting=3)
