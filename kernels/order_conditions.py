"""Butcher order conditions of explicit Runge-Kutta methods, in plain NumPy.

A Runge-Kutta method (A, b, c) has order p exactly when, for every rooted tree t with at
most p vertices, its elementary weight satisfies ``b . Phi(t) = 1 / gamma(t)``, where
gamma(t) is the density of the tree (J. C. Butcher, "Numerical Methods for Ordinary
Differential Equations", 3rd ed., Wiley 2016, Sec. 3; E. Hairer, S. P. Norsett, G. Wanner,
"Solving Ordinary Differential Equations I", 2nd ed., Springer 1993, Sec. II.2).

A continuous extension ``y(t + theta h) = y + h sum_i b_i(theta) k_i`` has (uniform)
order q when ``b(theta) . Phi(t) = theta**|t| / gamma(t)`` for every tree with at most q
vertices and every theta in [0, 1] (Hairer, Norsett & Wanner, Sec. II.6).

The vector Phi(t) used here is the stage vector of the tree: for the single-vertex tree
it is a vector of ones and for a tree whose root has subtrees t_1, ..., t_m it is the
elementwise product of ``A @ Phi(t_k)``. Working with the full stage vector lets the same
machinery check the weights b, the embedded weights and the dense-output weights.

Trees are stored as nested tuples: a tree is the tuple of the subtrees hanging from its
root, in a canonical (non-increasing) order, so the single vertex is ``()`` and each
unlabelled rooted tree has exactly one representation.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = [
    "dense_order_condition_residuals",
    "dense_observed_order",
    "observed_order",
    "order_condition_residuals",
    "rooted_trees",
    "tree_density",
    "tree_order",
]

#: theta values at which continuous order conditions are checked by default; a polynomial
#: identity of degree <= n_dense + max_order holds everywhere once it holds at this many
#: distinct points, and these also catch errors that only show away from the ends.
DEFAULT_THETAS = (0.0, 0.1, 0.25, 0.37, 0.5, 0.62, 0.75, 0.9, 1.0)


def tree_order(tree: tuple) -> int:
    """Number of vertices of a rooted tree.

    Parameters
    ----------
    tree : tuple
        Nested-tuple tree (``()`` is the single vertex).

    Returns
    -------
    int

    Examples
    --------
    >>> tree_order(((), ()))
    3
    """
    return 1 + sum(tree_order(child) for child in tree)


def tree_density(tree: tuple) -> int:
    """Density gamma(t): the order of the tree times the densities of its subtrees.

    Parameters
    ----------
    tree : tuple
        Nested-tuple tree.

    Returns
    -------
    int

    Examples
    --------
    >>> tree_density(((),))   # the chain of two vertices
    2
    >>> tree_density(((), ()))  # the root with two leaves (the "cherry")
    3
    """
    gamma = tree_order(tree)
    for child in tree:
        gamma *= tree_density(child)
    return gamma


@cache
def rooted_trees(order: int) -> tuple:
    """All unlabelled rooted trees with exactly ``order`` vertices.

    Built by Butcher's recursion: a tree of order n is a root carrying a multiset of trees
    whose orders sum to n - 1. Multisets are enumerated as non-increasing sequences in a
    fixed total order of trees (by order, then by position in this list), which makes every
    tree appear exactly once.

    Parameters
    ----------
    order : int
        Number of vertices, >= 1.

    Returns
    -------
    tuple of tuple
        The trees; their counts for orders 1, 2, ... are 1, 1, 2, 4, 9, 20, 48, 115, ...

    Examples
    --------
    >>> len(rooted_trees(5))
    9
    """
    if order < 1:
        raise ValueError("`order` must be at least 1")
    if order == 1:
        return ((),)
    return tuple(_forests(order - 1, (order - 1, len(rooted_trees(order - 1)) - 1)))


def _forests(total: int, bound: tuple[int, int]):
    """Non-increasing sequences of trees with ``total`` vertices, each tree <= ``bound``.

    ``bound`` is ``(order, index)`` of the largest tree allowed, index into
    ``rooted_trees(order)``.
    """
    if total == 0:
        yield ()
        return
    for m in range(min(total, bound[0]), 0, -1):
        trees = rooted_trees(m)
        top = bound[1] if m == bound[0] else len(trees) - 1
        for i in range(top, -1, -1):
            for rest in _forests(total - m, (m, i)):
                yield (trees[i],) + rest


def _stage_vectors(A: np.ndarray, max_order: int) -> dict[int, list[tuple[tuple, np.ndarray]]]:
    """Stage vectors Phi(t) of all trees up to ``max_order``, grouped by order."""
    A = np.asarray(A, dtype=np.float64)
    s = A.shape[0]
    # Memoised on the tree so subtrees shared between trees are multiplied out only once.
    cache: dict[tuple, np.ndarray] = {(): np.ones(s)}

    def phi(tree: tuple) -> np.ndarray:
        vec = cache.get(tree)
        if vec is None:
            vec = np.ones(s)
            for child in tree:
                vec = vec * (A @ phi(child))
            cache[tree] = vec
        return vec

    return {n: [(tree, phi(tree)) for tree in rooted_trees(n)] for n in range(1, max_order + 1)}


def order_condition_residuals(A, b, max_order: int) -> dict[int, float]:
    """Largest violation of the order conditions of each order.

    Parameters
    ----------
    A : array_like, shape (s, s)
        Runge-Kutta matrix (explicit or not; extra interpolation stages may be included).
    b : array_like, shape (s,)
        Weights.
    max_order : int
        Highest tree order to check.

    Returns
    -------
    dict
        ``{n: max over trees t with n vertices of |b . Phi(t) - 1/gamma(t)|}`` for
        n = 1, ..., max_order.

    Examples
    --------
    >>> A = np.array([[0.0, 0.0], [0.5, 0.0]])   # explicit midpoint rule
    >>> res = order_condition_residuals(A, [0.0, 1.0], 3)
    >>> res[1] == res[2] == 0.0, res[3] > 0.1
    (True, True)
    """
    b = np.asarray(b, dtype=np.float64)
    residuals = {}
    for n, group in _stage_vectors(A, max_order).items():
        residuals[n] = max(abs(float(b @ vec) - 1.0 / tree_density(tree)) for tree, vec in group)
    return residuals


def observed_order(A, b, tol: float = 1e-12, max_order: int = 8) -> int:
    """Highest order p such that all order conditions up to p hold within ``tol``.

    Parameters
    ----------
    A : array_like, shape (s, s)
        Runge-Kutta matrix.
    b : array_like, shape (s,)
        Weights.
    tol : float
        Absolute tolerance on each condition.
    max_order : int
        Orders above this are not examined (there are 115 trees of order 8, 286 of 9).

    Returns
    -------
    int
        0 when even ``sum(b) == 1`` fails.

    Examples
    --------
    >>> A = np.array([[0.0, 0.0], [0.5, 0.0]])
    >>> observed_order(A, [0.0, 1.0])
    2
    """
    residuals = order_condition_residuals(A, b, max_order)
    order = 0
    for n in range(1, max_order + 1):
        if residuals[n] > tol:
            break
        order = n
    return order


def _dense_weights(dense: np.ndarray, theta: float) -> np.ndarray:
    """b(theta) for the dense coefficients ``dense[i, m]`` of ``theta**(m + 1)``."""
    powers = theta ** np.arange(1, dense.shape[1] + 1)
    return dense @ powers


def dense_order_condition_residuals(
    A, dense, max_order: int, thetas=DEFAULT_THETAS
) -> dict[int, float]:
    """Largest violation of the continuous order conditions of each order.

    Parameters
    ----------
    A : array_like, shape (s, s)
        Runge-Kutta matrix including any extra interpolation stages.
    dense : array_like, shape (s, n_dense)
        ``b_i(theta) = sum_m dense[i, m] * theta**(m + 1)``.
    max_order : int
        Highest tree order to check.
    thetas : sequence of float
        Points of [0, 1] at which the conditions are evaluated.

    Returns
    -------
    dict
        ``{n: max over trees t of order n and theta of |b(theta) . Phi(t) -
        theta**n / gamma(t)|}``.

    Examples
    --------
    >>> A = np.array([[0.0]])               # forward Euler with linear interpolation
    >>> dense_order_condition_residuals(A, [[1.0]], 2)[1]
    0.0
    """
    dense = np.asarray(dense, dtype=np.float64)
    weights = [(theta, _dense_weights(dense, theta)) for theta in thetas]
    residuals = {}
    for n, group in _stage_vectors(A, max_order).items():
        worst = 0.0
        for tree, vec in group:
            inv_gamma = 1.0 / tree_density(tree)
            for theta, bt in weights:
                worst = max(worst, abs(float(bt @ vec) - theta**n * inv_gamma))
        residuals[n] = worst
    return residuals


def dense_observed_order(
    A, dense, tol: float = 1e-12, max_order: int = 8, thetas=DEFAULT_THETAS
) -> int:
    """Highest order q whose continuous order conditions all hold within ``tol``.

    Parameters
    ----------
    A : array_like, shape (s, s)
        Runge-Kutta matrix including extra interpolation stages.
    dense : array_like, shape (s, n_dense)
        Dense-output polynomial coefficients (see `dense_order_condition_residuals`).
    tol : float
        Absolute tolerance on each condition.
    max_order : int
        Orders above this are not examined.
    thetas : sequence of float
        Points of [0, 1] at which the conditions are evaluated.

    Returns
    -------
    int

    Examples
    --------
    >>> dense_observed_order(np.array([[0.0]]), [[1.0]])
    1
    """
    residuals = dense_order_condition_residuals(A, dense, max_order, thetas)
    order = 0
    for n in range(1, max_order + 1):
        if residuals[n] > tol:
            break
        order = n
    return order
