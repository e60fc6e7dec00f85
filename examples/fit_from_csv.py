"""Fit rate constants shared by two experiments, read from CSV files, to a scaled observable.

The reaction A -> B -> C (rate constants k1, k2) was run twice, from A0 = 1.0 and from
A0 = 2.5. A was measured directly, at a few times; B only through a fluorescence signal
s * B whose gain s is unknown, at many times; C was not measured. The files
examples/data/kinetics_exp1.csv and kinetics_exp2.csv hold one row per time (empty cells:
not measured; experiment 1 has replicates at t = 2) and each value's standard deviation.
One fit estimates k1, k2 and s from both experiments at once. They were made by
examples/data/make_kinetics_csv.py with k1 = 0.8, k2 = 0.3, s = 5.0.

The signal alone could not tell k1 from k2 (swapping them and rescaling s gives the same
curve); the measurements of A settle which is which.

Run:  python examples/fit_from_csv.py
Saves fit_from_csv.png next to this script when matplotlib is installed. Exits with a
nonzero status if the fit fails.
"""

import time
from pathlib import Path

import paramest as pe

DATA = Path(__file__).parent / "data"
TRUE = {"k1": 0.8, "k2": 0.3, "s": 5.0}


def kinetics(t, y, p, dydt):
    a, b = y[0], y[1]
    k1, k2 = p[0], p[1]
    dydt[0] = -k1 * a
    dydt[1] = k1 * a - k2 * b
    dydt[2] = k2 * b


def observe(t, y, p, out):
    # one entry per observable, in the order of the data's rows: A, then the signal s * B
    out[0] = y[0]
    out[1] = p[2] * y[1]


def main():
    problem = pe.ODEProblem(
        kinetics, y0=[1.0, 0.0, 0.0], t_span=(0.0, 12.0), p=[0.5, 0.5, 1.0],
        state_names=["A", "B", "C"], param_names=["k1", "k2", "s"],
    )
    experiments = [
        pe.Data.from_csv(
            DATA / f"kinetics_exp{i}.csv", time="time", columns=["A", "signal"],
            sigma={"A": "A_sd", "signal": "signal_sd"},
            name=f"A0={a0}", y0={"A": a0, "B": 0.0, "C": 0.0},
        )
        for i, a0 in ((1, 1.0), (2, 2.5))
    ]
    for data in experiments:
        print(data)

    # Rate constants and gain are positive and may be off by factors: fit their logarithms.
    start = time.perf_counter()
    result = pe.fit(problem, experiments, observe=observe, x0=[0.3, 0.1, 2.0], scale="log")
    print(result.summary())
    print(f"fit took {time.perf_counter() - start:.2f} s")
    print()
    print(f"{'':4} {'estimate':>10} {'95 % interval':>20} {'true':>8}")
    for label, x, (low, high) in zip(result.labels, result.x, result.ci, strict=True):
        true = TRUE[label]
        inside = "" if low <= true <= high else "  (outside)"
        print(f"{label:4} {x:10.4f} {f'[{low:.4f}, {high:.4f}]':>20} {true:8.3f}{inside}")
    if not result.success:
        raise SystemExit(f"the fit failed: {result.message}")

    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return
    figure = result.plot()
    path = Path(__file__).with_name("fit_from_csv.png")
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot saved to {path}")


if __name__ == "__main__":
    main()
