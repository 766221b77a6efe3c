"""scikit-learn's estimator rules, checked for every learner of the toolkit.

* ``__init__`` stores its parameters under their own names and computes nothing;
* ``fit`` returns ``self`` and resets the learned state: fitting A then B equals fitting B from scratch;
* what ``fit`` learns is stored in attributes whose names end in ``_``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from features.selection.config import EmbeddedSection, FilterParams, TreePermSection, WrapperSection
from features.selection.embedded_stage import EmbeddedStage
from features.selection.filter_stage import FilterStage, TargetInfo
from features.selection.synthetic import make_screening_panel
from features.selection.tree_perm import TreePermStage
from features.selection.wrapper import WrapperStage
from metrics.calibration import IsotonicCalibrator, PlattScaler, TemperatureScaler
from models.baselines import BaselineClassifier, BaselineQuantileRegressor
from models.scalers import GroupFeatureScaler
from models.window_dataset import FeatureScaler
from models.z_combiner import ZCombiner, ZConfig, prepare
from tests.conftest import make_z_table

REG = TargetInfo("target_logreturn", "regression", 1, "ic")


def _panel(seed: int) -> pd.DataFrame:
    panel = make_screening_panel(n_symbols=2, n_rows=1200, n_informative=2, n_copies=0, n_noise=3, ic=0.08, seed=seed)
    return panel.sort_values(["timestamp", "symbol"], ignore_index=True)


def _feats(panel: pd.DataFrame) -> list[str]:
    return [c for c in panel.columns if c.startswith(("inf_", "noise_"))]


def _logits(seed: int) -> tuple[tuple, dict]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(800, 2))
    y = (rng.random((800, 2)) < 1 / (1 + np.exp(-1.5 * x))).astype(float)
    return (x, y), {}


def _z(seed: int) -> tuple[tuple, dict]:
    cfg = ZConfig(feature_prefixes=["E1__", "E2__"], output_dir="unused")
    data = prepare(make_z_table(n_bars=1500, seed=seed), cfg)
    return (data.X, data.y, data.frame["timestamp"]), {}


def _rows(seed: int, binary: bool) -> tuple[tuple, dict]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 3))
    y = X[:, 0] + rng.normal(size=600)
    return (X, (y > 0).astype(float) if binary else y, np.arange(600) >= 450), {}


def _stage_args(seed: int, with_targets: bool = False) -> tuple[tuple, dict]:
    panel = _panel(seed)
    if with_targets:
        return (panel, _feats(panel), [REG]), {}
    return (panel, _feats(panel), REG.name, False), {}


EMBEDDED = EmbeddedSection(models=["lightgbm"], boruta_rounds=2, stability_subsamples=2, n_estimators=20,
                           sample_cap=1500, shap=False)
TREE_PERM = TreePermSection(repeats=1, folds=2, n_estimators=20, sample_cap=2000)
WRAPPER = WrapperSection(method="rfe", folds=2, n_estimators=20, sample_cap=2000)

# (name, factory of an unfitted learner, fit arguments for a seed)
LEARNERS = [
    ("FeatureScaler", lambda: FeatureScaler(clip=5.0),
     lambda s: ((np.random.default_rng(s).normal(size=(300, 4)),), {})),
    ("GroupFeatureScaler", lambda: GroupFeatureScaler(clip=5.0, min_rows=50),
     lambda s: ((np.random.default_rng(s).normal(size=(300, 4)), np.repeat(["a", "b", "c"], 100)), {})),
    ("TemperatureScaler", lambda: TemperatureScaler(["a", "b"]), _logits),
    ("PlattScaler", lambda: PlattScaler(["a", "b"]), _logits),
    ("IsotonicCalibrator", lambda: IsotonicCalibrator(["a", "b"]), _logits),
    ("BaselineClassifier", lambda: BaselineClassifier("logistic"), lambda s: _rows(s, True)),
    ("BaselineQuantileRegressor", lambda: BaselineQuantileRegressor("logistic"), lambda s: _rows(s, False)),
    ("ZCombiner", lambda: ZCombiner(ZConfig(feature_prefixes=["E1__", "E2__"], output_dir="unused")), _z),
    ("FilterStage", lambda: FilterStage(FilterParams(windows=2, mi_sample=500), "1h"),
     lambda s: _stage_args(s, with_targets=True)),
    ("EmbeddedStage", lambda: EmbeddedStage(EMBEDDED, block_len=24), _stage_args),
    ("TreePermStage", lambda: TreePermStage(TREE_PERM, "1h", 1), _stage_args),
    ("WrapperStage", lambda: WrapperStage(WRAPPER, "1h", 1), _stage_args),
]


def _learned(est) -> dict:
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


def _same(a, b) -> bool:
    if isinstance(a, pd.DataFrame | pd.Series):
        return a.equals(b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dict__") and not isinstance(a, type):  # fitted sub-estimators: compare what they learned
        return type(a) is type(b) and _same(_learned(a), _learned(b)) if _learned(a) else type(a) is type(b)
    return a == b or (a != a and b != b)  # NaN equals NaN here


@pytest.mark.parametrize(("name", "make", "args"), LEARNERS, ids=[n for n, _, _ in LEARNERS])
def test_init_stores_parameters_only(name, make, args):
    est = make()
    params = set(inspect.signature(type(est).__init__).parameters) - {"self"}
    assert set(vars(est)) <= params, f"{name}.__init__ sets {sorted(set(vars(est)) - params)}"
    assert not _learned(est)


@pytest.mark.parametrize(("name", "make", "args"), LEARNERS, ids=[n for n, _, _ in LEARNERS])
def test_fit_returns_self_resets_state_and_names_learned_attributes(name, make, args):
    (a_pos, a_kw), (b_pos, b_kw) = args(0), args(1)
    est = make()
    before = set(vars(est))
    assert est.fit(*a_pos, **a_kw) is est
    new = set(vars(est)) - before
    assert new and all(k.endswith("_") or k.startswith("_") for k in new), f"{name} learned {sorted(new)}"
    refit = est.fit(*b_pos, **b_kw)
    fresh = make().fit(*b_pos, **b_kw)
    assert refit is est
    mine, theirs = _learned(est), _learned(fresh)
    assert mine.keys() == theirs.keys()
    diff = [k for k in mine if not _same(mine[k], theirs[k])]
    assert not diff, f"{name}: a refit keeps earlier state in {diff}"
