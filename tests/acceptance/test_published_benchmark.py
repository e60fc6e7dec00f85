"""A published parameter-estimation benchmark, reproduced to its published optimum.

The problem is the thermal isomerisation of alpha-pinene (Box, Hunter, MacGregor & Erjavec,
"Some problems associated with the analysis of multiresponse data", Technometrics 15 (1973)
33-51), a standard test of ODE fitting since Tjoa & Biegler (Ind. Eng. Chem. Res. 30 (1991)
376-385) and problem "Isomerization of alpha-pinene" of the COPS collection (Dolan, Moré &
Munson, "Benchmarking optimization software with COPS 3.0", Argonne ANL/MCS-273, 2004).
Five first-order rate constants, all five species measured at eight times:

    y1' = -(p1 + p2) y1                    y1 alpha-pinene
    y2' = p1 y1                            y2 dipentene
    y3' = p2 y1 - (p3 + p4) y3 + p5 y5     y3 allo-ocimene
    y4' = p3 y3                            y4 alpha- and beta-pyronene
    y5' = p4 y3 - p5 y5                    y5 dimer

with y(0) = (100, 0, 0, 0, 0), fitted by unweighted least squares.

Where the numbers come from (the data table was not typed from memory):

* Data: Box et al. (1973), as tabulated in the COPS 3.1 pinene model (A. S. Bondarenko,
  1998/2004), read here from its copies in MadNLP/COPSBenchmark.jl (``src/pinene.jl``,
  ``pinene_z_data``) and in DAE Tools' ``tutorial_che_opt_2.py`` (``y1_obs`` ... ``y5_obs``);
  the two agree to the last digit.
* Published optimum: p = (5.9256e-5, 2.9632e-5, 2.0450e-5, 27.473e-5, 4.0073e-5) with sum of
  squared residuals 19.872 (Tjoa & Biegler 1991; COPS). The rates are read from DAE Tools'
  ``tutorial_che_opt_2.py`` ("optimal results found in the literature"), which also quotes
  19.872393107 for them: its own simulation of the rounded rates, at rtol 1e-6; evaluated
  exactly they give 19.872273.

The model is linear, y(t) = expm(A(p) t) y0, so the objective can be evaluated exactly
(scipy.linalg.expm), independently of any ODE solver. Minimised that way (and with
scipy.integrate.solve_ivp + scipy.optimize.least_squares) the optimum is

    SSE* = 19.8721669,  p* = (5.925849e-5, 2.963402e-5, 2.047284e-5, 2.744679e-4, 3.997950e-5).

SSE* rounds to the published 19.872. The published rate constants are close but not all
five digits are right for the exact ODE: p3, p4 and p5 differ from p* by 1.1e-3, 9.5e-4 and
2.3e-3 relative (presumably from a collocation discretisation of the ODEs; and p3, p5 are
poorly determined: their standard errors are 15% and 21%, p4 and p5 correlate at 0.8). The
published point's SSE is 19.872273, only 1.1e-4 above SSE*. So the tests hold the fit to
the published SSE to the digits published, to the published rates within 3e-3, and to the
exact optimum p* much more tightly.
"""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from scipy.optimize import least_squares

import paramest as pe

# Box et al. (1973); COPS 3.1 pinene model: measurement times (minutes) ...
T = np.array([1230.0, 3060.0, 4920.0, 7800.0, 10680.0, 15030.0, 22620.0, 36420.0])
# ... and the measured compositions (percent), one row per species y1..y5
Y = np.array([
    [88.35, 76.4, 65.1, 50.4, 37.5, 25.9, 14.0, 4.5],
    [7.30, 15.6, 23.1, 32.9, 42.7, 49.1, 57.4, 63.1],
    [2.30, 4.5, 5.3, 6.0, 6.0, 5.9, 5.1, 3.8],
    [0.40, 0.7, 1.1, 1.5, 1.9, 2.2, 2.6, 2.9],
    [1.75, 2.8, 5.8, 9.3, 12.0, 17.0, 21.0, 25.7],
])
Y0 = np.array([100.0, 0.0, 0.0, 0.0, 0.0])
STATE_NAMES = ["alpha_pinene", "dipentene", "allo_ocimene", "pyronene", "dimer"]
PARAM_NAMES = ["p1", "p2", "p3", "p4", "p5"]

# Tjoa & Biegler (1991) / COPS: the published optimum, five significant digits
P_PUBLISHED = np.array([5.9256e-5, 2.9632e-5, 2.0450e-5, 2.7473e-4, 4.0073e-5])
SSE_PUBLISHED = 19.872
# the published SSE is given to three decimals: half a unit in the last digit
SSE_PUBLISHED_HALF_ULP = 5e-4
# the published rates are off the exact-ODE optimum by up to 2.3e-3 (p5; see the docstring)
P_PUBLISHED_RTOL = 3e-3

# the exact-ODE optimum (matrix exponential + least_squares, xtol = ftol = gtol = 1e-15);
# test_scipy_reproduces_published_optimum recomputes it
P_EXACT = np.array([5.925849e-5, 2.963402e-5, 2.047284e-5, 2.744679e-4, 3.997950e-5])
SSE_EXACT = 19.8721669

# where the fits start: every rate 1e-4 (off by 0.4x to 5x), and the published rates x3
STARTS = {"all_1e-4": np.full(5, 1e-4), "published_x3": 3.0 * P_PUBLISHED}


def pinene(t, y, p, dydt):
    dydt[0] = -(p[0] + p[1]) * y[0]
    dydt[1] = p[0] * y[0]
    dydt[2] = p[1] * y[0] - (p[2] + p[3]) * y[2] + p[4] * y[4]
    dydt[3] = p[2] * y[2]
    dydt[4] = p[3] * y[2] - p[4] * y[4]


def _rate_matrix(p):
    p1, p2, p3, p4, p5 = p
    return np.array([
        [-(p1 + p2), 0.0, 0.0, 0.0, 0.0],
        [p1, 0.0, 0.0, 0.0, 0.0],
        [p2, 0.0, -(p3 + p4), 0.0, p5],
        [0.0, 0.0, p3, 0.0, 0.0],
        [0.0, 0.0, p4, 0.0, -p5],
    ])


def _exact_solution(p):
    """y(T) from the matrix exponential: the model is linear, so no solver error at all."""
    a = _rate_matrix(p)
    return np.column_stack([expm(a * t) @ Y0 for t in T])


def _scipy_solution(p):
    """y(T) the way a scipy user would get it; LSODA, because trial steps of a
    log-scale fit can make the rates large and the system stiff."""
    a = _rate_matrix(p)
    sol = solve_ivp(lambda t, y: a @ y, (0.0, T[-1]), Y0, t_eval=T, method="LSODA",
                    jac=lambda t, y: a, rtol=1e-12, atol=1e-12)
    assert sol.success, sol.message
    return sol.y


def _scipy_fit(x0, simulate=_scipy_solution):
    """The plain scipy route: least squares in log-rates, residuals model - data."""
    result = least_squares(lambda q: (simulate(np.exp(q)) - Y).ravel(), np.log(x0),
                           xtol=1e-14, ftol=1e-14, gtol=1e-14)
    assert result.success, result.message
    return np.exp(result.x), 2.0 * result.cost


def _sse(p):
    return float(np.sum((_exact_solution(p) - Y) ** 2))


def test_scipy_reproduces_published_optimum():
    """The transcribed data and model give the published optimum with scipy alone, so a
    failure of the paramest tests below is paramest's, not the benchmark's."""
    # the published rates give the published SSE (they are rounded: slightly above it)
    assert _sse(P_PUBLISHED) == pytest.approx(SSE_PUBLISHED, abs=SSE_PUBLISHED_HALF_ULP)
    # solver-free optimum from the matrix exponential, and the solve_ivp route from the start
    # farther away; both land on P_EXACT / SSE_EXACT
    p_exact, sse_exact = _scipy_fit(P_PUBLISHED, simulate=_exact_solution)
    p_ivp, sse_ivp = _scipy_fit(STARTS["all_1e-4"])
    for p, sse in ((p_exact, sse_exact), (p_ivp, sse_ivp)):
        assert sse == pytest.approx(SSE_EXACT, rel=1e-8)
        assert sse == pytest.approx(SSE_PUBLISHED, abs=SSE_PUBLISHED_HALF_ULP)
        np.testing.assert_allclose(p, P_EXACT, rtol=1e-5)
        np.testing.assert_allclose(p, P_PUBLISHED, rtol=P_PUBLISHED_RTOL)
    # the published point really is (just) off the optimum, not a different minimum
    assert 0.0 < _sse(P_PUBLISHED) - sse_exact < 2e-4


# ---------------------------------------------------------------------------------------
# paramest (pe.fit is W1-5, being written; until it is exported these tests skip)

needs_fit = pytest.mark.skipif(
    not hasattr(pe, "fit") or not hasattr(pe, "Data"), reason="paramest.fit not exported yet"
)


@pytest.fixture(scope="module")
def problem():
    return pe.ODEProblem(pinene, Y0, (0.0, T[-1]), P_PUBLISHED, state_names=STATE_NAMES,
                         param_names=PARAM_NAMES)


@pytest.fixture(scope="module")
def data():
    return pe.Data(T, Y, name="Box et al. 1973")


@pytest.fixture(scope="module")
def fits(problem, data):
    """One fit per start, shared by the tests (the first one pays the compilation)."""
    return {
        name: pe.fit(problem, data, x0=x0, scale="log", rtol=1e-10, atol=1e-10)
        for name, x0 in STARTS.items()
    }


@needs_fit
@pytest.mark.parametrize("start", list(STARTS))
def test_paramest_fit_reproduces_published_optimum(fits, start):
    result = fits[start]
    assert result.success, result.message
    assert list(result.labels) == PARAM_NAMES
    sse = 2.0 * result.cost  # cost = SSE / 2: no sigma given, every residual weighs 1
    assert sse == pytest.approx(SSE_PUBLISHED, abs=SSE_PUBLISHED_HALF_ULP)
    assert sse == pytest.approx(SSE_EXACT, rel=1e-7)
    np.testing.assert_allclose(result.x, P_PUBLISHED, rtol=P_PUBLISHED_RTOL)
    # default least_squares tolerances (1e-8) on a flat valley: p* to about 1e-5
    np.testing.assert_allclose(result.x, P_EXACT, rtol=1e-4)
    np.testing.assert_allclose(result.p, result.x)  # every parameter is free


@needs_fit
def test_paramest_and_scipy_reach_the_same_optimum(problem, data, fits):
    """Same data, same start: paramest's fit and the scipy route agree, and paramest's
    objective matches the solver-free one where it is evaluated."""
    x0 = STARTS["all_1e-4"]
    result = fits["all_1e-4"]
    p_scipy, sse_scipy = _scipy_fit(x0)
    assert 2.0 * result.cost == pytest.approx(sse_scipy, rel=1e-8)
    np.testing.assert_allclose(result.x, p_scipy, rtol=1e-4)
    # the fitted curves, at the data times, against scipy's at scipy's optimum
    np.testing.assert_allclose(result.predict(T), _scipy_solution(p_scipy), rtol=0, atol=1e-4)
    # the objective itself, away from and at the optimum (no optimiser involved)
    objective = pe.Objective(problem, data, scale="log", rtol=1e-10, atol=1e-10)
    for p in (x0, P_PUBLISHED, p_scipy):
        assert 2.0 * objective.loss(p) == pytest.approx(_sse(p), rel=1e-8)
