"""No silently wrong answers from the model layer (issue W1-3 items 1, 2, 4, 5, 6): values
frozen into compiled code, division by zero, false complex-step verdicts, Numba internals
reaching the user, and labelled initial values."""

import math
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from numba import njit

import paramest as pe
from paramest import ComplexStepWarning, ModelError
from paramest.kernels import status as st

# ----------------------------------------------------------------------------------------
# 1. values read from outside the function


def _run(path, *args, env=None):
    result = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result


def test_a_changed_global_is_not_reused_from_the_cache_of_another_process(tmp_path):
    """The reported script: the second run printed B(10) = 0.214329 (exact 0.000749)."""
    script = tmp_path / "global_rate.py"
    script.write_text(textwrap.dedent("""
        import sys, numpy as np, paramest as pe
        K_OUT = float(sys.argv[1])
        def model(t, y, p, dydt):
            dydt[0] = -p[0] * y[0]
            dydt[1] = p[0] * y[0] - K_OUT * y[1]
        sol = pe.solve(pe.ODEProblem(model, [1.0, 0.0], (0.0, 10.0), [0.5]), t_eval=[10.0],
                       rtol=1e-10, atol=1e-12)
        print(repr(float(sol.y[1, -1])))
    """))

    def exact(k):
        return 0.5 / (k - 0.5) * (math.exp(-0.5 * 10.0) - math.exp(-k * 10.0))

    for k in ("0.2", "5.0", "0.2"):
        value = float(_run(script, k).stdout)
        assert value == pytest.approx(exact(float(k)), rel=1e-7)


def test_a_helper_edited_in_another_file_is_recompiled(tmp_path):
    helper = tmp_path / "rate_helpers.py"
    script = tmp_path / "uses_helper.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, paramest as pe
        from rate_helpers import rate
        def model(t, y, p, dydt):
            dydt[0] = -rate(p[0]) * y[0]
        sol = pe.solve(pe.ODEProblem(model, [1.0], (0.0, 1.0), [0.5]), t_eval=[1.0],
                       rtol=1e-10, atol=1e-12)
        print(repr(float(sol.y[0, -1])))
    """))
    source = "from numba import njit\n@njit(cache=True)\ndef rate(k):\n    return {} * k\n"
    helper.write_text(source.format("1.0"))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    first = float(_run(script, env={"PYTHONPATH": path}).stdout)
    helper.write_text(source.format("4.0"))
    stamp = os.stat(helper).st_mtime + 10.0
    os.utime(helper, (stamp, stamp))
    second = float(_run(script, env={"PYTHONPATH": path}).stdout)
    assert first == pytest.approx(math.exp(-0.5), rel=1e-8)
    assert second == pytest.approx(math.exp(-2.0), rel=1e-8)


K_DECAY = 0.5
MATRIX = np.array([[-1.0, 0.5], [0.0, -2.0]])


def global_decay(t, y, p, dydt):
    dydt[0] = -K_DECAY * y[0]


def global_matrix(t, y, p, dydt):
    # DiffEqFlux's spiral example reads a global 2x2 matrix like this
    dydt[0] = MATRIX[0, 0] * y[0] + MATRIX[0, 1] * y[1]
    dydt[1] = MATRIX[1, 0] * y[0] + MATRIX[1, 1] * y[1]


def test_a_changed_global_in_the_same_process_gives_a_new_model_and_stops_the_old():
    global K_DECAY
    first = pe.ODEProblem(global_decay, [1.0], (0.0, 1.0))
    end = pe.solve(first, t_eval=[1.0], rtol=1e-10, atol=1e-12).y[0, -1]
    assert end == pytest.approx(math.exp(-0.5), rel=1e-8)
    try:
        K_DECAY = 3.0
        second = pe.ODEProblem(global_decay, [1.0], (0.0, 1.0))
        end = pe.solve(second, t_eval=[1.0], rtol=1e-10, atol=1e-12).y[0, -1]
        assert end == pytest.approx(math.exp(-3.0), rel=1e-8)
        with pytest.raises(ModelError, match="`K_DECAY` was rebound.*pass the value through"):
            pe.solve(first)
    finally:
        K_DECAY = 0.5
    assert pe.solve(first).success  # the value it was compiled with is back


def test_a_global_array_changed_in_place_is_detected():
    problem = pe.ODEProblem(global_matrix, [1.0, 1.0], (0.0, 1.0))
    assert pe.solve(problem).success
    saved = MATRIX.copy()
    try:
        MATRIX[0, 1] = 0.7
        with pytest.raises(ModelError, match="contents of the array `MATRIX` were changed"):
            pe.solve(problem)
        updated = pe.ODEProblem(global_matrix, [1.0, 1.0], (0.0, 1.0))
        sol = pe.solve(updated, t_eval=[1.0], rtol=1e-10, atol=1e-12)
        expected = 1.0 * math.exp(-1.0) + 0.7 * (math.exp(-1.0) - math.exp(-2.0))
        assert sol.y[0, -1] == pytest.approx(expected, rel=1e-8)
    finally:
        MATRIX[:] = saved


def _closure_model(rate):
    def model(t, y, p, dydt):
        dydt[0] = -rate * y[0]
    return model


def test_closures_with_different_values_are_different_models():
    ends = [
        pe.solve(pe.ODEProblem(_closure_model(k), [1.0], (0.0, 1.0)), t_eval=[1.0],
                 rtol=1e-10, atol=1e-12).y[0, -1]
        for k in (0.5, 2.0)
    ]
    assert ends == pytest.approx([math.exp(-0.5), math.exp(-2.0)], rel=1e-8)


SETTINGS = {"rate": 1.0}


def reads_a_dict(t, y, p, dydt):
    dydt[0] = -SETTINGS["rate"] * y[0]


def test_a_value_that_cannot_be_keyed_is_refused_with_advice():
    with pytest.raises(ModelError, match="reads `SETTINGS`, a dict.*through the parameter "
                                         "vector `p`"):
        pe.ODEProblem(reads_a_dict, [1.0], (0.0, 1.0))


# ----------------------------------------------------------------------------------------
# 2. division by zero


def pole_at_three(t, y, p, dydt):
    dydt[0] = 1.0 / (3.0 - t)
    dydt[1] = -y[1]


def zero_denominator_at_y0(t, y, p, dydt):
    dydt[0] = -y[0]
    dydt[1] = 1.0 / y[1]


@njit  # Python's error model: raises ZeroDivisionError
def reciprocal(x):
    return 1.0 / x


def divides_in_a_helper(t, y, p, dydt):
    dydt[0] = -y[0]
    dydt[1] = reciprocal(3.0 - t)


def test_division_by_zero_in_a_solve_is_a_non_finite_failure_without_stderr_flood(capfd):
    problem = pe.ODEProblem(pole_at_three, [0.0, 1.0], (0.0, 10.0))
    sol = pe.solve(problem, "Euler", dt=0.5)
    assert not sol.success and sol.status == st.NON_FINITE
    assert sol.t_final == pytest.approx(3.0)
    assert "divides by zero" in sol.message
    assert "Exception ignored" not in capfd.readouterr().err


def test_division_by_zero_at_y0_is_reported_as_non_finite_not_unassigned():
    with pytest.raises(ModelError, match=r"non-finite output at y0: out\[1\] = inf.*division "
                                         "by zero"):
        pe.ODEProblem(zero_denominator_at_y0, [1.0, 0.0], (0.0, 1.0))


def test_an_exception_in_a_helper_fails_the_solve_instead_of_being_printed(capfd):
    reciprocal(2.0)  # compiled with Python's error model before the model uses it
    problem = pe.ODEProblem(divides_in_a_helper, [1.0, 0.0], (0.0, 10.0))
    sol = pe.solve(problem, "Euler", dt=0.5)
    assert not sol.success and sol.status == st.MODEL_EXCEPTION
    assert "ZeroDivisionError" in sol.message and "error_model='numpy'" in sol.message
    assert "Exception ignored" not in capfd.readouterr().err
    # and at y0, the model check names it
    with pytest.raises(ModelError, match="raised ZeroDivisionError"):
        pe.ODEProblem(divides_in_a_helper, [1.0, 0.0], (3.0, 4.0))


# ----------------------------------------------------------------------------------------
# 4. complex-step verdicts on models with widely different scales


def saturating_fluxes(t, y, p, dydt):
    # two saturating fluxes near 100 that nearly cancel, plus a leak scaled by p[0] = 1e-5
    dydt[0] = p[1] * y[1] / (p[2] + y[1]) - p[1] * y[0] / (p[2] + y[0]) + p[0] * y[2]
    dydt[1] = p[1] * y[0] / (p[2] + y[0]) - p[1] * y[1] / (p[2] + y[1]) - p[0] * y[2]
    dydt[2] = -p[3] * y[2] + p[4] * y[0] * y[1]


def exponentials_and_logs(t, y, p, dydt):
    dydt[0] = 1e2 * np.exp(-p[1] * y[0]) - 1e2 * np.exp(-p[1] * y[1]) + p[0] * np.sqrt(y[2])
    dydt[1] = -dydt[0] + p[2] * np.log(y[2]) ** 2
    dydt[2] = -p[3] * y[2] ** 1.5 + p[0] * 1e3


def stiff_kinetics(t, y, p, dydt):
    # rate constants from 1e-5 to 1e5 (a Robertson-like network with a slow leak)
    dydt[0] = -p[0] * y[0] + p[1] * y[1] * y[2] + p[4] * y[3]
    dydt[1] = p[0] * y[0] - p[1] * y[1] * y[2] - p[2] * y[1] ** 2
    dydt[2] = p[2] * y[1] ** 2 - p[3] * y[2] / (p[5] + y[2])
    dydt[3] = p[3] * y[2] / (p[5] + y[2]) - p[4] * y[3]


@pytest.mark.parametrize(
    ("fun", "y0", "p"),
    [
        (saturating_fluxes, [1.0, 1.2, 0.7], [1e-5, 1e4, 1e2, 0.3, 1e-3]),
        (exponentials_and_logs, [1.0, 1.0 + 1e-6, 0.3], [1e-6, 1e-3, 1e5, 2.0]),
        (stiff_kinetics, [1.0, 1e-5, 1e-2, 0.0], [0.04, 1e4, 3e7, 1e-5, 1e-3, 1e2]),
    ],
)
def test_no_false_complex_step_verdict_on_widely_scaled_models(fun, y0, p):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem = pe.ODEProblem(fun, y0, (0.0, 1.0), p)
    assert problem.complex_step_safe


def max_on_the_state(t, y, p, dydt):
    dydt[0] = -p[0] * max(y[0], 0.0)
    dydt[1] = -y[1]


def branches_on_the_state(t, y, p, dydt):
    if y[0] > 0.5:
        dydt[0] = -p[0] * y[0]
    else:
        dydt[0] = p[0]
    dydt[1] = -y[1]


def abs_with_scales(t, y, p, dydt):
    dydt[0] = 1e2 * y[1] - 1e2 * y[0] - p[0] * abs(y[0] - 2.0)
    dydt[1] = -y[1]


@pytest.mark.parametrize(
    ("fun", "match"),
    [
        (max_on_the_state, r"compares complex numbers.*y\[0\] if y\[0\].real > 0.0 else 0.0"),
        (branches_on_the_state, "compares complex numbers"),
        (abs_with_scales, r"It uses abs\(\)"),
    ],
)
def test_non_analytic_models_are_still_caught_and_explained(fun, match):
    with pytest.warns(ComplexStepWarning, match=match):
        problem = pe.ODEProblem(fun, [1.0, 1.0], (0.0, 1.0), [0.5])
    assert not problem.complex_step_safe


# ----------------------------------------------------------------------------------------
# 5. Numba internals translated


def prints(t, y, p, dydt):
    print(y[0])
    dydt[0] = -y[0]


def returns_an_array(t, y, p, dydt):
    return np.array([-y[0]])


def scipy_style(t, y):
    return [-y[0]]


def real_work_array(t, y, p, dydt):
    work = np.zeros(1)
    work[0] = -p[0] * y[0]
    dydt[0] = work[0]


def math_exp(t, y, p, dydt):
    dydt[0] = -p[0] * math.exp(y[0])


def test_print_in_a_model_is_explained():
    with pytest.raises(ModelError, match=r"calls print\(\).*Remove the print\(\) call"):
        pe.ODEProblem(prints, [1.0], (0.0, 1.0), [0.5])


def test_returning_the_derivative_is_explained():
    with pytest.raises(ModelError, match=r"It returns a value.*dydt\[0\] = \.\.\..*instead of "
                                         r"`return np.array"):
        pe.ODEProblem(returns_an_array, [1.0], (0.0, 1.0), [0.5])


def test_a_scipy_style_function_gets_a_rewrite():
    with pytest.raises(TypeError, match=r"(?s)it takes 2 \(t, y\).*def f\(t, y, p, dydt\):\n"
                                        r"\s+dydt\[0\] = -p\[0\] \* y\[0\]"):
        pe.ODEProblem(scipy_style, [1.0], (0.0, 1.0), [0.5])


@pytest.mark.parametrize(
    ("fun", "match"),
    [
        (real_work_array, r"np.zeros\(n, dtype=y.dtype\)"),
        (math_exp, r"use NumPy's \(`np.exp`"),
    ],
)
def test_complex_step_warning_names_the_real_cause(fun, match):
    with pytest.warns(ComplexStepWarning, match=match) as record:
        pe.ODEProblem(fun, [1.0], (0.0, 1.0), [0.5])
    assert "abs()" not in str(record[0].message)


# ----------------------------------------------------------------------------------------
# 6. labelled values


def conversion(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]
    dydt[1] = p[0] * y[0]


def test_labelled_initial_values_are_aligned_by_name():
    y0 = {"B": 0.0, "A": 1.0}
    problem = pe.ODEProblem(conversion, y0, (0.0, 1.0), {"k": 0.5},
                            state_names=["A", "B"], param_names=["k"])
    np.testing.assert_array_equal(problem.y0, [1.0, 0.0])
    sol = pe.solve(problem, y0={"B": 1.0, "A": 2.0}, p={"k": 1.0}, t_eval=[1.0])
    assert sol.y[0, -1] == pytest.approx(2.0 * math.exp(-1.0), rel=1e-5)
    np.testing.assert_array_equal(problem.remake(y0={"A": 3.0, "B": 4.0}).y0, [3.0, 4.0])


def test_labelled_values_without_names_or_with_wrong_labels_are_refused():
    with pytest.raises(ValueError, match="`y0` is given by label .* no `state_names`"):
        pe.ODEProblem(conversion, {"B": 0.0, "A": 1.0}, (0.0, 1.0), [0.5])
    with pytest.raises(ValueError, match="missing 'A'; not in `state_names`: 'C'"):
        pe.ODEProblem(conversion, {"B": 0.0, "C": 1.0}, (0.0, 1.0), [0.5],
                      state_names=["A", "B"])


def test_pandas_series_is_aligned_by_label():
    pd = pytest.importorskip("pandas")
    problem = pe.ODEProblem(conversion, pd.Series({"B": 0.0, "A": 1.0}), (0.0, 1.0), [0.5],
                            state_names=["A", "B"])
    np.testing.assert_array_equal(problem.y0, [1.0, 0.0])
    with pytest.raises(ValueError, match="given by label"):
        pe.ODEProblem(conversion, pd.Series({"B": 0.0, "A": 1.0}), (0.0, 1.0), [0.5])
    # a Series with the default 0, 1, ... index is positional
    plain = pe.ODEProblem(conversion, pd.Series([1.0, 0.0]), (0.0, 1.0), [0.5])
    np.testing.assert_array_equal(plain.y0, [1.0, 0.0])
