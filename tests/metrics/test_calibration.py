import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import norm
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, mean_pinball_loss, roc_auc_score

from metrics.calibration import (
    IsotonicCalibrator,
    PlattScaler,
    TemperatureScaler,
    binary_nll,
    brier_score,
    classification_metrics,
    ece,
    make_calibrator,
    pinball_loss,
    quantile_coverage,
    regression_metrics,
    reliability_curve,
    sigma_from_quantiles,
)


@pytest.fixture
def overconfident():
    """Labels drawn from sigmoid(z); the model reports 3 z (over-confident by a factor 3)."""
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 0.8, 40_000)
    y = (rng.random(z.size) < expit(z)).astype(float)
    return 3.0 * z, y, z


def test_brier_and_pinball_agree_with_sklearn():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.3).astype(float)
    p = rng.random(500)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    yr, q = rng.normal(size=500), rng.normal(size=500)
    for alpha in (0.1, 0.5, 0.9):
        assert pinball_loss(yr, q, alpha) == pytest.approx(mean_pinball_loss(yr, q, alpha=alpha), rel=1e-12)
    m = classification_metrics(y, p)
    assert m["ap"] == pytest.approx(average_precision_score(y, p))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["nll"] == pytest.approx(binary_nll(y, p)) and m["n"] == 500


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_matches_sklearn_binning(strategy):
    rng = np.random.default_rng(2)
    p = rng.beta(2, 3, 3000)
    y = (rng.random(3000) < p).astype(float)
    ours = reliability_curve(y, p, 15, strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy=strategy)
    np.testing.assert_allclose(ours["y_rate"], prob_true, rtol=1e-12)
    np.testing.assert_allclose(ours["p_mean"], prob_pred, rtol=1e-12)
    # ECE is the count-weighted mean gap of that curve
    expected = np.sum(ours["count"] * np.abs(prob_true - prob_pred)) / len(y)
    assert ece(y, p, 15, strategy) == pytest.approx(expected)


def test_ece_equal_mass_bins_hold_equal_counts_and_bad_strategy():
    p = np.linspace(0.01, 0.99, 1500)
    counts = reliability_curve(np.zeros_like(p), p, 15, "quantile")["count"]
    assert counts.min() >= 99 and counts.max() <= 101
    with pytest.raises(ValueError, match="strategy must be 'uniform' or 'quantile'"):
        ece(np.zeros(3), np.zeros(3), 5, "kmeans")
    with pytest.raises(ValueError, match="n_bins must be >= 1, got 0"):
        ece(np.zeros(3), np.zeros(3), 0)


def test_temperature_scaling_lowers_nll_and_ece(overconfident):
    logits, y, _ = overconfident
    scaler = TemperatureScaler(["dir"]).fit(logits, y)
    assert scaler.temperatures_[0] == pytest.approx(3.0, rel=0.05)
    raw, cal = expit(logits), scaler.predict_proba(logits)
    assert binary_nll(y, cal) < binary_nll(y, raw) - 0.01
    assert ece(y, cal) < 0.5 * ece(y, raw) and ece(y, cal) < 0.02


def test_temperature_single_class_is_nan_with_warning():
    logits = np.column_stack([np.linspace(-2, 2, 50), np.linspace(-2, 2, 50)])
    y = np.column_stack([np.ones(50), (np.arange(50) % 2).astype(float)])
    with pytest.warns(RuntimeWarning, match="'flat' undefined: its labels hold a single class"):
        scaler = TemperatureScaler(["flat", "mixed"]).fit(logits, y)
    assert np.isnan(scaler.temperatures_[0]) and np.isfinite(scaler.temperatures_[1])
    np.testing.assert_allclose(scaler.transform(logits)[:, 0], logits[:, 0])  # left unscaled


def test_temperature_ignores_nan_labels(overconfident):
    logits, y, _ = overconfident
    y_nan = y.copy()
    y_nan[::7] = np.nan
    keep = np.isfinite(y_nan)
    a = TemperatureScaler().fit(logits, y_nan).temperatures_[0]
    b = TemperatureScaler().fit(logits[keep], y[keep]).temperatures_[0]
    assert a == pytest.approx(b, rel=1e-6)


def test_coverage_and_sigma_of_a_known_gaussian():
    rng = np.random.default_rng(3)
    mu, sd = 0.002, 0.015
    y = rng.normal(mu, sd, 200_000)
    q = {lvl: np.full(y.size, norm.ppf(lvl, mu, sd)) for lvl in (0.1, 0.5, 0.9)}
    for lvl in (0.1, 0.5, 0.9):
        assert quantile_coverage(y, q[lvl]) == pytest.approx(lvl, abs=0.005)
    assert sigma_from_quantiles(q[0.1], q[0.9])[0] == pytest.approx(sd, rel=1e-9)
    m = regression_metrics(y, q)
    assert m["rmse"] == pytest.approx(sd, rel=0.01) and m["cov_p90"] == pytest.approx(0.9, abs=0.005)
    assert m["pinball_p10"] == pytest.approx(mean_pinball_loss(y, q[0.1], alpha=0.1))


def test_single_class_metrics_are_nan_not_errors():
    m = classification_metrics(np.ones(20), np.linspace(0.1, 0.9, 20))
    assert np.isnan(m["ap"]) and np.isnan(m["roc_auc"]) and np.isfinite(m["brier"])


@pytest.mark.parametrize("skill", [0.0, 0.3, 1.5])
def test_platt_mean_probability_equals_the_base_rate_whatever_the_skill(skill):
    """Base rate 0.58 (and 0.6 with uninformative logits): the calibrated mean lands on it on the fit span."""
    rng = np.random.default_rng(3)
    z = rng.normal(0.0, 1.0, 20_000)
    latent = skill * z + rng.logistic(size=z.size)
    y = (latent > np.quantile(latent, 0.42)).astype(float)  # base rate 0.58 at every skill
    logits = 2.0 * z - 1.0  # a biased, over-confident model (uninformative when skill is 0)
    platt = PlattScaler(["dir"]).fit(logits, y)
    assert platt.predict_proba(logits).mean() == pytest.approx(y.mean(), abs=0.002)
    assert abs(y.mean() - 0.58) < 0.02
    temp = TemperatureScaler(["dir"]).fit(logits, y)
    if skill == 0.0:
        # the temperature cannot move the mean: it saturates at its bound, probabilities collapse to ~0.5
        assert abs(temp.predict_proba(logits).mean() - 0.5) < 0.01
        assert "temperature reached its bound" in temp.warnings_[0] and "no usable signal" in temp.warnings_[0]
        assert "no usable signal" in platt.warnings_[0]  # the honest constant: the base rate, with a warning
    else:
        assert platt.warnings_[0] == ""


def test_platt_recovers_base_rate_06_from_uninformative_logits():
    rng = np.random.default_rng(4)
    logits = rng.normal(0.0, 2.0, 10_000)
    y = (rng.random(logits.size) < 0.6).astype(float)
    p = PlattScaler().fit(logits, y).predict_proba(logits)
    assert p.mean() == pytest.approx(y.mean(), abs=1e-3) and abs(y.mean() - 0.6) < 0.02
    assert p.std() < 0.02  # nothing to spread on


def test_platt_flags_a_backwards_model_and_matches_overconfident_slope(overconfident):
    logits, y, _ = overconfident
    platt = PlattScaler(["dir"]).fit(logits, y)
    assert platt.scale_[0] == pytest.approx(1 / 3, rel=0.05) and abs(platt.bias_[0]) < 0.05
    backwards = PlattScaler(["dir"]).fit(-logits, y)
    assert "negative slope" in backwards.warnings_[0] and backwards.scales_fit_[0] < 0
    # never reverses the ranking: the base rate for every row, the model's order kept as a tie-break
    p = backwards.predict_proba(-logits)
    np.testing.assert_allclose(p, y.mean(), atol=1e-4)
    assert roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, -logits))


def test_isotonic_is_monotone_calibrated_and_plain_data(overconfident):
    logits, y, _ = overconfident
    iso = make_calibrator("isotonic", ["dir"]).fit(logits, y)
    assert isinstance(iso, IsotonicCalibrator) and np.isnan(iso.scale_[0])
    grid = np.linspace(-10, 10, 101)
    p = iso.predict_proba(grid)
    assert (np.diff(p) >= 0).all() and p.min() >= 0 and p.max() <= 1
    assert abs(iso.predict_proba(logits).mean() - y.mean()) < 1e-6
    assert ece(y, iso.predict_proba(logits), 15) < 0.01
    with pytest.raises(ValueError, match="unknown calibration method 'beta'; valid: \\['platt'"):
        make_calibrator("beta")
