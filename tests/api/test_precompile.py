"""``precompile()`` and the one-line notice printed when a kernel is really compiled."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit, typeof

import paramest as pe
from paramest.compilation import KernelTime

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json
import paramest as pe
times = pe.precompile(kinds=("explicit",))
print(json.dumps({name: list(value) for name, value in times.items()}))
"""

NOTICE = "paramest: compiling the explicit Runge-Kutta integrator for float64 states"


def _run_child(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_BOUNDSCHECK", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.mark.slow
def test_first_compile_is_announced_once_and_a_cached_load_is_silent(tmp_path):
    """A fresh Numba cache: the explicit kernel is compiled (one notice, then its time);
    a second process with the same cache loads it silently."""
    times, stderr = _run_child(tmp_path / "numba_cache")
    assert list(times) == ["model check", "explicit float64", "dense output"]
    seconds, from_cache = times["explicit float64"]
    assert not from_cache and seconds > 0.5
    assert stderr.count(NOTICE) == 1, stderr
    assert "paramest: compiled the explicit Runge-Kutta integrator for float64 states in" \
        in stderr
    assert "first use on this machine" in stderr and "once" in stderr
    # nested helpers (begin_integration, ...) are not announced: one line per kernel
    assert stderr.count("paramest: compiling") == 2, stderr  # + the model-check helpers

    times, stderr = _run_child(tmp_path / "numba_cache")
    assert all(from_cache for _, from_cache in times.values()), times
    assert "paramest:" not in stderr, stderr
    assert times["explicit float64"][0] < 5.0


def test_precompile_in_process_reports_every_kernel(capsys):
    times = pe.precompile(complex_step=True, verbose=False)
    assert list(times) == [
        "model check", "explicit float64", "dense output", "explicit complex128",
        "rosenbrock float64",
    ]
    assert all(isinstance(t, KernelTime) and t.seconds >= 0.0 for t in times.values())
    # already compiled or loaded by now: nothing to do a second time, nothing printed
    again = pe.precompile(kinds="stiff")
    assert list(again) == ["model check", "rosenbrock float64"]
    assert all(t.from_cache for t in again.values())
    assert capsys.readouterr().err == ""


def test_precompile_with_sensitivities_and_their_notices(capsys):
    times = pe.precompile(complex_step=True, sensitivities=True, verbose=False)
    assert list(times)[-3:] == [
        "explicit forward", "explicit complex directions", "rosenbrock forward",
    ]
    assert all(t.seconds >= 0.0 for t in times.values())
    assert capsys.readouterr().err == ""


def test_precompile_with_adjoints():
    times = pe.precompile(adjoints=True, verbose=False)
    assert list(times)[-5:] == [
        "explicit discrete adjoint", "explicit adjoint", "explicit backsolve",
        "rosenbrock discrete adjoint", "rosenbrock adjoint",
    ]
    assert "rosenbrock backsolve" not in times  # backsolve refuses Rosenbrock methods


def test_precompile_with_ensembles():
    times = pe.precompile(kinds="explicit", ensembles=True, sensitivities=True,
                          verbose=False)
    assert list(times)[-2:] == ["ensemble", "ensemble forward"]


def test_the_notice_names_the_field():
    from paramest.compilation import _KERNELS, _field_kind
    from paramest.kernels.adjoint import backward_sweep_explicit
    from paramest.kernels.fields import (
        adjoint_field,
        adjoint_info,
        backsolve_field,
        complex_directions_field,
        forward_field,
        model_addresses,
        plain_field,
        sensitivity_info,
    )

    addresses = model_addresses(rhs=1)
    info = sensitivity_info(2, 1, 2)
    store = (np.zeros(1), np.ones(1), np.zeros((1, 2)), np.zeros((1, 1, 2)))
    fields = (
        plain_field(addresses),
        forward_field(addresses, info, [0]),
        complex_directions_field(addresses, info, np.zeros((1, 1), complex)),
        backsolve_field(addresses, adjoint_info(2, 0)),
        adjoint_field(addresses, adjoint_info(2, 0), *store, np.zeros((1, 1))),
    )
    kinds = [_field_kind((typeof(field),)) for field in fields]
    assert kinds == ["", " with forward sensitivities", " for complex-step sensitivities",
                     " for BacksolveAdjoint", " for the continuous adjoint"]
    describe = _KERNELS[id(backward_sweep_explicit)][1].describe
    assert describe((typeof(fields[4]),)) == (
        "the backward pass of the explicit methods for the continuous adjoint"
    )


def test_nothing_recompiles_when_columns_parameters_or_tolerances_change():
    """One compiled kernel per field kind: the sensitivity columns, p, y0 and rtol are
    runtime data."""
    from paramest.kernels.explicit import integrate
    from paramest.kernels.rosenbrock import integrate_rosenbrock

    def decay(t, y, p, dydt):
        dydt[0] = -p[0] * y[0] + p[1] * y[1]
        dydt[1] = -p[1] * y[1]

    problem = pe.ODEProblem(decay, [1.0, 2.0], (0.0, 1.0), [0.5, 0.3])
    forward = pe.Forward()
    for method in ("Tsit5", "Rodas5P"):
        pe.solve(problem, method, t_eval=[1.0], sensitivity=forward)
    before = (len(integrate.signatures), len(integrate_rosenbrock.signatures))
    for method in ("Tsit5", "Rodas5P", "auto"):
        for sens_params, sens_y0 in (([0], None), (None, [0, 1]), ([1], [1]), ([], [0])):
            sol = pe.solve(problem, method, t_eval=[0.5, 1.0], sensitivity=forward,
                           sens_params=sens_params, sens_y0=sens_y0, p=[0.7, 0.2],
                           y0=[2.0, 1.0], rtol=1e-8)
            assert sol.success
        pe.solve(problem, method, t_eval=[1.0], sensitivity=pe.Forward(error_control=False))
    assert (len(integrate.signatures), len(integrate_rosenbrock.signatures)) == before


def test_precompile_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="`kinds` entries must be 'explicit' or 'stiff'"):
        pe.precompile(kinds=("implicit",))


def test_other_numba_compiles_print_nothing(capsys):
    @njit
    def not_a_paramest_kernel(x):
        return x + 1.0

    assert not_a_paramest_kernel(np.float64(1.0)) == 2.0
    assert capsys.readouterr().err == ""


def test_docstring_example_and_parameters():
    import doctest
    import inspect

    from paramest import compilation

    failures, tried = doctest.testmod(compilation, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0
    doc = inspect.getdoc(pe.precompile)
    for name in inspect.signature(pe.precompile).parameters:
        assert f"{name} :" in doc
