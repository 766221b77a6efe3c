"""No-leakage audit of a stacking table (``datasets/z_train.parquet``).

Usage::

    python utils/audit_no_leakage.py --path datasets/z_train.parquet [--max-gap-bars 1h=168,4h=42,1d=7]
        [--max-missing 0.5] [--max-abs-corr 0.3]

Checks, each PASS or FAIL:

* ``duplicates``: a (symbol, period, time_idx) or (symbol, period, timestamp) key appears twice;
* ``time_order``: within (symbol, period), timestamps not strictly increasing with ``time_idx``;
* ``gaps``: consecutive rows further apart than the period's threshold (in bars);
* ``missing``: columns with a NaN share above ``--max-missing``;
* ``late_prediction``: an expert's ``<expert>__pred_time`` at or after the realization of its
  shortest target (:func:`utils.timeline.label_end`: ``timestamp + (h + 1) x period``; timestamps are bar
  open times, so the 1-bar outcome is known at the close of the next bar);
* ``leak_correlation``: a feature whose |Spearman correlation| with a return or direction target
  (``target_logreturn*``, ``target_binarytrend*``) exceeds ``--max-abs-corr``: no honest market feature
  predicts next-bar returns that well, so such a column almost certainly contains the future.

Prints the table and exits with 1 on any FAIL (2 on unreadable input).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from utils.errors import DataError, ProjectError
from utils.timeline import feature_columns, horizon_of, label_end, period_delta

logger = logging.getLogger(__name__)

# One week per period: a hole that long in a stacking table means a broken join or a missing expert run;
# shorter ones come from exchange outages plus the encoder warm-up after them (about 65 bars at 1h).
DEFAULT_GAP_BARS = {"1m": 10080, "5m": 2016, "15m": 672, "30m": 336, "1h": 168, "4h": 42, "1d": 7}
LEAK_TARGETS = ("target_logreturn", "target_binarytrend")


@dataclass
class Check:
    """Outcome of one audit check."""

    name: str
    passed: bool
    detail: str


def check_duplicates(z: pd.DataFrame) -> Check:
    """Duplicate keys."""
    n1 = int(z.duplicated(["symbol", "period", "time_idx"]).sum())
    n2 = int(z.duplicated(["symbol", "period", "timestamp"]).sum())
    return Check("duplicates", n1 + n2 == 0, f"{n1} duplicated time_idx keys, {n2} duplicated timestamp keys")


def check_time_order(z: pd.DataFrame) -> Check:
    """Timestamps strictly increase with time_idx inside each (symbol, period)."""
    s = z.sort_values(["symbol", "period", "time_idx"], kind="stable")
    same = s["symbol"].eq(s["symbol"].shift()) & s["period"].eq(s["period"].shift())
    bad = same & (s["timestamp"].diff() <= pd.Timedelta(0))
    first = "" if not bad.any() else f"; first at {s.loc[bad.idxmax(), ['symbol', 'period', 'time_idx']].tolist()}"
    return Check("time_order", not bad.any(), f"{int(bad.sum())} reversals{first}")


def check_gaps(z: pd.DataFrame, max_gap_bars: dict[str, int]) -> Check:
    """Gaps above the per-period threshold."""
    worst = []
    for (sym, period), g in z.groupby(["symbol", "period"], sort=True):
        bars = g["timestamp"].sort_values().diff().dropna() / period_delta(period)
        limit = max_gap_bars.get(period, DEFAULT_GAP_BARS.get(period, 168))
        over = bars[bars > limit]
        if len(over):
            worst.append(f"{sym} {period}: {len(over)} gap(s), largest {over.max():.0f} bars (limit {limit})")
    return Check("gaps", not worst, "; ".join(worst[:5]) or "none above the thresholds")


def check_missing(z: pd.DataFrame, max_missing: float) -> Check:
    """Columns with too many NaN values."""
    share = z.isna().mean()
    bad = share[share > max_missing].sort_values(ascending=False)
    detail = ", ".join(f"{c} {v:.0%}" for c, v in bad.head(8).items())
    return Check("missing", bad.empty, detail or f"every column <= {max_missing:.0%} missing")


def check_late_predictions(z: pd.DataFrame) -> Check:
    """Predictions available only after their target was realized."""
    bad = []
    for col in [c for c in z.columns if c.endswith("__pred_time")]:
        expert = col.removesuffix("__pred_time")
        targets = [c.split("__")[1] for c in z.columns if c.startswith(f"{expert}__") and c.endswith("__score")]
        h = min((horizon_of(t) for t in targets), default=1)
        pred = pd.to_datetime(z[col], utc=True)
        known = pd.Series(pd.NaT, index=z.index, dtype="datetime64[ns, UTC]")
        for period, idx in z.groupby("period").groups.items():  # the timeline's label end, per period
            known.loc[idx] = label_end(z.loc[idx, "timestamp"], str(period), h)
        late = pred.notna() & (pred >= known)
        if late.any():
            bad.append(f"{expert}: {int(late.sum())} rows (horizon {h})")
    return Check("late_prediction", not bad, "; ".join(bad) or "every prediction precedes its outcome")


def check_leak_correlation(z: pd.DataFrame, max_abs_corr: float) -> Check:
    """Features implausibly correlated with return / direction targets."""
    targets = [c for c in z.columns if c.startswith(LEAK_TARGETS)]
    feats = feature_columns(z)
    if not targets or not feats:
        return Check("leak_correlation", True, "no return/direction target or no numeric feature to test")
    ranks = z[feats + targets].rank()
    found = []
    for t in targets:
        rho = ranks[feats].corrwith(ranks[t]).abs()
        for col, value in rho[rho > max_abs_corr].items():
            found.append((value, f"{col} ~ {t} |rho|={value:.2f}"))
    found.sort(reverse=True)
    return Check("leak_correlation", not found, "; ".join(f for _, f in found[:8])
                 or f"every |rho| <= {max_abs_corr} against {len(targets)} return/direction targets")


def audit(z: pd.DataFrame, max_gap_bars: dict[str, int] | None = None, max_missing: float = 0.5,
          max_abs_corr: float = 0.3) -> list[Check]:
    """Run every check on a stacking table."""
    missing = [c for c in ("symbol", "period", "time_idx", "timestamp") if c not in z]
    if missing:
        raise DataError(f"the table lacks key column(s) {missing}; is it a z_train table?")
    z = z.assign(timestamp=pd.to_datetime(z["timestamp"], utc=True))
    return [check_duplicates(z), check_time_order(z), check_gaps(z, max_gap_bars or {}),
            check_missing(z, max_missing), check_late_predictions(z), check_leak_correlation(z, max_abs_corr)]


def format_checks(checks: list[Check]) -> str:
    """PASS/FAIL table."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':{width}s}  result  detail"]
    lines += [f"{c.name:{width}s}  {'PASS' if c.passed else 'FAIL'}    {c.detail}" for c in checks]
    overall = all(c.passed for c in checks)
    return "\n".join(lines + [f"{'overall':{width}s}  {'PASS' if overall else 'FAIL'}"])


def _gap_arg(text: str) -> dict[str, int]:
    out = {}
    for item in filter(None, text.split(",")):
        period, _, bars = item.partition("=")
        out[period.strip()] = int(bars)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on PASS, 1 on FAIL, 2 on unreadable input."""
    from utils.logging_setup import configure_logging

    p = argparse.ArgumentParser(prog="utils/audit_no_leakage.py", description=__doc__.split("\n")[0])
    p.add_argument("--path", default="datasets/z_train.parquet")
    p.add_argument("--max-gap-bars", type=_gap_arg, default={},
                   help="per-period limits in bars (default one week: 1h=168,4h=42,1d=7)")
    p.add_argument("--max-missing", type=float, default=0.5)
    p.add_argument("--max-abs-corr", type=float, default=0.3)
    args = p.parse_args(argv)
    configure_logging(False)
    path = Path(args.path)
    try:
        if not path.is_file():
            raise DataError(f"--path {path} not found; build it with pipelines/build_oof_for_z.py")
        checks = audit(pd.read_parquet(path), args.max_gap_bars, args.max_missing, args.max_abs_corr)
    except ProjectError as exc:
        logger.error("%s", exc)
        return 2
    print(f"no-leakage audit of {path}")
    print(format_checks(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
