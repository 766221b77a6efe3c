import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, mean_squared_error

from utils.eval_report import eval_report, format_table, write_eval_report


@pytest.fixture
def long_predictions():
    rng = np.random.default_rng(0)
    n = 400
    rows = []
    for sym in ("AAA", "BBB"):
        p = rng.random(n)
        y = (rng.random(n) < p).astype(float)
        y[:10] = np.nan  # outcome not known yet: not scored
        rows.append(pd.DataFrame({"symbol": sym, "period": "1h", "target": "target_binarytrend",
                                  "kind": "classification", "score": p, "y_true": y, "p10": np.nan, "p50": np.nan,
                                  "p90": np.nan}))
        mu = rng.normal(0, 0.01, n)
        yr = mu + rng.normal(0, 0.01, n)
        rows.append(pd.DataFrame({"symbol": sym, "period": "1h", "target": "target_logreturn", "kind": "regression",
                                  "score": mu, "y_true": yr, "p10": mu - 0.0128, "p50": mu, "p90": mu + 0.0128}))
    return pd.concat(rows, ignore_index=True)


def test_report_rows_and_metrics(long_predictions, tmp_path):
    report = eval_report(long_predictions)
    assert set(report["symbol"]) == {"AAA", "BBB", "ALL"} and len(report) == 6
    cls = report[(report["symbol"] == "AAA") & (report["target"] == "target_binarytrend")].iloc[0]
    part = long_predictions[(long_predictions["symbol"] == "AAA") & (long_predictions["kind"] == "classification")]
    part = part[part["y_true"].notna()]
    assert cls["n"] == len(part) == 390
    assert cls["ap"] == pytest.approx(average_precision_score(part["y_true"], part["score"]))
    reg = report[(report["symbol"] == "ALL") & (report["target"] == "target_logreturn")].iloc[0]
    allreg = long_predictions[long_predictions["kind"] == "regression"]
    assert reg["rmse"] == pytest.approx(np.sqrt(mean_squared_error(allreg["y_true"], allreg["p50"])))
    assert reg["cov_p10"] == pytest.approx(0.1, abs=0.04) and reg["cov_p90"] == pytest.approx(0.9, abs=0.04)
    assert np.isnan(cls["rmse"]) and np.isnan(reg["ap"])
    path = write_eval_report(report, tmp_path, "Alpha-Dir-TFT", "1h", "20260101T000000Z")
    assert path.name == "eval_report_Alpha-Dir-TFT_1h_20260101T000000Z.csv"
    assert len(pd.read_csv(path)) == 6
    assert "target_logreturn" in format_table(report, symbols="ALL")


def test_no_skill_columns_use_the_given_constant_or_the_rows_own(long_predictions):
    own = eval_report(long_predictions)
    given = eval_report(long_predictions, no_skill={"target_binarytrend": 0.3, "target_logreturn": 0.002})
    cls_rows = long_predictions[(long_predictions["kind"] == "classification") & long_predictions["y_true"].notna()]
    y = cls_rows["y_true"].to_numpy()
    a = own[(own["symbol"] == "ALL") & (own["target"] == "target_binarytrend")].iloc[0]
    b = given[(given["symbol"] == "ALL") & (given["target"] == "target_binarytrend")].iloc[0]
    assert a["no_skill"] == pytest.approx(y.mean()) and a["brier_no_skill"] == pytest.approx(y.mean() * (1 - y.mean()))
    assert b["no_skill"] == 0.3 and b["brier_no_skill"] == pytest.approx(np.mean((0.3 - y) ** 2))
    assert b["brier_skill"] == pytest.approx(1 - b["brier"] / b["brier_no_skill"])
    assert a["brier_skill"] > 0  # the fixture's scores are the true probabilities: real skill
    reg = given[(given["symbol"] == "ALL") & (given["target"] == "target_logreturn")].iloc[0]
    yr = long_predictions.loc[long_predictions["kind"] == "regression", "y_true"].to_numpy()
    assert reg["rmse_no_skill"] == pytest.approx(np.sqrt(np.mean((yr - 0.002) ** 2)))
    assert reg["rmse_skill"] == pytest.approx(1 - reg["rmse"] / reg["rmse_no_skill"])
