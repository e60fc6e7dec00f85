"""Timing and reporting helpers shared by the benchmark scripts.

The machines these scripts run on are often small and noisy, so the helpers
time *batches* of calls (so that timer resolution and call jitter are amortised),
interleave the contenders in rounds (so that a slow stretch of the machine hits
every contender rather than one), and report medians over rounds.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# A batch runs `k` solves and returns nothing; the timing code divides by `k`.
Batch = Callable[[int], None]


@dataclass
class Timing:
    """Per-call times (seconds) of one contender, one entry per round."""

    per_call: list[float] = field(default_factory=list)
    calls_per_batch: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.per_call) if self.per_call else math.nan

    @property
    def best(self) -> float:
        return min(self.per_call) if self.per_call else math.nan

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median: a noise indicator."""
        if len(self.per_call) < 4:
            return math.nan
        q1, _, q3 = statistics.quantiles(self.per_call, n=4)
        return (q3 - q1) / self.median

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "best_s": self.best,
            "spread": self.spread,
            "calls_per_batch": self.calls_per_batch,
            "per_call_s": self.per_call,
        }


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call `fn` once; return its result and the wall time in seconds."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def time_batch(batch: Batch, k: int) -> float:
    """Wall time per call of one batch of `k` calls."""
    # Garbage collection pauses are unrelated to the code under test and would
    # land on whichever contender happens to be running; keep them out (as timeit does).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        batch(k)
        elapsed = time.perf_counter() - t0
    finally:
        if was_enabled:
            gc.enable()
    return elapsed / k


def calibrate(batch: Batch, target_s: float, max_calls: int = 1_000_000) -> int:
    """Number of calls that make one batch last roughly `target_s`."""
    k = 1
    while True:
        per_call = time_batch(batch, k)
        if per_call * k >= 0.2 * target_s or k >= max_calls:
            break
        # Grow geometrically until the measurement itself is long enough to trust.
        k *= 10
    return max(1, min(max_calls, math.ceil(target_s / max(per_call, 1e-9))))


def interleaved_timings(
    batches: dict[str, Batch],
    *,
    rounds: int,
    target_s: float,
    warmup_calls: int = 3,
    seed: int = 0,
) -> dict[str, Timing]:
    """Time every batch `rounds` times, shuffling the contender order each round."""
    timings: dict[str, Timing] = {}
    for name, batch in batches.items():
        batch(warmup_calls)
        timings[name] = Timing(calls_per_batch=calibrate(batch, target_s))
    rng = random.Random(seed)
    names = list(batches)
    for _ in range(rounds):
        # A fixed order would give one contender a systematic position after
        # (say) the most allocation-heavy one; shuffling removes that bias.
        rng.shuffle(names)
        for name in names:
            t = timings[name]
            t.per_call.append(time_batch(batches[name], t.calls_per_batch))
    return timings


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def timed_import(module: str) -> tuple[Any | None, float, str | None]:
    """Import `module`; return (module or None, seconds taken, error text or None).

    Any error counts as "not available", not only ImportError: a peer that fails to import
    for another reason (or a half-finished edit of paramest) must not stop the others from
    being timed."""
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
    return mod, time.perf_counter() - t0, None


def ratio(num: float, den: float) -> float:
    """num / den, or NaN when either is missing (NaN, inf) or the denominator is not
    positive."""
    return num / den if den > 0 and math.isfinite(num) and math.isfinite(den) else math.nan


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def fmt_time(seconds: float) -> str:
    """Seconds as a short human-readable string with a fitting unit."""
    if not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_num(x: float | None, spec: str = ".2e") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def fmt_pct(x: float) -> str:
    return f"{x * 100:.0f}%" if math.isfinite(x) else "-"


def write_json(path: str, payload: Any) -> None:
    def default(obj: Any) -> Any:
        # NumPy scalars and arrays show up in results; JSON needs plain Python.
        if hasattr(obj, "tolist"):
            return obj.tolist()
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    def clean(obj: Any) -> Any:
        # JSON has no NaN/inf; write null so that strict parsers accept the file.
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        return obj

    with open(path, "w", encoding="utf-8") as fh:
        json.dump(clean(payload), fh, indent=2, default=default)
        fh.write("\n")
