"""Butcher tableaus: order conditions, dense output, structure and convergence."""

import dataclasses

import numpy as np
import pytest

from paramest.kernels.order_conditions import (
    dense_observed_order,
    dense_order_condition_residuals,
    observed_order,
    order_condition_residuals,
    rooted_trees,
    tree_density,
)
from paramest.kernels.tableaus import TABLEAUS, ExplicitTableau, TableauError, get_tableau

NAMES = list(TABLEAUS)
# Coefficients are exact to ~1e-16 relative; the largest (Vern7 dense output, ~1e3) leave
# residuals of ~1e-13 in float64. A wrong digit shows up many orders of magnitude higher.
TOL = 1e-12
THETAS = np.linspace(0.0, 1.0, 11)


@pytest.fixture(params=NAMES)
def tab(request):
    return TABLEAUS[request.param]


# --------------------------------------------------------------------- rooted trees


def test_tree_counts():
    # Number of rooted trees of order 1..8 (OEIS A000081).
    assert [len(rooted_trees(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


def test_tree_densities_order_4():
    # gamma for the four trees of order 4: bushy 4, mixed 8, "tall cherry" 12, chain 24.
    assert sorted(tree_density(t) for t in rooted_trees(4)) == [4, 8, 12, 24]


# ---------------------------------------------------------------- order conditions


def test_canonical_names():
    assert NAMES == ["Tsit5", "DP5", "BS3", "Vern7", "RK4", "Euler"]
    for name, t in TABLEAUS.items():
        assert t.name == name


def test_order_conditions_of_b(tab):
    res = order_condition_residuals(tab.A, tab.b, tab.order + 1)
    assert max(res[n] for n in range(1, tab.order + 1)) < TOL, res
    # the stated order is the true order, not a lower bound
    assert res[tab.order + 1] > 1e-6
    assert observed_order(tab.A, tab.b, TOL, max_order=tab.order + 1) == tab.order


def test_order_conditions_of_embedded(tab):
    if tab.embedded_order == 0:
        assert not tab.adaptive
        assert np.all(tab.b_error == 0.0)
        return
    assert tab.adaptive
    b_hat = tab.b - tab.b_error
    np.testing.assert_array_equal(tab.b_hat, b_hat)
    res = order_condition_residuals(tab.A, b_hat, tab.embedded_order + 1)
    assert max(res[n] for n in range(1, tab.embedded_order + 1)) < TOL, res
    assert res[tab.embedded_order + 1] > 1e-6
    assert observed_order(tab.A, b_hat, TOL, tab.embedded_order + 1) == tab.embedded_order


def test_dense_output_order_conditions(tab):
    res = dense_order_condition_residuals(tab.A, tab.dense, tab.dense_order + 1, THETAS)
    assert max(res[n] for n in range(1, tab.dense_order + 1)) < TOL, res
    assert res[tab.dense_order + 1] > 1e-8
    assert dense_observed_order(tab.A, tab.dense, TOL, tab.dense_order + 1) == tab.dense_order


def test_vern7_interpolant_order7_defect_is_tiny():
    # Verner's 16-stage interpolant satisfies the continuous order-7 conditions only up to
    # ~3e-7; it is recorded as order 6 (strict). Pin the size of the defect so a
    # transcription error in the extra stages or the polynomials cannot hide behind it.
    vern7 = TABLEAUS["Vern7"]
    assert vern7.dense_order == 6
    res = dense_order_condition_residuals(vern7.A, vern7.dense, 7, THETAS)
    assert 1e-8 < res[7] < 5e-7


def test_expected_orders():
    expected = {
        "Tsit5": (5, 4, 4),
        "DP5": (5, 4, 4),
        "BS3": (3, 2, 3),
        "Vern7": (7, 6, 6),
        "RK4": (4, 0, 3),
        "Euler": (1, 0, 1),
    }
    for name, (p, q, d) in expected.items():
        t = TABLEAUS[name]
        assert (t.order, t.embedded_order, t.dense_order) == (p, q, d)


# ------------------------------------------------------------------------ structure


def test_shapes_and_structure(tab):
    s = tab.s_total
    assert tab.A.shape == (s, s)
    assert tab.b.shape == tab.c.shape == tab.b_error.shape == (s,)
    assert tab.dense.shape[0] == s
    assert 1 <= tab.n_stages <= s
    assert np.all(np.triu(tab.A) == 0.0)
    np.testing.assert_allclose(tab.A.sum(axis=1), tab.c, rtol=0, atol=1e-13)
    assert tab.c[0] == 0.0
    assert abs(tab.b.sum() - 1.0) < 1e-14
    assert abs(tab.b_error.sum()) < 1e-14
    assert np.all(tab.b[tab.n_stages :] == 0.0)
    assert np.all(tab.A[: tab.n_stages, tab.n_stages :] == 0.0)


def test_stage_counts():
    counts = {name: (t.n_stages, t.s_total) for name, t in TABLEAUS.items()}
    assert counts == {
        "Tsit5": (7, 7),
        "DP5": (7, 7),
        "BS3": (4, 4),
        "Vern7": (10, 16),
        "RK4": (4, 4),
        "Euler": (1, 1),
    }


def test_dense_output_endpoints(tab):
    np.testing.assert_allclose(tab.dense_weights(1.0), tab.b, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(tab.dense_weights(0.0), np.zeros(tab.s_total))
    # polynomial form: the coefficient sums are b_i(1)
    np.testing.assert_allclose(tab.dense.sum(axis=1), tab.b, rtol=0, atol=1e-13)


def test_dense_output_starts_with_f0(tab):
    # d/dtheta of y(t + theta h) at theta = 0 is h f(t, y) = h k_1
    expected = np.zeros(tab.s_total)
    expected[0] = 1.0
    np.testing.assert_allclose(tab.dense[:, 0], expected, atol=1e-15)


def test_fsal_detection():
    fsal = {name: t.fsal for name, t in TABLEAUS.items()}
    assert fsal == {
        "Tsit5": True,
        "DP5": True,
        "BS3": True,
        "Vern7": False,
        "RK4": False,
        "Euler": False,
    }
    for t in TABLEAUS.values():
        if t.fsal:
            last = t.n_stages - 1
            assert t.c[last] == 1.0
            np.testing.assert_array_equal(t.A[last, :last], t.b[:last])


def test_fsal_cannot_be_declared():
    t = TABLEAUS["RK4"]
    fields = {f.name: getattr(t, f.name) for f in dataclasses.fields(t) if f.init}
    with pytest.raises(TypeError):
        ExplicitTableau(**fields, fsal=True)


def test_stiffness_stages(tab):
    expected = {"Tsit5": (5, 6), "DP5": (5, 6), "Vern7": (8, 9)}
    assert tab.stiffness_stages == expected.get(tab.name)
    if tab.stiffness_stages is not None:
        i, j = tab.stiffness_stages
        assert i != j
        assert i < tab.n_stages and j < tab.n_stages
        assert tab.c[i] == tab.c[j] == 1.0


def test_arrays_read_only_float64_contiguous(tab):
    for attr in ("A", "b", "c", "b_error", "dense"):
        arr = getattr(tab, attr)
        assert arr.dtype == np.float64
        assert arr.flags.c_contiguous
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        tab.order = 9


# ------------------------------------------------------------------------- lookup


@pytest.mark.parametrize("alias", ["tsit5", "TSIT5", "Tsit5", "tSiT5"])
def test_get_tableau_case_insensitive(alias):
    assert get_tableau(alias) is TABLEAUS["Tsit5"]


def test_get_tableau_all_names():
    for name in NAMES:
        assert get_tableau(name.lower()) is TABLEAUS[name]
        assert get_tableau(name.upper()) is TABLEAUS[name]


def test_get_tableau_unknown():
    with pytest.raises(ValueError, match=r"^`method` must be one of .*'Tsit5'.*'Euler'.*'RK45'"):
        get_tableau("RK45")


def test_get_tableau_not_a_string():
    with pytest.raises(TypeError, match=r"^`method` must be one of"):
        get_tableau(5)


# ------------------------------------------------------------- corrupted tableaus


def _modified(name, **arrays):
    """Rebuild a tableau with some arrays replaced (construction runs the checks)."""
    return dataclasses.replace(TABLEAUS[name], **arrays)


def test_unmodified_copy_builds():
    copy = _modified("DP5", A=TABLEAUS["DP5"].A.copy())
    assert copy.fsal and copy.order == 5


def test_corrupted_row_sum_is_caught():
    A = TABLEAUS["DP5"].A.copy()
    A[3, 1] += 1e-7
    with pytest.raises(TableauError, match=r"'DP5'.*row 3 of A"):
        _modified("DP5", A=A)


def test_corrupted_coefficient_keeping_row_sums_is_caught():
    # Moving weight within a row keeps c but breaks the order-3 condition b.(A c) = 1/6.
    A = TABLEAUS["DP5"].A.copy()
    A[2, 1] += 1e-6
    A[2, 0] -= 1e-6
    with pytest.raises(ValueError, match=r"b violates an order-3 condition"):
        _modified("DP5", A=A)


def test_corrupted_weights_are_caught():
    t = TABLEAUS["Tsit5"]
    b = t.b.copy()
    b[2] += 1e-6
    b[3] -= 1e-6  # sum(b) still 1; fails order 2
    with pytest.raises(TableauError, match="order-2"):
        _modified("Tsit5", b=b, dense=t.dense + np.outer(b - t.b, [1, 0, 0, 0]))


def test_corrupted_embedded_weights_are_caught():
    t = TABLEAUS["BS3"]
    b_error = t.b_error.copy()
    b_error[1] += 1e-6
    b_error[2] -= 1e-6
    with pytest.raises(TableauError, match="b_hat violates an order-2"):
        _modified("BS3", b_error=b_error)


def test_corrupted_dense_output_is_caught():
    t = TABLEAUS["Vern7"]
    dense = t.dense.copy()
    # keeps b(1) = b but moves weight between stages 4 and 5 at intermediate theta
    dense[3, 1] += 1e-6
    dense[3, 2] -= 1e-6
    dense[4, 1] -= 1e-6
    dense[4, 2] += 1e-6
    with pytest.raises(TableauError, match="dense output violates"):
        _modified("Vern7", dense=dense)


def test_other_invalid_tableaus_are_caught():
    t = TABLEAUS["RK4"]
    upper = t.A.copy()
    upper[0, 1] = 0.5
    with pytest.raises(TableauError, match="strictly lower triangular"):
        _modified("RK4", A=upper)
    with pytest.raises(TableauError, match="stiffness_stages"):
        dataclasses.replace(TABLEAUS["DP5"], stiffness_stages=(0, 6))
    with pytest.raises(TableauError, match="shape"):
        _modified("RK4", b=t.b[:3])
    with pytest.raises(TableauError, match="adaptive"):
        dataclasses.replace(t, adaptive=True)
    with pytest.raises(TableauError, match="theta = 1"):
        _modified("RK4", dense=t.dense * 1.001)


def test_building_from_lists():
    euler = ExplicitTableau(
        name="Euler", order=1, embedded_order=0, n_stages=1, A=[[0.0]], b=[1.0], c=[0.0],
        b_error=[0.0], dense=[[1.0]], dense_order=1, adaptive=False,
    )  # fmt: skip
    assert not euler.fsal
    assert euler.A.dtype == np.float64 and not euler.A.flags.writeable


# ------------------------------------------------------------------- convergence
# A reference fixed-step driver in plain NumPy for y' = -y + sin t, y(0) = 1, whose
# solution is y = 1.5 exp(-t) + (sin t - cos t) / 2.


def _rhs(t, y):
    return -y + np.sin(t)


def _exact(t):
    return np.array([1.5 * np.exp(-t) + 0.5 * (np.sin(t) - np.cos(t))])


def _step(tab, t, y, h):
    """One step: returns y_new and all s_total stages (extra stages evaluated too)."""
    k = np.zeros((tab.s_total, y.size))
    for i in range(tab.s_total):
        k[i] = _rhs(t + tab.c[i] * h, y + h * (tab.A[i, :i] @ k[:i]))
    return y + h * (tab.b @ k), k


def _global_errors(tab, n_steps, t_end=4.0, theta=0.37):
    """Error at t_end and largest dense-output error at t_n + theta h over all steps."""
    h = t_end / n_steps
    t, y = 0.0, _exact(0.0)
    dense_err = 0.0
    for _ in range(n_steps):
        y_new, k = _step(tab, t, y, h)
        y_mid = y + h * (tab.dense_weights(theta) @ k)
        dense_err = max(dense_err, float(np.abs(y_mid - _exact(t + theta * h)).max()))
        t, y = t + h, y_new
    return float(np.abs(y - _exact(t_end)).max()), dense_err


def _slope(hs, errors):
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


# Step counts chosen in the asymptotic range and well above round-off for each method.
STEPS = {
    "Tsit5": (32, 64, 128),
    "DP5": (32, 64, 128),
    "BS3": (32, 64, 128),
    "Vern7": (16, 23, 32),
    "RK4": (32, 64, 128),
    "Euler": (64, 128, 256),
}


def test_global_convergence_order(tab):
    steps = np.array(STEPS[tab.name])
    errors = np.array([_global_errors(tab, n) for n in steps])
    hs = 4.0 / steps
    main_order = _slope(hs, errors[:, 0])
    # The interpolant adds its local error O(h^(q+1)) to the global error O(h^p) of the
    # step it starts from, so dense output converges with order min(p, q + 1).
    dense_order = _slope(hs, errors[:, 1])
    assert abs(main_order - tab.order) < 0.3, main_order
    assert abs(dense_order - min(tab.order, tab.dense_order + 1)) < 0.3, dense_order


@pytest.mark.parametrize("name", ["Tsit5", "DP5", "BS3", "RK4", "Euler"])
def test_local_dense_output_order(name):
    # One step from the exact solution: the interpolant's own error is O(h^(q+1)), which
    # separates q from the global order (e.g. Tsit5: 5 here, 6 for the step itself).
    # Vern7 is left out: its local errors reach round-off before the asymptotic range.
    tab = TABLEAUS[name]
    t0, theta = 0.3, 0.37
    hs = np.array([0.1, 0.05, 0.025])
    dense_errors, step_errors = [], []
    for h in hs:
        y0 = _exact(t0)
        y1, k = _step(tab, t0, y0, h)
        y_mid = y0 + h * (tab.dense_weights(theta) @ k)
        dense_errors.append(np.abs(y_mid - _exact(t0 + theta * h)).max())
        step_errors.append(np.abs(y1 - _exact(t0 + h)).max())
    assert abs(_slope(hs, dense_errors) - (tab.dense_order + 1)) < 0.3
    assert abs(_slope(hs, step_errors) - (tab.order + 1)) < 0.3
