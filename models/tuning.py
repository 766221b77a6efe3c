"""Hyper-parameter search of a TFT leaf with Optuna (``experts_cli.py tune``).

Each trial is an ordinary training run (:func:`models.training.run`) of the leaf with the trial's settings, in its
own folders (run tag ``tune/tNNN``, so the leaf's own run is never archived or overwritten). Trials are scored on
the leaf's validation span only (time-ordered: every training label ends before it, the embargo between), by the
leaf's monitor, and pruned on it after each validation pass (median rule). The test span is never read.

Outputs:

* ``configs/experts/<expert>/<period>/<modality>/tuned_overrides.yaml``: the best trial's settings as dotted
  ``--set`` keys, with the monitor and its value;
* ``lightning_logs/experts/<expert>/<period>/<modality>/tft/tune/trials.csv``: every trial (state, value,
  settings).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import yaml

from models.leaf_config import Leaf, load_leaf
from models.leaf_data import LeafTable
from models.training import monitor_for, run
from utils.errors import ConfigError
from utils.io import write_csv, write_text

logger = logging.getLogger(__name__)


def suggest(trial, leaf: Leaf) -> dict[str, object]:
    """The trial's settings (dotted config keys); the encoder length is searched around the leaf's own."""
    L0 = leaf.model.window.encoder_length
    lengths = sorted({max(4, L0 // 2), L0, 2 * L0})
    return {
        "optimizer.lr": trial.suggest_float("optimizer.lr", 1e-4, 1e-2, log=True),
        "optimizer.weight_decay": trial.suggest_float("optimizer.weight_decay", 1e-6, 1e-1, log=True),
        "model.dropout": trial.suggest_float("model.dropout", 0.0, 0.4),
        "model.hidden_size": trial.suggest_categorical("model.hidden_size", [16, 32, 64]),
        "window.encoder_length": trial.suggest_categorical("window.encoder_length", lengths),
    }


class PruneOnMonitor(L.Callback):
    """Reports the monitor to the Optuna trial after each validation pass and stops a trial the pruner rejects."""

    def __init__(self, trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Report, then prune (``optuna.TrialPruned`` ends the run)."""
        import optuna

        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        self.trial.report(float(value), step=int(trainer.current_epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {trainer.current_epoch}: {self.monitor} = {float(value):.4f}")


@dataclass
class TuneResult:
    """Where the search wrote its outputs, and its best trial."""

    best_value: float
    best_settings: dict[str, object]
    overrides_file: Path
    trials_csv: Path


def tune(config: str | Path, overrides: list[str] | None = None, trials: int = 20, timeout: float | None = None,
         seed: int = 0, wait: bool = True) -> TuneResult:
    """Search the leaf's settings over ``trials`` training runs (or until ``timeout`` seconds).

    The leaf's ``tft/tune`` checkpoint folder is locked for the whole search, so two searches of one leaf never
    share trial folders (``wait=False``: stop with a ``DataError`` if another search holds it).
    """
    from utils.locks import output_lock

    if trials < 1:
        raise ConfigError(f"--trials {trials}: must be >= 1")
    overrides = list(overrides or [])
    base = load_leaf(config, overrides)
    with output_lock(base.ckpt_dir / "tune", wait, "hyper-parameter search of this leaf"):
        return _search(config, overrides, base, trials, timeout, seed)


def _search(config: str | Path, overrides: list[str], base: Leaf, trials: int, timeout: float | None,
            seed: int) -> TuneResult:
    import optuna

    monitor, mode = monitor_for(base)
    table = LeafTable.read(base)  # shared by the trials

    def objective(trial) -> float:
        settings = suggest(trial, base)
        leaf = load_leaf(config, overrides + [f"{k}={v}" for k, v in settings.items()])
        leaf = dataclasses.replace(leaf, run_tag=f"tune/t{trial.number:03d}")
        result = run(leaf, table=table, callbacks=[PruneOnMonitor(trial, monitor)])
        if result.best_score is None:
            raise optuna.TrialPruned("no monitored checkpoint")
        return float(result.best_score)

    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    study.optimize(objective, n_trials=trials, timeout=timeout)
    frame = study.trials_dataframe()
    trials_csv = write_csv(frame, base.log_dir / "tune" / "trials.csv")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError(f"{config}: no trial completed ({len(study.trials)} pruned or failed); see {trials_csv}")
    best = study.best_trial
    text = yaml.safe_dump({"monitor": monitor, "value": float(best.value), "trial": best.number,
                           "overrides": dict(best.params)}, sort_keys=False)
    out = write_text(text, Path(config).parent / "tuned_overrides.yaml")
    logger.info("best trial %d: %s = %.4f with %s; train with: python train_multi_tft.py --config %s %s",
                best.number, monitor, best.value, best.params, config,
                " ".join(f"--set {k}={v}" for k, v in best.params.items()))
    return TuneResult(float(best.value), dict(best.params), out, trials_csv)
