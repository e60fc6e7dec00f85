"""Exceptions and warnings raised by paramest."""


class ModelError(ValueError):
    """The user's model failed the model check (compilation, array bounds, non-finite
    output, a user Jacobian that disagrees with finite differences)."""


class ComplexStepWarning(UserWarning):
    """The model gives wrong derivatives under the complex step (it uses ``abs``, ``sign``,
    ``conj`` or similar on the state); Jacobians fall back to finite differences."""


class SolveError(RuntimeError):
    """A solve that a result depends on failed (for example the solve inside
    :func:`paramest.vjp`); ``solution`` holds the failed :class:`paramest.Solution` with
    its ``status`` and ``message``."""

    def __init__(self, message, solution=None):
        super().__init__(message)
        self.solution = solution
