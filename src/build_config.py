"""Typed config of ``src/build_full_merged.py`` (``configs/data/build_full_merged.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from utils.config import bounded
from utils.errors import ConfigError
from utils.timeline import check_periods

DEFAULT_CONFIG = "configs/data/build_full_merged.yaml"
#: A gap longer than this many bars of the period starts a new segment (indicators warm up again).
DEFAULT_MAX_GAP_BARS = {"1h": 24, "4h": 12, "1d": 5}
#: The single-file / per-symbol exports a build can write beside its partitioned panel.
EXPORTS = ("csv", "pkl", "parquet")
#: ``export: auto`` writes every export for panels up to this many rows, none above (a message says so).
AUTO_EXPORT_MAX_ROWS = 2_000_000


@dataclass
class SyntheticSection:
    """The embedded synthetic market, built only when ``enabled`` (``--synthetic``; ``make demo`` asks for it)."""

    enabled: bool = False
    symbols: int = bounded(6, ge=1, le=1000)
    days: int = bounded(730, ge=30)
    seed: int = 7
    start: str = "2023-01-01"
    strength: float = bounded(1.0, ge=0.0)


def _check_zone(key: str, name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"key {key!r} = {name!r}: unknown time zone; use an IANA name such as UTC, "
                          f"America/New_York or Europe/London") from None


@dataclass
class BuildConfig:
    """Indicators -> targets -> merged panel.

    Outputs go under ``data_root`` (``--out``) unless ``targeted_dir``/``merged_csv``/``merged_pkl`` name
    other places. The panel is always written as a partitioned parquet dataset beside the merged CSV
    (``full_merged/``); ``export`` lists the other forms (``csv``: the per-symbol CSVs and ``full_merged.csv``;
    ``pkl``; ``parquet``: one file), ``null`` = all of them up to ``AUTO_EXPORT_MAX_ROWS`` rows, none above.
    """

    periods: list[str] = field(default_factory=lambda: ["1h", "4h", "1d"])
    raw_dir: str = "data/raw"
    symbols: list[str] | None = None
    horizons: list[int] = bounded([1, 4, 24], ge=1, le=1000)
    calendar: Literal["auto", "24/7", "session", "fx", "equity"] = "auto"
    timezone: str = "UTC"
    exchange_timezone: str = "America/New_York"
    min_bin_share: float = bounded(0.5, gt=0.0, le=1.0)
    max_gap_bars: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_GAP_BARS))
    bad_tick_multiple: float = bounded(25.0, gt=1.0)
    min_bars: int | None = bounded(None, ge=2)
    max_closure_days: float = bounded(4.0, gt=0.0)
    data_root: str = "data"
    targeted_dir: str | None = None
    merged_csv: str | None = None
    merged_pkl: str | None = None
    export: list[str] | None = None
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)

    def check(self) -> None:
        """Cross-field checks (called by the loader)."""
        check_periods("periods", self.periods)
        if not self.periods:
            raise ConfigError("key 'periods' = []: give at least one period")
        check_periods("max_gap_bars", list(self.max_gap_bars))
        bad = {k: v for k, v in self.max_gap_bars.items() if v < 1}
        if bad:
            raise ConfigError(f"key 'max_gap_bars' = {self.max_gap_bars!r}: values must be >= 1 bar, got {bad}")
        _check_zone("timezone", self.timezone)
        _check_zone("exchange_timezone", self.exchange_timezone)
        unknown = sorted(set(self.export or ()) - set(EXPORTS))
        if unknown:
            raise ConfigError(f"key 'export' = {self.export!r}: unknown export(s) {unknown}; choose from "
                              f"{list(EXPORTS)}, [] for none, or leave it out (auto: all up to "
                              f"{AUTO_EXPORT_MAX_ROWS:,} rows)")

    def exports(self, rows: int) -> list[str]:
        """The exports to write for a panel of ``rows`` rows (``export: null`` = auto)."""
        if self.export is not None:
            return [e for e in EXPORTS if e in self.export]
        return list(EXPORTS) if rows <= AUTO_EXPORT_MAX_ROWS else []

    def gap_bars(self, period: str) -> int:
        """Longest gap (in bars of ``period``) that does not split the series."""
        return self.max_gap_bars.get(period, 24)

    @property
    def targeted_path(self) -> Path:
        """Per-symbol, per-period files."""
        return Path(self.targeted_dir or Path(self.data_root) / "crypto_targeted_and_indicated")

    @property
    def merged_csv_path(self) -> Path:
        """The merged panel (its parquet twin and the build manifest sit beside it)."""
        return Path(self.merged_csv or Path(self.data_root) / "merged" / "full_merged.csv")

    @property
    def dataset_path(self) -> Path:
        """The partitioned merged panel (``<merged dir>/full_merged/period=../symbol=../``)."""
        return self.merged_csv_path.with_suffix("")

    @property
    def merged_pkl_path(self) -> Path:
        """The merged panel as a pickle."""
        return Path(self.merged_pkl or Path(self.data_root) / "pkl_merged" / "full_merged.pkl")
