"""MLP kernels: forward against a NumPy reference, JVP against finite differences and the
complex step, VJP against the JVP (dot-product identity) and finite differences, and the
arithmetic exp/tanh against libm."""

import numpy as np
import pytest

from paramest.kernels import mlp

ACTIVATIONS = sorted(mlp.ACTIVATIONS.items())
TRANSFORMS = [mlp.TRANSFORM_NONE, mlp.TRANSFORM_CUBE]
SIZES = [(1, 4, 1), (3, 8, 8, 2), (2, 50, 2), (9, 12, 3)]


def _reference_activation(z, code):
    if code == mlp.IDENTITY:
        return z
    if code == mlp.TANH:
        return np.tanh(z)
    if code == mlp.RELU:
        return np.maximum(z, 0.0)
    if code == mlp.SOFTPLUS:
        return np.logaddexp(z, 0.0)
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * z))
    if code == mlp.SIGMOID:
        return sigmoid
    return z * sigmoid


def _reference_forward(theta, x, sizes, activations, transform):
    a = x**3 if transform == mlp.TRANSFORM_CUBE else x
    offset = 0
    for layer, code in enumerate(activations):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        W = theta[offset : offset + n_in * n_out].reshape(n_out, n_in)
        offset += n_in * n_out
        b = theta[offset : offset + n_out]
        offset += n_out
        a = _reference_activation(W @ a + b, code)
    assert offset == theta.size
    return a


class Net:
    """A network with its kernels' arguments."""

    def __init__(self, sizes, hidden, output, transform, seed=0):
        self.sizes = sizes
        self.activations = (hidden,) * (len(sizes) - 2) + (output,)
        self.transform = transform
        self.n = mlp.n_params(sizes)
        rng = np.random.default_rng(seed)
        self.theta = rng.normal(scale=0.7, size=self.n)
        self.x = rng.uniform(-1.2, 1.2, size=sizes[0])
        self.rng = rng

    def args(self, dtype=np.float64):
        return self.sizes, self.activations, self.transform, np.zeros(
            mlp.workspace_size(self.sizes), dtype=dtype
        )

    def forward(self, theta, x):
        out = np.empty(self.sizes[-1], dtype=np.result_type(theta, x))
        mlp.forward(theta, x, out, *self.args(out.dtype))
        return out

    def jvp(self, dtheta, dx):
        out = np.empty(self.sizes[-1])
        dout = np.empty(self.sizes[-1])
        mlp.jvp(self.theta, self.x, dtheta, dx, out, dout, *self.args())
        return out, dout

    def vjp(self, w):
        out_x = np.full(self.sizes[0], np.nan)
        out_theta = np.full(self.n, np.nan)
        mlp.vjp(self.theta, self.x, w, out_x, out_theta, *self.args())
        return out_x, out_theta

    def central(self, dtheta, dx, h=1e-6):
        plus = self.forward(self.theta + h * dtheta, self.x + h * dx)
        minus = self.forward(self.theta - h * dtheta, self.x - h * dx)
        return (plus - minus) / (2 * h)

    def complex_step(self, dtheta, dx, h=2.0**-100):
        out = self.forward(self.theta + 1j * h * dtheta, self.x + 1j * h * dx)
        return out.imag / h


def _nets():
    for sizes in SIZES:
        for name, code in ACTIVATIONS:
            for transform in TRANSFORMS:
                yield pytest.param(sizes, code, transform, id=f"{sizes}-{name}-t{transform}")


@pytest.mark.parametrize(("sizes", "code", "transform"), list(_nets()))
def test_forward_matches_numpy(sizes, code, transform):
    net = Net(sizes, code, mlp.IDENTITY, transform)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1.5, 1.5, size=sizes[0])
        np.testing.assert_allclose(
            net.forward(net.theta, x),
            _reference_forward(net.theta, x, sizes, net.activations, transform),
            rtol=1e-13,
            atol=1e-14,
        )


@pytest.mark.parametrize(("sizes", "code", "transform"), list(_nets()))
def test_output_activation(sizes, code, transform):
    net = Net(sizes, mlp.TANH, code, transform, seed=1)
    np.testing.assert_allclose(
        net.forward(net.theta, net.x),
        _reference_forward(net.theta, net.x, sizes, net.activations, transform),
        rtol=1e-13,
        atol=1e-14,
    )


@pytest.mark.parametrize(("sizes", "code", "transform"), list(_nets()))
def test_complex_forward_equals_real_forward_on_real_input(sizes, code, transform):
    net = Net(sizes, code, code, transform, seed=2)
    real = net.forward(net.theta, net.x)
    cplx = net.forward(net.theta + 0j, net.x + 0j)
    np.testing.assert_allclose(cplx.real, real, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(cplx.imag, 0.0)


@pytest.mark.parametrize(("sizes", "code", "transform"), list(_nets()))
def test_jvp_matches_central_differences_and_the_complex_step(sizes, code, transform):
    net = Net(sizes, code, mlp.TANH if code == mlp.IDENTITY else code, transform, seed=3)
    for _ in range(3):
        dtheta = net.rng.normal(size=net.n)
        dx = net.rng.normal(size=sizes[0])
        out, dout = net.jvp(dtheta, dx)
        np.testing.assert_allclose(out, net.forward(net.theta, net.x), rtol=0, atol=0)
        np.testing.assert_allclose(dout, net.central(dtheta, dx), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dout, net.complex_step(dtheta, dx), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("sizes", "code", "transform"), list(_nets()))
def test_vjp_is_the_transpose_of_the_jvp(sizes, code, transform):
    net = Net(sizes, code, mlp.SIGMOID if code == mlp.IDENTITY else code, transform, seed=4)
    for _ in range(3):
        w = net.rng.normal(size=sizes[-1])
        dtheta = net.rng.normal(size=net.n)
        dx = net.rng.normal(size=sizes[0])
        out_x, out_theta = net.vjp(w)
        assert np.all(np.isfinite(out_x)) and np.all(np.isfinite(out_theta))
        _, dout = net.jvp(dtheta, dx)
        lhs = w @ dout
        rhs = out_theta @ dtheta + out_x @ dx
        scale = np.abs(w) @ np.abs(dout) + np.abs(out_theta) @ np.abs(dtheta) + 1e-300
        assert abs(lhs - rhs) <= 1e-12 * scale


@pytest.mark.parametrize(("sizes", "code", "transform"), list(_nets()))
def test_vjp_matches_finite_differences(sizes, code, transform):
    net = Net(sizes, code, code, transform, seed=5)
    w = net.rng.normal(size=sizes[-1])
    out_x, out_theta = net.vjp(w)
    eye_x = np.eye(sizes[0])
    fd_x = [w @ net.central(np.zeros(net.n), eye_x[i]) for i in range(sizes[0])]
    np.testing.assert_allclose(out_x, fd_x, rtol=1e-6, atol=1e-7)
    picks = net.rng.choice(net.n, size=min(net.n, 25), replace=False)
    for k in picks:
        e = np.zeros(net.n)
        e[k] = 1.0
        fd = w @ net.central(e, np.zeros(sizes[0]))
        np.testing.assert_allclose(out_theta[k], fd, rtol=1e-6, atol=1e-7)


def test_relu_derivatives_away_from_the_kinks():
    net = Net((3, 16, 16, 2), mlp.RELU, mlp.IDENTITY, mlp.TRANSFORM_NONE, seed=6)
    w = np.array([0.3, -1.1])
    out_x, out_theta = net.vjp(w)
    # central differences are exact for a piecewise linear function, away from its kinks
    for k in range(net.n):
        e = np.zeros(net.n)
        e[k] = 1.0
        np.testing.assert_allclose(
            out_theta[k], w @ net.central(e, np.zeros(3), h=1e-7), rtol=1e-6, atol=1e-8
        )
    fd_x = [w @ net.central(np.zeros(net.n), np.eye(3)[i], h=1e-7) for i in range(3)]
    np.testing.assert_allclose(out_x, fd_x, rtol=1e-6, atol=1e-8)


def test_complex_activations_do_not_overflow_for_a_large_real_part():
    # Numba's complex tanh is NaN beyond |Re z| ~ 355; ours is the analytic continuation
    sizes = (1, 1)
    h = 2.0**-100
    for code in (mlp.TANH, mlp.SIGMOID, mlp.SOFTPLUS, mlp.SWISH):
        for z in (-800.0, -40.0, -1e-3, 0.0, 2.5, 40.0, 800.0):
            theta = np.array([1.0, 0.0], dtype=np.complex128)
            x = np.array([z + 1j * h])
            out = np.empty(1, dtype=np.complex128)
            work = np.zeros(mlp.workspace_size(sizes), dtype=np.complex128)
            mlp.forward(theta, x, out, sizes, (code,), mlp.TRANSFORM_NONE, work)
            real_out = np.empty(1)
            mlp.forward(theta.real.copy(), x.real.copy(), real_out, sizes, (code,), 0,
                        np.zeros(mlp.workspace_size(sizes)))
            assert np.isfinite(out[0])
            # (the real parts differ by O(h**2): swish(ih) = ih/2 - h**2/4)
            np.testing.assert_allclose(out[0].real, real_out[0], rtol=1e-14, atol=1e-50)
            # the derivative by the complex step, against the real VJP (whose 1 - tanh**2
            # is 0 where tanh rounds to 1: equal up to an ulp of the output)
            out_x = np.empty(1)
            out_theta = np.empty(2)
            mlp.vjp(theta.real.copy(), x.real.copy(), np.ones(1), out_x, out_theta, sizes,
                    (code,), 0, np.zeros(mlp.workspace_size(sizes)))
            np.testing.assert_allclose(out[0].imag / h, out_x[0], rtol=1e-13, atol=1e-16)


def test_softplus_far_below_zero_keeps_relative_accuracy():
    sizes = (1, 1)
    theta = np.array([1.0, 0.0])
    out = np.empty(1)
    for z in (-30.0, -300.0, -700.0):
        mlp.forward(theta, np.array([z]), out, sizes, (mlp.SOFTPLUS,), 0,
                    np.zeros(mlp.workspace_size(sizes)))
        np.testing.assert_allclose(out[0], np.log1p(np.exp(z)), rtol=1e-14)


def test_batch_forward_equals_single_calls():
    net = Net((3, 8, 8, 2), mlp.TANH, mlp.IDENTITY, mlp.TRANSFORM_CUBE, seed=7)
    xs = net.rng.normal(size=(5, 3))
    outs = np.empty((5, 2))
    sizes, acts, transform, work = net.args()
    mlp.batch_forward(net.theta, xs, outs, sizes, acts, transform, work)
    for k in range(5):
        np.testing.assert_array_equal(outs[k], net.forward(net.theta, xs[k]))


def test_theta_may_be_the_front_of_a_longer_vector():
    net = Net((2, 5, 2), mlp.TANH, mlp.IDENTITY, mlp.TRANSFORM_NONE, seed=8)
    longer = np.concatenate([net.theta, [np.nan] * 3])
    np.testing.assert_array_equal(net.forward(longer, net.x), net.forward(net.theta, net.x))


def test_workspace_and_parameter_counts():
    assert mlp.n_params((2, 50, 2)) == 50 * 3 + 2 * 51
    assert mlp.workspace_size((2, 50, 2)) == 2 + 2 * 52 + 2 * 50


# --- the arithmetic exp and tanh ---------------------------------------------------------


def _ulps(approx, exact):
    """Error in units of the last place of the float64 nearest ``exact`` (longdouble)."""
    nearest = exact.astype(np.float64)
    spacing = np.spacing(np.abs(nearest))
    return np.abs((approx.astype(np.longdouble) - exact) / spacing.astype(np.longdouble))


def _points(rng, n):
    return np.concatenate([
        rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-12, 1.5, n),  # 1e-12 .. 30
        rng.uniform(-0.7, 0.7, n // 4),  # the switch at 0.625
        rng.uniform(-25, 25, n // 4),
        np.array([0.625, -0.625, np.nextafter(0.625, 0), 1e-300, -1e-300, 5e-324, 1e-9]),
    ])


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs an 80-bit long double")
def test_fast_tanh_is_within_two_ulp_of_the_correctly_rounded_value():
    x = _points(np.random.default_rng(0), 800_000)
    fast = mlp.fast_tanh_vector(x)
    exact = np.tanh(x.astype(np.longdouble))
    assert _ulps(fast, exact).max() <= 2.0
    # and against libm's float64 tanh, which is itself within an ulp
    assert _ulps(fast, np.tanh(x).astype(np.longdouble)).max() <= 3.0


def test_fast_tanh_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-8, -1e-8, 1e-200, 19.0, 20.0, 21.0,
                  700.0, 1e300, -1e300, 5e-324])
    fast = mlp.fast_tanh_vector(x)
    np.testing.assert_array_equal(fast[np.isfinite(x)] * 0 + 1, 1)  # finite
    np.testing.assert_array_equal(np.signbit(fast), np.signbit(np.tanh(x)))
    np.testing.assert_array_equal(fast[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.isnan(fast[4])
    # tiny |x|: tanh(x) = x to full precision
    np.testing.assert_array_equal(fast[[5, 6, 7, 14]], x[[5, 6, 7, 14]] * (1 - 0.0))
    np.testing.assert_allclose(fast[5:], np.tanh(x[5:]), rtol=4e-16, atol=0)
    np.testing.assert_array_equal(fast[9:], np.tanh(x[9:]))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs an 80-bit long double")
def test_fast_exp_is_within_one_ulp_of_the_correctly_rounded_value():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-708, 709, 500_000), rng.uniform(-1, 1, 200_000),
                        rng.uniform(-1e-10, 1e-10, 10_000)])
    fast = mlp.fast_exp_vector(x)
    assert _ulps(fast, np.exp(x.astype(np.longdouble))).max() <= 1.0


def test_fast_exp_special_values():
    x = np.array([-np.inf, -1000.0, -745.5, -740.0, -708.5, 0.0, -0.0, 709.7, 710.0, 1000.0,
                  np.inf, np.nan])
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    fast = mlp.fast_exp_vector(x)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(expected))
    finite = ~np.isnan(x)
    # subnormal results lose relative accuracy in any implementation: compare absolutely
    np.testing.assert_allclose(fast[finite], expected[finite], rtol=2.3e-16, atol=1e-322)
