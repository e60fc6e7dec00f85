"""NeuralODE and UDEProblem: construction, gradients from every sensitivity method against
each other and against finite differences, and training through fit."""

import pickle

import numpy as np
import pytest
from numba import njit

import paramest as pe
from paramest.nn import MLP

T = np.linspace(0.1, 1.0, 8)


@pytest.fixture(scope="module")
def small_net():
    return MLP([2, 8, 2], activation="tanh", init="normal", input_transform="cube")


@pytest.fixture(scope="module")
def neural(small_net):
    return pe.NeuralODE(small_net, [1.2, -0.4], (0.0, 1.0), small_net.init(seed=3))


def _loss_weights(seed, n_times):
    return np.random.default_rng(seed).standard_normal((2, n_times))


def test_neural_ode_is_a_problem_over_the_weights(neural, small_net):
    assert isinstance(neural, pe.ODEProblem)
    assert neural.n_params == small_net.n_params == 2 * 8 + 8 + 8 * 2 + 2
    assert neural.param_names[:3] == ("W0[0,0]", "W0[0,1]", "W0[1,0]")
    assert neural.param_names[-1] == "b1[1]"
    # the right-hand side is the network of the cubed state
    y = np.array([0.7, -1.1])
    dydt = np.empty(2)
    neural.fun(0.0, y, neural.p.copy(), dydt)
    np.testing.assert_allclose(dydt, small_net(neural.p, y), rtol=1e-13)
    # remake keeps the kind and the compiled model
    other = neural.remake(p=np.zeros(neural.n_params))
    assert isinstance(other, pe.NeuralODE) and other.model is neural.model
    assert pe.solve(other, "Tsit5", T).y == pytest.approx(np.array([[1.2] * 8, [-0.4] * 8]))


def test_neural_ode_arguments(small_net):
    with pytest.raises(TypeError, match="paramest.nn.MLP"):
        pe.NeuralODE([2, 8, 2], [1.0, 0.0], (0.0, 1.0))
    with pytest.raises(ValueError, match="3 states"):
        pe.NeuralODE(small_net, [1.0, 0.0, 0.0], (0.0, 1.0))
    with pytest.raises(ValueError, match="`p` must have"):
        pe.NeuralODE(small_net, [1.0, 0.0], (0.0, 1.0), np.zeros(5))
    with pytest.raises(ValueError, match="input_transform"):
        pe.NeuralODE(MLP([2, 4, 2]), [1.0, 0.0], (0.0, 1.0), input_transform="square")


@pytest.mark.parametrize("method", ["Tsit5", "DP5", "Vern7"])
def test_neural_ode_gradients_agree_across_methods(neural, method):
    w = _loss_weights(1, T.size)
    reference = pe.vjp(neural, T, w, method=method, sensitivity=pe.ComplexStep(),
                       rtol=1e-10, atol=1e-12)
    discrete = pe.vjp(neural, T, w, method=method, sensitivity=pe.DiscreteAdjoint(),
                      rtol=1e-10, atol=1e-12)
    # the discrete adjoint with the network's reverse pass is the derivative of the same
    # discrete solution as the complex step
    np.testing.assert_allclose(discrete, reference, rtol=1e-9,
                               atol=1e-11 * np.max(np.abs(reference)))
    forward = pe.vjp(neural, T, w, method=method, sensitivity=pe.Forward(),
                     rtol=1e-10, atol=1e-12)
    continuous = pe.vjp(neural, T, w, method=method, sensitivity=pe.Adjoint(),
                        rtol=1e-10, atol=1e-12)
    backsolve = pe.vjp(neural, T, w, method=method, sensitivity=pe.BacksolveAdjoint(),
                       rtol=1e-10, atol=1e-12)
    scale = np.max(np.abs(reference))
    for other in (forward, continuous, backsolve):
        np.testing.assert_allclose(other, reference, rtol=1e-5,
                                   atol=1e-6 * scale)


def test_neural_ode_gradient_against_finite_differences(neural):
    w = _loss_weights(2, T.size)
    gradient = pe.vjp(neural, T, w, sensitivity=pe.DiscreteAdjoint(), method="Tsit5",
                      dt=0.05)  # fixed steps: the loss is smooth in the weights

    def loss(theta):
        return float(np.sum(w * pe.solve(neural, "Tsit5", T, p=theta, dt=0.05).y))

    rng = np.random.default_rng(0)
    for k in rng.choice(neural.n_params, 6, replace=False):
        step = 1e-6
        up, down = neural.p.copy(), neural.p.copy()
        up[k] += step
        down[k] -= step
        assert gradient[k] == pytest.approx((loss(up) - loss(down)) / (2 * step), rel=1e-6,
                                            abs=1e-8)


@njit
def softsign_like(x):
    return x / np.sqrt(1.0 + x * x)


@njit
def not_analytic(x):
    return abs(x)


def test_custom_input_transform(small_net):
    plain_net = MLP([2, 6, 2], activation="softplus", init="normal")
    problem = pe.NeuralODE(plain_net, [0.5, 0.3], (0.0, 1.0), plain_net.init(seed=1),
                           input_transform=softsign_like)
    y = np.array([0.4, -2.0])
    dydt = np.empty(2)
    problem.fun(0.0, y, problem.p.copy(), dydt)
    np.testing.assert_allclose(dydt, plain_net(problem.p, y / np.sqrt(1 + y * y)),
                               rtol=1e-13)
    w = _loss_weights(3, T.size)
    discrete = pe.vjp(problem, T, w, sensitivity=pe.DiscreteAdjoint(), method="Tsit5")
    reference = pe.vjp(problem, T, w, sensitivity=pe.ComplexStep(), method="Tsit5")
    np.testing.assert_allclose(discrete, reference, rtol=1e-9, atol=1e-12)
    with pytest.raises(pe.ModelError, match="complex-step"):
        pe.NeuralODE(plain_net, [0.5, 0.3], (0.0, 1.0), input_transform=not_analytic)
    with pytest.raises(ValueError, match="give one of them"):
        pe.NeuralODE(small_net, [0.5, 0.3], (0.0, 1.0), input_transform=softsign_like)


def known_growth(t, y, nn, p, dydt):
    dydt[0] = p[0] * y[0] + nn[0]
    dydt[1] = -p[1] * y[1] + nn[1] * y[0]


def scaled_input(t, y, out):
    out[0] = y[0] * y[1]
    out[1] = y[0] - 0.5 * y[1]
    out[2] = np.sin(t)


@pytest.fixture(scope="module")
def ude():
    net = MLP([2, 6, 2], activation="tanh", init="glorot")
    return pe.UDEProblem(known_growth, net, [1.0, 0.8], (0.0, 2.0), p=[0.9, 1.4],
                         theta=0.5 * net.init(seed=2), param_names=["a", "d"])


def test_ude_layout_and_right_hand_side(ude):
    assert ude.n_params == 2 + ude.mlp.n_params
    assert ude.param_names[:3] == ("a", "d", "nn.W0[0,0]")
    np.testing.assert_array_equal(ude.theta, ude.p[2:])
    y = np.array([0.6, 1.3])
    dydt = np.empty(2)
    ude.fun(0.0, y, ude.p.copy(), dydt)
    nn = ude.network(y)
    np.testing.assert_allclose(dydt, [0.9 * 0.6 + nn[0], -1.4 * 1.3 + nn[1] * 0.6],
                               rtol=1e-13)


@pytest.mark.parametrize("with_input", [False, True])
def test_ude_gradients(ude, with_input):
    problem = ude
    if with_input:
        net = MLP([3, 5, 2], activation="swish", init="glorot")
        problem = pe.UDEProblem(known_growth, net, [1.0, 0.8], (0.0, 2.0), p=[0.9, 1.4],
                                theta=0.5 * net.init(seed=4), nn_input=scaled_input)
    t = np.linspace(0.2, 2.0, 10)
    w = _loss_weights(5, t.size)
    discrete = pe.vjp(problem, t, w, sensitivity=pe.DiscreteAdjoint(), method="Tsit5",
                      rtol=1e-10, atol=1e-12)
    reference = pe.vjp(problem, t, w, sensitivity=pe.ComplexStep(), method="Tsit5",
                       rtol=1e-10, atol=1e-12)
    scale = np.max(np.abs(reference))
    np.testing.assert_allclose(discrete, reference, rtol=1e-9,
                               atol=1e-11 * scale)
    # and against differences of whole fixed-step solves
    fixed = pe.vjp(problem, t, w, sensitivity=pe.DiscreteAdjoint(), method="Tsit5",
                   dt=0.02)

    def loss(p):
        return float(np.sum(w * pe.solve(problem, "Tsit5", t, p=p, dt=0.02).y))

    for k in (0, 1, 2, problem.n_params - 1):
        up, down = problem.p.copy(), problem.p.copy()
        up[k] += 1e-6
        down[k] -= 1e-6
        assert fixed[k] == pytest.approx((loss(up) - loss(down)) / 2e-6, rel=1e-6, abs=1e-8)


def non_analytic_physics(t, y, nn, p, dydt):
    dydt[0] = p[0] * abs(y[0]) + nn[0]
    dydt[1] = nn[1]


def test_ude_arguments():
    net = MLP([2, 4, 2])
    with pytest.raises(TypeError, match=r"fun\(t, y, nn, p, dydt\)"):
        pe.UDEProblem(lambda t, y, p, dydt: None, net, [1.0, 1.0], (0.0, 1.0))
    with pytest.raises(ValueError, match="nn_input"):
        pe.UDEProblem(known_growth, MLP([3, 4, 2]), [1.0, 1.0], (0.0, 1.0), p=[1.0, 1.0])
    with pytest.raises(ValueError, match="param_names"):
        pe.UDEProblem(known_growth, net, [1.0, 1.0], (0.0, 1.0), p=[1.0, 1.0],
                      param_names=["a"])
    with pytest.raises(ValueError, match="`theta` must have"):
        pe.UDEProblem(known_growth, net, [1.0, 1.0], (0.0, 1.0), p=[1.0, 1.0], theta=[0.0])
    with pytest.warns(pe.ComplexStepWarning), pytest.raises(pe.ModelError,
                                                            match="complex step"):
        pe.UDEProblem(non_analytic_physics, net, [1.0, 1.0], (0.0, 1.0), p=[1.0])


def test_problems_pickle(neural, ude):
    for problem in (neural, ude):
        clone = pickle.loads(pickle.dumps(problem))
        assert type(clone) is type(problem)
        np.testing.assert_array_equal(clone.p, problem.p)
        np.testing.assert_allclose(pe.solve(clone, "Tsit5", T).y,
                                   pe.solve(problem, "Tsit5", T).y, rtol=0, atol=0)


def test_fit_trains_a_neural_ode_with_minibatches(small_net):
    truth_net = MLP([2, 8, 2], activation="tanh", init="normal", input_transform="cube")
    teacher = pe.NeuralODE(truth_net, [1.0, 0.5], (0.0, 2.0), 3.0 * truth_net.init(seed=11))
    t = np.linspace(0.1, 2.0, 20)
    data = pe.Data(t, pe.solve(teacher, "Tsit5", t, rtol=1e-10, atol=1e-12).y, sigma=0.01)
    student = teacher.remake(p=small_net.init(seed=5))
    start = pe.Objective(student, data).loss(student.p)
    result = pe.fit(student, data, method="adam", seed=0, sensitivity=pe.DiscreteAdjoint(),
                    options={"maxiter": 200, "learning_rate": 0.05, "batch_size": 8})
    assert isinstance(result.sensitivity, pe.DiscreteAdjoint)
    assert result.cost < start / 20


@pytest.mark.parametrize("observed", [False, True])
def test_wide_jacobian_rows_by_the_discrete_adjoint(neural, observed):
    """Far more weights than residuals: the Jacobian comes row by row from the discrete
    adjoint, the same numbers as forward sensitivities."""
    t = np.array([0.25, 0.5, 0.75, 1.0])
    values = np.array([[1.0, 0.9, 0.8, 0.7], [-0.3, -0.2, -0.1, 0.0]])
    kwargs = {}
    data = pe.Data(t, values, sigma=[0.1, 0.2])
    if observed:
        def signal(t, y, p, out):
            out[0] = y[0] * y[0] + 0.5 * y[1]
        kwargs["observe"] = signal
        data = pe.Data(t, values[:1], sigma=0.1)
    adjoint = pe.Objective(neural, data, sensitivity=pe.DiscreteAdjoint(), rtol=1e-10,
                           atol=1e-12, **kwargs)
    assert adjoint._rows_by_adjoint(adjoint.experiments[0])
    forward = pe.Objective(neural, data, sensitivity=pe.Forward(error_control=False),
                           rtol=1e-10, atol=1e-12, **kwargs)
    x = neural.p * 1.1
    r_adjoint, jac_adjoint = adjoint.evaluate(x, jacobian=True)
    r_forward, jac_forward = forward.evaluate(x, jacobian=True)
    np.testing.assert_allclose(r_adjoint, r_forward, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jac_adjoint, jac_forward, rtol=1e-8,
                               atol=1e-10 * np.max(np.abs(jac_forward)))


def test_a_network_with_its_own_elementwise_function():
    """MLP(input_transform=g): the network sees g(x); NeuralODE and UDEProblem take it
    from the network, and every derivative goes through g's complex step."""
    net = MLP([2, 6, 2], activation="tanh", init="normal", input_transform=softsign_like)
    plain = MLP([2, 6, 2], activation="tanh", init="normal")
    theta = net.init(seed=7)
    x = np.array([[0.3, -1.2], [2.0, 0.1]])
    g = x / np.sqrt(1 + x * x)
    np.testing.assert_allclose(net(theta, x), plain(theta, g), rtol=1e-14)
    J_x, J_theta = net.jacobian(theta, x[0])
    step = 1e-6
    for i in range(2):
        up, down = x[0].copy(), x[0].copy()
        up[i] += step
        down[i] -= step
        np.testing.assert_allclose(J_x[:, i], (net(theta, up) - net(theta, down)) / (2 * step),
                                   rtol=1e-6, atol=1e-9)
    assert "softsign_like" in repr(net)
    node = pe.NeuralODE(net, [0.5, -0.2], (0.0, 1.0), theta)
    w = _loss_weights(4, T.size)
    np.testing.assert_allclose(
        pe.vjp(node, T, w, sensitivity=pe.DiscreteAdjoint(), method="Tsit5"),
        pe.vjp(node, T, w, sensitivity=pe.ComplexStep(), method="Tsit5"), rtol=1e-9,
        atol=1e-12)
    ude = pe.UDEProblem(known_growth, net, [1.0, 0.8], (0.0, 1.0), p=[0.9, 1.4],
                        theta=theta)
    y = np.array([0.6, 1.3])
    dydt = np.empty(2)
    ude.fun(0.0, y, ude.p.copy(), dydt)
    nn = plain(theta, y / np.sqrt(1 + y * y))
    np.testing.assert_allclose(dydt, [0.9 * 0.6 + nn[0], -1.4 * 1.3 + nn[1] * 0.6],
                               rtol=1e-13)
    np.testing.assert_allclose(
        pe.vjp(ude, T, w, sensitivity=pe.DiscreteAdjoint(), method="Tsit5"),
        pe.vjp(ude, T, w, sensitivity=pe.ComplexStep(), method="Tsit5"), rtol=1e-9,
        atol=1e-12)
    with pytest.raises(pe.ModelError, match="complex-step"):
        MLP([2, 3, 2], input_transform=not_analytic)
