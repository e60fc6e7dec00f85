"""Butcher tableaus of the explicit Runge-Kutta methods, with their dense output.

Every method is an `ExplicitTableau` of read-only float64 arrays. A step from (t, y) with
step h evaluates the ``n_stages`` main stages ``k_i = f(t + c_i h, y + h sum_j A_ij k_j)``
and sets ``y_new = y + h sum_i b_i k_i``; the local error estimate is
``h sum_i b_error_i k_i`` (``b_error = b - b_hat``). Interpolating inside the step first
evaluates the extra stages ``n_stages .. s_total - 1`` (if any), then

    y(t + theta h) = y + h sum_i k_i sum_m dense[i, m] * theta**(m + 1).

Each tableau is checked when it is built (so when this module is imported): explicit
structure, row sums, the order conditions up to order 4 of the solution and of the
embedded solution, and consistency of the dense output with b. The full order-condition
checks up to each method's stated order live in the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .order_conditions import dense_order_condition_residuals, order_condition_residuals

__all__ = ["TABLEAUS", "ExplicitTableau", "TableauError", "get_tableau"]

#: absolute tolerance of the checks made at construction; the coefficients below are
#: given to at least 16 significant digits, so exact conditions hold to ~1e-14 here
#: and a wrong digit anywhere shows up far above this.
_CHECK_TOL = 1e-12

#: highest tree order checked at construction; higher orders (up to 85 trees for Vern7)
#: are checked by the tests, where their cost does not land on every import.
_IMPORT_CHECK_ORDER = 4

#: theta values at which the dense output is checked at construction
_IMPORT_THETAS = (0.3, 0.5, 0.8)


class TableauError(ValueError):
    """A Butcher tableau failed one of its consistency checks."""


@dataclass(frozen=True, eq=False)
class ExplicitTableau:
    """Coefficients of an explicit Runge-Kutta method with dense output.

    Parameters
    ----------
    name : str
        Canonical method name.
    order : int
        Order of the propagated solution (weights ``b``).
    embedded_order : int
        Order of the embedded solution ``b_hat = b - b_error``; 0 when there is none.
    n_stages : int
        Stages evaluated in every step; stages ``n_stages .. s_total - 1`` are extra
        stages evaluated only when interpolating.
    A : ndarray, shape (s_total, s_total)
        Strictly lower-triangular Runge-Kutta matrix.
    b : ndarray, shape (s_total,)
        Weights (zero for extra stages).
    c : ndarray, shape (s_total,)
        Nodes, equal to the row sums of ``A``.
    b_error : ndarray, shape (s_total,)
        ``b - b_hat``: ``h * b_error @ k`` estimates the local error. All zeros when there
        is no embedded method.
    dense : ndarray, shape (s_total, n_dense)
        ``b_i(theta) = sum_m dense[i, m] * theta**(m + 1)``.
    dense_order : int
        Order q of the continuous extension: its local error is O(h**(q + 1)).
    adaptive : bool
        Whether the method has an error estimate for step-size control.
    stiffness_stages : tuple of int or None
        0-based indices (i, j) of two main stages with ``c_i == c_j == 1``; then
        ``||k_i - k_j|| / ||Y_i - Y_j||`` estimates the dominant eigenvalue magnitude of the
        Jacobian along the step (Hairer & Wanner, Solving ODEs II, Sec. IV.2). None when
        the method has no such pair.

    Attributes
    ----------
    fsal : bool
        Derived, not declared: True when the last main stage is evaluated at the new
        solution (its row of ``A`` equals ``b`` and its node is 1), so it is the first
        stage of the next step.

    Raises
    ------
    TableauError
        If the coefficients fail a consistency or order-condition check.

    Examples
    --------
    >>> tab = get_tableau("tsit5")
    >>> tab.name, tab.order, tab.fsal, tab.A.shape
    ('Tsit5', 5, True, (7, 7))
    """

    name: str
    order: int
    embedded_order: int
    n_stages: int
    A: np.ndarray
    b: np.ndarray
    c: np.ndarray
    b_error: np.ndarray
    dense: np.ndarray
    dense_order: int
    fsal: bool = field(init=False)
    adaptive: bool
    stiffness_stages: tuple[int, int] | None = None

    def __post_init__(self):
        for attr in ("A", "b", "c", "b_error", "dense"):
            arr = np.array(getattr(self, attr), dtype=np.float64, order="C", copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, attr, arr)
        if self.stiffness_stages is not None:
            pair = tuple(int(i) for i in self.stiffness_stages)
            object.__setattr__(self, "stiffness_stages", pair)
        _check_structure(self)
        last = self.n_stages - 1
        fsal = bool(
            self.n_stages > 1
            and self.c[last] == 1.0
            and self.b[last] == 0.0
            and np.array_equal(self.A[last, :last], self.b[:last])
        )
        object.__setattr__(self, "fsal", fsal)
        _check_order_conditions(self)

    @property
    def s_total(self) -> int:
        """Number of stages including the extra interpolation stages."""
        return self.A.shape[0]

    @property
    def b_hat(self) -> np.ndarray:
        """Weights of the embedded solution, ``b - b_error``."""
        return self.b - self.b_error

    def dense_weights(self, theta: float) -> np.ndarray:
        """Weights ``b_i(theta)`` of the continuous extension at ``theta`` in [0, 1].

        Parameters
        ----------
        theta : float
            Fraction of the step.

        Returns
        -------
        ndarray, shape (s_total,)

        Examples
        --------
        >>> tab = get_tableau("RK4")
        >>> bool(np.allclose(tab.dense_weights(1.0), tab.b))
        True
        """
        powers = theta ** np.arange(1, self.dense.shape[1] + 1)
        return self.dense @ powers


def _fail(tab, what: str):
    raise TableauError(f"Butcher tableau {tab.name!r}: {what}")


def _check_structure(tab: ExplicitTableau) -> None:
    """Shapes, explicitness, row sums and the simple weight sums."""
    s = tab.A.shape[0] if tab.A.ndim == 2 else -1
    if tab.A.ndim != 2 or tab.A.shape != (s, s) or s < 1:
        _fail(tab, f"A must be a square matrix, got shape {tab.A.shape}")
    for attr in ("b", "c", "b_error"):
        if getattr(tab, attr).shape != (s,):
            _fail(tab, f"{attr} must have shape ({s},), got {getattr(tab, attr).shape}")
    if tab.dense.ndim != 2 or tab.dense.shape[0] != s or tab.dense.shape[1] < 1:
        _fail(tab, f"dense must have shape ({s}, n_dense), got {tab.dense.shape}")
    if not 1 <= tab.n_stages <= s:
        _fail(tab, f"n_stages must be in [1, {s}], got {tab.n_stages}")
    if tab.order < 1 or tab.dense_order < 1 or tab.embedded_order < 0:
        _fail(tab, "order and dense_order must be >= 1 and embedded_order >= 0")
    if tab.dense_order > tab.dense.shape[1]:
        _fail(tab, f"dense_order {tab.dense_order} exceeds the interpolant's degree")
    for attr in ("A", "b", "c", "b_error", "dense"):
        if not np.all(np.isfinite(getattr(tab, attr))):
            _fail(tab, f"{attr} has non-finite entries")
    if np.any(np.triu(tab.A) != 0.0):
        _fail(tab, "A must be strictly lower triangular (explicit method)")
    # Stages are computed in order, so a main stage must not depend on an extra one.
    if np.any(tab.A[: tab.n_stages, tab.n_stages :] != 0.0):
        _fail(tab, "main stages must not use the extra interpolation stages")
    if np.any(tab.b[tab.n_stages :] != 0.0) or np.any(tab.b_error[tab.n_stages :] != 0.0):
        _fail(tab, "b and b_error must be zero on the extra interpolation stages")
    row_err = np.abs(tab.A.sum(axis=1) - tab.c)
    if row_err.max() > _CHECK_TOL:
        i = int(np.argmax(row_err))
        _fail(tab, f"row {i} of A sums to {tab.A[i].sum()!r}, not c[{i}] = {tab.c[i]!r}")
    if abs(tab.b.sum() - 1.0) > _CHECK_TOL:
        _fail(tab, f"sum(b) = {tab.b.sum()!r}, must be 1")
    if abs(tab.b_error.sum()) > _CHECK_TOL:
        _fail(tab, f"sum(b_error) = {tab.b_error.sum()!r}, must be 0")
    has_error = bool(np.any(tab.b_error != 0.0))
    if has_error != (tab.embedded_order > 0):
        _fail(tab, "b_error must be nonzero exactly when embedded_order > 0")
    if tab.adaptive and not has_error:
        _fail(tab, "an adaptive method needs an error estimate (b_error)")
    dense_at_1 = tab.dense.sum(axis=1)
    if np.abs(dense_at_1 - tab.b).max() > _CHECK_TOL:
        _fail(tab, "the dense output at theta = 1 must reproduce b")
    if tab.stiffness_stages is not None:
        pair = tab.stiffness_stages
        if (
            len(pair) != 2
            or pair[0] == pair[1]
            or not all(0 <= i < tab.n_stages for i in pair)
            or not all(tab.c[i] == 1.0 for i in pair)
        ):
            _fail(tab, f"stiffness_stages {pair} must be two distinct main stages with c == 1")


def _check_order_conditions(tab: ExplicitTableau) -> None:
    """Order conditions of b, b_hat and the dense output up to order 4."""
    checks = [("b", tab.b, tab.order)]
    if tab.embedded_order > 0:
        checks.append(("b_hat", tab.b - tab.b_error, tab.embedded_order))
    for label, weights, order in checks:
        upto = min(order, _IMPORT_CHECK_ORDER)
        for n, res in order_condition_residuals(tab.A, weights, upto).items():
            if res > _CHECK_TOL:
                _fail(tab, f"{label} violates an order-{n} condition by {res:.3g}")
    upto = min(tab.dense_order, _IMPORT_CHECK_ORDER)
    residuals = dense_order_condition_residuals(tab.A, tab.dense, upto, _IMPORT_THETAS)
    for n, res in residuals.items():
        if res > _CHECK_TOL:
            _fail(tab, f"the dense output violates an order-{n} condition by {res:.3g}")


def _lower(rows, s: int) -> np.ndarray:
    """Strictly lower-triangular s x s matrix from ragged rows (row i has i entries)."""
    A = np.zeros((s, s))
    for i, row in enumerate(rows):
        A[i, : len(row)] = row
    return A


def _padded(values, s: int) -> np.ndarray:
    out = np.zeros(s)
    out[: len(values)] = values
    return out


# ---------------------------------------------------------------------------------------
# Tsit5. Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column
# simplifying assumption", Comput. Math. Appl. 62 (2011) 770-775. Coefficients to 20
# digits (computed from the paper's defining formulas in high precision); they satisfy all
# 17 conditions of order <= 5 for b and all 9 of order <= 4 for b_hat to ~1e-60 before
# rounding. Dense output: the paper's order-4 interpolant, polynomials expanded in theta.
# ---------------------------------------------------------------------------------------
def _tsit5() -> ExplicitTableau:
    s = 7
    c = [0.0, 0.161, 0.327, 0.9, 0.98002554090450968573, 1.0, 1.0]
    b = [
        0.096460766818065229518, 0.01, 0.47988965041449957478, 1.3790085741037418932,
        -3.2900695154360806799, 2.3247105240997739824, 0.0,
    ]  # fmt: skip
    b_hat = [
        0.094680755765839458075, 0.0091835655403432530968, 0.48777052842476157079,
        1.2342975669304789857, -2.7077123499835254549, 1.8666284181705870358, 1.0 / 66.0,
    ]  # fmt: skip
    rows = [
        [],
        [0.161],
        [-0.0084806554923569885444, 0.33548065549235698854],
        [2.8971530571054934321, -6.3594484899750748431, 4.362295432869581411],
        [5.3258648284392566044, -11.748883564062827878, 7.4955393428898362083,
         -0.092495066361755249257],
        [5.8614554429464200287, -12.920969317847109292, 8.1593678985761586432,
         -0.071584973281400997225, -0.028269050394068382909],
        b[:6],  # a_7j = b_j: the last stage is f at the new solution (FSAL)
    ]  # fmt: skip
    # b_i(theta) = r_i1 theta + r_i2 theta^2 + r_i3 theta^3 + r_i4 theta^4
    dense = [
        [1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216],
        [0.0, 0.1317, -0.2234, 0.1017],
        [0.0, 3.9302962368947516, -5.941033872131505, 2.490627285651253],
        [0.0, -12.411077166933676, 30.33818863028232, -16.548102889244902],
        [0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928],
        [0.0, -27.896526289197286, 65.09189467479366, -34.87065786149661],
        [0.0, 1.5, -4.0, 2.5],
    ]
    b = np.asarray(b)
    return ExplicitTableau(
        name="Tsit5", order=5, embedded_order=4, n_stages=s,
        A=_lower(rows, s), b=b, c=c, b_error=b - np.asarray(b_hat),
        dense=dense, dense_order=4, adaptive=True, stiffness_stages=(5, 6),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# DP5. J. R. Dormand, P. J. Prince, "A family of embedded Runge-Kutta formulae",
# J. Comput. Appl. Math. 6 (1980) 19-26 (the 5(4) pair "RK5(4)7M"). Dense output of order
# 4: L. F. Shampine, "Some practical Runge-Kutta formulas", Math. Comp. 46 (1986) 135-150,
# in the form used by DOPRI5 (E. Hairer, S. P. Norsett, G. Wanner, Solving Ordinary
# Differential Equations I, 2nd ed., Springer 1993, Sec. II.6):
#   y(theta) = y + theta*(D + (1-theta)*(h k1 - D + theta*(2D - h k1 - h k7
#                                                   + (1-theta)*h*sum_i d_i k_i)))
# with D = h sum_i b_i k_i = y_new - y; expanded below into polynomials per stage.
# ---------------------------------------------------------------------------------------
def _dp5() -> ExplicitTableau:
    s = 7
    c = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
    b = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
    b_hat = np.array(
        [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]
    )
    rows = [
        [],
        [1 / 5],
        [3 / 40, 9 / 40],
        [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
        list(b[:6]),  # FSAL
    ]
    d = np.array([
        -12715105075 / 11282082432, 0.0, 87487479700 / 32700410799,
        -10690763975 / 1880347072, 701980252875 / 199316789632,
        -1453857185 / 822651844, 69997945 / 29380423,
    ])  # fmt: skip
    e1 = np.eye(s)[0]
    e7 = np.eye(s)[6]
    # Coefficients of theta^1..theta^4 of the basis polynomials of the form above.
    p1 = np.array([1.0, 0.0, 0.0, 0.0])  # theta
    p2 = np.array([1.0, -1.0, 0.0, 0.0])  # theta (1 - theta)
    p3 = np.array([0.0, 1.0, -1.0, 0.0])  # theta^2 (1 - theta)
    p4 = np.array([0.0, 1.0, -2.0, 1.0])  # theta^2 (1 - theta)^2
    dense = (
        np.outer(b, p1) + np.outer(e1 - b, p2) + np.outer(2.0 * b - e1 - e7, p3) + np.outer(d, p4)
    )
    return ExplicitTableau(
        name="DP5", order=5, embedded_order=4, n_stages=s,
        A=_lower(rows, s), b=b, c=c, b_error=b - b_hat,
        dense=dense, dense_order=4, adaptive=True, stiffness_stages=(5, 6),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# BS3. P. Bogacki, L. F. Shampine, "A 3(2) pair of Runge-Kutta formulas", Appl. Math.
# Lett. 2 (1989) 321-325. Dense output: the cubic Hermite interpolant through
# (y, f(y)) and (y_new, f(y_new)) = (y + h b.k, k4), which is linear in the stages:
#   b_i(theta) = (3 theta^2 - 2 theta^3) b_i + (theta - 2 theta^2 + theta^3) [i = 1]
#                + (theta^3 - theta^2) [i = 4]
# ---------------------------------------------------------------------------------------
def _bs3() -> ExplicitTableau:
    s = 4
    c = [0.0, 1 / 2, 3 / 4, 1.0]
    b = np.array([2 / 9, 1 / 3, 4 / 9, 0.0])
    b_hat = np.array([7 / 24, 1 / 4, 1 / 3, 1 / 8])
    rows = [[], [1 / 2], [0.0, 3 / 4], list(b[:3])]  # last row: FSAL
    e1 = np.eye(s)[0]
    e4 = np.eye(s)[3]
    dense = (
        np.outer(b, [0.0, 3.0, -2.0])
        + np.outer(e1, [1.0, -2.0, 1.0])
        + np.outer(e4, [0.0, -1.0, 1.0])
    )
    return ExplicitTableau(
        name="BS3", order=3, embedded_order=2, n_stages=s,
        A=_lower(rows, s), b=b, c=c, b_error=b - b_hat,
        dense=dense, dense_order=3, adaptive=True, stiffness_stages=None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# Vern7. J. H. Verner, "Numerically optimal Runge-Kutta pairs with interpolants",
# Numer. Algorithms 53 (2010) 383-396: the "most efficient" 7(6) pair, 10 stages, with the
# 16-stage interpolant; coefficients from Verner's published coefficient file
# (RKV76.IIa Efficient, 40 digits), rounded here to 20. Stage 11 is f at the new solution
# (a_11j = b_j), stages 12-16 are further interpolation stages.
# Checked in high precision: b satisfies all conditions of order <= 7 and b_hat all of
# order <= 6 (to ~1e-39), and the interpolant all continuous conditions of order <= 6.
# Its continuous order-7 conditions hold only up to ~3e-7 (max over trees and theta), so
# the interpolant is of order 6 in the strict sense (order 7 up to that tiny defect); a
# global solution read off it still converges with order 7.
# ---------------------------------------------------------------------------------------
def _vern7() -> ExplicitTableau:
    s = 16
    c = [
        0.0, 0.005, 49 / 450, 49 / 300, 0.4555, 0.60950944899783813171, 0.884, 0.925,
        1.0, 1.0, 1.0, 0.29, 0.125, 0.25, 0.53, 0.79,
    ]  # fmt: skip
    b = [
        0.047155618486272221704, 0.0, 0.0,
        0.25750564298434151896, 0.26216653977412620477, 0.15216092656738557403,
        0.49399691700324842469, -0.29430311714032504416, 0.081317472324951099997,
        0.0,
    ]  # fmt: skip
    b_hat = [
        0.044608606606341176287, 0.0, 0.0,
        0.26716403785713726805, 0.220101830017729302, 0.2188431703143156831,
        0.22898717054112028834, 0.0, 0.0,
        0.020295184663356282228,
    ]  # fmt: skip
    rows = [
        [],
        [0.005],
        [-1.0767901234567901235, 1.1856790123456790123],
        [0.040833333333333333333, 0.0, 0.1225],
        [0.63891392362557267805, 0.0, -2.4556726382236568097,
         2.2722587145980841316],
        [-2.6615773750187571311, 0.0, 10.804513886456137696,
         -8.353914657396199412, 0.82048759495665697914],
        [6.0677414346967709927, 0.0, -24.711273635911085797,
         20.42751793078889394, -1.9061579788166471506, 1.0061722492420680148],
        [12.054670076253202995, 0.0, -49.754784950468989328,
         41.142888638604676633, -4.4617601499740041856, 2.0423348222391749598,
         -0.098348436654061073795],
        [10.138146522881807876, 0.0, -42.641136031717502146,
         35.763840039922570071, -4.3480228403929076533, 2.0098622683770358954,
         0.3487490460338272406, -0.27143900510483128424],
        [-45.030072034298677124, 0.0, 187.32724376545888408,
         -154.02882369350186906, 18.564653063475362339, -7.1418096792950788549,
         1.3088085781613786251, 0.0, 0.0],
        # extra stages
        b,
        [0.052322276915996898155, 0.0, 0.0,
         0.22495861826705715502, 0.01744370924877637539, -0.007669379876829393188,
         0.034358960440732846457, -0.041020972300939498391, 0.025651133005205616553,
         0.0, -0.0160443457],
        [0.053053341257859086388, 0.0, 0.0,
         0.12195301011401886071, 0.01774684073760249704, -0.00059283726676814943289,
         0.0083818339708537508736, -0.012933692596986119567, 0.0094120568152538608048,
         0.0, -0.0053532531072756760324, -0.066667299924558110784],
        [0.038879032574363036864, 0.0, 0.0,
         -0.0024403203308301315179, -0.0013928917214672622813, -0.0004744629155868013465,
         0.00039207932413159513694, -0.00040554733285128001364, 0.00019897093147716726288,
         0.0, -0.00010278198793179168847, 0.033856615138702667153,
         0.18148930631999280043],
        [0.057236812046900129096, 0.0, 0.0,
         0.22265948066761180993, 0.12344864200186899049, 0.040063325266664908751,
         -0.052698948485814520669, 0.047659712142445228569, -0.021388958850422130364,
         0.0, 0.015193891064036401655, 0.12060546716289655543,
         -0.022779423016187372882, 0.0],
        [0.051372038802756814266, 0.0, 0.0,
         0.54142144734394055824, 0.35039980669218400812, 0.14193112269692182169,
         0.10527377478429422548, -0.031081847805874017008, -0.0074018831495191450618,
         0.0, -0.0063779325048653634376, -0.17325495908361864034,
         -0.18228156777622026194, 0.0, 0.0],
    ]  # fmt: skip
    zero = [0.0] * 7
    dense = [
        [1.0, -8.4133871983327674693, 33.675508884490896545,
         -70.801590894848861646, 80.64695108301297873, -47.194139698375215801,
         11.133813442539241864],
        zero,
        zero,
        [0.0, 8.7549219806743971606, -88.459682869977094261,
         346.90176384299163095, -629.25800300598370468, 529.67737556041929839,
         -167.35886986514018604],
        [0.0, 8.913387586637921663, -90.060818468932177947,
         353.1807459217057825, -640.64768197443744337, 539.26462790471552616,
         -170.38809442991548279],
        [0.0, 5.1733120298478003389, -52.271115900055388234,
         204.98538673740730947, -371.83061185636028909, 312.98809343745290002,
         -98.892903521724946936],
        [0.0, 16.795377440796959864, -169.70040000059727444,
         665.49377270092463031, -1207.1638892336007284, 1016.1291515818546033,
         -321.06001557237494219],
        [0.0, -10.005997536098664769, 101.10054330522750682,
         -396.4739151237843755, 719.17877070141829141, -605.36810339188243508,
         191.27439892797935207],
        [0.0, 2.7647088336385991397, -27.934602637390461781,
         109.54779186137892178, -198.71281130644821164, 167.26633571640316707,
         -52.850104995257063466],
        zero,
        [0.0, -2.1696320280163504812, 22.016696037569876256,
         -86.901524277989483508, 159.22388973861474437, -135.96183065345879084,
         43.792401183280004198],
        [0.0, -4.8900701887938039338, 22.754077374251761208,
         -30.780342185377309651, -2.7971943172072490211, 31.369456637508401832,
         -15.655927320381800434],
        [0.0, 10.862170929551967155, -50.542971417827106972,
         68.371480404075118276, 6.2133265216324091626, -69.680063231941581042,
         34.77605679450919342],
        [0.0, -11.372866919229229159, 130.79058078246716441,
         -488.65113677785602075, 832.21487932764408735, -664.77433685544262429,
         201.79288044241662244],
        [0.0, -5.9197787327150066987, 63.276799658892188293,
         -265.43268208873795758, 520.10092541406108248, -467.4121095339020119,
         155.3868452824017054],
        [0.0, -10.49214619796182281, 105.3553852518801101,
         -409.43975011988938465, 732.83144890765403269, -606.3044574733512378,
         188.04951963166830246],
    ]  # fmt: skip
    b_pad = _padded(b, s)
    return ExplicitTableau(
        name="Vern7", order=7, embedded_order=6, n_stages=10,
        A=_lower(rows, s), b=b_pad, c=c, b_error=b_pad - _padded(b_hat, s),
        dense=dense, dense_order=6, adaptive=True, stiffness_stages=(8, 9),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# RK4. W. Kutta, "Beitrag zur naeherungsweisen Integration totaler
# Differentialgleichungen", Z. Math. Phys. 46 (1901) 435-453: the classical method.
# Dense output: the standard order-3 continuous extension (Hairer, Norsett & Wanner,
# Sec. II.6), b_1 = theta - 3 theta^2/2 + 2 theta^3/3, b_2 = b_3 = theta^2 - 2 theta^3/3,
# b_4 = -theta^2/2 + 2 theta^3/3.
# ---------------------------------------------------------------------------------------
def _rk4() -> ExplicitTableau:
    s = 4
    rows = [[], [1 / 2], [0.0, 1 / 2], [0.0, 0.0, 1.0]]
    dense = [
        [1.0, -3 / 2, 2 / 3],
        [0.0, 1.0, -2 / 3],
        [0.0, 1.0, -2 / 3],
        [0.0, -1 / 2, 2 / 3],
    ]
    return ExplicitTableau(
        name="RK4", order=4, embedded_order=0, n_stages=s,
        A=_lower(rows, s), b=[1 / 6, 1 / 3, 1 / 3, 1 / 6], c=[0.0, 1 / 2, 1 / 2, 1.0],
        b_error=np.zeros(s), dense=dense, dense_order=3, adaptive=False,
    )  # fmt: skip


# Forward Euler with linear interpolation inside the step.
def _euler() -> ExplicitTableau:
    return ExplicitTableau(
        name="Euler", order=1, embedded_order=0, n_stages=1,
        A=np.zeros((1, 1)), b=[1.0], c=[0.0], b_error=[0.0],
        dense=[[1.0]], dense_order=1, adaptive=False,
    )  # fmt: skip


TABLEAUS: dict[str, ExplicitTableau] = {
    tab.name: tab for tab in (_tsit5(), _dp5(), _bs3(), _vern7(), _rk4(), _euler())
}

_BY_LOWER = {key.lower(): tab for key, tab in TABLEAUS.items()}


def get_tableau(name: str) -> ExplicitTableau:
    """Tableau of a method by name, case-insensitively.

    Parameters
    ----------
    name : str
        One of ``"Tsit5"``, ``"DP5"``, ``"BS3"``, ``"Vern7"``, ``"RK4"``, ``"Euler"``, in
        any letter case.

    Returns
    -------
    ExplicitTableau

    Raises
    ------
    ValueError
        If the name is not a known method (TypeError if it is not a string).

    Examples
    --------
    >>> get_tableau("dp5").name
    'DP5'
    """
    choices = ", ".join(repr(key) for key in TABLEAUS)
    if not isinstance(name, str):
        raise TypeError(f"`method` must be one of {choices}; got {name!r}")
    tab = _BY_LOWER.get(name.lower())
    if tab is None:
        raise ValueError(f"`method` must be one of {choices} (any case); got {name!r}")
    return tab
