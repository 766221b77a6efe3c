"""Feature-screening acceptance benchmark on panels with known answers.

Usage::

    python bench/bench_screening.py [--seeds 0,1,2] [--rows 20000] [--symbols 5] [--quick]
        [--panels signal,null,ohlcv_null] [--null-symbols 1,3,10]

For each seed:

* ``signal``: 10 informative, 10 correlated copies, 100 noise columns (all with the same persistence) and 1
  leaky (centred-window) column (``features/selection/synthetic.py``), screened by the full pipeline
  (stages 1-4 + aggregation, 1h, one regression and one classification target);
* ``null``: the same shape with no informative column;
* ``ohlcv_null``: random-walk OHLCV panels with volatility clustering, fat tails and a common factor
  (``src/null_market.py``) run through the real indicator and target code, for 1, 3 and 10 symbols, on an
  hourly 24/7 calendar (6000 bars) and a daily session calendar (2000 weekday bars), screened on their
  direction and return targets (``target_logreturn``, ``target_binarytrend``, ``target_binarytrend_h4``).

Prints recall (an informative driver or its copy in the core list), noise admitted, whether the leak was
flagged and kept out, core size, leak suspects, stage-1 discoveries (every one is false on a null panel) and
wall time per stage. Goals: recall >= 9/10, noise <= 5, leak flagged and not selected; on every null panel
no leak suspect and a core of at most 2; the share of null (panel, target) pairs with any stage-1
discovery at or below the nominal FDR (0.05).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import yaml

from features.selection.config import ScreeningConfig
from features.selection.synthetic import make_screening_panel
from pipelines import run_feature_screening as rfs
from src.null_market import null_panel
from utils.config import from_mapping

SIGNAL_TARGETS = [{"name": "target_logreturn", "kind": "regression", "horizon": 1},
                  {"name": "target_binarytrend", "kind": "classification", "horizon": 1}]
NULL_TARGETS = SIGNAL_TARGETS + [{"name": "target_binarytrend_h4", "kind": "classification", "horizon": 4}]
#: (label, period, calendar, bars per symbol) of the OHLCV null panels
NULL_SHAPES = [("hourly 24/7", "1h", "24/7", 6000), ("daily session", "1d", "session", 2000)]


def screening_config(root: Path, table: Path, quick: bool, period: str = "1h",
                     targets: list[dict] | None = None) -> ScreeningConfig:
    """A config screening ``table`` as expert ``Synth`` (targets.yaml written under ``root``)."""
    leaf = root / "configs" / "Synth" / period / "base"
    leaf.mkdir(parents=True, exist_ok=True)
    (leaf / "targets.yaml").write_text(yaml.safe_dump({"targets": targets or SIGNAL_TARGETS}))
    raw = {"experts": {"Synth": {"pkl_path": str(table)}}, "periods": [period],
           "output_root": str(root / "reports"), "expert_config_root": str(root / "configs"),
           "splits": {"outer": {"mode": "days", "days": 60}},
           "aggregation": {"min_appear_rate": 0.5}}
    if quick:
        raw["tree_perm"] = {"enabled": False}
        raw["embedded"] = {"models": ["lightgbm"], "boruta_rounds": 8, "stability_subsamples": 5}
    return from_mapping(ScreeningConfig, raw, source="bench")


def timed_run(cfg: ScreeningConfig) -> tuple[dict, dict[str, float]]:
    """Run the pipeline for ``Synth``, timing each stage."""
    times: dict[str, float] = {}
    originals = {n: getattr(rfs, n) for n in ("run_stage1", "run_stage2", "run_stage3", "run_stage4")}

    def wrap(name, fn):
        def inner(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            times[name] = times.get(name, 0.0) + time.perf_counter() - t
            return out
        return inner

    for name, fn in originals.items():
        setattr(rfs, name, wrap(name.replace("run_", ""), fn))
    try:
        t = time.perf_counter()
        summary = rfs.run_expert(cfg, "Synth", force=True)
        times["total"] = time.perf_counter() - t
    finally:
        for name, fn in originals.items():
            setattr(rfs, name, fn)
    return summary, times


def score(summary: dict, n_inf: int = 10) -> dict:
    """Recall (informative or its copy), noise admitted, leak flagged / selected."""
    core = set(summary["core"])
    recovered = sum(1 for i in range(n_inf) if f"inf_{i}" in core or f"copy_{i}" in core)
    return {"recall": recovered, "noise": sum(c.startswith("noise_") for c in core), "core": len(core),
            "leak_flagged": "leak_centered" in summary["leak_suspects"], "leak_selected": "leak_centered" in core}


def stage1_discoveries(root: Path) -> tuple[int, int, int]:
    """(significant (feature, target) rows, targets with any, targets) of stage 1 (all false on a null panel)."""
    stats = pd.read_csv(root / "reports" / "Synth" / "base" / "stage1_filter" / "filter_stats.csv")
    stats = stats[stats["target"].notna()]
    sig = stats["significant"].fillna(False).astype(bool)
    per_target = sig.groupby(stats["target"]).any()
    return int(sig.sum()), int(per_target.sum()), int(len(per_target))


def run_panel(panel: pd.DataFrame, quick: bool, period: str = "1h", targets: list[dict] | None = None):
    """Screen ``panel`` in a temporary folder; (summary, stage times, stage-1 discoveries)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        panel.to_parquet(root / "panel.parquet")
        summary, times = timed_run(screening_config(root, root / "panel.parquet", quick, period, targets))
        return summary, times, stage1_discoveries(root)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per panel."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--symbols", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="no stage 3, one tree library in stage 2")
    p.add_argument("--panels", default="signal,null,ohlcv_null")
    p.add_argument("--null-symbols", default="1,3,10")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    kinds = args.panels.split(",")
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        jobs = [(k, None) for k in ("signal", "null") if k in kinds]
        if "ohlcv_null" in kinds:
            jobs += [("ohlcv_null", (shape, int(n))) for shape in NULL_SHAPES for n in args.null_symbols.split(",")]
        for kind, extra in jobs:
            if kind == "ohlcv_null":
                (label, period, calendar, bars), n_sym = extra
                panel = null_panel(bars, n_sym, seed=seed, period=period, calendar=calendar)
                summary, times, disc = run_panel(panel, args.quick, period, NULL_TARGETS)
                name = f"ohlcv null {label} x{n_sym}"
            else:
                panel = make_screening_panel(args.symbols, args.rows, null=kind == "null", seed=seed)
                summary, times, disc = run_panel(panel, args.quick)
                name = kind
            rows.append({"seed": seed, "panel": name, **score(summary), "leak_suspects": len(summary["leak_suspects"]),
                         "s1_discoveries": disc[0], "s1_targets_any": f"{disc[1]}/{disc[2]}",
                         **{f"t_{k}": round(v, 1) for k, v in times.items()}})
            print(pd.DataFrame([rows[-1]]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print("\nall runs:")
    print(table.to_string(index=False))
    sig, null = table[table["panel"] == "signal"], table[table["panel"] != "signal"]
    if len(sig):
        print(f"\nsignal goals: recall >= 9 (min {sig['recall'].min()}), noise <= 5 (max {sig['noise'].max()}), "
              f"leak flagged ({sig['leak_flagged'].all()}) and not selected ({not sig['leak_selected'].any()})")
    if len(null):
        any_rate = null["s1_targets_any"].map(lambda v: int(v.split("/")[0])).sum() / \
            null["s1_targets_any"].map(lambda v: int(v.split("/")[1])).sum()
        print(f"null goals: core <= 2 (max {null['core'].max()}), no leak suspect (max {null['leak_suspects'].max()}),"
              f" share of (panel, target) pairs with any stage-1 discovery {any_rate:.3f} (nominal FDR 0.05)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
