"""Measurements of one experiment: ``Data``.

``Data`` holds what was measured and how precisely: times, observed values (NaN where a value
was not measured), their standard deviations, and the experiment's own conditions (initial
state, parameter values) when they differ from the problem's. It is what
:func:`paramest.fit` reads; on its own it validates and normalises the measurements, so that
a mistake in a data file is reported where it is loaded, naming the column, not deep inside
a fit.
"""

import csv
import math
import numbers
from collections.abc import Mapping

import numpy as np

__all__ = ["Data"]


def _times(t):
    try:
        times = np.array(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`t` must be a 1-D sequence of times, got {t!r:.60}") from None
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"`t` must be a non-empty 1-D sequence of times, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        bad = int(np.flatnonzero(~np.isfinite(times))[0])
        raise ValueError(f"`t` must be finite, but t[{bad}] = {times[bad]}")
    return times


def _values(y, n_times):
    try:
        values = np.array(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`y` must be an array of numbers of shape (n_observables, n_times), got {y!r:.60}"
        ) from None
    if values.ndim == 1:
        values = values.reshape(1, -1)
    if values.ndim != 2 or values.shape[1] != n_times:
        raise ValueError(
            f"`y` must have shape (n_observables, n_times) with n_times = {n_times} (one "
            f"column per entry of `t`), got shape {np.shape(y)}"
        )
    if np.any(np.isinf(values)):
        i, j = np.argwhere(np.isinf(values))[0]
        raise ValueError(
            f"`y` must be finite or NaN (not measured), but y[{i}, {j}] = {values[i, j]}"
        )
    if not np.any(np.isfinite(values)):
        raise ValueError("`y` has no measured value: every entry is NaN")
    return values


def _sigma(sigma, shape):
    n_obs, n_times = shape
    if sigma is None:
        return np.ones(shape), False
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        array = np.full(shape, float(sigma))
    else:
        try:
            array = np.array(sigma, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"`sigma` must be a number, one per observable or one per value, got "
                f"{sigma!r:.60}"
            ) from None
        if array.ndim == 1 and array.size == n_obs:
            array = np.repeat(array.reshape(-1, 1), n_times, axis=1)
        elif array.shape != shape:
            raise ValueError(
                f"`sigma` must be a number, {n_obs} values (one per observable) or an array "
                f"of shape {shape} (one per value), got shape {array.shape}"
            )
    return array, True


class Data:
    """Measurements of one experiment.

    Parameters
    ----------
    t : array_like, shape (n_times,)
        Measurement times, in any order; a time may repeat (replicates).
    y : array_like, shape (n_observables, n_times)
        Measured values, one row per observable (by default the model's states, in order)
        and one column per entry of ``t``; NaN marks a value that was not measured. A 1-D
        ``y`` is one observable.
    sigma : float or array_like, optional
        Standard deviation of the measurement error: one number, one per observable, or one
        per value (NaN allowed where ``y`` is NaN). Must be positive. When omitted, every
        value weighs 1 and ``sigma_known`` is False (a fit then reports no likelihood).
    name : str, optional
        The experiment's name, used in messages and reports.
    y0 : dict or array_like, optional
        This experiment's initial state, by state name or as a full vector, when it differs
        from the problem's.
    p : dict or array_like, optional
        This experiment's parameter values (conditions such as a dose or a temperature), by
        name or as a full vector, when they differ from the problem's.
    observables : sequence of str, optional
        Names of the rows of ``y`` (set by :meth:`from_dataframe` and :meth:`from_csv`).

    Attributes
    ----------
    t, y, sigma : ndarray
        Sorted by time (stably, so replicates keep their order); read-only.
    measured : ndarray of bool, shape (n_observables, n_times)
        Where ``y`` holds a value.
    times : ndarray
        The distinct times, increasing: where a model must be solved.
    time_index : ndarray of int, shape (n_times,)
        For each column, its time's position in ``times``.

    Examples
    --------
    >>> import numpy as np
    >>> from paramest import Data
    >>> data = Data([0.0, 1.0, 1.0, 2.0], [[1.0, 0.61, 0.59, np.nan]], sigma=0.05)
    >>> data.n_observables, data.n_times, data.n_measured
    (1, 4, 3)
    >>> data.times, data.time_index
    (array([0., 1., 2.]), array([0, 1, 1, 2]))
    """

    def __init__(self, t, y, *, sigma=None, name=None, y0=None, p=None, observables=None):
        times = _times(t)
        values = _values(y, times.size)
        sigma_values, known = _sigma(sigma, values.shape)
        measured = np.isfinite(values)
        bad = measured & ~(np.isfinite(sigma_values) & (sigma_values > 0.0))
        if np.any(bad):
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"`sigma` must be positive and finite where a value is measured, but "
                f"sigma[{i}, {j}] = {sigma_values[i, j]} (y[{i}, {j}] = {values[i, j]})"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string, got {type(name).__name__}")
        if observables is not None:
            observables = tuple(observables)
            if len(observables) != values.shape[0] or not all(
                isinstance(x, str) and x for x in observables
            ):
                raise ValueError(
                    f"`observables` must be {values.shape[0]} non-empty names, one per row of "
                    f"`y`, got {observables!r}"
                )
        for label, condition in (("y0", y0), ("p", p)):
            if condition is not None and not isinstance(condition, Mapping):
                try:
                    vector = np.array(condition, dtype=np.float64)
                except (TypeError, ValueError):
                    vector = None
                if vector is None or vector.ndim != 1 or not np.all(np.isfinite(vector)):
                    raise ValueError(
                        f"`{label}` must be a dict by name or a full 1-D vector of finite "
                        f"numbers, got {condition!r:.60}"
                    )
        order = np.argsort(times, kind="stable")
        self.t = times[order]
        self.y = values[:, order]
        self.sigma = sigma_values[:, order]
        self.measured = measured[:, order]
        self.times, self.time_index = np.unique(self.t, return_inverse=True)
        for array in (self.t, self.y, self.sigma, self.measured, self.times, self.time_index):
            array.setflags(write=False)
        self.sigma_known = known
        self.name = name
        self.y0 = dict(y0) if isinstance(y0, Mapping) else y0
        self.p = dict(p) if isinstance(p, Mapping) else p
        self.observables = observables

    @property
    def n_observables(self):
        return self.y.shape[0]

    @property
    def n_times(self):
        return self.y.shape[1]

    @property
    def n_measured(self):
        """How many values were measured (non-NaN)."""
        return int(self.measured.sum())

    def __repr__(self):
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Data({label}{self.n_observables} observables, {self.n_times} times in "
            f"[{self.t[0]:g}, {self.t[-1]:g}], {self.n_measured} values)"
        )

    @classmethod
    def from_dataframe(cls, df, time, columns=None, sigma=None, *, observable=None,
                       value=None, name=None, y0=None, p=None):
        """Measurements from a pandas DataFrame, wide or long.

        Wide: one row per time, a column per observable (``columns``, default every column
        but ``time``), with ``sigma`` a number, a column name per observable (a list, or a
        dict observable -> column), or None. Long: one row per measurement, with
        ``observable=`` naming the column that says which observable and ``value=`` the
        column holding the value (``sigma`` then a number or a column name; ``columns``
        the observables to keep, in order, default in order of appearance).

        Examples
        --------
        >>> import pandas as pd
        >>> from paramest.data import Data
        >>> df = pd.DataFrame({"t": [0, 1, 2], "A": [1.0, 0.6, 0.4], "B": [0, 0.3, None]})
        >>> Data.from_dataframe(df, time="t").y
        array([[1. , 0.6, 0.4],
               [0. , 0.3, nan]])
        """
        names = [str(c) for c in df.columns]
        records = {str(c): df[c].to_numpy() for c in df.columns}
        return cls._from_columns(
            records, names, time, columns, sigma, observable, value, name, y0, p, "column"
        )

    @classmethod
    def from_csv(cls, path, time, columns=None, sigma=None, *, observable=None, value=None,
                 name=None, y0=None, p=None, delimiter=","):
        """Measurements from a CSV file with a header row (pandas not needed).

        The layout and arguments are those of :meth:`from_dataframe`; empty cells and
        ``nan``/``NA`` are not-measured values.
        """
        with open(path, newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            try:
                header = [cell.strip() for cell in next(reader)]
            except StopIteration:
                raise ValueError(f"{path}: the CSV file is empty") from None
            rows = [row for row in reader if any(cell.strip() for cell in row)]
        for number, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise ValueError(
                    f"{path}, line {number}: {len(row)} cells, but the header has "
                    f"{len(header)}"
                )
        records = {name_: [row[i].strip() for row in rows] for i, name_ in enumerate(header)}
        return cls._from_columns(
            records, header, time, columns, sigma, observable, value, name, y0, p,
            f"column of {path}",
        )

    @classmethod
    def _from_columns(cls, records, names, time, columns, sigma, observable, value, name,
                      y0, p, where):
        def column(key, role):
            if key not in records:
                raise ValueError(
                    f"`{role}`: no {where} named {key!r}; there are {', '.join(names)}"
                )
            return records[key]

        def numbers_of(key, role):
            raw = column(key, role)
            out = np.empty(len(raw))
            for i, cell in enumerate(raw):
                out[i] = _number(cell, key, i, where)
            return out

        t = numbers_of(time, "time")
        if (observable is None) != (value is None):
            raise ValueError(
                "a long table needs both `observable=` (the column naming the observable) "
                "and `value=` (the column holding the value)"
            )
        if observable is None:  # wide
            if columns is None:
                columns = [c for c in names if c != time]
            columns = list(columns)
            if not columns:
                raise ValueError("`columns`: no observable columns to read")
            y = np.array([numbers_of(c, "columns") for c in columns])
            if sigma is None or isinstance(sigma, numbers.Real):
                sigma_values = sigma
            else:
                by_observable = sigma if isinstance(sigma, Mapping) else dict(
                    zip(columns, list(sigma), strict=True)
                )
                sigma_values = np.array([numbers_of(by_observable[c], "sigma")
                                         for c in columns])
            return cls(t, y, sigma=sigma_values, name=name, y0=y0, p=p,
                       observables=[str(c) for c in columns])
        # long: one measurement per row
        labels = [str(x) for x in column(observable, "observable")]
        measured = numbers_of(value, "value")
        if columns is None:
            columns = list(dict.fromkeys(labels))
        columns = [str(c) for c in columns]
        unknown = sorted(set(columns) - set(labels))
        if unknown:
            raise ValueError(f"`columns`: observables {unknown} do not occur in {observable!r}")
        if sigma is None or isinstance(sigma, numbers.Real):
            sigma_column = None
        else:
            sigma_column = numbers_of(sigma, "sigma")
        # group the rows into columns of y by time: a measurement goes into the first column
        # of its time where its observable is still empty (replicates open new columns)
        row_of = {c: k for k, c in enumerate(columns)}
        column_times, slots, column_sigma = [], [], []
        open_columns = {}
        for i, label in enumerate(labels):
            if label not in row_of:
                continue
            row = row_of[label]
            for j in open_columns.get(t[i], ()):
                if math.isnan(slots[j][row]):
                    break
            else:
                j = len(column_times)
                column_times.append(t[i])
                slots.append([math.nan] * len(columns))
                column_sigma.append([math.nan] * len(columns))
                open_columns.setdefault(t[i], []).append(j)
            slots[j][row] = measured[i]
            if sigma_column is not None:
                column_sigma[j][row] = sigma_column[i]
        if not column_times:
            raise ValueError(f"no rows of the observables {columns} in {observable!r}")
        y = np.array(slots).T
        s = np.array(column_sigma).T if sigma_column is not None else sigma
        return cls(column_times, y, sigma=s, name=name, y0=y0, p=p, observables=columns)


def _number(cell, column, row, where):
    if isinstance(cell, str):
        text = cell.strip()
        if text == "" or text.lower() in ("nan", "na", "n/a", "null", "none"):
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise ValueError(
                f"{where} {column!r}, row {row + 1}: {cell!r} is not a number"
            ) from None
    if cell is None:
        return math.nan
    try:
        return float(cell)
    except (TypeError, ValueError):
        raise ValueError(f"{where} {column!r}, row {row + 1}: {cell!r} is not a number") from None
