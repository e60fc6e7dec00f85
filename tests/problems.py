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
