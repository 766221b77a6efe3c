"""Per-expert shortcuts.

Usage::

    python scripts/experts_cli.py list
    python scripts/experts_cli.py train  --expert Alpha-Dir-TFT --leaf 1h/base [--set training.max_epochs=3]
    python scripts/experts_cli.py resume --expert Alpha-Dir-TFT --leaf 1h/base
    python scripts/experts_cli.py warm   --expert Alpha-Dir-TFT --leaf 1h/rich
    python scripts/experts_cli.py predict --expert Alpha-Dir-TFT --leaf 1h/base [--ckpt best|last|PATH]
                                          [--split val|test|all]
    python scripts/experts_cli.py summary   # each trained leaf: latest predictions, eval report, short table
    python scripts/experts_cli.py oof --expert Alpha-Dir-TFT --leaf 1h/base [--set walk_forward.n_windows=4]
                                      [--model tft|logistic|lightgbm|xgboost|catboost]
    python scripts/experts_cli.py baseline --expert Alpha-Dir-TFT --leaf 1h/base --model logistic|lightgbm
                                           [--split val|test|all]   (repeatable; default val)
    python scripts/experts_cli.py tune --expert Alpha-Dir-TFT --leaf 1h/base --trials 20 [--timeout SECONDS]

``baseline`` fits a simple model on exactly the leaf's training rows and features (models/baselines.py),
calibrates it on validation like the TFT and writes the same predictions / eval report under
``lightning_logs/experts/<expert>/<period>/<modality>/<model>/``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from models.baselines import BASELINE_MODELS
from models.leaf_config import Leaf, data_root_override, load_leaf
from models.training import entry
from utils.errors import Interrupted, ProjectError
from utils.eval_report import format_table
from utils.stage_summary import read_stage_summary

logger = logging.getLogger(__name__)

CONFIG_ROOT = Path("configs/experts")


def leaves(root: Path = CONFIG_ROOT) -> list[Path]:
    """Every ``<Expert>/<period>/<modality>/model_config.yaml`` under ``root``."""
    return sorted(root.glob("*/*/*/model_config.yaml"))


def list_rows(root: Path = CONFIG_ROOT) -> list[dict]:
    """One row per leaf: expert, leaf, trained or not, best monitor value."""
    rows = []
    for path in leaves(root):
        leaf = load_leaf(path)
        summary = read_stage_summary(leaf.ckpt_dir / "stage_summary.json")
        rows.append({"expert": leaf.model.expert, "leaf": f"{leaf.model.period}/{leaf.model.modality}",
                     "trained": (leaf.ckpt_dir / "last.ckpt").is_file(),
                     "best_monitor": summary.get("best_monitor")})
    return rows


def latest_outputs(leaf: Leaf) -> dict[str, Path | None]:
    """Newest ``predictions_*.parquet`` and prediction eval report under the leaf's log root."""
    preds = sorted(leaf.log_dir.glob("version_*/predictions/predictions_*.parquet"), key=lambda p: p.stat().st_mtime)
    reports = sorted(leaf.log_dir.glob("version_*/eval_report_*.csv"), key=lambda p: p.stat().st_mtime)
    # a prediction's report shares its file stamp; validation-end reports have none of their own parquet
    stamps = {p.name.removeprefix("predictions_").removesuffix(".parquet") for p in preds}
    reports = [r for r in reports if r.name.removeprefix("eval_report_").removesuffix(".csv") in stamps] or reports
    return {"predictions": preds[-1] if preds else None, "eval_report": reports[-1] if reports else None}


def summary(root: Path = CONFIG_ROOT) -> int:
    """Print, per trained leaf, where its latest predictions and eval report are, and their ALL rows."""
    shown = 0
    for path in leaves(root):
        leaf = load_leaf(path)
        if not (leaf.ckpt_dir / "last.ckpt").is_file():
            continue
        out = latest_outputs(leaf)
        print(f"== {leaf.model.expert} {leaf.model.period}/{leaf.model.modality}")
        print(f"   predictions: {out['predictions'] or '- (none yet: scripts/experts_cli.py predict)'}")
        print(f"   eval report: {out['eval_report'] or '-'}")
        if out["eval_report"] is not None:
            table = format_table(pd.read_csv(out["eval_report"]), symbols="ALL")
            print("   " + table.replace("\n", "\n   "))
        shown += 1
    if not shown:
        print("no trained leaf yet: python train_multi_tft.py --config "
              "configs/experts/<Expert>/<period>/<modality>/model_config.yaml")
    return 0


def predict_cmd(args: argparse.Namespace) -> int:
    """``predict``: checkpoint -> predictions parquet + eval report (a new log version of the leaf)."""
    from models.prediction import load_expert, predict, resolve_checkpoint
    from utils.logging_setup import configure_logging

    configure_logging(args.verbose)
    config = CONFIG_ROOT / args.expert / args.leaf / "model_config.yaml"
    try:
        ckpt = resolve_checkpoint(load_leaf(config), args.ckpt)
        module, leaf = load_expert(ckpt)
        result = predict(module, leaf, args.split, checkpoint=str(ckpt))
    except ProjectError as exc:
        logger.error("%s", exc)
        return 2
    print(f"predictions: {result.predictions} ({result.rows:,} rows)\neval report: {result.eval_report}")
    print(format_table(pd.read_csv(result.eval_report), symbols="ALL"))
    return 0


def baseline_cmd(args: argparse.Namespace, config: Path) -> int:
    """``baseline``: fit a baseline model on the leaf's rows; write predictions and eval reports."""
    from models.baseline_runs import run_baseline
    from utils.logging_setup import configure_logging

    configure_logging(args.verbose)
    try:
        results = run_baseline(load_leaf(config, args.set), args.model, tuple(args.split or ["val"]),
                               wait=not args.no_wait)
    except ProjectError as exc:
        logger.error("%s", exc)
        return 2
    for r in results:
        print(f"predictions: {r.predictions} ({r.rows:,} rows)\neval report: {r.eval_report}")
        print(format_table(pd.read_csv(r.eval_report), symbols="ALL"))
    return 0


def _training_job(args: argparse.Namespace, job):
    """Run ``job()`` (training runs) with logging set up: (its result, 0), or (None, exit code) on an error."""
    from utils.logging_setup import configure_logging
    from utils.mp_start import ensure_spawn_safe

    configure_logging(args.verbose)
    ensure_spawn_safe()
    try:
        return job(), 0
    except ProjectError as exc:
        logger.error("%s", exc)
        return None, 2
    except Interrupted as exc:
        logger.error("interrupted: %s", exc)
        return None, exc.exit_code


def tune_cmd(args: argparse.Namespace, config: Path) -> int:
    """``tune``: Optuna trials of the leaf; writes ``tuned_overrides.yaml`` and ``trials.csv``."""
    from models.tuning import tune

    result, code = _training_job(args, lambda: tune(config, args.set, args.trials, args.timeout,
                                                            wait=not args.no_wait))
    if result is not None:
        print(f"best value {result.best_value:.4f} with {result.best_settings}")
        print(f"overrides: {result.overrides_file}\ntrials: {result.trials_csv}")
    return code


def oof_cmd(args: argparse.Namespace, config: Path) -> int:
    """``oof``: walk-forward windows, each predicting only the span after its training data."""
    from models.walk_forward import run_walk_forward

    results, code = _training_job(args, lambda: run_walk_forward(config, args.set, wait=not args.no_wait,
                                                                    model=args.model))
    for r in results or []:
        print(f"oof predictions: {r.predictions} ({r.rows:,} rows)")
    return code


def _leaf_parser(sub, cmd: str, text: str | None) -> argparse.ArgumentParser:
    sp = sub.add_parser(cmd, help=text)
    sp.add_argument("--expert", required=True)
    sp.add_argument("--leaf", required=True, help="<period>/<modality>, e.g. 1h/base")
    if cmd == "predict":
        sp.add_argument("--ckpt", default="best", help="best | last | path to a .ckpt (default best)")
        sp.add_argument("--split", default="val", choices=["val", "test", "all"])
    else:
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        sp.add_argument("--data-root", help="data root of the build (its --out)")
        sp.add_argument("--no-wait", action="store_true", help="stop (exit 2) if another run writes this leaf")
    if cmd in ("predict", "oof", "baseline", "tune"):
        sp.add_argument("-v", "--verbose", action="store_true")
    if cmd == "tune":
        sp.add_argument("--trials", type=int, default=20, help="training runs (default 20)")
        sp.add_argument("--timeout", type=float, default=None, help="stop starting trials after SECONDS")
    if cmd == "oof":
        sp.add_argument("--model", default="tft", choices=["tft", *BASELINE_MODELS],
                        help="tft (default) or a baseline model")
    if cmd == "baseline":
        sp.add_argument("--model", required=True, choices=list(BASELINE_MODELS))
        sp.add_argument("--split", action="append", choices=["val", "test", "all"],
                        help="span(s) to predict and report (repeatable; default val)")
    return sp


def parser() -> argparse.ArgumentParser:
    """The command-line parser of every sub-command."""
    p = argparse.ArgumentParser(prog="scripts/experts_cli.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="experts, leaves, trained or not, best monitor")
    sub.add_parser("summary", help="each trained leaf: latest predictions and eval report, short table")
    helps = {"train": None, "resume": None, "warm": None,
             "predict": "write predictions_*.parquet and an eval report from a checkpoint",
             "oof": "walk-forward training; each window predicts the span after its data",
             "baseline": "fit a logistic / GBDT baseline on the leaf's rows; write its predictions and eval report",
             "tune": "Optuna search of the leaf's settings on its validation span (pruned on the monitor)"}
    for cmd, text in helps.items():
        _leaf_parser(sub, cmd, text)
    return p


def list_cmd() -> int:
    """``list``: one line per leaf."""
    try:
        rows = list_rows()
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'expert':24s} {'leaf':10s} {'trained':8s} best_monitor")
    for r in rows:
        best = "-" if r["best_monitor"] is None else f"{r['best_monitor']:.4f}"
        print(f"{r['expert']:24s} {r['leaf']:10s} {'yes' if r['trained'] else 'no':8s} {best}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    if args.cmd in ("summary", "list"):
        return summary() if args.cmd == "summary" else list_cmd()
    config = CONFIG_ROOT / args.expert / args.leaf / "model_config.yaml"
    if not config.is_file():
        print(f"error: no leaf {args.expert} {args.leaf}: {config} does not exist", file=sys.stderr)
        return 2
    if args.cmd == "predict":
        return predict_cmd(args)
    if args.cmd in ("oof", "baseline", "tune"):
        try:
            args.set = data_root_override(config, args.data_root) + list(args.set)
        except ProjectError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return {"oof": oof_cmd, "baseline": baseline_cmd, "tune": tune_cmd}[args.cmd](args, config)
    init = {"train": None, "resume": "resume", "warm": "warm"}[args.cmd]
    sets = [f"--set={s}" for s in args.set]
    root = (["--data-root", args.data_root] if args.data_root else []) + (["--no-wait"] if args.no_wait else [])
    return entry(["--config", str(config), *sets, *root], init, f"experts_cli.py {args.cmd}")


if __name__ == "__main__":
    raise SystemExit(main())
