"""Solve the Lotka–Volterra predator–prey model and print (and plot) the solution.

Run:  python examples/solve_lotka_volterra.py
Saves lotka_volterra.png next to this script when matplotlib is installed.
"""

import time
from pathlib import Path

import numpy as np

import paramest as pe


def lotka_volterra(t, y, p, dydt):
    prey, predator = y[0], y[1]
    alpha, beta, delta, gamma = p[0], p[1], p[2], p[3]
    dydt[0] = alpha * prey - beta * prey * predator
    dydt[1] = -delta * predator + gamma * prey * predator


def main():
    start = time.perf_counter()
    problem = pe.ODEProblem(
        lotka_volterra, y0=[1.0, 1.0], t_span=(0.0, 10.0), p=[1.5, 1.0, 3.0, 1.0],
        state_names=["prey", "predator"], param_names=["alpha", "beta", "delta", "gamma"],
    )
    compiled = time.perf_counter()
    t_eval = np.linspace(0.0, 10.0, 101)
    sol = pe.solve(problem, "Tsit5", t_eval=t_eval, rtol=1e-6, atol=1e-8)
    solved = time.perf_counter()
    print(sol.message)
    print(f"{sol.nfev} model evaluations, {sol.n_accepted} steps ({sol.n_rejected} rejected)")
    print(f"compile + model check {compiled - start:.3f} s, first solve {solved - compiled:.3f} s")
    print(f"{'t':>6} {'prey':>10} {'predator':>10}")
    for i in range(0, t_eval.size, 20):
        print(f"{sol.t[i]:6.1f} {sol.y[0, i]:10.5f} {sol.y[1, i]:10.5f}")

    # A new parameter value: nothing is recompiled.
    faster = pe.solve(problem, t_eval=t_eval, p=[1.8, 1.0, 3.0, 1.0])
    print(f"with alpha = 1.8, prey at t = 10: {faster.y[0, -1]:.5f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return
    figure, axes = plt.subplots(figsize=(7, 4))
    for i, name in enumerate(problem.state_names):
        axes.plot(sol.t, sol.y[i], label=name)
    axes.set_xlabel("t")
    axes.set_ylabel("population")
    axes.set_title("Lotka–Volterra, Tsit5, rtol 1e-6")
    axes.legend()
    path = Path(__file__).with_name("lotka_volterra.png")
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot saved to {path}")


if __name__ == "__main__":
    main()
