import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter
from sklearn.linear_model import LinearRegression

from features.selection.common import purged_folds, time_permutation
from features.selection.stats import (
    autocorr_length,
    benjamini_hochberg,
    correlation_clusters,
    newey_west_tstat,
    vif_from_corr,
)


def test_newey_west_equals_naive_t_at_lag_zero_and_deflates_persistent_series():
    rng = np.random.default_rng(0)
    x = rng.normal(0.05, 1, 5000)
    naive = x.mean() / (x.std() / np.sqrt(len(x)))
    assert newey_west_tstat(x, 0) == pytest.approx(naive, rel=1e-9)
    ar = lfilter([1], [1, -0.9], rng.normal(0, 1, 5000)) + 0.2
    assert abs(newey_west_tstat(ar, 40)) < 0.5 * abs(newey_west_tstat(ar, 0))


def test_benjamini_hochberg_matches_its_definition():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(0, 0.002, 10), rng.uniform(0, 1, 90), [np.nan]])
    got = benjamini_hochberg(p, 0.05)
    ok = np.isfinite(p)
    ps = np.sort(p[ok])
    m = ok.sum()
    k = max([i + 1 for i in range(m) if ps[i] <= 0.05 * (i + 1) / m], default=0)
    expected = np.zeros(len(p), bool)
    expected[ok] = p[ok] <= (ps[k - 1] if k else -1)
    np.testing.assert_array_equal(got, expected)
    assert not got[-1]


def test_vif_from_inverse_correlation_equals_regression_vif():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 4))
    X[:, 3] = X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=3000)
    vif = vif_from_corr(np.corrcoef(X, rowvar=False))
    for j in range(4):
        others = np.delete(X, j, axis=1)
        r2 = LinearRegression().fit(others, X[:, j]).score(others, X[:, j])
        assert vif[j] == pytest.approx(1 / (1 - r2), rel=1e-6)


def test_correlation_clusters_group_near_copies():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=2000), rng.normal(size=2000)
    frame = pd.DataFrame({"a": a, "a2": a + 0.05 * rng.normal(size=2000), "b": b,
                          "a3": a + 0.1 * rng.normal(size=2000)})
    cl = correlation_clusters(frame.corr(), 0.9)
    assert cl["a"] == cl["a2"] == cl["a3"] != cl["b"]


def test_purged_folds_drop_empty_folds_and_keep_the_timeline_rule():
    ts = pd.Series(pd.date_range("2024-01-01", periods=3000, freq="h", tz="UTC")).repeat(2).reset_index(drop=True)
    folds = purged_folds(ts, 4, "1h", 4, 10)
    assert len(folds) == 4
    for train, test in folds:
        assert ts[train].max() + pd.Timedelta(hours=5) <= ts[test].min() - pd.Timedelta(hours=10)
    assert purged_folds(ts.iloc[:3], 4, "1h", 4, 10) == []


def test_time_permutations_move_persistent_series_far():
    rng = np.random.default_rng(4)
    rows = [np.arange(0, 500), np.arange(500, 1000)]
    for mode in ("cyclic", "block"):
        idx = time_permutation(1000, rows, rng, 48, mode)
        assert sorted(idx[:500]) == list(range(500)) and sorted(idx[500:]) == list(range(500, 1000))
        if mode == "cyclic":
            assert np.median(np.abs(idx - np.arange(1000))) >= 48
    cyc = time_permutation(1000, rows, np.random.default_rng(5), 48, "cyclic")
    shift = (cyc[0] - 0) % 500
    assert 48 <= shift <= 452


def test_autocorr_length_of_ar1():
    rng = np.random.default_rng(6)
    x = lfilter([1], [1, -0.95], rng.normal(size=20000))
    assert 12 <= autocorr_length(x) <= 30  # 1/e crossing of 0.95**k at k ~ 19.5
