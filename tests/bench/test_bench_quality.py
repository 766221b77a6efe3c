"""``bench/bench_quality.py``: the planted-driver table (bench/ is scripts, loaded by path)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.bench.conftest import load_bench_script


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("bench_quality")


def _planted(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Outcomes drawn from two independent drivers, one strong and one weak, as the oracle file describes them."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(0.3 * rng.standard_normal(n))
    strong, weak = 0.3 * rng.standard_normal(n), 0.05 * rng.standard_normal(n)
    joined = pd.DataFrame({"sigma_h1": sigma, "drift_h1_strong": sigma * strong, "drift_h1_weak": sigma * weak})
    joined["prob_up_h1"] = stats.t.cdf((strong + weak) * np.sqrt(2.0), df=4.0)
    y = (rng.random(n) < joined["prob_up_h1"].to_numpy()).astype(float)
    return y, joined


def test_driver_table_says_which_driver_a_model_found(bench):
    y, joined = _planted()
    z_strong = (joined["drift_h1_strong"] / joined["sigma_h1"]).to_numpy()
    noise = np.random.default_rng(1).standard_normal(len(y))
    table = bench.driver_table(y, {"found_strong": z_strong, "noise": noise}, joined)
    assert list(table.index) == ["strong", "weak", "all"]
    assert list(table.columns) == ["alone", "without", "oracle", "found_strong", "noise"]
    # the strong driver alone carries most of the oracle's lift, and removing it loses most of it
    assert table.loc["strong", "alone"] > 0.8 > table.loc["weak", "alone"]
    assert table.loc["strong", "without"] < 0.2 < table.loc["weak", "without"]
    assert table.loc["strong", "found_strong"] == pytest.approx(1.0)
    assert abs(table.loc["weak", "found_strong"]) < 0.05
    assert abs(table.loc["strong", "noise"]) < 0.05
    # the reference: the oracle ranks exactly by its whole drift, and mostly by the strong driver
    assert table.loc["all", "oracle"] == pytest.approx(1.0)
    assert table.loc["all", "alone"] == pytest.approx(1.0)
    assert table.loc["strong", "oracle"] > table.loc["weak", "oracle"]


def test_driver_table_skips_rows_without_an_oracle(bench):
    y, joined = _planted(n=4000)
    joined.loc[:99, "sigma_h1"] = np.nan  # e.g. the last bar of a symbol: no next bar
    z = (joined["drift_h1_strong"] / joined["sigma_h1"]).to_numpy()
    table = bench.driver_table(y, {"m": np.nan_to_num(z)}, joined)
    assert np.isfinite(table.to_numpy(dtype=float)).all()
