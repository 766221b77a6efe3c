"""The shared time definitions: one split rule (purge + embargo), target names, feature columns."""

import logging

import numpy as np
import pandas as pd
import pytest

from utils.errors import ConfigError, DataError
from utils.timeline import (
    TimeSplit,
    check_periods,
    embargo_bars,
    expanding_splits,
    feature_columns,
    horizon_of,
    label_end,
    period_delta,
    target_name,
    time_at_share,
)


def _shuffled_hours(n: int, seed: int) -> pd.Series:
    ts = pd.Series(pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"))
    return ts.sample(frac=1, random_state=seed).reset_index(drop=True)  # row order must not matter


def test_no_label_of_a_span_reaches_into_a_later_span_and_the_embargo_holds():
    """Property over random spans, horizons and embargoes (1h bars, shuffled rows)."""
    rng = np.random.default_rng(0)
    ts = _shuffled_hours(3000, 1)
    hour = pd.Timedelta(hours=1)
    for _ in range(60):
        h = int(rng.integers(1, 30))
        emb = embargo_bars(int(rng.integers(0, 40)), h)
        cuts = np.sort(rng.choice(np.arange(100, 2900), size=3, replace=False))
        edges = (None, *(ts.min() + hour * int(c) for c in cuts[:2]), ts.min() + hour * int(cuts[2]))
        split = TimeSplit(edges, "1h", h, emb, ("train", "val", "test"))
        idx = split.indices(ts)
        spans = [ts.iloc[idx[n]] for n in split.names]
        for i, rows in enumerate(spans):
            if rows.empty:
                continue
            if i > 0:  # starts an embargo after its edge
                assert rows.min() >= edges[i] + hour * emb
            if i < len(spans) - 1:  # its labels are known before the next span's edge
                assert (label_end(rows, "1h", h) <= edges[i + 1]).all()
                later = pd.concat(spans[i + 1:])
                if not later.empty:
                    assert rows.max() + hour * (h + 1) <= later.min()
            else:
                assert rows.max() < edges[-1]


def test_spans_are_disjoint_and_the_purge_drops_exactly_the_overlapping_labels():
    ts = pd.Series(pd.date_range("2024-01-01", periods=100, freq="h", tz="UTC"))
    boundary = ts[60]
    split = TimeSplit.two_way(boundary, "1h", horizon=4, embargo=6)
    fit, ev = split.indices(ts).values()
    assert fit.max() == 60 - 5  # row t's label is known at t + 5h <= boundary
    assert ev.min() == 60 + 6 and ev.max() == 99
    assert not set(fit) & set(ev)


def test_embargo_rule_is_never_shorter_than_the_horizon(caplog):
    assert embargo_bars(None, 24) == 24
    assert embargo_bars(48, 24) == 48
    with caplog.at_level(logging.WARNING):
        assert embargo_bars(2, 24, "leaf.yaml") == 24
    assert "leaf.yaml: embargo_bars 2 is shorter than the label horizon 24" in caplog.text


def test_expanding_folds_fit_before_and_test_after():
    ts = pd.Series(pd.date_range("2024-01-01", periods=3000, freq="h", tz="UTC")).repeat(2).reset_index(drop=True)
    for h, emb in ((1, 1), (24, 24), (4, 10)):
        folds = expanding_splits(ts, 4, "1h", h, emb)
        assert len(folds) == 4 and folds[-1].edges[-1] is None
        for fold in folds:
            fit, test = fold.indices(ts).values()
            assert ts[fit].max() + pd.Timedelta(hours=h) < ts[test].min() - pd.Timedelta(hours=emb - 1)


def test_split_edges_must_increase():
    a, b = pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC")
    with pytest.raises(DataError, match="split edges must increase"):
        TimeSplit((None, a, b), "1h", 1, 1)


def test_time_at_share_and_periods():
    ts = pd.Series(pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")).repeat(3)
    assert time_at_share(ts, 0.5) == pd.Timestamp("2024-01-06", tz="UTC")
    assert time_at_share(ts, 1.0) == ts.max()
    assert period_delta("4h") == pd.Timedelta(hours=4)
    with pytest.raises(ConfigError, match=r"key 'periods' = \['1h', '7x'\]: unknown period\(s\) \['7x'\]"):
        check_periods("periods", ["1h", "7x"])
    with pytest.raises(DataError, match="unknown period '7x'"):
        period_delta("7x")


def test_target_names_round_trip():
    for kind in ("logreturn", "binarytrend", "vol", "drawdown"):
        for h in (1, 4, 24):
            assert horizon_of(target_name(kind, h)) == h
    assert target_name("vol", 1) == "target_vol"
    with pytest.raises(DataError, match="unknown target kind 'ret'"):
        target_name("ret", 1)


def test_feature_columns_leave_out_ids_targets_flags_and_text():
    frame = pd.DataFrame({"symbol": ["A"], "period": ["1h"], "timestamp": pd.to_datetime(["2024-01-01"], utc=True),
                          "time_idx": [0], "gap_before": [False], "rsi": [50.0], "flag": [True],
                          "target_logreturn": [0.1], "note": ["x"], "n": [3]})
    assert feature_columns(frame) == ["rsi", "n"]
    assert feature_columns(frame, exclude=["n"]) == ["rsi"]
