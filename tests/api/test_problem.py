"""ODEProblem: argument validation and the model check."""

import warnings

import numpy as np
import pytest

import paramest as pe
from paramest import ComplexStepWarning, ModelError


def decay(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]
    dydt[1] = -y[1]


def writes_past_the_end(t, y, p, dydt):
    dydt[0] = y[0]
    dydt[1] = y[1]
    dydt[2] = 0.0


def reads_past_the_end_of_p(t, y, p, dydt):
    dydt[0] = p[1] * y[0]
    dydt[1] = y[1]


def reads_past_the_end_of_y(t, y, p, dydt):
    dydt[0] = y[2]
    dydt[1] = y[1]


def non_finite(t, y, p, dydt):
    dydt[0] = np.log(y[0] - 1.0)
    dydt[1] = 0.0


def leaves_an_entry_unset(t, y, p, dydt):
    dydt[0] = 1.0


def three_arguments(t, y, dydt):
    dydt[0] = 1.0


def not_compilable(t, y, p, dydt):
    dydt[0] = "text" + 1
    dydt[1] = 0.0


def uses_abs(t, y, p, dydt):
    dydt[0] = -p[0] * abs(y[0])
    dydt[1] = -y[1]


def uses_sign(t, y, p, dydt):
    dydt[0] = -np.sign(y[0]) * y[0] * p[0]
    dydt[1] = -y[1]


def uses_conj(t, y, p, dydt):
    dydt[0] = -p[0] * np.conj(y[0])
    dydt[1] = -y[1]


def complex_safe_branches(t, y, p, dydt):
    # abs written the complex-step-safe way
    dydt[0] = -p[0] * (y[0] if y[0].real >= 0 else -y[0])
    dydt[1] = -y[1]


def decay_jac(t, y, p, J):
    J[0, 0] = -p[0]
    J[0, 1] = 0.0
    J[1, 0] = 0.0
    J[1, 1] = -1.0


def wrong_jac(t, y, p, J):
    J[0, 0] = p[0]
    J[0, 1] = 0.0
    J[1, 0] = 0.0
    J[1, 1] = -1.0


def decay_jac_p(t, y, p, Jp):
    Jp[0, 0] = -y[0]
    Jp[1, 0] = 0.0


def wrong_jac_p(t, y, p, Jp):
    Jp[0, 0] = y[0]
    Jp[1, 0] = 0.0


Y0 = [1.0, 2.0]
P = [0.5]


def test_valid_problem_attributes():
    problem = pe.ODEProblem(decay, Y0, (0, 1), P, state_names=["a", "b"], param_names=["k"])
    assert problem.n_states == 2 and problem.n_params == 1
    assert problem.t_span == (0.0, 1.0)
    assert problem.state_names == ("a", "b") and problem.param_names == ("k",)
    assert problem.complex_step_safe
    assert problem.y0.dtype == np.float64 and not problem.y0.flags.writeable
    with pytest.raises(AttributeError, match="immutable"):
        problem.y0 = np.zeros(2)


def test_p_defaults_to_empty():
    def no_params(t, y, p, dydt):
        dydt[0] = -y[0]

    problem = pe.ODEProblem(no_params, [1.0], (0.0, 1.0))
    assert problem.n_params == 0


def test_numba_dispatcher_is_accepted():
    from numba import njit

    problem = pe.ODEProblem(njit(decay), Y0, (0, 1), P)
    assert pe.solve(problem).success


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(y0=[[1.0, 2.0]]), ValueError, "`y0` must be 1-D"),
        (dict(y0=[]), ValueError, "`y0` must not be empty"),
        (dict(y0=[1.0, np.nan]), ValueError, r"`y0` must be finite, but y0\[1\] = nan"),
        (dict(y0=["a", "b"]), ValueError, "`y0` must be a 1-D sequence of real numbers"),
        (dict(p=[np.inf]), ValueError, "`p` must be finite"),
        (dict(p=[[0.5]]), ValueError, "`p` must be 1-D"),
        (dict(t_span=(0.0, 0.0)), ValueError, "`t_span` must be two distinct finite"),
        (dict(t_span=(0.0, np.inf)), ValueError, "`t_span` must be two distinct finite"),
        (dict(t_span=(0.0,)), ValueError, r"`t_span` must be two numbers"),
        (dict(t_span=5.0), ValueError, r"`t_span` must be two numbers"),
        (dict(state_names=["a"]), ValueError, "`state_names` must have 2 entries"),
        (dict(state_names=["a", "a"]), ValueError, "`state_names` must be unique; repeated: a"),
        (dict(state_names="ab"), ValueError, "`state_names` must be a sequence of strings"),
        (dict(param_names=["k", "j"]), ValueError, "`param_names` must have 1 entries"),
        (dict(param_names=[3]), ValueError, "`param_names` must contain non-empty strings"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, match):
    arguments = dict(y0=Y0, t_span=(0.0, 1.0), p=P)
    arguments.update(kwargs)
    y0, t_span, p = arguments.pop("y0"), arguments.pop("t_span"), arguments.pop("p")
    with pytest.raises(error, match=match):
        pe.ODEProblem(decay, y0, t_span, p, **arguments)


def test_fun_must_be_callable():
    with pytest.raises(TypeError, match="`fun` must be a callable"):
        pe.ODEProblem("decay", Y0, (0, 1), P)


def test_fun_must_be_a_python_function():
    with pytest.raises(TypeError, match="`fun` must be a plain Python function"):
        pe.ODEProblem(np.sin, Y0, (0, 1), P)


def test_wrong_number_of_arguments():
    with pytest.raises(TypeError, match=r"`fun` must take 4 arguments .*it takes 3 \(t, y, dydt\)"):
        pe.ODEProblem(three_arguments, Y0, (0, 1), P)


@pytest.mark.parametrize(
    ("fun", "match"),
    [
        (writes_past_the_end, r"`fun` \(writes_past_the_end\) wrote or read past the end"),
        (reads_past_the_end_of_p, "wrote or read past the end of an array.*p: 1"),
        (reads_past_the_end_of_y, "wrote or read past the end of an array.*y: 2"),
        (non_finite, r"non-finite output at y0: out\[0\] = -inf at t=0.0"),
        (leaves_an_entry_unset, r"did not assign out\[1\]"),
    ],
)
def test_model_check_errors(fun, match):
    with pytest.raises(ModelError, match=match):
        pe.ODEProblem(fun, Y0, (0, 1), P)


def test_numba_compile_error_shows_numba_message_and_line():
    with pytest.raises(ModelError) as info:
        pe.ODEProblem(not_compilable, Y0, (0, 1), P)
    message = str(info.value)
    assert "could not be compiled by Numba" in message
    assert "test_problem.py" in message and "line" in message
    assert '"text" + 1' in message
    assert "\x1b[" not in message  # no terminal colour codes


def test_model_error_is_a_value_error():
    assert issubclass(ModelError, ValueError)


@pytest.mark.parametrize("fun", [uses_abs, uses_sign, uses_conj])
def test_complex_step_unsafe_model_warns_but_works(fun):
    with pytest.warns(ComplexStepWarning, match="not complex-step safe.*df/dy"):
        problem = pe.ODEProblem(fun, Y0, (0, 1), P)
    assert not problem.complex_step_safe
    assert pe.solve(problem).success


def test_complex_safe_branching_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem = pe.ODEProblem(complex_safe_branches, Y0, (0, 1), P)
    assert problem.complex_step_safe


def test_user_jacobians_are_checked():
    problem = pe.ODEProblem(decay, Y0, (0, 1), P, jac=decay_jac, jac_p=decay_jac_p)
    assert problem.model.jac_address != 0
    with pytest.raises(ModelError, match=r"`jac` disagrees .* entry \[0, 0\] is 0.5"):
        pe.ODEProblem(decay, Y0, (0, 1), P, jac=wrong_jac)
    with pytest.raises(ModelError, match=r"`jac_p` disagrees .* entry \[0, 0\] is 1"):
        pe.ODEProblem(decay, Y0, (0, 1), P, jac_p=wrong_jac_p)


def test_jac_with_wrong_arity():
    with pytest.raises(TypeError, match="`jac` must take 4 arguments"):
        pe.ODEProblem(decay, Y0, (0, 1), P, jac=three_arguments)


def test_remake_shares_the_compiled_model():
    problem = pe.ODEProblem(decay, Y0, (0, 1), P)
    other = problem.remake(p=[2.0], t_span=(0.0, 3.0))
    assert other.model is problem.model
    assert other.p[0] == 2.0 and other.t_span == (0.0, 3.0)
    with pytest.raises(ValueError, match="`p` must have 1 entries"):
        problem.remake(p=[1.0, 2.0])


def stiff_scaled_van_der_pol(t, y, p, dydt):
    dydt[0] = y[1]
    dydt[1] = ((1.0 - y[0] * y[0]) * y[1] - y[0]) / p[0]


def diffusion_chain(t, y, p, dydt):
    n = y.shape[0]
    for i in range(n):
        left = y[i - 1] if i > 0 else 1.0
        right = y[i + 1] if i < n - 1 else y[i]
        dydt[i] = p[0] * (left - 2.0 * y[i] + right) - p[1] * y[i] * y[i]


def diffusion_chain_jac(t, y, p, J):
    n = y.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
        J[i, i] = -2.0 * p[0] - 2.0 * p[1] * y[i]
        if i > 0:
            J[i, i - 1] = p[0]
        if i < n - 1:
            J[i, i + 1] = p[0]
        else:
            J[i, i] += p[0]


def test_model_check_differences_respect_small_parameters_and_tiny_states():
    """Regression: the check's finite differences once stepped p = 1e-6 by 6e-6 (and a
    state of 3.7e-33 by 1e-38), reporting correct models as not complex-step safe and
    rejecting correct user Jacobians."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vdp = pe.ODEProblem(stiff_scaled_van_der_pol, [2.0, 0.0], (0.0, 2.0), [1e-6])
        y0 = np.cos(np.pi * np.linspace(0.0, 1.0, 9)) ** 2  # y0[4] = 3.7e-33
        chain = pe.ODEProblem(diffusion_chain, y0, (0.0, 1.0), [2500.0, 10.0],
                              jac=diffusion_chain_jac)
    assert vdp.complex_step_safe and chain.complex_step_safe
