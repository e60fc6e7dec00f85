"""Solve Robertson's stiff chemical kinetics with a Rosenbrock method and with
``method="auto"``, and compare with the explicit Tsit5, which stalls on it.

Run:  python examples/solve_robertson.py

    A -> B (k1),  B + B -> C + B (k2),  B + C -> A + C (k3)

The three rates differ by nine orders of magnitude: the textbook stiff problem.
"""

import time

import numpy as np

import paramest as pe


def robertson(t, y, p, dydt):
    k1, k2, k3 = p[0], p[1], p[2]
    dydt[0] = -k1 * y[0] + k3 * y[1] * y[2]
    dydt[1] = k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] * y[1]
    dydt[2] = k2 * y[1] * y[1]


def main():
    problem = pe.ODEProblem(
        robertson, y0=[1.0, 0.0, 0.0], t_span=(0.0, 1e5), p=[0.04, 3e7, 1e4],
        state_names=["A", "B", "C"], param_names=["k1", "k2", "k3"],
    )
    t_eval = np.logspace(-5, 5, 11)
    for method in ("Rodas5P", "auto"):
        pe.solve(problem, method, t_eval=t_eval)  # the first call compiles the kernels
        start = time.perf_counter()
        sol = pe.solve(problem, method, t_eval=t_eval, rtol=1e-6, atol=1e-10)
        elapsed = time.perf_counter() - start
        print(f"{method}: {sol.message}")
        print(f"  {sol.n_accepted} steps, {sol.nfev} evaluations, {sol.njev} Jacobians "
              f"(complex step), {sol.nlu} LU factorisations, {1e6 * elapsed:.0f} µs")
        for t_switch, old, new in sol.switches:
            print(f"  switched from {old} to {new} at t = {t_switch:.3g}")
    print(f"{'t':>8} {'A':>12} {'B':>12} {'C':>12}")
    for i in range(t_eval.size):
        print(f"{sol.t[i]:8.0e} {sol.y[0, i]:12.6e} {sol.y[1, i]:12.6e} {sol.y[2, i]:12.6e}")

    explicit = pe.solve(problem, "Tsit5", t_eval=t_eval, max_steps=20_000)
    print(f"Tsit5 alone: success={explicit.success}, stopped at t = {explicit.t_final:.3g}")
    print(f"  {explicit.message}")


if __name__ == "__main__":
    main()
