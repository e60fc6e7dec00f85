"""The exact sensitivities of the linear test problems check themselves."""

import numpy as np
from scipy.linalg import expm

from tests.problems import (
    LINEAR20,
    linear_chain_matrix,
    linear_chain_problem,
    linear_exact_sensitivities,
    rate_chain,
)


def _solution(p, y0, n, t):
    return expm(linear_chain_matrix(p, n) * t) @ y0


def test_van_loan_sensitivities_match_central_differences():
    prob = linear_chain_problem(5)
    times = np.array([0.0, 0.7, 3.0, 10.0])
    y, S_p, S_y0 = prob.exact(times)
    assert y.shape == (5, 4) and S_p.shape == (5, 5, 4) and S_y0.shape == (5, 5, 4)
    np.testing.assert_array_equal(S_p[:, :, 0], 0.0)
    np.testing.assert_allclose(S_y0[:, :, 0], np.eye(5), atol=1e-15)
    for j, t in enumerate(times):
        np.testing.assert_allclose(y[:, j], _solution(prob.p, prob.y0, 5, t), rtol=1e-13)
        for k in range(5):
            h = 1e-6 * prob.p[k]
            up, down = prob.p.copy(), prob.p.copy()
            up[k] += h
            down[k] -= h
            fd = (_solution(up, prob.y0, 5, t) - _solution(down, prob.y0, 5, t)) / (2 * h)
            np.testing.assert_allclose(S_p[:, k, j], fd, rtol=1e-7, atol=1e-10)
        for k in range(5):
            h = 1e-6
            e = np.eye(5)[k] * h
            fd = (_solution(prob.p, prob.y0 + e, 5, t)
                  - _solution(prob.p, prob.y0 - e, 5, t)) / (2 * h)
            np.testing.assert_allclose(S_y0[:, k, j], fd, rtol=1e-7, atol=1e-10)


def test_general_matrix_and_model_agree_with_matrix():
    # a full 2x2 matrix with one parameter per entry: dA/dp_k is a unit matrix
    p = np.array([-0.5, 1.2, -0.8, -0.3])
    A = p.reshape(2, 2)
    units = [np.eye(4)[k].reshape(2, 2) for k in range(4)]
    y0 = np.array([1.0, -2.0])
    t = 1.7
    _, S_p, _ = linear_exact_sensitivities(A, units, y0, [t])
    for k in range(4):
        h = 1e-6
        fd = (expm((A + h * units[k]) * t) @ y0 - expm((A - h * units[k]) * t) @ y0) / (2 * h)
        np.testing.assert_allclose(S_p[:, k, 0], fd, rtol=1e-7, atol=1e-10)

    y = np.linspace(0.5, 2.0, 20)
    dydt = np.empty(20)
    rate_chain(0.0, y, LINEAR20.p, dydt)
    np.testing.assert_allclose(dydt, LINEAR20.matrix(LINEAR20.p) @ y, rtol=1e-14)
    assert LINEAR20.n_params == 20 and np.all((LINEAR20.p >= 0.2) & (LINEAR20.p <= 2.0))
