"""paramest.nn.MLP: validation, layout, initialisation, evaluation and derivatives."""

import numpy as np
import pytest

from paramest.nn import MLP


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(sizes=[3]), "`sizes` must be a sequence of at least two positive ints"),
        (dict(sizes=[3, 0, 1]), "`sizes` must be"),
        (dict(sizes=[3, 2.0]), "`sizes` must be"),
        (dict(sizes=[True, 2]), "`sizes` must be"),
        (dict(sizes=5), "`sizes` must be"),
        (dict(sizes=[2, 2], activation="gelu"), "`activation` must be one of 'identity'"),
        (dict(sizes=[2, 2], output_activation="exp"), "`output_activation` must be one of"),
        (dict(sizes=[2, 2], init="he"), "`init` must be one of 'glorot', 'normal', 'zeros'"),
        (dict(sizes=[2, 2], input_transform="square"),
         "`input_transform` must be None, 'cube' or a function"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_attributes_and_layout():
    net = MLP([2, 50, 2], activation="tanh", input_transform="cube")
    assert net.sizes == (2, 50, 2)
    assert (net.n_inputs, net.n_outputs, net.n_params) == (2, 2, 252)
    assert net.activations == (1, 0) and net.transform == 1
    assert net.output_activation == "identity"
    assert net.layout() == [
        ("W0", slice(0, 100), (50, 2)),
        ("b0", slice(100, 150), (50,)),
        ("W1", slice(150, 250), (2, 50)),
        ("b1", slice(250, 252), (2,)),
    ]
    assert repr(net) == "MLP(sizes=[2, 50, 2], activation='tanh', input_transform='cube')"
    deep = MLP((3, 8, 8, 2), activation="relu", output_activation="sigmoid")
    assert deep.activations == (2, 2, 4)
    assert deep.n_params == 8 * 4 + 8 * 9 + 2 * 9
    assert deep.n_params == sum(s.stop - s.start for _, s, _ in deep.layout())


def test_layout_matches_the_computation():
    net = MLP([3, 5, 2], activation="softplus", output_activation="tanh")
    theta = net.init(seed=3)
    x = np.array([0.2, -0.4, 1.1])
    blocks = {name: theta[s].reshape(shape) for name, s, shape in net.layout()}
    hidden = np.logaddexp(blocks["W0"] @ x + blocks["b0"], 0.0)
    np.testing.assert_allclose(net(theta, x), np.tanh(blocks["W1"] @ hidden + blocks["b1"]),
                               rtol=1e-13)


def test_init_is_reproducible_and_scaled():
    net = MLP([2, 50, 2])
    np.testing.assert_array_equal(net.init(seed=4), net.init(seed=4))
    assert not np.array_equal(net.init(seed=4), net.init(seed=5))
    theta = net.init(seed=0)
    blocks = {name: theta[s] for name, s, _ in net.layout()}
    np.testing.assert_array_equal(blocks["b0"], 0.0)
    assert np.abs(blocks["W0"]).max() <= np.sqrt(6 / 52)
    assert np.abs(blocks["W0"]).max() > 0.8 * np.sqrt(6 / 52)
    normal = MLP([2, 200, 200, 2], init="normal").init(seed=1)
    assert normal.size == 2 * 200 + 200 + 200 * 200 + 200 + 200 * 2 + 2
    assert abs(normal.std() - 0.1) < 0.002 and abs(normal.mean()) < 0.002
    np.testing.assert_array_equal(MLP([2, 3], init="zeros").init(seed=1), 0.0)


def test_call_single_and_batch():
    net = MLP([3, 8, 8, 2], activation="swish", input_transform="cube")
    theta = net.init(seed=0)
    xs = np.random.default_rng(0).normal(size=(7, 3))
    batch = net(theta, xs)
    assert batch.shape == (7, 2)
    for k in range(7):
        np.testing.assert_array_equal(batch[k], net(theta, xs[k]))
    # lists, and strided views, are accepted
    np.testing.assert_array_equal(net(theta, list(xs[0])), batch[0])
    np.testing.assert_array_equal(net(theta, np.asfortranarray(xs)), batch)
    assert net(theta, np.empty((0, 3))).shape == (0, 2)


def test_call_rejects_bad_shapes():
    net = MLP([3, 4, 2])
    theta = net.init(seed=0)
    with pytest.raises(ValueError, match=r"`theta` must be a vector of length n_params = 26"):
        net(theta[:-1], np.zeros(3))
    message = r"`x` must have shape \(3,\) or \(N, 3\); got shape \(2,\)"
    with pytest.raises(ValueError, match=message):
        net(theta, np.zeros(2))
    with pytest.raises(ValueError, match=r"`x` must have shape"):
        net(theta, np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match=r"`x` must have shape \(3,\) for `jacobian`"):
        net.jacobian(theta, np.zeros((1, 3)))


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus", "sigmoid", "swish", "identity"])
def test_jacobian_matches_finite_differences(activation):
    net = MLP([3, 6, 2], activation=activation, output_activation="tanh", input_transform="cube")
    theta = np.random.default_rng(1).normal(scale=0.8, size=net.n_params)
    x = np.array([0.7, -0.9, 0.4])
    J_x, J_theta = net.jacobian(theta, x)
    h = 1e-6
    fd_x = np.column_stack([(net(theta, x + h * e) - net(theta, x - h * e)) / (2 * h)
                            for e in np.eye(3)])
    fd_theta = np.column_stack([(net(theta + h * e, x) - net(theta - h * e, x)) / (2 * h)
                                for e in np.eye(net.n_params)])
    np.testing.assert_allclose(J_x, fd_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(J_theta, fd_theta, rtol=1e-6, atol=1e-8)
