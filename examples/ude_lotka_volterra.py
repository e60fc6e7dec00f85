"""Learn the unknown interaction terms of a Lotka-Volterra model with a neural network (a
universal differential equation).

The data are synthetic, as in the universal-differential-equations paper (Rackauckas et al.
2020, "Universal Differential Equations for Scientific Machine Learning"): the predator-prey
system x' = alpha x - beta x y, y' = gamma x y - delta y with (alpha, beta, gamma, delta) =
(1.3, 0.9, 0.8, 1.8), u0 = (0.44249296, 4.6280594), 21 times on [0, 5], 5 % noise. The model
keeps the known growth and death terms and replaces both interaction terms by a network of
the state:

    x' = alpha x + nn_1(x, y),    y' = -delta y + nn_2(x, y)

with alpha and delta known and the network's 354 weights fitted (its inputs are the states
divided by 3, through ``nn_input``): Adam, then L-BFGS-B, every
gradient from the discrete adjoint (the complex step of the model over (y, nn, p) chained
with the network's reverse pass). The script then compares the learnt terms with the true
(-beta x y, gamma x y) along the measured trajectory.

Run:  python examples/ude_lotka_volterra.py
Exits with a nonzero status unless the fit's cost is within 3x that of the true model on the
same data and the learnt terms are within 10 % (root mean square along the trajectory,
relative to their range) of the true ones. Saves ude_lotka_volterra.png when matplotlib is
installed.
"""

import sys
import time
from pathlib import Path

import numpy as np

import paramest as pe
from paramest.nn import MLP

TRUE = np.array([1.3, 0.9, 0.8, 1.8])  # alpha, beta, gamma, delta
U0 = [0.44249296, 4.6280594]


def lotka_volterra(t, u, p, du):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = p[2] * u[0] * u[1] - p[3] * u[1]


def known_physics(t, u, nn, p, du):
    # the growth of the prey and the death of the predators are known; the interaction is
    # whatever the network says
    du[0] = p[0] * u[0] + nn[0]
    du[1] = -p[1] * u[1] + nn[1]


def scaled_state(t, u, out):
    # the network's inputs: the states scaled to order one, where tanh is not saturated
    out[0] = u[0] / 3.0
    out[1] = u[1] / 3.0


def main():
    t = np.linspace(0.0, 5.0, 21)
    truth = pe.solve(pe.ODEProblem(lotka_volterra, U0, (0.0, 5.0), TRUE), "Tsit5", t,
                     rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(1)
    noise = 0.05 * np.mean(truth.y, axis=1, keepdims=True)
    data = pe.Data(t, truth.y + noise * rng.standard_normal(truth.y.shape), sigma=noise[:, 0])

    network = MLP([2, 16, 16, 2], activation="tanh", init="glorot")
    problem = pe.UDEProblem(known_physics, network, U0, (0.0, 5.0), p=[TRUE[0], TRUE[3]],
                            theta=0.1 * network.init(seed=0), nn_input=scaled_state,
                            param_names=["alpha", "delta"], state_names=["prey", "predator"])
    weights = list(range(2, problem.n_params))  # alpha and delta stay at their known values

    start = time.perf_counter()
    result = pe.fit(
        problem, data, method="adam", free=weights, sensitivity=pe.DiscreteAdjoint(),
        solver="Tsit5", rtol=1e-7, atol=1e-9,
        options={"maxiter": 2000, "learning_rate": 0.05, "polish": "L-BFGS-B",
                 "polish_options": {"maxiter": 5000}},
    )
    elapsed = time.perf_counter() - start
    # what the true model scores on the same noisy data: the noise floor of the cost
    floor = pe.Objective(pe.ODEProblem(lotka_volterra, U0, (0.0, 5.0), TRUE), data).loss(TRUE)
    print(f"UDE with {network.n_params} weights: cost {result.history[0]:.4g} -> "
          f"{result.cost:.4g} ({result.nit} iterations, {elapsed:.1f} s); the true model's "
          f"cost on these data: {floor:.4g}")
    print(result.message)

    theta = problem.p.copy()
    theta[weights] = result.x
    # the learnt interaction along the measured trajectory against the true one
    states = truth.y.T
    learnt = problem.network(states / 3.0, theta)
    true_terms = np.column_stack([-TRUE[1] * states[:, 0] * states[:, 1],
                                  TRUE[2] * states[:, 0] * states[:, 1]])
    spread = true_terms.max(axis=0) - true_terms.min(axis=0)
    errors = np.sqrt(np.mean((learnt - true_terms) ** 2, axis=0)) / spread
    print("         x        y     nn_1   -beta*x*y     nn_2   gamma*x*y")
    for (x, y), (n1, n2), (e1, e2) in zip(states[::4], learnt[::4], true_terms[::4],
                                          strict=True):
        print(f"  {x:8.4f} {y:8.4f} {n1:8.4f} {e1:10.4f} {n2:8.4f} {e2:10.4f}")
    print(f"root-mean-square error of the learnt terms along the trajectory, relative to "
          f"their range: {errors[0]:.3f} (prey), {errors[1]:.3f} (predator)")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        pass
    else:
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        ax[0].plot(t, data.y.T, "o")
        dense = np.linspace(0.0, 5.0, 200)
        curve = pe.solve(problem.remake(p=theta), "Tsit5", dense, rtol=1e-7, atol=1e-9)
        ax[0].plot(dense, curve.y.T, "-")
        ax[0].set_xlabel("t")
        ax[0].set_title("data and the trained UDE")
        ax[1].plot(t, true_terms, "k--")
        ax[1].plot(t, learnt, "-")
        ax[1].set_xlabel("t")
        ax[1].set_title("interaction terms: true (dashed), learnt")
        fig.savefig(Path(__file__).with_name("ude_lotka_volterra.png"), dpi=120)
    if not (result.cost < 3.0 * floor and np.all(errors < 0.1)):
        print("FAILED: the fit did not reach the noise or the learnt terms are off")
        return 1
    print("the network learnt the interaction terms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
