import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from src.market_data import KLINE_COLUMNS, discover_raw, load_klines
from src.synthetic_market import (
    FUNDING_COLUMNS,
    METRICS_COLUMNS,
    MarketSpec,
    _simulate_latent,
    main,
    simulate,
    write_market,
)
from utils.errors import ConfigError


@pytest.fixture(scope="module")
def year_market():
    """Two symbols over a year with strong drivers, for statistical checks."""
    return simulate(MarketSpec(n_symbols=2, days=365, seed=3, strength=2.0, late_listing_fraction=0.0))


def _returns(market, symbol):
    k = market.klines[symbol]
    ts = pd.to_datetime(k["open_time"], unit="ms", utc=True)
    return pd.Series(np.log(k["close"]).diff().to_numpy(), index=ts)


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deterministic_by_seed(tmp_path, small_spec, small_market):
    write_market(small_market, tmp_path / "a")
    write_market(simulate(small_spec), tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other = simulate(MarketSpec(**{**small_spec.__dict__, "seed": 12}))
    assert not np.allclose(other.klines["BTCUSDT"]["close"][:100], small_market.klines["BTCUSDT"]["close"][:100])


def test_binance_layouts(small_raw_dir, small_market):
    name = "BTCUSDT"
    kl = small_market.klines[name]
    assert list(kl.columns) == KLINE_COLUMNS
    assert (kl["close_time"] - kl["open_time"] == 3_599_999).all() and kl["open_time"].iloc[0] > 1e12
    assert list(small_market.funding[name].columns) == FUNDING_COLUMNS
    assert list(small_market.metrics[name].columns) == METRICS_COLUMNS
    files = discover_raw(small_raw_dir).klines[name]
    assert files[0].name == "BTCUSDT-1h-2023-01.zip"
    loaded = load_klines(files, name)
    np.testing.assert_allclose(loaded["close"], kl["close"], rtol=1e-9)


def test_late_listing_missing_bars_and_onchain_start(small_spec, small_market):
    gt = small_market.ground_truth
    last = gt["symbols"][-1]
    first_open = pd.to_datetime(small_market.klines[last]["open_time"].iloc[0], unit="ms", utc=True)
    assert first_open == pd.Timestamp(gt["listing_time"][last]) > pd.Timestamp(small_spec.start, tz="UTC")
    for sym, frame in small_market.klines.items():
        steps = np.diff(frame["open_time"].to_numpy()) // 3_600_000
        assert int((steps - 1).sum()) == gt["missing_bars"][sym]
    assert small_market.onchain["date"].iloc[0] == gt["onchain_start"] == "2023-01-11"
    assert small_market.funding[last]["calc_time"].iloc[0] > small_market.funding["BTCUSDT"]["calc_time"].iloc[0]


def test_stylized_facts(year_market):
    r_btc, r_eth = _returns(year_market, "BTCUSDT"), _returns(year_market, "ETHUSDT")
    z = (r_btc / r_btc.rolling(240, min_periods=48).std().shift()).dropna()
    assert z.kurt() > 1.0  # fat tails even after scaling by recent volatility
    a = r_btc.abs().dropna()
    assert a.autocorr(1) > 0.1 and a.autocorr(24) > 0.05  # volatility clustering
    assert r_btc.corr(r_eth) > 0.4  # common market factor
    vol = np.log(year_market.klines["BTCUSDT"]["volume"].to_numpy()[1:])
    assert np.corrcoef(vol, a.to_numpy())[0, 1] > 0.2  # volume-volatility coupling


def test_regimes_switch():
    lat = _simulate_latent(MarketSpec(), np.random.default_rng(7))
    assert set(np.unique(lat.regime)) == {0, 1, 2, 3}
    assert 10 < np.count_nonzero(np.diff(lat.regime)) < 200


def test_oracle_is_truthful_and_aligned(year_market):
    """Realized next-bar returns regress on the oracle's expectation with slope ~1."""
    oracle = year_market.oracle
    for sym in ("BTCUSDT", "ETHUSDT"):
        r = _returns(year_market, sym)
        o = oracle[oracle.symbol == sym].set_index("timestamp")
        nxt = r.shift(-1).reindex(o.index)  # return of the bar after t
        ok = nxt.notna() & o["exp_logreturn_h1"].notna()
        slope = np.polyfit(o.loc[ok, "exp_logreturn_h1"], nxt[ok], 1)[0]
        assert 0.7 < slope < 1.3
        up = (nxt[ok] > 0).astype(float)
        p = o.loc[ok, "prob_up_h1"]
        brier, base = ((p - up) ** 2).mean(), ((up.mean() - up) ** 2).mean()
        assert brier < base and abs((up - p).mean()) < 0.02  # better than base rate, calibrated in the mean


def test_planted_funding_driver_is_in_the_published_files(year_market):
    """The driver works from what a researcher can see: the last *published* funding rate."""
    fr = year_market.funding["BTCUSDT"]
    pub = pd.Series(fr["last_funding_rate"].to_numpy(), index=pd.to_datetime(fr["calc_time"], unit="ms", utc=True))
    r = _returns(year_market, "BTCUSDT")
    close_time = r.index + pd.Timedelta(hours=1)
    last = pub.reindex(pub.index.union(close_time)).ffill().reindex(close_time).to_numpy()
    fz = (last - 1e-4) / 4e-4
    ext = np.sign(fz) * np.maximum(np.abs(fz) - 1, 0)
    nxt = r.shift(-1).to_numpy() / r.rolling(48).std().to_numpy()
    ok = np.isfinite(ext) & np.isfinite(nxt)
    assert np.corrcoef(ext[ok], nxt[ok])[0, 1] < -0.03


def test_oracle_components_add_up(small_market):
    o = small_market.oracle.dropna()
    drift = o[[c for c in o.columns if c.startswith("drift_h1_")]].sum(axis=1)
    np.testing.assert_allclose(drift, o["exp_logreturn_h1"], rtol=1e-9, atol=1e-15)
    from scipy import stats

    prob = stats.t.cdf(o["exp_logreturn_h1"] / o["sigma_h1"] * np.sqrt(2.0), df=4.0)
    np.testing.assert_allclose(prob, o["prob_up_h1"], rtol=1e-9)


def test_zero_strength_means_coin_flip_oracle():
    m = simulate(MarketSpec(n_symbols=2, days=30, strength=0.0))
    assert np.allclose(m.oracle["prob_up_h1"].dropna(), 0.5)
    assert np.allclose(m.oracle["exp_logreturn_h24"].dropna(), 0.0)


def test_ground_truth_documents_drivers(small_raw_dir):
    gt = json.loads((small_raw_dir / "ground_truth.json").read_text())
    names = {d["name"] for d in gt["drivers"]}
    assert {"funding_extreme", "oi_change_x_momentum", "exchange_net_flow", "regime_drift"} <= names
    oracle = pd.read_parquet(small_raw_dir / "oracle.parquet")
    assert {"prob_up_h1", "exp_logreturn_h24"} <= set(oracle.columns) and str(oracle["timestamp"].dt.tz) == "UTC"


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"n_symbols": 0}, r"'n_symbols' = 0 must be in \[1, 1000\]"),
    ({"days": 3}, r"'days' = 3 must be >= 30"),
    ({"nu": 2.0}, r"'nu' = 2\.0 must be > 2\.5"),
    ({"horizons": (0,)}, r"'horizons' = \(0,\) must all be >= 1"),
])
def test_invalid_spec(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        simulate(MarketSpec(**kwargs))


def test_cli(tmp_path, caplog):
    assert main(["--out", str(tmp_path / "raw"), "--symbols", "2", "--days", "31", "--seed", "1"]) == 0
    assert (tmp_path / "raw" / "ground_truth.json").is_file()
    assert main(["--out", str(tmp_path / "x"), "--days", "2"]) == 2
    assert "'days' = 2 must be >= 30" in caplog.text
