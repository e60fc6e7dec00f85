"""Outputs of solve() are smooth functions of the parameters (issue W1-3, "Rough outputs").

A finite-difference derivative of an output with the usual step ``sqrt(eps) * p`` must not
see rounding noise in the step-size sequence. The measure: evaluate the output at
``p * (1 + k * 1.5e-8)``, ``k = 0..7``, take the 7 forward differences and their relative
spread ``(max - min) / |median|``. scipy's solve_ivp reaches 1e-7..1e-6 on these problems
(``benchmarks/smoothness.py`` prints the comparison); before the noise floor of the step-size
controller (``kernels/controller.py``, ``NOISE_FLOOR_GAIN``) paramest's spreads were
1e-4..1e-1 on Michaelis-Menten, because step sizes followed error norms that were rounding
noise.
"""

import pytest

import paramest as pe
from tests.problems import (
    KINETICS_P,
    KINETICS_Y0,
    MM_P,
    forward_difference_spread,
    kinetics,
    michaelis_menten,
)

spread = forward_difference_spread


@pytest.fixture(scope="module")
def mm_problem():
    return pe.ODEProblem(michaelis_menten, [10.0, 0.0], (0.0, 10.0), MM_P)


# Spreads before / after the fix (rtol=1e-8): Tsit5 2.9e-3 / 1e-7, DP5 2.2e-3 / 1e-7,
# Vern7 1.5e-4 / 1e-7 at atol=1e-12; Rodas5P 4.6e-2 / 4e-7 at atol=1e-10 (d/dp0); scipy
# RK45 1.7e-7, BDF 1.5e-6.
@pytest.mark.parametrize(
    "method, atol, limit",
    [
        ("Tsit5", 1e-12, 1e-5),
        ("DP5", 1e-12, 1e-5),
        ("Vern7", 1e-12, 1e-5),
        ("Tsit5", 1e-10, 1e-5),
        ("Rodas5P", 1e-10, 2e-5),
    ],
)
def test_michaelis_menten_outputs_are_smooth(mm_problem, method, atol, limit):
    def product_at_10(p):
        sol = pe.solve(mm_problem, method, t_eval=[10.0], p=p, rtol=1e-8, atol=atol)
        assert sol.success
        return sol.y[1, -1]

    for index in (0, 1):
        assert spread(product_at_10, MM_P, index) < limit, (method, index)


# The stiff signalling cascade of tests/problems.py (also in benchmarks/smoothness.py).


@pytest.fixture(scope="module")
def kinetics_problem():
    return pe.ODEProblem(kinetics, KINETICS_Y0, (0.0, 10.0), KINETICS_P)


# scipy BDF on the same outputs: 3e-6 (Ap, d/dk3) and 3e-6 (X, d/dk5).
@pytest.mark.parametrize("method", ["auto", "Rodas5P"])
@pytest.mark.parametrize("output, index", [(4, 3), (7, 5)])
def test_stiff_kinetics_outputs_are_smooth(kinetics_problem, method, output, index):
    def value_at_10(p):
        sol = pe.solve(kinetics_problem, method, t_eval=[10.0], p=p, rtol=1e-8, atol=1e-10)
        assert sol.success
        return sol.y[output, -1]

    assert spread(value_at_10, KINETICS_P, index) < 5e-5


def test_the_cascade_keeps_complex_step_jacobians(kinetics_problem):
    # Its X equation sums terms near 100 with one scaled by 1e-5: the model check once
    # called it "not complex-step safe" from noisy differences, and its stiff solves then
    # used difference Jacobians, a source of rough outputs of their own.
    assert kinetics_problem.complex_step_safe
