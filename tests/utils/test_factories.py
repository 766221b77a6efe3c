import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from utils.errors import ConfigError
from utils.loss_factory import LOSSES, get_loss
from utils.metric_factory import METRICS, REPORT, classification_metrics, compute, get_metric


def test_metric_registry_names_directions_and_values():
    rng = np.random.default_rng(0)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(float)
    assert get_metric("ap").fn(y, p) == pytest.approx(average_precision_score(y, p))
    assert get_metric("roc_auc").fn(y, p) == pytest.approx(roc_auc_score(y, p))
    assert get_metric("nll").fn(y, p) == pytest.approx(log_loss(y, p))
    assert get_metric("ap").higher_is_better and not get_metric("ece").higher_is_better
    assert not get_metric("rmse").higher_is_better and get_metric("rmse").kind == "regression"
    q = {0.1: np.full(300, -1.0), 0.5: np.zeros(300), 0.9: np.full(300, 1.0)}
    yr = rng.normal(size=300)
    out = compute(["rmse", "coverage"], yr, q)
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean(yr**2)))
    assert out["cov_p10"] == pytest.approx(np.mean(yr <= -1)) and set(out) == {"rmse", "cov_p10", "cov_p50",
                                                                              "cov_p90"}
    assert set(REPORT["classification"]) <= set(classification_metrics(y, p)) <= {"n", *METRICS}


def test_ic_is_the_spearman_correlation_of_the_median():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    y = np.round(rng.normal(size=400), 1)  # ties in the outcome, as with rounded returns
    med = 0.3 * y + rng.normal(size=400)
    q = {0.1: med - 1.0, 0.5: med, 0.9: med + 1.0}
    assert get_metric("ic").fn(y, q) == pytest.approx(spearmanr(med, y).statistic)
    assert get_metric("ic").higher_is_better and get_metric("ic").kind == "regression"
    assert np.isnan(get_metric("ic").fn(y, {0.5: np.zeros(400)}))  # a constant forecast ranks nothing
    assert "ic" in compute(REPORT["regression"], y, q)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown metric 'auc'; valid: \['accuracy', 'ap', "):
        get_metric("auc")
    with pytest.raises(ConfigError, match=r"unknown regression metric 'ap'; valid: \['coverage', 'ic', 'mae', "):
        get_metric("ap", "regression")
    with pytest.raises(ConfigError, match=r"unknown classification loss 'hinge'; valid: \['bce', 'focal'\]"):
        get_loss("hinge", "classification")


def test_losses_per_row():
    pred = torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.0, 1.0]])
    y = torch.tensor([1.0, 0.0])
    bce = get_loss("bce")(pred, y)
    assert bce.shape == (2,) and bce[0].item() == pytest.approx(np.log(2))
    focal = get_loss("focal", gamma=0.0)(pred, y)  # gamma 0 is plain BCE
    assert torch.allclose(focal, bce)
    q = torch.tensor([0.1, 0.5, 0.9])
    pin = get_loss("pinball", quantiles=q)(pred, y)
    err = y[:, None] - pred
    assert torch.allclose(pin, torch.maximum(q * err, (q - 1) * err).mean(-1))
    assert {m.kind for m in LOSSES.values()} == {"classification", "regression"}
