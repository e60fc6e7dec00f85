"""``Data``: measurements validated and normalised where they are loaded."""

import doctest

import numpy as np
import pytest

from paramest import data as data_module
from paramest.data import Data


def test_arrays_are_sorted_by_time_keeping_replicates():
    d = Data([2.0, 0.0, 1.0, 1.0], [[4.0, 1.0, 2.0, 2.5], [np.nan, 0.0, 1.0, 1.1]],
             sigma=[0.1, 0.2], name="exp1")
    np.testing.assert_array_equal(d.t, [0.0, 1.0, 1.0, 2.0])
    np.testing.assert_array_equal(d.y[0], [1.0, 2.0, 2.5, 4.0])
    np.testing.assert_array_equal(d.times, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(d.time_index, [0, 1, 1, 2])
    np.testing.assert_array_equal(d.sigma[:, 0], [0.1, 0.2])
    assert d.n_measured == 7 and d.sigma_known and d.name == "exp1"
    assert not d.measured[1, -1]
    assert "exp1" in repr(d) and "7 values" in repr(d)
    with pytest.raises(ValueError):
        d.y[0, 0] = 5.0  # read-only


def test_sigma_forms_and_default():
    t, y = [0.0, 1.0], [[1.0, 2.0], [3.0, 4.0]]
    assert not Data(t, y).sigma_known
    np.testing.assert_array_equal(Data(t, y).sigma, np.ones((2, 2)))
    np.testing.assert_array_equal(Data(t, y, sigma=0.5).sigma, np.full((2, 2), 0.5))
    np.testing.assert_array_equal(Data(t, y, sigma=[[1, 2], [3, 4]]).sigma, [[1, 2], [3, 4]])
    # NaN sigma is fine where nothing was measured
    Data(t, [[1.0, np.nan], [3.0, 4.0]], sigma=[[1.0, np.nan], [1.0, 1.0]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(t=[0.0, np.nan], y=[[1.0, 2.0]]), r"`t` must be finite, but t\[1\]"),
        (dict(t=[], y=[[]]), "`t` must be a non-empty"),
        (dict(t=[0.0, 1.0], y=[[1.0, 2.0, 3.0]]), r"`y` must have shape .* n_times = 2"),
        (dict(t=[0.0, 1.0], y=[[1.0, np.inf]]), r"finite or NaN .* y\[0, 1\]"),
        (dict(t=[0.0, 1.0], y=[[np.nan, np.nan]]), "no measured value"),
        (dict(t=[0.0, 1.0], y=[[1.0, 2.0]], sigma=0.0), r"`sigma` must be positive"),
        (dict(t=[0.0, 1.0], y=[[1.0, 2.0]], sigma=-1.0), r"`sigma` must be positive"),
        (dict(t=[0.0, 1.0], y=[[1.0, 2.0]], sigma=[1.0, 2.0, 3.0]), r"`sigma` must be a number"),
        (dict(t=[0.0, 1.0], y=[[1.0, 2.0]], y0="abc"), "`y0` must be a dict by name"),
        (dict(t=[0.0, 1.0], y=[[1.0, 2.0]], p=[1.0, np.nan]), "`p` must be a dict by name"),
        (dict(t=[0.0, 1.0], y=[[1.0, 2.0]], observables=["a", "b"]), "`observables` must be 1"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    t = kwargs.pop("t")
    y = kwargs.pop("y")
    with pytest.raises(ValueError, match=message):
        Data(t, y, **kwargs)


def test_name_must_be_a_string():
    with pytest.raises(TypeError, match="`name` must be a string"):
        Data([0.0], [[1.0]], name=3)


def test_conditions_are_kept():
    d = Data([0.0], [[1.0]], y0={"A": 2.0}, p=[1.0, 2.0])
    assert d.y0 == {"A": 2.0}
    assert d.p == [1.0, 2.0]


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_wide_with_sigma_columns_and_missing_cells(tmp_path):
    path = _write(tmp_path / "wide.csv", "time,A,B,sA,sB\n1,0.6,0.3,0.1,0.2\n0,1.0,,0.1,0.2\n"
                  "2,0.4,NA,0.1,0.2\n")
    d = Data.from_csv(path, time="time", columns=["A", "B"], sigma=["sA", "sB"], name="w")
    np.testing.assert_array_equal(d.t, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(d.y[0], [1.0, 0.6, 0.4])
    assert np.isnan(d.y[1, 0]) and np.isnan(d.y[1, 2]) and d.y[1, 1] == 0.3
    np.testing.assert_array_equal(d.sigma[:, 1], [0.1, 0.2])
    assert d.observables == ("A", "B")


def test_csv_long_groups_measurements_by_time_with_replicates(tmp_path):
    path = _write(tmp_path / "long.csv",
                  "t,species,conc,sd\n0,A,1.0,0.1\n0,B,0.0,0.1\n1,A,0.6,0.1\n1,A,0.62,0.1\n"
                  "1,B,0.3,0.2\n2,C,9,1\n")
    d = Data.from_csv(path, time="t", observable="species", value="conc", sigma="sd",
                      columns=["A", "B"])
    # t = 0 (A and B), t = 1 (A, B) and a replicate column at t = 1 (A only)
    np.testing.assert_array_equal(d.t, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(d.y[0], [1.0, 0.6, 0.62])
    np.testing.assert_array_equal(d.y[1, :2], [0.0, 0.3])
    assert np.isnan(d.y[1, 2])
    assert d.sigma[1, 1] == 0.2
    assert d.n_measured == 5


def test_csv_errors_name_the_column_and_line(tmp_path):
    path = _write(tmp_path / "bad.csv", "time,A\n0,1.0\n1,abc\n")
    with pytest.raises(ValueError, match=r"column of .*bad.csv 'A', row 2: 'abc' is not a number"):
        Data.from_csv(path, time="time")
    with pytest.raises(ValueError, match=r"`time`: no column .* named 'T'; there are time, A"):
        Data.from_csv(path, time="T")
    ragged = _write(tmp_path / "ragged.csv", "time,A\n0,1.0,3\n")
    with pytest.raises(ValueError, match="line 2: 3 cells, but the header has 2"):
        Data.from_csv(ragged, time="time")
    empty = _write(tmp_path / "empty.csv", "")
    with pytest.raises(ValueError, match="the CSV file is empty"):
        Data.from_csv(empty, time="time")
    with pytest.raises(ValueError, match="needs both `observable=`"):
        Data.from_csv(path, time="time", observable="A")


def test_dataframe_wide_and_long():
    pd = pytest.importorskip("pandas")
    wide = pd.DataFrame({"t": [0.0, 1.0, 2.0], "A": [1.0, 0.6, 0.4], "B": [0.0, 0.3, None]})
    d = Data.from_dataframe(wide, time="t", sigma={"A": "A", "B": "A"})
    np.testing.assert_array_equal(d.sigma[1], [1.0, 0.6, 0.4])
    long = pd.DataFrame({"t": [0, 0, 1], "obs": ["A", "B", "A"], "v": [1.0, 2.0, 0.5]})
    d = Data.from_dataframe(long, time="t", observable="obs", value="v", sigma=0.1)
    np.testing.assert_array_equal(d.y, [[1.0, 0.5], [2.0, np.nan]])
    assert d.observables == ("A", "B") and d.sigma_known


def test_docstring_examples():
    pytest.importorskip("pandas")
    failures, tried = doctest.testmod(data_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0
