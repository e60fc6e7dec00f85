"""The README's promises: the example runs, the docstring examples are true."""

import doctest
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_example(name, tmp_path, timeout=300):
    """Run ``examples/name`` in ``tmp_path`` on a headless matplotlib backend."""
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env,
    )


def test_lotka_volterra_example_runs(tmp_path):
    result = _run_example("solve_lotka_volterra.py", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "successfully reached the end" in result.stdout
    # the last printed row is t = 10 with the known solution
    assert "10.0    1.02635    0.90969" in result.stdout


def test_robertson_example_runs(tmp_path):
    result = _run_example("solve_robertson.py", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("successfully reached the end") == 2
    assert "switched from Tsit5 to Rodas5P" in result.stdout
    assert "1e+05 1.786592e-02 7.274751e-08 9.821340e-01" in result.stdout
    assert "Tsit5 alone: success=False" in result.stdout and "method='Rodas5P'" in result.stdout


def test_fit_lotka_volterra_example_recovers_the_rates(tmp_path):
    """The README's first command: the fit succeeds and every estimate lies within 3
    standard errors of the true value (the script itself exits nonzero on failure)."""
    result = _run_example("fit_lotka_volterra.py", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "paramest fit (trf): success" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()
            if line.split()[:1] in (["alpha"], ["beta"], ["delta"], ["gamma"])]
    table = [row for row in rows if len(row) == 5]  # name, start, estimate, stderr, true
    assert len(table) == 4
    for _, _, estimate, stderr, true in table:
        assert abs(float(estimate) - float(true)) < 3 * float(stderr)


def test_fit_from_csv_example_recovers_the_rates(tmp_path):
    """Two experiments from CSV files, a scaled observable: the true rate constants and
    gain lie inside the printed 95 % intervals."""
    result = _run_example("fit_from_csv.py", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success" in result.stdout
    assert "outside" not in result.stdout.lower(), result.stdout


def test_neural_spiral_example_trains(tmp_path):
    """DiffEqFlux's spiral: from the seed-0 weights the loss falls more than 100-fold in the
    example's fixed 300 Adam steps + at most 300 L-BFGS-B iterations, to below 0.1."""
    result = _run_example("neural_spiral.py", tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loss below 0.1: trained" in result.stdout
    match = re.search(r"252 weights: loss ([0-9.e+-]+) -> ([0-9.e+-]+) in (\d+) iterations",
                      result.stdout)
    assert match, result.stdout
    first, last, iterations = float(match[1]), float(match[2]), int(match[3])
    assert first / last >= 100 and iterations <= 600


def test_ude_example_learns_the_interaction(tmp_path):
    result = _run_example("ude_lotka_volterra.py", tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the network learnt the interaction terms" in result.stdout


@pytest.mark.parametrize(
    "module",
    ["paramest.problems", "paramest.solve", "paramest.solution", "paramest.model",
     "paramest.sensitivity", "paramest.data", "paramest.objective", "paramest.fit",
     "paramest.ensemble", "paramest.nn", "paramest.neural"],
)
def test_docstring_examples(module):
    failures, tried = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert tried > 0 and failures == 0


def test_public_functions_document_their_parameters():
    import inspect

    import paramest as pe

    for obj in (pe.solve, pe.ODEProblem, pe.vjp, pe.fit, pe.Objective, pe.Data,
                pe.solve_ensemble):
        doc = inspect.getdoc(obj)
        signature = inspect.signature(obj)
        for name in signature.parameters:
            if name == "self":
                continue
            assert name in doc, f"{obj.__name__} does not document `{name}`"


def _readme_python_blocks():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _run_readme_snippet(marker, name, capsys):
    """Run the README's example, then its first block containing ``marker`` (which
    continues it); return that block's printed lines and the namespace."""
    blocks = _readme_python_blocks()
    example = next(b for b in blocks if "import paramest as pe" in b)
    snippet = next(b for b in blocks if marker in b)
    namespace = {}
    exec(compile(example, "README example", "exec"), namespace)
    capsys.readouterr()
    exec(compile(snippet, f"README {name}", "exec"), namespace)
    return capsys.readouterr().out.splitlines(), namespace


def test_readme_example_and_sensitivity_snippet_run(capsys):
    """The README's example and its sensitivities snippet (which continues it) run as
    written, and print what their comments say."""
    printed, _ = _run_readme_snippet("sensitivity=pe.Forward()", "sensitivities", capsys)
    assert printed[0] == "(2, 5, 101) ['p[0]', 'p[1]', 'p[2]', 'p[3]', 'y0[prey]']"
    assert printed[1] == "True"


def test_readme_fitting_snippet_runs(capsys):
    """The README's fitting snippet (which continues the example) prints what its comments
    say."""
    printed, _ = _run_readme_snippet("pe.fit(", "fitting", capsys)
    assert printed[0] == "True ['p[0]', 'p[1]', 'p[2]', 'p[3]']"
    assert printed[1] == "[1.51  0.99  2.972 0.987]"
    assert printed[2] == "[0.014 0.015 0.03  0.017]"
    assert printed[3].startswith("paramest fit (trf): success")


def test_readme_ensemble_snippet_runs(capsys):
    """The README's ensemble snippet (which continues the example) prints what its comment
    says, and its bands are ordered."""
    printed, namespace = _run_readme_snippet("pe.solve_ensemble(", "ensembles", capsys)
    assert printed[0] == "(1000, 2, 101) True"
    assert (namespace["low"] <= namespace["mid"]).all()
    assert (namespace["mid"] <= namespace["high"]).all()


def test_readme_neural_snippet_runs(capsys):
    """The README's neural ODE snippet (which continues the example) trains as its comment
    says."""
    printed, _ = _run_readme_snippet("pe.NeuralODE(", "neural", capsys)
    assert printed == ["True"]
