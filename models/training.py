"""One training code path for train, resume and warm start: :func:`run`.

* ``init_from=None``: train from scratch.
* ``init_from="resume"``: continue from ``last.ckpt`` (optimizer, scheduler and epoch state); refuses a
  changed architecture or feature set.
* ``init_from="warm"``: initialise from the checkpoint named in ``weights_config.yaml``, copying every
  parameter whose name and shape match, and log a transferred / skipped / new table.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from features.interactions import PairScreen, sample_rows
from models.callbacks import (
    AveragedWeights,
    BestAndLastCheckpoint,
    ExactResume,
    InterruptCheckpoint,
    ReleaseFreedMemory,
    ValidationOutputs,
)
from models.checkpoints import checkpoint_outcome, read_spec
from models.leaf_config import Leaf, SplitSection, data_root_override, load_leaf, with_legacy
from models.leaf_data import LeafTable, as_leaf_table, data_source, leaf_rows
from models.prediction import PredictResult, load_expert, precision_for, predict
from models.tft_module import MyTFTModule
from models.window_dataset import WindowData, build_window_data, make_loader, resolve_split
from utils.cli import add_output_flags, guarded
from utils.config import from_mapping
from utils.errors import ConfigError, DataError, Interrupted
from utils.io import file_fingerprint, write_text
from utils.locks import output_lock
from utils.memory import release_freed_memory
from utils.metric_factory import MONITORABLE, get_metric
from utils.partitioned import dataset_fingerprint, is_partitioned
from utils.stage_summary import write_stage_summary
from utils.timeline import as_utc

logger = logging.getLogger(__name__)

InitFrom = Literal["resume", "warm"] | None
ARCH_KEYS = ("model", "window")
#: version of the prediction contract (columns and meanings of predictions_*.parquet)
SCHEMA_VERSION = "1"


@dataclass
class RunResult:
    """What a training run produced."""

    best_model_path: str
    last_model_path: str
    best_score: float | None
    monitor: str
    epochs: int
    log_dir: str
    prediction: PredictResult | None = None


def monitor_for(leaf: Leaf) -> tuple[str, str]:
    """(metric name, mode) of the configured monitor; ``auto`` picks the first classification AP.

    The mode comes from the metric registry (``utils.metric_factory``): ``val_<target>_<metric>@<period>``
    is maximised when the metric is (AP, ROC-AUC, IC), else minimised; ``val_loss`` is minimised. Only the
    metrics the module logs at every validation (``MONITORABLE``, for the target's kind) can be monitors.
    """
    period = leaf.model.period
    if leaf.model.training.monitor == "auto":
        for t in leaf.targets.targets:
            if t.kind == "classification":
                return f"val_{t.name}_ap@{period}", "max"
        return f"val_{leaf.targets.targets[0].name}_rmse@{period}", "min"
    name = leaf.model.training.monitor
    if name == "val_loss":
        return name, "min"
    head, _, at = name.partition("@")
    metrics = sorted({m for ms in MONITORABLE.values() for m in ms})
    known = [m for m in metrics if head.endswith(f"_{m}")]
    if not head.startswith("val_") or not known:
        raise ConfigError(f"{leaf.config_path}: key 'training.monitor' = {name!r}: use val_loss or "
                          f"val_<target>_<metric>@{period} with a metric of {metrics}")
    metric = max(known, key=len)
    target = head[len("val_"):-len(metric) - 1]
    kinds = {t.name: t.kind for t in leaf.targets.targets}
    problem = (f"target {target!r} is not one of the leaf's targets {list(kinds)}" if target not in kinds
               else f"the period after '@' must be the leaf's, {period!r}" if at != period
               else f"{metric!r} is not a {kinds[target]} metric; use one of {MONITORABLE[kinds[target]]}"
               if metric not in MONITORABLE[kinds[target]] else "")
    if problem:  # checked before anything is archived: otherwise Lightning fails after a whole epoch
        first = leaf.targets.targets[0]
        raise ConfigError(f"{leaf.config_path}: key 'training.monitor' = {name!r}: {problem}; "
                          f"e.g. val_{first.name}_{MONITORABLE[first.kind][0]}@{period}")
    return name, "max" if get_metric(metric).higher_is_better else "min"


def check_splits(leaf: Leaf, data: WindowData) -> None:
    """Training needs validation windows (early stopping, calibration), and a fractional split below 1 promises
    test windows: an empty span is a DataError naming the split keys and the table's span, raised before
    anything is archived or written."""
    sp = leaf.model.split
    wants_test = isinstance(sp.val_end, float) and sp.val_end < 1.0  # a fractional split that leaves a test span
    empty = [name for name in ("val", "test") if not data.splits[name].size and (name == "val" or wants_test)]
    if not empty:
        return
    ts = pd.to_datetime(np.asarray(data.timestamp, dtype=np.int64), utc=True)
    span = f" (the table spans {ts.min()} .. {ts.max()})" if len(ts) else ""
    raise DataError(f"{leaf.config_path}: key 'split' = train_end {sp.train_end!r}, val_end {sp.val_end!r}: no "
                    f"{' or '.join(empty)} window with a known target{span}; move the split dates inside the data "
                    f"(the embargo of {sp.embargo_bars} bars and the encoder length come off each span)")


def trainer_is_rank_zero() -> bool:
    """True outside DDP workers (the launcher process or rank 0)."""
    import os

    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def versions(leaf: Leaf, data: WindowData) -> dict[str, str]:
    """Version fields of every prediction; empty ``meta`` entries get derived values.

    ``data_ver``: the first 12 hex digits of the data file's SHA-256; ``train_window_id``: first and
    last decision bar of the training span (``20240101T0000-20250301T2300``).
    """
    meta = leaf.model.meta
    path = data_source(leaf.model.data.path)
    span = "-".join(pd.Timestamp(t).strftime("%Y%m%dT%H%M") for t in data.train_window)
    found = dataset_fingerprint(path) if is_partitioned(path) else file_fingerprint(path) if path.is_file() else None
    return {
        "schema_ver": meta.schema_version or SCHEMA_VERSION,
        "data_ver": meta.data_version or found or "in-memory",
        "expert_ver": meta.expert_version or "0",
        "train_window_id": meta.train_window_id or span,
    }


def screen_pairs(leaf: Leaf, data: WindowData) -> list[dict]:
    """The skip's interaction pairs (``model.interaction_pairs``, none when 0), screened on the training windows
    only (:class:`features.interactions.PairScreen`): ``[{left, right, tstat, target}]``, strongest first."""
    k = leaf.model.model.interaction_pairs
    if k == 0:
        return []
    targets, screen = leaf.targets.targets, PairScreen(k, seed=leaf.model.seed)
    train = data.splits["train"]
    if len(train) > screen.max_rows:  # the row cap before any copy: a real universe holds millions of windows
        logger.info("%s: interaction screen on %d of %d training windows", leaf.config_path, screen.max_rows,
                    len(train))
        train = train[sample_rows(len(train), screen.max_rows, leaf.model.seed)]
    screen.fit(data.x[train].numpy(), data.y_raw[train], data.timestamp[train],
               [t.kind for t in targets], [t.horizon for t in targets], [t.name for t in targets])
    table = screen.table(data.features)
    logger.info("%s: %d of %d input pairs kept for the skip (|t| > %.2f on the training span, at most %d)%s",
                leaf.config_path, len(table), screen.n_tested_, screen.critical_, k,
                "".join(f"\n  {r.left} x {r.right}: t {r.tstat:+.2f} ({r.target})" for r in table.itertuples()))
    return [{"left": r.left, "right": r.right, "tstat": float(r.tstat), "target": r.target}
            for r in table.itertuples()]


def make_spec(leaf: Leaf, data: WindowData, pairs: list[dict] | None = None) -> dict:
    """The self-contained description stored in every checkpoint (``pairs``: the screened interaction pairs, by
    default screened here)."""
    return {
        "config": leaf.to_dict(), "features": data.features, "known": data.known_names,
        "targets": [{"name": t.name, "kind": t.kind, "horizon": t.horizon} for t in leaf.targets.targets],
        "categories": data.categories,
        "scalers": {"features": data.feature_scaler.state_dict(), "targets": data.target_scaler.state_dict()},
        "versions": versions(leaf, data), "excluded_levels": data.excluded_levels or {},
        "ordered_quantiles": True,  # the regression head's quantiles cannot cross (see models.tft_module)
        # the no-skill constants of the eval reports: each target's base rate (or mean) on the training rows
        "train_target_means": np.nanmean(data.y_raw[data.splits["train"]], axis=0).tolist(),
        "interaction_pairs": screen_pairs(leaf, data) if pairs is None else pairs,
    }


def _trainer(leaf: Leaf, monitor: str, mode: str, extra: list | None = None) -> tuple[L.Trainer, ModelCheckpoint]:
    tr, t = leaf.model.trainer, leaf.model.training
    ckpt = BestAndLastCheckpoint(dirpath=leaf.ckpt_dir, filename="epoch{epoch:03d}", monitor=monitor, mode=mode,
                                 save_top_k=t.save_top_k, save_last=True, auto_insert_metric_name=False)
    # ReleaseFreedMemory before the validation writer: it trims the heap before the pass's outputs are gathered
    callbacks = [ckpt, InterruptCheckpoint(leaf.ckpt_dir / "last.ckpt"), ReleaseFreedMemory(), ValidationOutputs(),
                 *(extra or [])]
    if t.ema_decay:  # validation, checkpoints and so predictions see the averaged weights
        callbacks.append(AveragedWeights(t.ema_decay))
    if t.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience))
    log_root = leaf.log_dir.parent
    trainer = L.Trainer(
        max_epochs=t.max_epochs, accelerator=tr.accelerator, devices=tr.devices, strategy=tr.strategy,
        num_nodes=tr.num_nodes, precision=precision_for(leaf), callbacks=callbacks,
        logger=TensorBoardLogger(save_dir=str(log_root), name=leaf.log_dir.name),
        log_every_n_steps=t.log_steps, gradient_clip_val=t.gradient_clip_val or None,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
        enable_progress_bar=True, use_distributed_sampler=False,  # WindowBatchSampler shards itself
        deterministic=False,
    )
    return trainer, ckpt


def _as_yaml(value: object) -> str:
    """A value as a ``--set`` writes it (``false``, ``16``, ``[0.1, 0.5, 0.9]``)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _check_same_architecture(leaf: Leaf, saved: dict, path: Path) -> None:
    """A resume continues the same network: architecture and targets as in the checkpoint."""
    new = leaf.to_dict()
    for key in ARCH_KEYS:
        old, cur = with_legacy(saved["config"]["model"])[key], new["model"][key]
        if old != cur:
            diff = {k: (old.get(k), cur.get(k)) for k in cur if old.get(k) != cur.get(k)}
            back = " ".join(f"--set {key}.{k}={_as_yaml(o)}" for k, (o, _) in diff.items())
            raise ConfigError(f"{leaf.config_path}: cannot resume {path}: '{key}' changed {diff}; resume needs the "
                              f"same architecture: resume with {back}, or start from these weights with "
                              f"warm_start_train.py")
    # the averaged weights are the checkpoint's state_dict, the raw ones beside them: without the same average a
    # resume would continue from the wrong set, or start a new average from the raw weights
    old_ema = saved["config"]["model"].get("training", {}).get("ema_decay", 0.0)
    if old_ema != leaf.model.training.ema_decay:
        raise ConfigError(f"{leaf.config_path}: cannot resume {path}: 'training.ema_decay' changed "
                          f"({old_ema} -> {leaf.model.training.ema_decay}); resume with --set "
                          f"training.ema_decay={old_ema}, or start from these weights with warm_start_train.py")
    targets = [{"name": t.name, "kind": t.kind, "horizon": t.horizon} for t in leaf.targets.targets]
    if saved["targets"] != targets:
        raise ConfigError(f"{leaf.config_path}: cannot resume {path}: the target list changed; "
                          f"use warm_start_train.py instead")


def _resume_data(leaf: Leaf, table: LeafTable) -> tuple[Leaf, WindowData, Path, list[dict]]:
    """The resumed run's leaf and windows: the checkpoint's split dates, categories, scalers and feature list; its
    path and interaction pairs (a resume keeps them: its weights are theirs).

    Nothing is refit on the current table, so appended data changes neither the spans nor the transforms.
    """
    last = leaf.ckpt_dir / "last.ckpt"
    if not last.is_file():
        raise ConfigError(f"{leaf.config_path}: nothing to resume: {last} does not exist; train first with "
                          f"train_multi_tft.py")
    saved = read_spec(last)
    _check_same_architecture(leaf, saved, last)
    split = from_mapping(SplitSection, saved["config"]["model"]["split"], str(last))
    current = resolve_split(leaf, leaf_rows(leaf, table)["timestamp"]).model.split
    if current != split:
        logger.warning("%s: resuming with the checkpoint's split %s (the config now gives %s)", leaf.config_path,
                       dataclasses.asdict(split), dataclasses.asdict(current))
    leaf = dataclasses.replace(leaf, model=dataclasses.replace(leaf.model, split=split))
    data = build_window_data(leaf, table, categories=saved["categories"], scalers=saved["scalers"],
                             features=saved["features"], levels=saved.get("excluded_levels", {}),
                             known_names=saved["known"])
    return leaf, data, last, saved.get("interaction_pairs", [])


def _restore_ctrl_c() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def write_snapshot(leaf: Leaf, data: WindowData, folder: Path | None = None, pairs: list[dict] | None = None) -> Path:
    """``config_snapshot.yaml`` in the checkpoint folder (``folder``, default the TFT's): the resolved configs
    (split fractions as dates), the spans the run uses and the screened interaction pairs."""
    snap = {**leaf.to_dict(), "time_split": data.time_split.describe() if data.time_split else None,
            "windows": {k: int(v.size) for k, v in data.splits.items()}, "features": data.features,
            "interaction_pairs": pairs or []}
    return write_text(yaml.safe_dump(snap, sort_keys=False), (folder or leaf.ckpt_dir) / "config_snapshot.yaml")


def _warm_source(leaf: Leaf) -> Path:
    ws = leaf.weights.warm_start
    if not ws.source:
        raise ConfigError(f"{leaf.config_path.parent / 'weights_config.yaml'}: key 'warm_start.source' is empty; "
                          f"name a source leaf's model_config.yaml or a .ckpt file")
    src = Path(ws.source)
    if src.suffix == ".ckpt":
        path = src
    else:
        last = load_leaf(src).ckpt_dir / "last.ckpt"
        best, _ = checkpoint_outcome(last)
        path = last if ws.checkpoint == "last" or not best else Path(best)
    if not path.is_file():
        raise ConfigError(f"warm start: checkpoint {path} not found; train the source leaf first")
    return path


def archive_previous_run(ckpt_dir: Path) -> Path | None:
    """Move an earlier run's checkpoints and summary to ``ckpt_dir/archive/<UTC time>/``.

    A fresh run must own ``last.ckpt`` (resume and warm start read it); Lightning would otherwise write
    ``last-v1.ckpt`` beside the old one. Nothing is deleted.
    """
    old = [p for p in ckpt_dir.glob("*.ckpt")] + [p for p in ckpt_dir.glob("stage_summary.json")]
    if not old:
        return None
    dest = ckpt_dir / "archive" / pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
    dest.mkdir(parents=True)
    for path in old:
        path.rename(dest / path.name)
    logger.info("previous run's checkpoints moved to %s", dest)
    return dest


def check_warm_timeline(leaf: Leaf, path: Path) -> None:
    """Refuse a warm-start source whose weights were fit on rows after this leaf's ``split.train_end``.

    Such weights have seen outcomes of this leaf's validation and test spans, so its validation figures, its
    calibration and every stacked prediction built on them would be look-ahead. A source validated (checkpoint
    choice, early stopping) past this leaf's ``train_end`` only chose its epoch on part of those spans: that is
    logged as a warning, because the usual base -> rich transfer of one expert does it with fractional splits.
    """
    split = read_spec(path)["config"]["model"]["split"]
    mine = as_utc(leaf.model.split.train_end)
    trained, validated = as_utc(split["train_end"]), as_utc(split["val_end"])
    if trained > mine:
        raise ConfigError(f"{leaf.config_path}: cannot warm-start from {path}: its weights were trained on rows up "
                          f"to {trained} (its split.train_end), after this leaf's split.train_end {mine}, so they "
                          f"have seen outcomes of this leaf's validation and test spans; retrain the source with "
                          f"--set split.train_end={mine.date().isoformat()} (or earlier), or train this leaf from "
                          f"scratch")
    if validated > mine:
        logger.warning("%s: the warm-start source %s chose its checkpoint on rows up to %s (its split.val_end), after "
                       "this leaf's split.train_end %s: that choice saw part of this leaf's validation span; for a "
                       "clean transfer retrain the source with --set split.val_end=%s", leaf.config_path, path,
                       validated, mine, mine.date().isoformat())


def _n_members(state: dict) -> int:
    """Networks in a state dict: ``model.ensemble_size`` (ensembles name theirs ``net.members.<k>.``)."""
    return len({name.split(".")[2] for name in state if name.startswith("net.members.")}) or 1


def _member_free(name: str) -> str:
    """A parameter name without its ensemble member (``net.members.1.head_w`` -> ``net.head_w``): transfer and
    freeze prefixes name a part of the network, for every member alike."""
    return re.sub(r"^net\.members\.\d+\.", "net.", name)


def warm_start(module: MyTFTModule, path: Path, transfer: list[str], freeze: list[str]) -> dict[str, list[str]]:
    """Copy parameters whose name and shape match (and whose name starts with a ``transfer`` prefix).

    Returns the transferred / skipped / new parameter names; logs them as a table.
    """
    saved = torch.load(path, map_location="cpu", weights_only=False)
    source, target = saved["state_dict"], module.state_dict()
    # the pair weights mean something only for the same pairs (those screened on each run's own training span)
    pair_names = [(p["left"], p["right"]) for p in saved["hyper_parameters"]["spec"].get("interaction_pairs", [])]
    same_pairs = pair_names == [(p["left"], p["right"]) for p in module.spec.get("interaction_pairs", [])]
    theirs, ours = _n_members(source), _n_members(target)
    if theirs != ours:
        raise ConfigError(f"cannot warm-start from {path}: it has {theirs} network(s) (model.ensemble_size), this "
                          f"leaf {ours}; warm-start with --set model.ensemble_size={theirs}, or train from scratch")
    report: dict[str, list[str]] = {"transferred": [], "skipped": [], "new": []}
    for name, value in target.items():
        src = source.get(name)
        if src is None:
            report["new"].append(name)
        elif (src.shape != value.shape or not any(_member_free(name).startswith(p) for p in transfer)
              or (name.endswith("pair_w") and not same_pairs)):
            report["skipped"].append(name)
        else:
            target[name] = src.clone()
            report["transferred"].append(name)
    module.load_state_dict(target)
    for name, p in module.named_parameters():
        if any(_member_free(name).startswith(f) for f in freeze if f):
            p.requires_grad_(False)
    width = max(len(n) for n in target)
    lines = [f"{'parameter':{width}s}  status"] + [f"{n:{width}s}  {s}" for s, names in report.items() for n in names]
    logger.info("warm start from %s: %d transferred, %d skipped, %d new\n%s", path, len(report["transferred"]),
                len(report["skipped"]), len(report["new"]), "\n".join(lines))
    return report


def run(leaf: Leaf, init_from: InitFrom = None, table: pd.DataFrame | None = None, wait: bool = True,
        callbacks: list | None = None) -> RunResult:
    """Train ``leaf`` (from scratch, resumed, or warm-started) and return where the results are.

    ``table`` may pass the leaf's already loaded data table (walk-forward windows share one). The leaf's
    checkpoint folder is locked for the run: a second run of the same leaf waits, or with ``wait=False``
    stops with a ``DataError``. ``callbacks`` are added to the trainer's (the tuner's pruning callback).
    """
    if not trainer_is_rank_zero():
        return _run(leaf, init_from, table, callbacks)
    with output_lock(leaf.ckpt_dir, wait, "training run of this leaf"):
        return _run(leaf, init_from, table, callbacks)


def _run(leaf: Leaf, init_from: InitFrom, table: pd.DataFrame | None, callbacks: list | None = None) -> RunResult:
    L.seed_everything(leaf.model.seed, workers=True, verbose=False)
    configured = leaf
    table = as_leaf_table(leaf, table)  # from a dataset: narrow columns; inputs read into the window array
    ckpt_path, pairs = None, None
    if init_from == "resume":
        leaf, data, last, pairs = _resume_data(leaf, table)
        ckpt_path = str(last)
    else:  # fractions become dates once, here; the checkpoint and config_snapshot.yaml keep the dates
        leaf = resolve_split(leaf, leaf_rows(leaf, table)["timestamp"])
        data = build_window_data(leaf, table)
    del table  # a table read here is released: the windows hold all that training and prediction need
    release_freed_memory()  # the temporaries of building the windows
    module = MyTFTModule(make_spec(leaf, data, pairs))  # pairs None: screened on this run's training span
    if init_from == "warm":  # before archiving: the source may be this leaf's own previous run
        ws, source = leaf.weights.warm_start, _warm_source(leaf)
        check_warm_timeline(leaf, source)
        warm_start(module, source, ws.transfer, ws.freeze)
    monitor, mode = monitor_for(leaf)  # every check before the previous run is archived
    check_splits(configured, data)
    if trainer_is_rank_zero():
        if init_from != "resume":
            archive_previous_run(leaf.ckpt_dir)
        write_snapshot(leaf, data, pairs=module.spec["interaction_pairs"])
    trainer, ckpt = _trainer(leaf, monitor, mode, callbacks)
    t = leaf.model.training
    logger.info("%s: %d features, %d train / %d val windows, monitor %s (%s)", leaf.config_path,
                len(data.features), len(data.splits["train"]), len(data.splits["val"]), monitor, mode)
    stop = next(c for c in trainer.callbacks if isinstance(c, InterruptCheckpoint))
    train_loader = make_loader(data, "train", t.batch_size, True, leaf.model.seed, t.num_workers)
    trainer.callbacks.append(ExactResume(train_loader.sampler))
    try:
        trainer.fit(module, train_loader, make_loader(data, "val", t.batch_size, False, num_workers=t.num_workers),
                    ckpt_path=ckpt_path)
    except BaseException:  # Lightning turns SIGTERM into SystemExit(no code) and SIGINT into sys.exit(1)
        if stop.signal_name is None:
            raise
        _restore_ctrl_c()  # Lightning leaves SIGINT ignored after an interrupt; a library caller gets it back
        if trainer.is_global_zero:
            _, best = checkpoint_outcome(leaf.ckpt_dir / "last.ckpt")
            write_stage_summary(leaf.ckpt_dir / "stage_summary.json", best, None, status="interrupted")
        raise Interrupted(f"{leaf.config_path}: {stop.signal_name} at epoch {trainer.current_epoch}, step "
                          f"{trainer.global_step}; saved {leaf.ckpt_dir / 'last.ckpt'}; continue with python "
                          f"train_resume.py --config {leaf.config_path}", stop.signal_name) from None
    log_dir = Path(trainer.logger.log_dir)
    best_path, best_score = checkpoint_outcome(leaf.ckpt_dir / "last.ckpt")
    prediction = None
    if trainer.is_global_zero:
        val_loss = trainer.callback_metrics.get("val_loss")
        write_stage_summary(leaf.ckpt_dir / "stage_summary.json", best_score,
                            float(val_loss) if val_loss is not None else None)
        # predictions exist without an extra step: the best checkpoint predicts the validation span
        ckpt = best_path or str(leaf.ckpt_dir / "last.ckpt")
        release_freed_memory()  # those of the training steps, before prediction maps its own
        best_module, _ = load_expert(ckpt)
        prediction = predict(best_module, leaf, "val", data=data, log_dir=log_dir, checkpoint=ckpt)
    return RunResult(best_path, str((leaf.ckpt_dir / "last.ckpt").resolve()), best_score, monitor,
                     trainer.current_epoch, str(log_dir), prediction)


def entry(argv: list[str] | None, init_from: InitFrom, prog: str) -> int:
    """Shared ``main`` of the three entry scripts."""
    from utils.logging_setup import configure_logging
    from utils.mp_start import ensure_spawn_safe

    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--config", required=True, help="configs/experts/<Expert>/<period>/<modality>/model_config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. training.max_epochs=3 (targets.* / weights.* for the others)")
    add_output_flags(p, "run trains this leaf")
    args = p.parse_args(argv)
    configure_logging(args.verbose)
    ensure_spawn_safe()
    return guarded(_entry_run, args, init_from)


def _entry_run(args: argparse.Namespace, init_from: InitFrom) -> None:
    sets = data_root_override(args.config, args.data_root) + list(args.set)
    result = run(load_leaf(args.config, sets), init_from, wait=not args.no_wait)
    logger.info("best %s = %s (%s); last: %s", result.monitor, result.best_score, result.best_model_path,
                result.last_model_path)
    if result.prediction is not None:
        logger.info("validation predictions: %s; eval report: %s", result.prediction.predictions,
                    result.prediction.eval_report)
