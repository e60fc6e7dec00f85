"""paramest: fit ODE models to data from NumPy, with Numba-compiled solvers.

The user-facing layer. Models are plain Python functions ``fun(t, y, p, dydt)``; the
compiled kernels live in :mod:`paramest.kernels`.
"""

__version__ = "0.1.0"

from paramest.compilation import precompile
from paramest.data import Data
from paramest.ensemble import EnsembleSolution, solve_ensemble
from paramest.errors import ComplexStepWarning, ModelError, SolveError
from paramest.fit import fit
from paramest.neural import NeuralODE, UDEProblem
from paramest.objective import Objective
from paramest.problems import ODEProblem
from paramest.result import FitResult
from paramest.sensitivity import (
    Adjoint,
    BacksolveAdjoint,
    ComplexStep,
    DiscreteAdjoint,
    FiniteDifferences,
    Forward,
    Gradient,
    SensitivityMethod,
    vjp,
)
from paramest.solution import DenseOutput, Solution
from paramest.solve import METHODS, solve

__all__ = [
    "Adjoint",
    "BacksolveAdjoint",
    "ComplexStep",
    "ComplexStepWarning",
    "Data",
    "DenseOutput",
    "DiscreteAdjoint",
    "EnsembleSolution",
    "FiniteDifferences",
    "FitResult",
    "Gradient",
    "Forward",
    "METHODS",
    "ModelError",
    "NeuralODE",
    "ODEProblem",
    "Objective",
    "SensitivityMethod",
    "Solution",
    "SolveError",
    "UDEProblem",
    "fit",
    "precompile",
    "solve",
    "solve_ensemble",
    "vjp",
    "__version__",
]
