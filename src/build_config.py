"""Typed config of ``src/build_full_merged.py`` (``configs/data/build_full_merged.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from src.market_data import check_periods
from utils.config import bounded
from utils.errors import ConfigError

DEFAULT_CONFIG = "configs/data/build_full_merged.yaml"


@dataclass
class SyntheticSection:
    """The embedded synthetic market, built only when ``enabled`` (``--synthetic``; ``make demo`` asks for it)."""

    enabled: bool = False
    symbols: int = bounded(6, ge=1, le=50)
    days: int = bounded(730, ge=30)
    seed: int = 7
    start: str = "2023-01-01"
    strength: float = bounded(1.0, ge=0.0)


@dataclass
class BuildConfig:
    """Indicators -> targets -> merged panel."""

    periods: list[str] = field(default_factory=lambda: ["1h", "4h", "1d"])
    raw_dir: str = "data/raw"
    symbols: list[str] | None = None
    horizons: list[int] = bounded([1, 4, 24], ge=1, le=1000)
    calendar: Literal["auto", "24/7", "session"] = "auto"
    max_closure_days: float = bounded(4.0, gt=0.0)
    targeted_dir: str = "data/crypto_targeted_and_indicated"
    merged_csv: str = "data/merged/full_merged.csv"
    merged_pkl: str = "data/pkl_merged/full_merged.pkl"
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)

    def check(self) -> None:
        """Cross-field checks (called by the loader)."""
        check_periods("periods", self.periods)
        if not self.periods:
            raise ConfigError("key 'periods' = []: give at least one period")
