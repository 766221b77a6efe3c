"""Typed config of the feature-screening pipeline (``pipelines/configs/feature_selection.yaml``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from utils.config import bounded, load_config
from utils.errors import ConfigError
from utils.timeline import check_periods


@dataclass
class ExpertEntry:
    """One expert's tables: ``pkl_path`` (base) and optionally ``rich_pkl_path``."""

    pkl_path: str
    rich_pkl_path: str | None = None
    leaf_modality: str = "base"  # whose targets.yaml is read: configs/experts/<E>/<period>/<leaf_modality>/


@dataclass
class OuterSplit:
    """The final forward span, never used by stages 1-4."""

    mode: Literal["days", "ratio"] = "days"
    days: int = bounded(60, ge=1)
    ratio: float = bounded(0.2, gt=0.0, lt=1.0)


@dataclass
class Splits:
    """Outer split."""

    outer: OuterSplit = field(default_factory=OuterSplit)


@dataclass
class FilterParams:
    """Stage 1 settings."""

    min_coverage: float = bounded(0.7, ge=0.0, le=1.0)
    min_std: float = bounded(1e-10, ge=0.0)
    corr_threshold: float = bounded(0.9, gt=0.0, le=1.0)
    vif_max: float = bounded(50.0, gt=1.0)
    windows: int = bounded(3, ge=1, le=50)
    fdr_q: float = bounded(0.05, gt=0.0, lt=1.0)
    nw_lag_mult: float = bounded(2.0, ge=2.0)
    min_cross_section: int = bounded(10, ge=2)
    leak_ic: float = bounded(0.3, gt=0.0, le=1.0)
    leak_ic_self_predictable: float = bounded(0.9, gt=0.0, le=1.0)
    leak_self_ic: float = bounded(0.1, gt=0.0, le=1.0)
    leak_min_t: float = bounded(5.0, gt=0.0)
    leak_collapse_ic: float = bounded(0.1, gt=0.0, le=1.0)
    leak_min_persistence: float = bounded(0.5, gt=0.0, lt=1.0)
    leak_max_retention: float = bounded(0.25, ge=0.0, lt=1.0)
    allow_levels: bool = False
    mi_sample: int = bounded(20000, ge=100)
    min_window_sign_rate: float = bounded(0.5, ge=0.0, le=1.0)
    ic_targets: list[str] | None = None
    mi_targets: list[str] | None = None


@dataclass
class FilterSection:
    """Stage 1."""

    params: FilterParams = field(default_factory=FilterParams)


@dataclass
class EmbeddedSection:
    """Stage 2."""

    enabled: bool = True
    models: list[Literal["lightgbm", "xgboost", "catboost"]] = field(
        default_factory=lambda: ["lightgbm", "xgboost", "catboost"])
    boruta_rounds: int = bounded(12, ge=3)
    boruta_q: float = bounded(0.05, gt=0.0, lt=1.0)
    linear: bool = True
    linear_max_iter: int = bounded(2000, ge=50)
    stability_subsamples: int = bounded(10, ge=2)
    stability_threshold: float = bounded(0.6, gt=0.0, le=1.0)
    shap: bool = False
    n_estimators: int = bounded(150, ge=10)
    sample_cap: int = bounded(40000, ge=500)
    targets_override: list[str] | None = None


@dataclass
class TreePermSection:
    """Stage 3: time-aware permutation importance on purged held-out folds."""

    enabled: bool = True
    modes: list[Literal["cyclic", "block"]] = field(default_factory=lambda: ["cyclic", "block"])
    block_len_by_period: dict[str, int] = field(default_factory=lambda: {"1h": 48, "4h": 42, "1d": 20})
    group_cols: list[str] = field(default_factory=lambda: ["symbol"])
    repeats: int = bounded(3, ge=1)  # permutations per feature, fold and mode
    folds: int = bounded(3, ge=1, le=20)  # expanding time folds (utils.timeline.expanding_splits)
    embargo_bars: int | None = bounded(None, ge=0)  # null: the label horizon (never less: the timeline's rule)
    purge_bars: int | None = bounded(None, ge=0)  # null: the label horizon; longer ends fit labels earlier
    cluster_permutation: bool = True  # permute a correlation cluster together (importance not split)
    n_estimators: int = bounded(150, ge=10)  # LightGBM trees per fold
    sample_cap: int = bounded(60000, ge=500)  # rows kept: the latest contiguous span


@dataclass
class GASection:
    """Genetic search settings."""

    pop: int = bounded(16, ge=4)  # population size
    gen: int = bounded(8, ge=1)  # generations
    cx: float = bounded(0.7, ge=0.0, le=1.0)  # crossover probability
    mut: float = bounded(0.05, ge=0.0, le=1.0)  # per-gene mutation probability
    sample_cap: int = bounded(20000, ge=500)  # rows kept: the latest contiguous span
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # one search per seed; genes kept by frequency


@dataclass
class WrapperSection:
    """Stage 4."""

    enabled: bool = True
    method: Literal["rfe", "ga"] = "rfe"
    model: Literal["lightgbm", "catboost", "xgboost"] = "lightgbm"
    folds: int = bounded(3, ge=2, le=20)
    step: float = bounded(0.25, gt=0.0, lt=1.0)
    min_features: int = bounded(2, ge=1)
    n_estimators: int = bounded(100, ge=10)
    sample_cap: int = bounded(40000, ge=500)
    ga: GASection = field(default_factory=GASection)


STAGES = ("filter", "embedded", "tree_perm", "wrapper")


@dataclass
class StageWeights:
    """``aggregation.weights_yaml``: per-stage evidence weights that replace the config's ``weights``."""

    weights: dict[str, float] = field(default_factory=dict)

    def check(self) -> None:
        """Known stages, non-negative weights."""
        bad = {k: v for k, v in self.weights.items() if k not in STAGES or v < 0}
        if bad:
            raise ConfigError(f"key 'weights' = {bad}: stages are {list(STAGES)}, weights >= 0")


@dataclass
class AggregationSection:
    """How stage evidence becomes the core list."""

    topk_core: int = bounded(30, ge=1)  # at most this many core features
    topk_per_pair: int = bounded(20, ge=1)  # candidates taken from each (period, target) pair
    min_appear_rate: float = bounded(0.5, ge=0.0, le=1.0)  # share of pairs a core feature must appear in
    min_appear_rate_era: float = bounded(0.5, ge=0.0, le=1.0)  # share of eras (years) with positive evidence
    weights_yaml: str | None = None
    export_expert: str | None = None  # whose core list goes to configs/selected_features.txt (default: the last run)
    weights: dict[str, float] = field(default_factory=lambda: {"filter": 1.0, "embedded": 1.0, "tree_perm": 1.5,
                                                               "wrapper": 1.0})
    rich_quality_weights: dict[str, float] = field(default_factory=lambda: {"1h": 1.0, "4h": 1.0, "1d": 1.0})


@dataclass
class ForwardCompare:
    """Subset vs full feature set on the outer span."""

    enabled: bool = True


@dataclass
class FinalizeSection:
    """Final outputs."""

    forward_compare: ForwardCompare = field(default_factory=ForwardCompare)


@dataclass
class ScreeningConfig:
    """``feature_selection.yaml``."""

    experts: dict[str, ExpertEntry]
    experts_run: list[str] = field(default_factory=list)
    periods: list[str] | None = None  # None: every period present in each expert's base table
    splits: Splits = field(default_factory=Splits)  # the outer span held back from every stage
    filter: FilterSection = field(default_factory=FilterSection)  # stage 1
    embedded: EmbeddedSection = field(default_factory=EmbeddedSection)  # stage 2
    tree_perm: TreePermSection = field(default_factory=TreePermSection)  # stage 3
    wrapper: WrapperSection = field(default_factory=WrapperSection)  # stage 4
    aggregation: AggregationSection = field(default_factory=AggregationSection)  # evidence -> core list
    finalize: FinalizeSection = field(default_factory=FinalizeSection)
    output_root: str = "reports/feature_evidence"
    expert_config_root: str = "configs/experts"
    # the core list users and scripts read; null: selected_features.txt beside expert_config_root
    selected_features_export: str | None = None
    seed: int = 0

    @property
    def export_path(self) -> Path:
        """Where the run's core list is exported (``configs/selected_features.txt`` by default)."""
        if self.selected_features_export:
            return Path(self.selected_features_export)
        return Path(self.expert_config_root).parent / "selected_features.txt"

    def check(self) -> None:
        """Known periods; at least one expert; ``aggregation.export_expert`` among them."""
        if self.periods is not None:
            check_periods("periods", self.periods)
            if not self.periods:
                raise ConfigError("key 'periods' = []: list at least one period, or null for every period present")
        if not self.experts:
            raise ConfigError("key 'experts' = {}: list at least one expert with its pkl_path")
        if self.aggregation.export_expert:
            resolve_experts(self, [self.aggregation.export_expert])  # a typo fails now, not after the run


def canonical(name: str) -> str:
    """Spelling-insensitive expert key: ``Alpha-Dir-TFT``, ``alpha_dir_tft`` and ``alpha_dir`` all match."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return key.removesuffix("tft")


def resolve_experts(cfg: ScreeningConfig, requested: list[str] | None) -> list[str]:
    """Configured expert names selected by ``requested`` (any spelling), else ``experts_run``, else all."""
    wanted = requested or cfg.experts_run or list(cfg.experts)
    by_key = {canonical(n): n for n in cfg.experts}
    out = []
    for name in wanted:
        key = canonical(name)
        if key not in by_key:
            raise ConfigError(f"expert {name!r} is not configured; configured experts: {list(cfg.experts)}")
        if by_key[key] not in out:
            out.append(by_key[key])
    return out



def load_screening_config(path: str | Path) -> ScreeningConfig:
    """Load and validate the screening YAML."""
    return load_config(path, ScreeningConfig)
