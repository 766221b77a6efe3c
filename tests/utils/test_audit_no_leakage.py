import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_z_table
from utils import audit_no_leakage
from utils.audit_no_leakage import audit
from utils.errors import DataError


@pytest.fixture
def clean():
    # market-like signal strength: an honest score correlates with the direction well below 0.3
    return make_z_table(n_bars=800, strength=0.3)


def _result(z):
    return {c.name: c for c in audit(z)}


def test_clean_table_passes(clean):
    checks = _result(clean)
    assert all(c.passed for c in checks.values()), {n: c.detail for n, c in checks.items() if not c.passed}


def test_duplicate_row_fails(clean):
    z = pd.concat([clean, clean.iloc[[5]]], ignore_index=True)
    assert not _result(z)["duplicates"].passed


def test_time_reversal_fails(clean):
    z = clean.copy()
    z.loc[10, "timestamp"] = z.loc[3, "timestamp"]
    r = _result(z)["time_order"]
    assert not r.passed and "AAA" in r.detail


def test_gap_fails(clean):
    z = clean[~clean["time_idx"].between(100, 300)]
    r = _result(z)["gaps"]
    assert not r.passed and "202 bars (limit 168)" in r.detail
    assert _result(clean[~clean["time_idx"].between(100, 160)])["gaps"].passed  # an outage plus warm-up


def test_leaky_column_is_named(clean):
    z = clean.assign(sneaky_feature=clean["target_logreturn"] + np.random.default_rng(0).normal(0, 0.002, len(clean)))
    r = _result(z)["leak_correlation"]
    assert not r.passed and "sneaky_feature ~ target_logreturn" in r.detail


def test_late_prediction_fails(clean):
    z = clean.copy()
    z.loc[z.index[:20], "E2__pred_time"] = z.loc[z.index[:20], "timestamp"] + pd.Timedelta(hours=3)
    r = _result(z)["late_prediction"]
    assert not r.passed and r.detail.startswith("E2: 20 rows")


def test_missing_share_fails(clean):
    z = clean.assign(regime_oi_slope=np.where(np.arange(len(clean)) % 3 == 0, 1.0, np.nan))
    r = _result(z)["missing"]
    assert not r.passed and "regime_oi_slope" in r.detail


def test_cli_exit_codes_and_table(clean, tmp_path, capsys):
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    clean.to_parquet(good)
    clean.assign(leak=clean["target_binarytrend"]).to_parquet(bad)
    assert audit_no_leakage.main(["--path", str(good)]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].split() == ["overall", "PASS"]
    assert audit_no_leakage.main(["--path", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "leak_correlation  FAIL" in out and "leak ~ target_binarytrend" in out
    assert audit_no_leakage.main(["--path", str(tmp_path / "none.parquet")]) == 2


def test_not_a_z_table():
    with pytest.raises(DataError, match=r"lacks key column\(s\) \['time_idx'\]"):
        audit(pd.DataFrame({"symbol": ["A"], "period": ["1h"], "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]}))
