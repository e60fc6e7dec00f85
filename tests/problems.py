"""Test problems with exact solutions (or trusted references), shared by the test suite.

Each entry gives the model, the initial value, the interval, the parameters and
``y_exact(t)`` returning an array of shape ``(n_states, len(t))``.
"""

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import expm


@dataclass(frozen=True)
class ExactProblem:
    name: str
    fun: object
    y0: tuple
    t_span: tuple
    p: tuple
    y_exact: object


def gaussian(t, y, p, dydt):
    # y' = -2 p t y: time-dependent, so a wrong stage time c_i shows up in the order
    dydt[0] = -2.0 * p[0] * t * y[0]


def oscillator(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = -p[0] * p[0] * y[0]


def periodic_growth(t, y, p, dydt):
    # y' = p cos(p t) y, y(0) = 1: exact y = exp(sin(p t)); time-dependent and bounded
    dydt[0] = p[0] * np.cos(p[0] * t) * y[0]


def forced_decay(t, y, p, dydt):
    # y' = -y + sin(t), y(0) = 1: exact y = 1.5 exp(-t) + (sin t - cos t) / 2
    dydt[0] = -p[0] * y[0] + np.sin(t)


def rational_coupled(t, y, p, dydt):
    # exact y1 = 1 / (1 + t^2), y2 = cos(t) y1; the term y2 - cos(t) y1 vanishes on the
    # solution but makes the Jacobian full and df/dt richer (Rosenbrock methods use both)
    dydt[0] = -2.0 * t * y[0] * y[0] + (y[1] - np.cos(t) * y[0])
    dydt[1] = -np.sin(t) * y[0] - 2.0 * t * y[0] * y[1]


def lotka_volterra(t, y, p, dydt):
    dydt[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1]


def linear(t, y, p, dydt):
    # dy/dt = M y with M = p reshaped (n, n) row-major: one compiled model for every n
    n = y.shape[0]
    for i in range(n):
        acc = 0.0 * y[0]
        for j in range(n):
            acc += p[i * n + j] * y[j]
        dydt[i] = acc


def linear_chain(t, y, p, dydt):
    dydt[0] = -y[0]
    for i in range(1, y.shape[0]):
        dydt[i] = y[i - 1] - y[i]


GAUSSIAN = ExactProblem(
    "gaussian", gaussian, (1.0,), (0.0, 2.0), (1.0,),
    lambda t: np.exp(-np.asarray(t) ** 2)[None, :],
)
OSCILLATOR = ExactProblem(
    "oscillator", oscillator, (1.0, 0.0), (0.0, 6.0), (5.0,),
    lambda t: np.vstack([np.cos(5.0 * np.asarray(t)), -5.0 * np.sin(5.0 * np.asarray(t))]),
)
PERIODIC_GROWTH = ExactProblem(
    "periodic_growth", periodic_growth, (1.0,), (0.0, 6.0), (5.0,),
    lambda t: np.exp(np.sin(5.0 * np.asarray(t)))[None, :],
)
FORCED_DECAY = ExactProblem(
    "forced_decay", forced_decay, (1.0,), (0.0, 2.0), (1.0,),
    lambda t: (1.5 * np.exp(-np.asarray(t)) + 0.5 * (np.sin(t) - np.cos(t)))[None, :],
)

RATIONAL_COUPLED = ExactProblem(
    "rational_coupled", rational_coupled, (1.0, 1.0), (0.0, 2.0), (),
    lambda t: np.vstack([1.0 / (1.0 + np.asarray(t) ** 2),
                         np.cos(t) / (1.0 + np.asarray(t) ** 2)]),
)

EXACT_PROBLEMS = (GAUSSIAN, OSCILLATOR, PERIODIC_GROWTH, FORCED_DECAY, RATIONAL_COUPLED)
#: problems whose error constants let every method reach its asymptotic order well above
#: rounding error (the others are too easy: high-order methods hit 1e-13 first)
ORDER_PROBLEMS = (OSCILLATOR, PERIODIC_GROWTH)
#: the same for Rosenbrock methods, whose error on linear problems is that of their
#: stability function (Rodas5P's is of higher order than the method, so the oscillator
#: shows a slope of 6.4): a nonlinear, non-autonomous, coupled problem tests every
#: order condition, J and df/dt included
ROSENBROCK_ORDER_PROBLEMS = (RATIONAL_COUPLED,)

LV_P = (1.5, 1.0, 3.0, 1.0)
LV_Y0 = (1.0, 1.0)


def lotka_volterra_reference(t_eval):
    """Lotka–Volterra by scipy's DOP853 at rtol = atol = 1e-13 (an independent solver)."""
    def rhs(t, y):
        out = np.empty(2)
        lotka_volterra(t, y, LV_P, out)
        return out

    ref = solve_ivp(rhs, (0.0, float(t_eval[-1])), LV_Y0, method="DOP853", t_eval=t_eval,
                    rtol=1e-13, atol=1e-13)
    assert ref.success
    return ref.y


def linear_exact(matrix, y0, t):
    return np.column_stack([expm(matrix * ti) @ y0 for ti in np.atleast_1d(t)])


def michaelis_menten(t, y, p, dydt):
    # S' = -k S / (K + S), P' = k S / (K + S): used for the smoothness of outputs in p
    rate = p[0] * y[0] / (p[1] + y[0])
    dydt[0] = -rate
    dydt[1] = rate


MM_P = np.array([1.0, 2.0])
MM_Y0 = np.array([10.0, 0.0])

# A stiff signalling cascade, 8 states, rate constants from 1e-5 to 1e5: L + R <-> C (1e5,
# 1e2), C internalised (1e-3); C activates A (1e1, back 1e0), Ap phosphorylates B (1e3, back
# 1e2); X made from Bp and degraded (both 1e2: terms near 100 that nearly cancel) plus a
# leak from A scaled by 1e-5.
KINETICS_P = np.array([1e5, 1e2, 1e-3, 1e1, 1.0, 1e3, 1e2, 1e2, 1e2, 1e-5])
KINETICS_Y0 = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])


def kinetics(t, y, p, dydt):
    bind = p[0] * y[0] * y[1] - p[1] * y[2]
    act = p[3] * y[2] * y[3] - p[4] * y[4]
    phos = p[5] * y[4] * y[5] - p[6] * y[6]
    dydt[0] = -bind
    dydt[1] = -bind
    dydt[2] = bind - p[2] * y[2]
    dydt[3] = -act
    dydt[4] = act
    dydt[5] = -phos
    dydt[6] = phos
    dydt[7] = p[7] * y[6] - p[8] * y[7] + p[9] * 1e2 * y[3]


#: relative parameter step of the smoothness measure (about sqrt(eps), as finite
#: differences use)
SPREAD_STEP = 1.5e-8


def forward_difference_spread(output, p0, index):
    """Relative spread ``(max - min) / |median|`` of the 7 forward differences of
    ``output(p)`` along ``p[index]`` at ``p0 * (1 + k * SPREAD_STEP)``, ``k = 0..7``: how
    far an output is from smooth at the scale finite-difference derivatives look at
    (inf when the median difference is zero)."""
    values = []
    for k in range(8):
        p = p0.copy()
        p[index] = p0[index] * (1.0 + k * SPREAD_STEP)
        values.append(output(p))
    differences = np.diff(values)
    median = abs(float(np.median(differences)))
    if median == 0.0:
        return float("inf")
    return float((differences.max() - differences.min()) / median)


# --- a parametrised linear cascade with exact sensitivities --------------------------
# y_0' = -p_0 y_0,  y_i' = p_{i-1} y_{i-1} - p_i y_i  (i = 1 .. n-1): state i passes its
# mass on to state i+1 at rate p_i and the last state drains at rate p_{n-1}. So A(p) is
# lower bidiagonal, linear in p, with exactly n parameters for n states, and
# dA/dp_k = -e_k e_k^T + e_{k+1} e_k^T (the second term absent for the last k).


def rate_chain(t, y, p, dydt):
    # the cascade above, for any n = y.shape[0] (one compiled model for every size)
    dydt[0] = -p[0] * y[0]
    for i in range(1, y.shape[0]):
        dydt[i] = p[i - 1] * y[i - 1] - p[i] * y[i]


def linear_chain_rates(n):
    """`n` reproducible, well-spread rates in [0.2, 2]: 0.2 * 10**frac(k * golden ratio),
    a low-discrepancy sequence, so that neighbouring states have different rates (distinct
    eigenvalues) and every parameter count from 2 to 200 gets the whole range."""
    k = np.arange(n)
    return 0.2 * 10.0 ** np.mod(k * 0.6180339887498949, 1.0)


def linear_chain_matrix(p, n):
    """A(p) of the cascade: y' = A(p) y, shape (n, n)."""
    p = np.asarray(p, dtype=float)
    A = np.zeros((n, n))
    i = np.arange(n)
    A[i, i] = -p[:n]
    A[i[1:], i[:-1]] = p[: n - 1]
    return A


def linear_chain_derivative_matrices(p, n):
    """dA/dp_k for k = 0 .. n-1, as a list of (n, n) arrays (A is linear in p, so they
    do not depend on p)."""
    out = []
    for k in range(n):
        dA = np.zeros((n, n))
        dA[k, k] = -1.0
        if k + 1 < n:
            dA[k + 1, k] = 1.0
        out.append(dA)
    return out


def linear_exact_sensitivities(A, dA_list, y0, times):
    """Exact solution and forward sensitivities of ``y' = A(p) y, y(0) = y0``.

    Returns ``(y, S_p, S_y0)`` with shapes ``(n, n_times)``, ``(n, n_params, n_times)``
    and ``(n, n, n_times)``: ``S_p[:, k, j] = dy/dp_k (t_j)`` for ``dA/dp_k = dA_list[k]``
    and ``S_y0[:, :, j] = dy/dy0 (t_j) = expm(A t_j)``.

    Van Loan (1978): ``expm([[A, B], [0, A]] t)`` has the top-right block
    ``int_0^t expm(A (t - s)) B expm(A s) ds``, which is ``dexpm(A t)/dp_k`` for
    ``B = dA/dp_k``; times ``y0`` it gives ``dy/dp_k``. One 2n x 2n ``expm`` per parameter
    and time, so keep ``n_params * n_times`` modest for large ``n``.
    """
    A = np.asarray(A, dtype=float)
    y0 = np.asarray(y0, dtype=float)
    times = np.atleast_1d(np.asarray(times, dtype=float))
    n, n_p, n_t = A.shape[0], len(dA_list), len(times)
    y = np.empty((n, n_t))
    S_p = np.empty((n, n_p, n_t))
    S_y0 = np.empty((n, n, n_t))
    M = np.zeros((2 * n, 2 * n))
    M[:n, :n] = A
    M[n:, n:] = A
    for j, t in enumerate(times):
        E = expm(A * t)
        S_y0[:, :, j] = E
        y[:, j] = E @ y0
        for k, B in enumerate(dA_list):
            M[:n, n:] = B
            S_p[:, k, j] = expm(M * t)[:n, n:] @ y0
    return y, S_p, S_y0


@dataclass(frozen=True)
class LinearSensitivityProblem:
    """A linear test problem ``y' = A(p) y`` with exact solution and sensitivities.

    ``fun(t, y, p, dydt)`` is the paramest model (A applied in place, Numba-compilable);
    ``matrix(p)`` is A(p) and ``derivative_matrices(p)`` the list of dA/dp_k.
    ``exact(times, p=None)`` returns ``(y, S_p, S_y0)`` as
    :func:`linear_exact_sensitivities` does.
    """

    name: str
    fun: object
    y0: np.ndarray
    t_span: tuple
    p: np.ndarray
    t_eval: np.ndarray
    matrix: object
    derivative_matrices: object

    @property
    def n_states(self):
        return len(self.y0)

    @property
    def n_params(self):
        return len(self.p)

    def exact(self, times=None, p=None):
        p = self.p if p is None else np.asarray(p, dtype=float)
        times = self.t_eval if times is None else times
        return linear_exact_sensitivities(self.matrix(p), self.derivative_matrices(p),
                                          self.y0, times)


def linear_chain_problem(n_states, t_end=10.0, n_times=11):
    """The cascade :func:`rate_chain` with ``n_states`` states and as many parameters.

    ``y0`` is all ones (every state, hence every parameter, matters from t = 0), ``p``
    is :func:`linear_chain_rates` (rates in [0.2, 2]: not stiff), ``t_span = (0, t_end)``
    and ``t_eval`` has ``n_times`` equally spaced times including both ends.
    """
    if n_states < 2:
        raise ValueError(f"`n_states` must be at least 2, got {n_states}")
    n = int(n_states)
    return LinearSensitivityProblem(
        f"linear_chain_{n}", rate_chain, np.ones(n), (0.0, float(t_end)),
        linear_chain_rates(n), np.linspace(0.0, float(t_end), n_times),
        lambda p: linear_chain_matrix(p, n), lambda p: linear_chain_derivative_matrices(p, n),
    )


#: 20 states, 20 parameters, t in [0, 10], 11 output times
LINEAR20 = linear_chain_problem(20)
