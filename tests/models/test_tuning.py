"""The Optuna search: trials in their own folders, best settings written, pruning on the monitor."""

from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from models.leaf_config import load_leaf
from models.tuning import PruneOnMonitor, tune
from scripts import experts_cli
from tests.models.conftest import folder_held
from utils.errors import ConfigError


def test_tune_command_writes_best_settings_and_trials(leaf_path):
    assert experts_cli.main(["tune", "--expert", "Test-TFT", "--leaf", "1h/base", "--trials", "2"]) == 0
    tuned = yaml.safe_load((leaf_path.parent / "tuned_overrides.yaml").read_text())
    assert tuned["monitor"] == "val_target_binarytrend_ap@1h" and 0.0 <= tuned["value"] <= 1.0
    assert set(tuned["overrides"]) == {"optimizer.lr", "optimizer.weight_decay", "model.dropout",
                                       "model.hidden_size", "window.encoder_length"}
    # the best settings are valid --set items of this leaf
    load_leaf(leaf_path, [f"{k}={v}" for k, v in tuned["overrides"].items()])
    trials = pd.read_csv(Path("lightning_logs/experts/Test-TFT/1h/base/tft/tune/trials.csv"))
    assert len(trials) == 2 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    leaf = load_leaf(leaf_path)
    assert not (leaf.ckpt_dir / "last.ckpt").exists()  # the leaf's own run is untouched
    assert (leaf.ckpt_dir / "tune" / "t000" / "last.ckpt").is_file()


class _Trainer:
    sanity_checking = False
    current_epoch = 2

    def __init__(self, value):
        self.callback_metrics = {"val_x": value}


def test_pruning_reports_the_monitor_and_stops_a_rejected_trial():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.should_prune = lambda: True
    cb = PruneOnMonitor(trial, "val_x")
    with pytest.raises(optuna.TrialPruned, match="epoch 2: val_x = 0.5000"):
        cb.on_validation_end(_Trainer(0.5), None)
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {2: 0.5}


def test_tune_needs_a_trial(leaf_path):
    with pytest.raises(ConfigError, match="--trials 0: must be >= 1"):
        tune(leaf_path, trials=0)


def test_a_search_where_every_trial_is_pruned_says_so(leaf_path, monkeypatch):
    import models.tuning as tuning

    def pruned(*args, **kwargs):
        raise optuna.TrialPruned("stopped")

    monkeypatch.setattr(tuning, "run", pruned)
    with pytest.raises(ConfigError, match="no trial completed \\(2 pruned or failed\\); see .*trials.csv"):
        tune(leaf_path, trials=2)
    assert not (leaf_path.parent / "tuned_overrides.yaml").exists()


def test_tune_no_wait_stops_when_another_search_holds_the_leaf(leaf_path, caplog):
    with folder_held(load_leaf(leaf_path).ckpt_dir / "tune"):
        assert experts_cli.main(["tune", "--expert", "Test-TFT", "--leaf", "1h/base", "--trials", "1",
                                 "--no-wait"]) == 2
    assert "is being written by another hyper-parameter search of this leaf" in caplog.text
