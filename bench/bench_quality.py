"""Quality benchmark: the TFT against the baselines a researcher tries first, on identical rows.

Usage::

    python bench/bench_quality.py --leaf Alpha-Dir-TFT/1h/base [--tft-ckpt best|PATH[,PATH...]|none]
                                  [--tft-epochs N] [--tft-seeds 42,1,2] [--baseline-seeds 42,1,2]
                                  [--models logistic,lightgbm] [--samples 300] [--block-bars 48]
                                  [--set features.normalize=group ...]

Every model is scored on exactly the validation rows of the leaf's windows (:func:`build_window_data`: same
features, spans, purge and embargo; the TFT's checkpoint fixes the split dates and transforms, and the baselines
are fit on the same ``WindowData``). Classification targets: AP, ROC-AUC, log-loss, Brier and the share of the
oracle's AP lift ``(AP - base rate) / (oracle AP - base rate)`` (the full oracle of the synthetic market's
``oracle.parquet`` where the horizon has one, and for 1-bar hourly targets the oracle of the drivers this table can
observe). Regression targets: IC (Spearman rank correlation of P50 with the outcome, pooled), mean pinball loss and
P10 / P90 coverage. ``no_skill`` is the training span's base rate or mean. Last, each model's headline (AP, or IC)
minus the best baseline's, with a 90% paired block-bootstrap interval over time (:mod:`metrics.bootstrap`). On the
synthetic market the 1-bar hourly target also gets a table of its planted drivers (:func:`driver_table`): the
share of the oracle's lift each driver carries alone and what is lost without it, and each model's rank
correlation with each driver's drift, so a gap to the oracle can be traced to the drivers a model misses.

``--tft-epochs N`` trains the leaf first (N epochs, early stopping off), ``--tft-ckpt best`` uses the leaf's best
checkpoint, ``none`` scores the baselines alone. ``--tft-seeds 42,1,2`` (with ``--tft-epochs``) trains one TFT per
seed and scores each (``tft_s42`` ...) and their average (``tft_mean``: the seed ensemble, calibrated scores and
quantiles averaged), so a difference can be read against the spread between seeds of the same model;
``--tft-ckpt PATH,PATH,...`` scores checkpoints trained earlier the same way (named by their seeds). The baselines
keep the leaf's seed unless ``--baseline-seeds 42,1,2`` fits each once per seed (``lightgbm_s1`` ... and the seed
ensemble ``lightgbm_mean``): GBDTs subsample rows and columns, so their figures move with the seed as the TFT's do,
and a model trained with several seeds is then compared by its mean over them (the best baseline is chosen by that
mean, never by its luckiest seed). Probabilities are calibrated on the validation span for every
model (the leaf's method), so log-loss and Brier are in-sample for the calibration; AP, ROC-AUC and IC are not
affected by it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from metrics.bootstrap import paired_block_bootstrap
from models.baselines import BaselineExpert, available_models
from models.leaf_config import Leaf, load_leaf
from models.prediction import checkpoint_data, load_expert, resolve_checkpoint
from models.window_dataset import WindowData, build_window_data, leaf_rows, make_loader, read_table, resolve_split
from utils.metric_factory import brier_score, get_metric, pinball_loss

HOURS = {"1h": 1, "4h": 4, "1d": 24}
# baselines whose fit does not depend on the seed (lbfgs logistic regression, ridge): fit once under --baseline-seeds
SEED_FREE = {"logistic"}
# inputs that let a model see a driver: the market means of returns see the market-wide drift of the flow
# driver (the whole market moves with it over the day), as the on-chain inputs see the flow itself
DRIVERS = {"funding_": "funding", "oi_": "oi_momentum", "onchain_": "flow", "market_": "flow"}


def tft_outputs(module, data: WindowData) -> dict[str, np.ndarray]:
    """Calibrated scores ``[n, T]`` and quantiles ``[n, T, Q]`` of the TFT on the validation rows."""
    module.eval()
    with torch.no_grad():
        outs = [module.predict_step(b, i) for i, b in enumerate(make_loader(data, "val", 1024, False))]
    return {"score": torch.cat([o["score"] for o in outs]).numpy(),
            "quantiles": torch.cat([o["quantiles"] for o in outs]).numpy()}


def oracle_rows(leaf: Leaf, data: WindowData, oracle_path: Path) -> pd.DataFrame | None:
    """The synthetic market's oracle row (``oracle.parquet``) of each validation window, in window order; ``None``
    without the file (real data)."""
    if not oracle_path.is_file():
        return None
    rows = data.splits["val"]
    sym = np.asarray(data.categories["symbol"])[data.static.numpy()[rows, 0]]
    # the decision bar's close is the close of its last hourly bar, which the oracle row of that hour describes
    ts = pd.to_datetime(data.timestamp[rows], utc=True) + pd.Timedelta(hours=HOURS[leaf.model.period] - 1)
    keys = pd.DataFrame({"symbol": sym, "timestamp": ts.as_unit("ns")})
    oracle = pd.read_parquet(oracle_path)
    oracle["timestamp"] = pd.to_datetime(oracle["timestamp"], utc=True).dt.as_unit("ns")
    return keys.merge(oracle, on=["symbol", "timestamp"], how="left")


def oracle_scores(leaf: Leaf, data: WindowData, joined: pd.DataFrame | None) -> dict[str, dict[str, np.ndarray]]:
    """Per classification target with an oracle horizon: {'oracle': P(up), 'observable': P(up) from the drivers
    the features can see (1-bar hourly targets only)}. Empty without the oracle rows."""
    if joined is None:
        return {}
    k = HOURS[leaf.model.period]
    out = {}
    for t in leaf.targets.targets:
        col = f"prob_up_h{k * t.horizon}"
        if t.kind != "classification" or col not in joined:
            continue
        out[t.name] = {"oracle": joined[col].to_numpy()}
        if k * t.horizon == 1:
            seen = list(dict.fromkeys(["regime", "reversal"] + [d for p, d in DRIVERS.items()
                                                                if any(f.startswith(p) for f in data.features)]))
            out[t.name]["observable"] = driver_prob(joined, seen)
    return out


def driver_prob(joined: pd.DataFrame, drivers: list[str]) -> np.ndarray:
    """P(up) of the next bar from the named drivers' drift alone (the generator's Student-t, df 4, unit variance)."""
    drift = joined[[f"drift_h1_{d}" for d in drivers]].sum(axis=1)
    return stats.t.cdf(drift / joined["sigma_h1"] * np.sqrt(2.0), df=4.0)


def driver_table(y: np.ndarray, scores: dict[str, np.ndarray], joined: pd.DataFrame) -> pd.DataFrame:
    """Which planted drivers each model found (1-bar targets of the synthetic market).

    One row per driver of ``oracle.parquet`` (``drift_h1_<driver>``): ``alone``, the share of the full oracle's AP
    lift that the oracle restricted to this driver reaches; ``without``, the share without it; then the Spearman
    correlation of the oracle's P(up) and of each model's score with the driver's standardized drift. A model that
    found a driver correlates with it about as the oracle does; the drivers are built from independent shocks, so
    the correlations do not borrow from each other much. The last row, ``all``, is the oracle's whole drift.
    """
    ok = np.isfinite(joined["sigma_h1"].to_numpy()) & np.isfinite(joined["prob_up_h1"].to_numpy())
    y, joined = y[ok], joined[ok]
    base = float(np.mean(y))
    lift = average_precision_score(y, joined["prob_up_h1"]) - base
    drivers = [c.removeprefix("drift_h1_") for c in joined.columns if c.startswith("drift_h1_")]
    scores = {"oracle": joined["prob_up_h1"].to_numpy(), **{name: s[ok] for name, s in scores.items()}}
    table = {}
    for d in [*drivers, "all"]:
        parts = drivers if d == "all" else [d]
        z = (joined[[f"drift_h1_{x}" for x in parts]].sum(axis=1) / joined["sigma_h1"]).to_numpy()
        rest = [x for x in drivers if x not in parts]
        row = {"alone": (average_precision_score(y, driver_prob(joined, parts)) - base) / lift,
               "without": (average_precision_score(y, driver_prob(joined, rest)) - base) / lift if rest else 0.0}
        row.update({name: stats.spearmanr(s, z).statistic if np.std(z) > 0 else np.nan for name, s in scores.items()})
        table[d] = row
    return pd.DataFrame(table).T


def classification_row(y: np.ndarray, p: np.ndarray, oracles: dict[str, np.ndarray]) -> dict[str, float]:
    """AP, ROC-AUC, log-loss, Brier and the share of each oracle's AP lift."""
    base = float(np.mean(y))
    row = {"ap": average_precision_score(y, p), "roc_auc": roc_auc_score(y, p),
           "log_loss": log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]), "brier": brier_score(y, p)}
    for name, q in oracles.items():
        ok = np.isfinite(q)
        lift = average_precision_score(y[ok], q[ok]) - base
        row[f"lift_vs_{name}"] = (row["ap"] - base) / lift if lift > 0 else np.nan
    return row


def ic(y: np.ndarray, s: np.ndarray) -> float:
    """Spearman rank correlation of a forecast with the outcome: the registry's ``ic``, as in the eval reports
    (NaN when either side is constant)."""
    return get_metric("ic").fn(y, {0.5: s})


def regression_row(y: np.ndarray, q: np.ndarray, quantiles: list[float]) -> dict[str, float]:
    """IC of P50, mean pinball loss over the quantiles, P10 / P90 coverage."""
    p50 = q[:, quantiles.index(0.5)]
    return {"ic": ic(y, p50), "pinball": float(np.mean([pinball_loss(y, q[:, j], a) for j, a in enumerate(quantiles)])),
            "cov_lo": float(np.mean(y <= q[:, 0])), "cov_hi": float(np.mean(y <= q[:, -1])),
            "rmse": float(np.sqrt(np.mean((y - p50) ** 2)))}


def _mean_output(outs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The average of several models' scores and quantiles (a seed ensemble; the mean of ordered quantiles stays
    ordered)."""
    return {key: np.mean([o[key] for o in outs], axis=0) for key in ("score", "quantiles")}


def collect(leaf: Leaf, data: WindowData, tfts: dict, models: list[str],
            seeds: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Per model: scores ``[n, T]`` and quantiles ``[n, T, Q]`` on the validation rows (plus no skill); ``tfts``
    maps a name to a trained module (several seeds also give their average, ``tft_mean``); each baseline is fit
    once per seed of ``seeds`` (``lightgbm_s1`` ... and their average ``lightgbm_mean`` when there are several;
    a single seed, or a baseline of :data:`SEED_FREE`, keeps the plain name)."""
    rows = data.splits["val"]
    out = {name: tft_outputs(module, data) for name, module in tfts.items()}
    if len(tfts) > 1:
        out["tft_mean"] = _mean_output([out[n] for n in tfts])
    for name in models:
        own = seeds[:1] if name in SEED_FREE else seeds
        for seed in own:
            dec = BaselineExpert(leaf, name, seed).fit(data).decode(data, rows)
            out[name if len(own) == 1 else f"{name}_s{seed}"] = {"score": dec["score"], "quantiles": dec["quantiles"]}
        if len(own) > 1:
            out[f"{name}_mean"] = _mean_output([out[f"{name}_s{seed}"] for seed in own])
    means = np.nanmean(data.y_raw[data.splits["train"]], axis=0)
    q_const = np.nanquantile(data.y_raw[data.splits["train"]], leaf.model.model.quantiles, axis=0).T
    out["no_skill"] = {"score": np.broadcast_to(means, (len(rows), len(means))).copy(),
                       "quantiles": np.broadcast_to(q_const, (len(rows), *q_const.shape)).copy()}
    return out


def seed_families(names: list[str]) -> dict[str, list[str]]:
    """Models trained with several seeds, by model: ``{'tft': ['tft_s42', 'tft_s1'], ...}`` (names ``<model>_s<seed>``;
    a model with one seed is not a family)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        match = re.fullmatch(r"(.+)_s(-?\d+)", name)
        if match:
            groups.setdefault(match.group(1), []).append(name)
    return {family: members for family, members in groups.items() if len(members) > 1}


def evaluate(leaf: Leaf, data: WindowData, outputs: dict, joined: pd.DataFrame | None,
             args: argparse.Namespace) -> None:
    """Print one table per target, the bootstrap comparison with the best baseline and, for the 1-bar target of a
    synthetic market, which of its drivers each model found."""
    oracles = oracle_scores(leaf, data, joined)
    rows = data.splits["val"]
    ts = pd.Series(pd.to_datetime(data.timestamp[rows], utc=True))
    quantiles = list(leaf.model.model.quantiles)
    for k, t in enumerate(leaf.targets.targets):
        y = data.y_raw[rows, k]
        table = {}
        for name, o in outputs.items():
            if t.kind == "classification":
                table[name] = classification_row(y, o["score"][:, k], oracles.get(t.name, {}))
            else:
                table[name] = regression_row(y, o["quantiles"][:, k], quantiles)
        for oname, q in oracles.get(t.name, {}).items():
            table[f"oracle_{oname}"] = classification_row(y[np.isfinite(q)], q[np.isfinite(q)], {})
        frame = pd.DataFrame(table).T
        print(f"\n{leaf.model.expert} {leaf.model.period}/{leaf.model.modality} {t.name} ({t.kind}), validation "
              f"span {ts.min():%Y-%m-%d} .. {ts.max():%Y-%m-%d}, {len(rows):,} rows, base rate / mean {np.mean(y):.4f}")
        print(frame.to_string(float_format=lambda v: f"{v:.4f}"))
        print_seed_means(frame, "ap" if t.kind == "classification" else "ic")
        compare(t, y, outputs, k, ts, leaf.model.period, args, quantiles)
        if joined is not None and t.kind == "classification" and HOURS[leaf.model.period] * t.horizon == 1:
            drivers = driver_table(y, {n: o["score"][:, k] for n, o in outputs.items() if n != "no_skill"}, joined)
            print("  planted drivers: share of the oracle's AP lift alone / without it; the oracle's and each "
                  "model's Spearman correlation with the driver's drift (all: the whole drift)")
            print(drivers.to_string(float_format=lambda v: f"{v:.3f}"))


def print_seed_means(frame: pd.DataFrame, head: str) -> None:
    """For every model trained with several seeds: the mean of each metric over its seeds, and the headline's
    spread (a difference between two models is read against it)."""
    families = seed_families(list(frame.index))
    if not families:
        return
    means = pd.DataFrame({f"{f} (mean of {len(m)} seeds)": frame.loc[m].astype(float).mean()
                          for f, m in families.items()}).T
    print(means.to_string(float_format=lambda v: f"{v:.4f}"))
    for family, members in families.items():
        values = frame.loc[members, head].astype(float)
        print(f"  {family} over {len(members)} seeds: {head.upper()} mean {values.mean():.4f}, std "
              f"{values.std(ddof=1):.4f}, range {values.min():.4f} .. {values.max():.4f}")


def seed_mean_metric(metric: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    """``metric`` of a model's forecasts ``[n]``, or the mean of ``metric`` over the columns (seeds) of ``[n, m]``."""
    def fn(y: np.ndarray, s: np.ndarray) -> float:
        return metric(y, s) if s.ndim == 1 else float(np.mean([metric(y, s[:, j]) for j in range(s.shape[1])]))
    return fn


def compare(t, y, outputs, k, ts, period, args, quantiles) -> None:
    """Each model's headline minus the best baseline's, 90% paired block-bootstrap interval.

    A model trained with several seeds also enters as the mean of its seeds' headlines (``tft (mean of 3 seeds)``;
    the bootstrap resamples the same blocks for every seed). The best baseline is chosen among the baselines as a
    researcher would run them: by the mean over their seeds, or as seed ensembles (``lightgbm_mean``), never by
    their luckiest seed.
    """
    cls = t.kind == "classification"
    metric = seed_mean_metric(average_precision_score if cls else ic)
    value = {n: o["score"][:, k] if cls else o["quantiles"][:, k, quantiles.index(0.5)] for n, o in outputs.items()}
    families = seed_families(list(value))
    members = {m for ms in families.values() for m in ms}
    for family, ms in families.items():
        value[f"{family} (mean of {len(ms)} seeds)"] = np.stack([value[m] for m in ms], axis=1)
    baselines = [n for n in value if not n.startswith("tft") and n != "no_skill" and n not in members]
    if not baselines:
        return
    best = max(baselines, key=lambda n: np.nan_to_num(metric(y, value[n]), nan=-np.inf))
    headline = "AP" if cls else "IC"
    # a constant has no IC: no skill is compared on AP only
    pairs = [(n, best, "best baseline") for n in value if n != best and (cls or n != "no_skill")]
    pairs += [(n, other, "like with like") for n, other in like_with_like(list(value), families)]
    for name, other, label in pairs:
        diff, lo, hi = paired_block_bootstrap(metric, y, value[name], value[other], ts, period, args.samples,
                                              args.block_bars, args.seed, min_block_bars=2 * t.horizon)
        verdict = "above" if lo > 0 else "below" if hi < 0 else "includes 0"
        print(f"  {name} - {other} ({label}) {headline}: {diff:+.4f}, 90% interval [{lo:+.4f}, {hi:+.4f}] "
              f"({verdict})")


def like_with_like(names: list[str], families: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Each TFT family against each baseline family, like with like: the mean over seeds against the mean over
    seeds, the seed ensemble against the seed ensemble (``tft_mean`` - ``lightgbm_mean``). The best baseline above
    may be a seed ensemble, which a mean over single models is not: these pairs say which model is better, that
    one says whether the TFT is at least as good as the strongest baseline there is."""
    out = []
    for f, fs in families.items():
        for g, gs in families.items():
            if not f.startswith("tft") or g.startswith("tft"):
                continue
            out.append((f"{f} (mean of {len(fs)} seeds)", f"{g} (mean of {len(gs)} seeds)"))
            if f"{f}_mean" in names and f"{g}_mean" in names:
                out.append((f"{f}_mean", f"{g}_mean"))
    return out


def _trained(config: Path, args: argparse.Namespace, table: pd.DataFrame) -> dict[str, tuple[object, Leaf]]:
    """Train the TFT once per seed (``--tft-seeds``, default the leaf's own) and load each best checkpoint at once
    (the next run archives it)."""
    from models.training import run

    seeds = [s for s in args.tft_seeds.split(",") if s] if args.tft_seeds else []
    base = [*args.set, f"training.max_epochs={args.tft_epochs}", "training.early_stopping_patience=null"]
    out, paths = {}, []
    for seed in seeds or [None]:
        path = run(load_leaf(config, base + ([f"seed={seed}"] if seed else [])), table=table).best_model_path
        out["tft" if seed is None else f"tft_s{seed}"] = load_expert(resolve_checkpoint(load_leaf(config, args.set),
                                                                                        path))
        paths.append(path)
    args.tft_ckpt = ", ".join(paths)
    return out


def _checkpoints(leaf: Leaf, which: str) -> dict[str, tuple[object, Leaf]]:
    """The TFT checkpoints of ``--tft-ckpt`` by name: ``tft`` for one, ``tft_s<seed>`` (the seed each was trained
    with) for a comma-separated list, e.g. three seeds trained earlier."""
    items = [w.strip() for w in which.split(",") if w.strip()]
    loaded = [load_expert(resolve_checkpoint(leaf, w)) for w in items]
    if len(loaded) == 1:
        return {"tft": loaded[0]}
    names = [f"tft_s{ck_leaf.model.seed}" for _, ck_leaf in loaded]
    if len(set(names)) < len(names):
        raise SystemExit(f"--tft-ckpt {which}: two checkpoints were trained with the same seed ({', '.join(names)}); "
                         "give one checkpoint per seed")
    return dict(zip(names, loaded, strict=True))


def load(args: argparse.Namespace) -> tuple[Leaf, WindowData, dict]:
    """The leaf (split dates resolved), its windows and the TFT modules by name (empty with ``--tft-ckpt none``)."""
    config = Path("configs/experts") / args.leaf / "model_config.yaml"
    leaf = load_leaf(config, args.set)
    table = read_table(leaf.model.data.path)
    if args.tft_epochs:
        loaded = _trained(config, args, table)
    elif args.tft_ckpt != "none":
        loaded = _checkpoints(leaf, args.tft_ckpt)
    else:
        leaf = resolve_split(leaf, leaf_rows(leaf, table)["timestamp"])
        return leaf, build_window_data(leaf, table), {}
    module, ck_leaf = next(iter(loaded.values()))
    data = checkpoint_data(module, ck_leaf, table)
    for name, (other, other_leaf) in loaded.items():  # every seed must be scored on the same rows
        if not np.array_equal(checkpoint_data(other, other_leaf, table).splits["val"], data.splits["val"]):
            raise SystemExit(f"{name}: its validation rows differ from the first model's; cannot compare")
    return ck_leaf, data, {name: m for name, (m, _) in loaded.items()}


def seed_list(text: str) -> list[int]:
    """``--baseline-seeds``: comma-separated distinct integers."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integer seeds, e.g. 42,1,2") from None
    if not seeds or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct integer seeds, e.g. 42,1,2")
    return seeds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--leaf", default="Alpha-Dir-TFT/1h/base", help="<Expert>/<period>/<modality>")
    p.add_argument("--tft-ckpt", default="best", help="best | last | PATH[,PATH...] (one per seed) | none")
    p.add_argument("--tft-epochs", type=int, default=0, help="train the TFT for N epochs first")
    p.add_argument("--tft-seeds", default="", help="with --tft-epochs: one TFT per seed (e.g. 42,1,2) and their mean")
    p.add_argument("--models", default="logistic,lightgbm", help=f"baselines (installed: {available_models()})")
    p.add_argument("--baseline-seeds", default=None, type=seed_list,
                   help="fit each baseline once per seed (e.g. 42,1,2) and compare means over seeds; default: the "
                        "leaf's seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="leaf config override (training and baselines), e.g. features.normalize=group")
    p.add_argument("--oracle", default="data/raw/oracle.parquet")
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--block-bars", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    leaf, data, tfts = load(args)
    seeds = args.baseline_seeds or [load_leaf(Path("configs/experts") / args.leaf / "model_config.yaml",
                                              args.set).model.seed]
    outputs = collect(leaf, data, tfts, [m for m in args.models.split(",") if m], seeds)
    evaluate(leaf, data, outputs, oracle_rows(leaf, data, Path(args.oracle)), args)
    print(f"\n(rows: the leaf's validation windows, {leaf.model.period} bars; TFT checkpoint: {args.tft_ckpt})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
