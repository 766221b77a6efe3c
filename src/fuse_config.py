"""Typed configs of the fundamentals fusion.

* ``pipelines/configs/fuse_fundamentals.yaml`` -> :class:`FuseConfig` (global settings and
  ``experts_map``, which only references the per-expert dataset files), and
* ``configs/experts/<Expert>/datasets/{base,rich}.yaml`` -> :class:`DatasetConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from src.fundamentals import GLOBAL_GROUPS, SYMBOL_GROUPS
from utils.config import bounded
from utils.errors import ConfigError


@dataclass
class PostConvert:
    """Which single-file forms of ``full_merged_with_fundamentals`` to write beside its partitioned dataset.

    ``null`` (the default): written for datasets up to ``AUTO_EXPORT_MAX_ROWS`` rows (2M), not above.
    """

    csv: bool | None = None
    pkl: bool | None = None
    parquet: bool | None = None


@dataclass
class NoNanPolicy:
    """Intersect trimming: per (symbol, period) keep the span where every intersect column is present."""

    enabled: bool = False
    scope: Literal["onchain", "custom"] = "onchain"
    method: Literal["intersect"] = "intersect"
    columns: list[str] = field(default_factory=list)

    def check(self) -> None:
        """``scope: custom`` needs its column list."""
        if self.enabled and self.scope == "custom" and not self.columns:
            raise ConfigError("key 'no_nan_policy.columns' = []: scope 'custom' needs the columns to intersect")


@dataclass
class PublicationLagHours:
    """Delay between an observation's timestamp and the moment it is published (hours)."""

    funding: float = bounded(0.0, ge=0.0)  # a settled rate is public at its calc_time
    metrics: float = bounded(0.0, ge=0.0)  # open interest snapshots are public at their create_time
    premium: float = bounded(0.0, ge=0.0)  # on top of the kline's own interval (available at its close)
    onchain: float = bounded(24.0, ge=0.0)  # a daily value is usable once its day has ended
    altcoin: float = bounded(24.0, ge=0.0)  # daily index: as on-chain
    dominance: float = bounded(24.0, ge=0.0)  # daily share: as on-chain


@dataclass
class MaxStalenessHours:
    """Forward fill never carries a value older than this (hours); older values become NaN."""

    funding: float = bounded(24.0, gt=0.0)
    metrics: float = bounded(3.0, gt=0.0)
    premium: float = bounded(3.0, gt=0.0)
    onchain: float = bounded(72.0, gt=0.0)
    altcoin: float = bounded(72.0, gt=0.0)
    dominance: float = bounded(72.0, gt=0.0)


def _check_keys(mapping: dict[str, bool], valid: tuple[str, ...], key: str) -> None:
    unknown = [k for k in mapping if k not in valid]
    if unknown:
        raise ConfigError(f"key '{key}.{unknown[0]}' = {mapping[unknown[0]]!r}: unknown source; "
                          f"valid keys: {list(valid)}")


@dataclass
class DatasetConfig:
    """One expert dataset (``base`` or ``rich`` modality)."""

    dataset_type: Literal["fundamentals_only", "combined"]
    extra_field: str
    include_symbol: dict[str, bool] = field(default_factory=dict)
    include_global: dict[str, bool] = field(default_factory=dict)
    max_missing_ratio: float | None = bounded(None, ge=0.0, le=1.0)
    no_nan_policy: NoNanPolicy = field(default_factory=NoNanPolicy)
    description: str = ""

    def check(self) -> None:
        """Valid source keys; ``fundamentals_only`` datasets carry no on-chain data."""
        _check_keys(self.include_symbol, SYMBOL_GROUPS, "include_symbol")
        _check_keys(self.include_global, GLOBAL_GROUPS, "include_global")
        if self.dataset_type == "fundamentals_only" and self.include_global.get("onchain"):
            raise ConfigError("key 'include_global.onchain' = True: a 'fundamentals_only' dataset has no on-chain "
                              "data; use dataset_type 'combined'")
        if not self.extra_field.strip():
            raise ConfigError("key 'extra_field' = '': name the dataset, e.g. Alpha-Dir-TFT_base")

    def groups(self) -> tuple[list[str], list[str]]:
        """Enabled symbol and global groups, in canonical order."""
        return ([g for g in SYMBOL_GROUPS if self.include_symbol.get(g)],
                [g for g in GLOBAL_GROUPS if self.include_global.get(g)])


@dataclass
class ExpertEntry:
    """An ``experts_map`` entry: paths of the expert's dataset files, optional format override."""

    base: str | None = None
    rich: str | None = None
    post_convert: PostConvert | None = None


@dataclass
class FuseConfig:
    """``pipelines/configs/fuse_fundamentals.yaml``."""

    base_csv: str = "data/merged/full_merged.csv"
    raw_dir: str | None = None  # None: the raw folder recorded by the build (build_manifest.json)
    missing_sources: Literal["error", "skip"] = "error"
    data_root: str | None = None  # moves the data/... paths below (the build's --out)
    output_root: str = "data/merged/expert_group"
    report_csv: str = "reports/datasets/experts_group_summary.csv"
    periods: list[str] | None = None
    validate: bool = True
    post_convert: PostConvert = field(default_factory=PostConvert)
    publication_lag_hours: PublicationLagHours = field(default_factory=PublicationLagHours)
    max_staleness_hours: MaxStalenessHours = field(default_factory=MaxStalenessHours)
    global_files: dict[str, str] = field(default_factory=lambda: {
        "onchain": "onchain_daily", "altcoin": "altcoin_index_daily", "dominance": "btc_dominance_daily"})
    experts_map: dict[str, ExpertEntry] = field(default_factory=dict)

    def check(self) -> None:
        """Global files only for known global sources; each expert names at least one dataset."""
        unknown = [k for k in self.global_files if k not in ("onchain", "altcoin", "dominance")]
        if unknown:
            raise ConfigError(f"key 'global_files.{unknown[0]}': unknown global source; "
                              f"valid keys: ['onchain', 'altcoin', 'dominance']")
        for name, entry in self.experts_map.items():
            if not entry.base and not entry.rich:
                raise ConfigError(f"key 'experts_map.{name}': give a 'base' and/or 'rich' dataset file")


@dataclass
class FusionJob:
    """Everything one dataset fusion needs, validated: the dataset and the global settings it is fused with."""

    dataset: DatasetConfig
    post_convert: PostConvert = field(default_factory=PostConvert)
    publication_lag_hours: PublicationLagHours = field(default_factory=PublicationLagHours)
    max_staleness_hours: MaxStalenessHours = field(default_factory=MaxStalenessHours)
    global_files: dict[str, str] = field(default_factory=lambda: dict(FuseConfig().global_files))
    periods: list[str] | None = None
    validate: bool = True
    missing_sources: Literal["error", "skip"] = "error"

    @classmethod
    def of(cls, cfg: FuseConfig, dataset: DatasetConfig, post_convert: PostConvert | None = None) -> FusionJob:
        """The job of ``dataset`` under the global settings of ``cfg``."""
        return cls(dataset, post_convert or cfg.post_convert, cfg.publication_lag_hours, cfg.max_staleness_hours,
                   dict(cfg.global_files), cfg.periods, cfg.validate, cfg.missing_sources)
