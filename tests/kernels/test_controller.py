"""The step-size controller shared by the integrators."""

import numpy as np
import pytest

from paramest.kernels.controller import (
    FACTOR_MAX,
    FACTOR_MIN,
    NOISE_FLOOR_GAIN,
    SAFETY,
    log_noise_floor,
    pi_step_factor,
    reject_step_factor,
)


@pytest.mark.parametrize("error_order", [2, 4])
@pytest.mark.parametrize("err_norm", [1e-9, 1e-3, 0.2, 0.9, 1.0])
@pytest.mark.parametrize("err_previous", [1e-8, 0.05, 0.7])
def test_pi_factor_is_the_pi_formula(error_order, err_norm, err_previous):
    q = error_order + 1.0
    expected = SAFETY * err_norm ** (-0.7 / q) * max(err_previous, 1e-4) ** (0.4 / q)
    expected = min(FACTOR_MAX, max(FACTOR_MIN, expected))
    assert pi_step_factor(err_norm, err_previous, error_order, False) == pytest.approx(
        expected, rel=1e-13
    )
    after_rejection = pi_step_factor(err_norm, err_previous, error_order, True)
    assert after_rejection == pytest.approx(min(expected, 1.0), rel=1e-13)


def test_pi_factor_limits():
    assert pi_step_factor(0.0, 0.5, 4, False) == FACTOR_MAX  # an exact step
    assert pi_step_factor(0.0, 0.5, 4, True) == 1.0
    assert pi_step_factor(1.0, 1e-12, 4, False) >= FACTOR_MIN


@pytest.mark.parametrize("err_norm", [1.01, 3.0, 1e6, np.inf])
def test_rejection_shrinks_the_step(err_norm):
    factor = reject_step_factor(err_norm, 4)
    assert FACTOR_MIN <= factor < 1.0


@pytest.mark.parametrize("err_previous", [1e-8, 0.05, 0.7])
def test_errors_below_the_noise_floor_give_the_largest_growth(err_previous):
    # An error norm at or below its rounding-noise floor carries no information: the step
    # grows by FACTOR_MAX whatever its value (the PI formula alone would follow it down to
    # about 1e-10), and by at most 1 right after a rejection.
    for err_norm in (0.0, 1e-12, 1e-9, 1e-6, 1e-3):
        assert pi_step_factor(err_norm, err_previous, 4, False, 1e-3) == FACTOR_MAX
        assert pi_step_factor(err_norm, err_previous, 4, True, 1e-3) == 1.0
    # above the floor the PI formula applies unchanged
    expected = pi_step_factor(2e-3, err_previous, 4, False)
    assert pi_step_factor(2e-3, err_previous, 4, False, 1e-3) == expected


def test_noise_floor_scales_with_the_relative_increment():
    # sum of squares 4 * 0.25 over n = 4 components: rms 0.5
    assert np.exp(log_noise_floor(1.0, 4)) == pytest.approx(0.5 * NOISE_FLOOR_GAIN, rel=1e-14)
    assert log_noise_floor(0.0, 4) == -np.inf
