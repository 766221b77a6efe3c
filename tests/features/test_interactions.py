import numpy as np
import pandas as pd
import pytest

from features.interactions import CLIP, PairScreen, pair_products, sample_rows

KINDS = ["classification", "regression"]


def _persistent_inputs(n_stamps: int, n_symbols: int, n_inputs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fat-tailed AR(1) inputs (persistence 0.9, like rolling indicators) of a panel sorted by timestamp, and the
    timestamps."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(4, size=(n_stamps, n_symbols, n_inputs)) / np.sqrt(2.0)
    x = np.empty_like(shocks)
    x[0] = shocks[0]
    for t in range(1, n_stamps):  # a test fixture: n_stamps steps of a vectorized AR(1)
        x[t] = 0.9 * x[t - 1] + np.sqrt(1 - 0.81) * shocks[t]
    ts = np.repeat(pd.date_range("2024-01-01", periods=n_stamps, freq="h").asi8, n_symbols)
    return x.reshape(-1, n_inputs), ts


def _targets(logit: np.ndarray, value: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    up = (rng.random(len(logit)) < 1 / (1 + np.exp(-logit))).astype(float)
    return np.column_stack([up, value + rng.standard_t(4, len(value))])


def test_pair_products_clip_then_tanh():
    X = np.array([[1.0, 2.0, -30.0], [0.5, -1.0, 3.0]])
    got = pair_products(X, np.array([0, 1]), np.array([1, 2]))
    assert np.allclose(got, np.tanh([[2.0, 2.0 * -CLIP], [-0.5, -3.0]]))


def test_sample_rows_caps_with_a_seeded_sorted_subset():
    assert np.array_equal(sample_rows(10, 20, seed=0), np.arange(10))
    rows = sample_rows(1000, 100, seed=3)
    assert len(np.unique(rows)) == 100 and np.all(np.diff(rows) > 0) and rows.max() < 1000
    assert np.array_equal(rows, sample_rows(1000, 100, seed=3)) and not np.array_equal(rows, sample_rows(1000, 100, 4))


def test_screen_finds_a_planted_product_for_either_target_kind_and_only_it():
    X, ts = _persistent_inputs(3000, 3, 8, seed=0)
    # a strong main effect (must not leak into any pair: the products are projected off the inputs) and one product
    Y = _targets(0.8 * X[:, 0] + 0.5 * np.tanh(X[:, 2] * X[:, 5]), 0.3 * np.tanh(X[:, 1] * X[:, 4]), seed=0)
    screen = PairScreen(max_pairs=5).fit(X, Y, ts, KINDS, [1, 1], ["up", "ret"])
    assert screen.n_tested_ == 28 and screen.critical_ > 3
    assert set(screen.pairs_) == {(2, 5), (1, 4)}
    assert dict(zip(screen.pairs_, screen.targets_, strict=True)) == {(2, 5): "up", (1, 4): "ret"}
    assert (np.abs(screen.tstats_) > screen.critical_).all() and (screen.tstats_ > 0).all()
    assert np.allclose(screen.transform(X), pair_products(X, np.array([p[0] for p in screen.pairs_]),
                                                          np.array([p[1] for p in screen.pairs_])))
    table = screen.table([f"x{i}" for i in range(8)])
    assert list(table.columns) == ["left", "right", "tstat", "target"] and set(table["left"]) == {"x2", "x1"}
    # the cap keeps the strongest; a row cap still finds them (seeded subset)
    capped = PairScreen(max_pairs=1).fit(X, Y, ts, KINDS, [1, 1])
    assert capped.pairs_ == screen.pairs_[:1]
    assert set(PairScreen(5, max_rows=6000).fit(X, Y, ts, KINDS, [1, 1]).pairs_) == {(2, 5), (1, 4)}


def test_screen_keeps_nothing_without_an_interaction():
    X, ts = _persistent_inputs(3000, 3, 8, seed=1)
    Y = _targets(0.8 * X[:, 0] - 0.6 * X[:, 3], 0.5 * X[:, 1], seed=1)  # main effects only
    screen = PairScreen(max_pairs=5).fit(X, Y, ts, KINDS, [1, 1])
    assert screen.pairs_ == [] and screen.transform(X).shape == (len(X), 0)
    assert screen.scores_.shape == (28,) and 0 < np.abs(screen.scores_).max() < screen.critical_


def test_screen_ignores_unlabelled_rows_and_single_class_targets():
    X, ts = _persistent_inputs(2000, 2, 6, seed=2)
    Y = _targets(0.6 * np.tanh(X[:, 0] * X[:, 1]), np.zeros(len(X)), seed=2)
    Y[::7, 0] = np.nan
    Y[:, 1] = 0.0  # a constant target: nothing to explain, no test
    Y[-50:, 1] = np.nan
    screen = PairScreen(max_pairs=3).fit(X, Y, ts, ["classification", "regression"], [1, 4])
    assert screen.pairs_ == [(0, 1)]


@pytest.mark.parametrize("calendar", ["24/7", "session"])
def test_screen_on_null_ohlcv_panels_keeps_no_pair(null_ohlcv_panel, calendar):
    """Random walks with volatility clustering and fat tails, through the real indicator and target code: the
    products of real indicators explain nothing of the next bars' direction or return."""
    panel = null_ohlcv_panel(3000, 3, "1h", calendar)
    inputs = ["ret_1", "ret_4", "ret_24", "rv_24", "rsi_14", "bb_pctb", "volume_z_48", "macd_norm", "adx_14",
              "cmf_20", "hour_sin", "wick_lower_ratio"]
    targets = ["target_binarytrend", "target_logreturn"]
    rows = panel.dropna(subset=inputs + targets)
    X = rows.groupby("symbol")[inputs].transform(lambda s: (s - s.mean()) / s.std()).to_numpy()
    screen = PairScreen(max_pairs=10).fit(X, rows[targets].to_numpy(), rows["timestamp"].to_numpy(), KINDS, [1, 1])
    assert screen.n_tested_ == 66 and screen.pairs_ == []
