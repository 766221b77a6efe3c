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


def test_seed_families_groups_models_trained_with_several_seeds(bench):
    names = ["tft_s42", "tft_s1", "tft_mean", "lightgbm_s1", "lightgbm_s2", "lightgbm_mean", "logistic", "xgb_s3",
             "no_skill"]
    assert bench.seed_families(names) == {"tft": ["tft_s42", "tft_s1"], "lightgbm": ["lightgbm_s1", "lightgbm_s2"]}


def test_seed_mean_metric_averages_the_metric_over_seeds(bench):
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.5).astype(float)
    s = rng.standard_normal((500, 3)) + y[:, None] * np.array([0.0, 0.5, 1.0])
    fn = bench.seed_mean_metric(average_precision_score)
    assert fn(y, s[:, 1]) == average_precision_score(y, s[:, 1])
    assert fn(y, s) == pytest.approx(np.mean([average_precision_score(y, s[:, j]) for j in range(3)]))


def _outputs(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Scores of one classification target: a baseline with a lucky seed and a useless one, a steady baseline, and
    a model with two seeds."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    y = (z + rng.standard_normal(n) > 0).astype(float)
    scores = {"lightgbm_s1": z + 0.2 * rng.standard_normal(n), "lightgbm_s2": rng.standard_normal(n),
              "logistic": z + 1.0 * rng.standard_normal(n), "tft_s1": z + 0.8 * rng.standard_normal(n),
              "tft_s2": z + 0.9 * rng.standard_normal(n), "no_skill": np.full(n, 0.5)}
    scores["lightgbm_mean"] = (scores["lightgbm_s1"] + 3.0 * scores["lightgbm_s2"]) / 2
    scores["tft_mean"] = (scores["tft_s1"] + scores["tft_s2"]) / 2
    return y, {name: {"score": s[:, None]} for name, s in scores.items()}


def test_compare_picks_the_best_baseline_by_its_mean_over_seeds_not_its_luckiest_seed(bench, capsys):
    from types import SimpleNamespace

    from sklearn.metrics import average_precision_score

    y, outputs = _outputs()
    ap = {name: average_precision_score(y, o["score"][:, 0]) for name, o in outputs.items()}
    # the premise: one seed of LightGBM beats the steady baseline, its mean over seeds does not
    assert ap["lightgbm_s1"] > ap["logistic"] > (ap["lightgbm_s1"] + ap["lightgbm_s2"]) / 2
    assert ap["logistic"] > ap["lightgbm_mean"]
    ts = pd.Series(pd.date_range("2024-01-01", periods=len(y), freq="h", tz="UTC"))
    args = SimpleNamespace(samples=50, block_bars=48, seed=0)
    bench.compare(SimpleNamespace(kind="classification", horizon=1), y, outputs, 0, ts, "1h", args, [0.5])
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if "(like with like)" not in line]
    assert lines and all("- logistic (best baseline) AP" in line for line in lines)
    # like with like: the TFT's mean over seeds against LightGBM's, its seed ensemble against LightGBM's
    like = [line.strip() for line in out if "(like with like)" in line]
    assert [line.split(" (like with like)")[0] for line in like] == [
        "tft (mean of 2 seeds) - lightgbm (mean of 2 seeds)", "tft_mean - lightgbm_mean"]
    lgbm = (ap["lightgbm_s1"] + ap["lightgbm_s2"]) / 2
    assert f"{(ap['tft_s1'] + ap['tft_s2']) / 2 - lgbm:+.4f}" in like[0]
    assert f"{ap['tft_mean'] - ap['lightgbm_mean']:+.4f}" in like[1]
    tft = next(line for line in lines if line.strip().startswith("tft (mean of 2 seeds)"))
    expected = (ap["tft_s1"] + ap["tft_s2"]) / 2 - ap["logistic"]
    assert f"{expected:+.4f}" in tft
    assert any(line.strip().startswith("lightgbm (mean of 2 seeds)") for line in lines)


def test_tft_checkpoints_are_named_by_seed_and_a_repeated_seed_is_refused(bench, monkeypatch):
    from types import SimpleNamespace

    seeds = {"a.ckpt": 42, "b.ckpt": 1, "c.ckpt": 1}
    monkeypatch.setattr(bench, "resolve_checkpoint", lambda leaf, which: which)
    monkeypatch.setattr(bench, "load_expert",
                        lambda path: (f"module {path}", SimpleNamespace(model=SimpleNamespace(seed=seeds[path]))))
    assert list(bench._checkpoints(None, "a.ckpt")) == ["tft"]
    loaded = bench._checkpoints(None, "a.ckpt, b.ckpt")
    assert list(loaded) == ["tft_s42", "tft_s1"] and loaded["tft_s1"][0] == "module b.ckpt"
    with pytest.raises(SystemExit, match="same seed"):
        bench._checkpoints(None, "a.ckpt,b.ckpt,c.ckpt")


def test_collect_fits_seeded_baselines_once_per_seed_and_seed_free_ones_once(bench, monkeypatch):
    from types import SimpleNamespace

    fits = []

    class FakeBaseline:
        def __init__(self, leaf, name, seed):
            self.name, self.seed = name, seed

        def fit(self, data):
            fits.append((self.name, self.seed))
            return self

        def decode(self, data, rows):
            return {"score": np.full((len(rows), 1), float(self.seed)),
                    "quantiles": np.full((len(rows), 1, 3), float(self.seed))}

    monkeypatch.setattr(bench, "BaselineExpert", FakeBaseline)
    y = np.random.default_rng(0).standard_normal((40, 1))
    data = SimpleNamespace(splits={"train": np.arange(30), "val": np.arange(30, 40)}, y_raw=y)
    leaf = SimpleNamespace(model=SimpleNamespace(model=SimpleNamespace(quantiles=[0.1, 0.5, 0.9])))
    out = bench.collect(leaf, data, {}, ["logistic", "lightgbm"], [42, 2])
    assert fits == [("logistic", 42), ("lightgbm", 42), ("lightgbm", 2)]
    assert list(out) == ["logistic", "lightgbm_s42", "lightgbm_s2", "lightgbm_mean", "no_skill"]
    assert np.all(out["lightgbm_mean"]["score"] == 22.0) and np.all(out["lightgbm_mean"]["quantiles"] == 22.0)
    assert np.allclose(out["no_skill"]["score"], y[:30].mean())
    # one seed keeps the plain names of before
    assert list(bench.collect(leaf, data, {}, ["lightgbm"], [7])) == ["lightgbm", "no_skill"]


@pytest.mark.parametrize(("text", "message"), [("42,x", "comma-separated integer seeds"), ("1,1", "distinct"),
                                               (",", "distinct")])
def test_baseline_seeds_must_be_distinct_integers(bench, capsys, text, message):
    with pytest.raises(SystemExit):
        bench.main(["--baseline-seeds", text])
    err = capsys.readouterr().err
    assert "--baseline-seeds" in err and message in err
    assert bench.seed_list(" 42, 1,2") == [42, 1, 2]
