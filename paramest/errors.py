"""Exceptions and warnings raised by paramest."""


class ModelError(ValueError):
    """The user's model failed the model check (compilation, array bounds, non-finite
    output, a user Jacobian that disagrees with finite differences)."""


class ComplexStepWarning(UserWarning):
    """The model gives wrong derivatives under the complex step (it uses ``abs``, ``sign``,
    ``conj`` or similar on the state); Jacobians fall back to finite differences."""
