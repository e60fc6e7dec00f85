"""Train a neural ODE on the spiral of DiffEqFlux's documentation.

The data come from the true system u' = ((u^3)^T A)^T with A = [[-0.1, 2.0], [-2.0, -0.1]],
u0 = (2, 0), at 30 times on [0, 1.5]. The model is a neural ODE whose right-hand side is the
network x -> x^3 -> Dense(2, 50, tanh) -> Dense(50, 2) (252 weights, drawn from N(0, 0.1^2)
with seed 0), trained as DiffEqFlux trains it: 300 Adam steps with learning rate 0.05, then
a quasi-Newton polish (L-BFGS-B), every gradient from the discrete adjoint with the
network's hand-written reverse pass. The loss is DiffEqFlux's, the sum of squared errors.

Run:  python examples/neural_spiral.py
Prints the loss during training and at the end, and exits with a nonzero status unless the
final loss is below 0.1. Saves neural_spiral.png next to this script when matplotlib is
installed.
"""

import sys
import time
from pathlib import Path

import numpy as np

import paramest as pe
from paramest.nn import MLP


def spiral(t, u, p, du):
    # ((u^3)^T A)^T for A = [[-0.1, 2.0], [-2.0, -0.1]]
    c0, c1 = u[0] ** 3, u[1] ** 3
    du[0] = -0.1 * c0 - 2.0 * c1
    du[1] = 2.0 * c0 - 0.1 * c1


def main():
    t = np.linspace(0.0, 1.5, 30)
    truth = pe.solve(pe.ODEProblem(spiral, [2.0, 0.0], (0.0, 1.5)), "Tsit5", t, rtol=1e-10,
                     atol=1e-12)

    network = MLP([2, 50, 2], activation="tanh", init="normal", input_transform="cube")
    problem = pe.NeuralODE(network, [2.0, 0.0], (0.0, 1.5), network.init(seed=0))
    # sigma^2 = 1/2 makes fit's cost, 0.5 * sum(((model - data) / sigma)^2), the sum of squares
    data = pe.Data(t, truth.y, sigma=np.sqrt(0.5))

    def report(theta, loss, seen=[0]):  # noqa: B006 - a counter across calls
        seen[0] += 1
        if seen[0] % 50 == 0:
            print(f"  evaluation {seen[0]:4d}: loss {loss:.5g}")

    start = time.perf_counter()
    result = pe.fit(
        problem, data, method="adam", sensitivity=pe.DiscreteAdjoint(), solver="Tsit5",
        rtol=1e-7, atol=1e-9, callback=report,
        options={"maxiter": 300, "learning_rate": 0.05, "polish": "L-BFGS-B",
                 "polish_options": {"maxiter": 300}},
    )
    elapsed = time.perf_counter() - start
    initial = result.history[0]
    print(f"neural ODE, {problem.n_params} weights: loss {initial:.4g} -> {result.cost:.4g} "
          f"in {result.nit} iterations ({elapsed:.1f} s; gradients by "
          f"{result.sensitivity!r})")
    print(result.message)

    fitted = pe.solve(problem.remake(p=result.x), "Tsit5", t, rtol=1e-7, atol=1e-9)
    worst = float(np.max(np.abs(fitted.y - truth.y)))
    print(f"largest error of the trained model at the data times: {worst:.3g}")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        pass
    else:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(truth.y[0], truth.y[1], "o", label="data")
        dense = np.linspace(0.0, 1.5, 300)
        curve = pe.solve(problem.remake(p=result.x), "Tsit5", dense, rtol=1e-7, atol=1e-9)
        ax.plot(curve.y[0], curve.y[1], "-", label="trained neural ODE")
        ax.set_xlabel("u1")
        ax.set_ylabel("u2")
        ax.legend()
        fig.savefig(Path(__file__).with_name("neural_spiral.png"), dpi=120)
    if not result.cost < 0.1:
        print("FAILED: the loss did not fall below 0.1")
        return 1
    print("loss below 0.1: trained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
