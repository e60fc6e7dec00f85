"""``precompile()`` and the one-line notice printed when a kernel is really compiled."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

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
