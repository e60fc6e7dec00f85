"""Write the synthetic kinetics data set read by examples/fit_from_csv.py.

Model: A -> B -> C with first-order rate constants k1 and k2. A is measured directly (in
concentration units, at a few times, as if by HPLC); B is seen only through a signal
s * B (a fluorescence reading with an unknown gain s, at many times); C is not measured.
Two experiments share k1, k2 and s and differ in the initial concentration of A:

    kinetics_exp1.csv   A0 = 1.0, B0 = C0 = 0
    kinetics_exp2.csv   A0 = 2.5, B0 = C0 = 0

True values: k1 = 0.8, k2 = 0.3, s = 5.0. Each value has normal noise of standard deviation
3 % of the true value plus a small floor (0.01 for A, 0.02 for the signal, so that values
near zero keep a positive standard deviation); that standard deviation is written beside
each value (A_sd, signal_sd), as a lab would report it. Empty cells are values not
measured; experiment 1 has two replicate rows at t = 2 and a lost signal reading at t = 6.

Run:  python examples/data/make_kinetics_csv.py   (rewrites both files, identically)
"""

from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

K1, K2, S = 0.8, 0.3, 5.0
RELATIVE, FLOOR_A, FLOOR_SIGNAL = 0.03, 0.01, 0.02

# (file, A0, signal times, times at which A is also measured, signal readings lost)
EXPERIMENTS = [
    ("kinetics_exp1.csv", 1.0,
     [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0],
     {0.0, 1.0, 2.0, 4.0, 6.0, 10.0}, {6.0}),
    ("kinetics_exp2.csv", 2.5,
     [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0],
     {0.0, 0.5, 1.5, 3.0, 5.0, 8.0, 12.0}, set()),
]


def rates(t, y):
    a, b = y[0], y[1]
    return [-K1 * a, K1 * a - K2 * b, K2 * b]


def cell(value):
    return "" if np.isnan(value) else f"{value:.4f}"


def main():
    rng = np.random.default_rng(42)
    folder = Path(__file__).parent
    for filename, a0, times, a_times, lost in EXPERIMENTS:
        t = np.array(times)
        sol = solve_ivp(rates, (0.0, t[-1]), [a0, 0.0, 0.0], method="DOP853",
                        t_eval=np.unique(t), rtol=1e-12, atol=1e-14)
        true = sol.y[:, np.searchsorted(sol.t, t)]
        a_true, signal_true = true[0], S * true[1]
        a_sd = RELATIVE * np.abs(a_true) + FLOOR_A
        signal_sd = RELATIVE * np.abs(signal_true) + FLOOR_SIGNAL
        a = a_true + a_sd * rng.standard_normal(t.size)
        signal = signal_true + signal_sd * rng.standard_normal(t.size)
        for i, ti in enumerate(t):
            if ti not in a_times:
                a[i] = a_sd[i] = np.nan
            if ti in lost:
                signal[i] = signal_sd[i] = np.nan
        lines = ["time,A,A_sd,signal,signal_sd"]
        lines += [
            f"{ti:g},{cell(a[i])},{cell(a_sd[i])},{cell(signal[i])},{cell(signal_sd[i])}"
            for i, ti in enumerate(t)
        ]
        path = folder / filename
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path} ({t.size} rows)")


if __name__ == "__main__":
    main()
