import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import train_multi_tft
import train_resume
import warm_start_train
from models.leaf_config import load_leaf
from models.tft_module import MyTFTModule
from models.tft_network import HybridMultiLoss
from models.training import run, warm_start
from tests.models.conftest import folder_held, write_leaf
from utils.errors import ConfigError, DataError


def _ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_one_epoch_tiny_training(leaf_path):
    leaf = load_leaf(leaf_path)
    result = run(leaf)
    assert result.monitor == "val_target_binarytrend_ap@1h" and result.best_score is not None
    assert (leaf.ckpt_dir / "last.ckpt").is_file() and leaf.ckpt_dir.as_posix().endswith(
        "checkpoints/experts/Test-TFT/1h/base/tft")
    assert "lightning_logs/experts/Test-TFT/1h/base/tft" in result.log_dir
    summary = json.loads((leaf.ckpt_dir / "stage_summary.json").read_text())
    assert set(summary) == {"best_monitor", "best_val_loss", "status"} and summary["best_monitor"] == result.best_score
    assert summary["status"] == "finished"
    gating = (leaf_path.parents[5] / result.log_dir / "tft_gating.csv").read_text().splitlines()
    # 7 encoder inputs, 4 decoder covariates (month_sin/cos left out: 60 days cannot show a yearly cycle twice),
    # 2 static variables
    assert gating[0] == '"kind","variable","importance"' and len(gating) == 1 + 7 + 4 + 2
    assert not [row for row in gating if '"month_' in row]
    spec = _ckpt(leaf.ckpt_dir / "last.ckpt")["hyper_parameters"]["spec"]
    assert spec["features"][0] == "ret_1" and "scalers" in spec and spec["categories"]["period"] == ["1h"]
    module = MyTFTModule.load_from_checkpoint(leaf.ckpt_dir / "last.ckpt")  # a checkpoint alone rebuilds it
    assert module.target_names == ["target_binarytrend", "target_logreturn_h4"]


def test_resume_continues_epochs_and_optimizer_state(leaf_path):
    run(load_leaf(leaf_path))
    first = _ckpt(load_leaf(leaf_path).ckpt_dir / "last.ckpt")
    run(load_leaf(leaf_path, ["training.max_epochs=2"]), init_from="resume")
    second = _ckpt(load_leaf(leaf_path).ckpt_dir / "last.ckpt")
    # epochs whose training ran ("completed" lags by one in a checkpoint written at an epoch's end)
    done = lambda c: c["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]  # noqa: E731
    assert (done(first), done(second)) == (1, 2) and second["epoch"] > first["epoch"]  # two epochs in all
    assert second["global_step"] == 2 * first["global_step"]
    step = lambda c: next(iter(c["optimizer_states"][0]["state"].values()))["step"]  # noqa: E731
    assert float(step(second)) == 2 * float(step(first))  # Adam moments carried over, not restarted
    assert second["lr_schedulers"][0]["last_epoch"] == 2


def test_resume_errors(leaf_path):
    with pytest.raises(ConfigError, match=r"nothing to resume: .*last\.ckpt does not exist"):
        run(load_leaf(leaf_path), init_from="resume")
    run(load_leaf(leaf_path))
    with pytest.raises(ConfigError, match=r"cannot resume .*'model' changed \{'hidden_size': \(8, 16\)\}"):
        run(load_leaf(leaf_path, ["model.hidden_size=16", "training.max_epochs=2"]), init_from="resume")
    with pytest.raises(ConfigError, match=r"cannot resume .*'training\.ema_decay' changed \(0\.0 -> 0\.9\); resume "
                                          r"with --set training\.ema_decay=0\.0"):
        run(load_leaf(leaf_path, ["training.ema_decay=0.9", "training.max_epochs=2"]), init_from="resume")


def test_warm_start_copies_matching_parameters_exactly(leaf_path, tmp_path):
    base = load_leaf(leaf_path)
    run(base)
    rich_path = write_leaf(tmp_path, base.model.data.path, modality="rich",
                           features={"include": ["ret_1", "ret_4", "rv_24", "rsi_14", "bb_pctb", "volume_z_48",
                                                 "hour_sin", "macd_norm", "adx_14"]})
    rich = load_leaf(rich_path, [f"weights.warm_start.source={leaf_path}", "weights.warm_start.checkpoint=last"])
    from models.training import _warm_source, make_spec
    from models.window_dataset import build_window_data

    module = MyTFTModule(make_spec(rich, build_window_data(rich)))
    source = _ckpt(_warm_source(rich))["state_dict"]
    report = warm_start(module, _warm_source(rich), [""], ["net.sym_emb"])
    state = module.state_dict()
    assert report["transferred"] and report["skipped"]  # the encoder VSN grew from 7 to 9 inputs
    for name in report["transferred"]:
        assert torch.equal(state[name], source[name])
    assert "net.enc_vsn.embed_w" in report["skipped"] and "net.dec_vsn.embed_w" in report["transferred"]
    assert not module.net.sym_emb.weight.requires_grad
    assert run(rich, init_from="warm").best_score is not None


def _as_before_the_skip(path):
    """Rewrite a checkpoint trained without the linear skip as one written before the key existed."""
    ckpt = _ckpt(path)
    del ckpt["hyper_parameters"]["spec"]["config"]["model"]["model"]["linear_skip"]
    torch.save(ckpt, path)


def test_checkpoints_from_before_the_linear_skip_load_resume_and_warm_start(leaf_path):
    run(load_leaf(leaf_path, ["model.linear_skip=false"]))
    last = load_leaf(leaf_path).ckpt_dir / "last.ckpt"
    _as_before_the_skip(last)
    assert MyTFTModule.load_from_checkpoint(last).net.skip_w is None  # trained without it, rebuilt without it
    # the skip is on by default now: resuming such a checkpoint says how to continue it as it was
    with pytest.raises(ConfigError, match=r"cannot resume .*'model' changed \{'linear_skip': \(False, True\)\}; "
                                          r".*resume with --set model\.linear_skip=false"):
        run(load_leaf(leaf_path, ["training.max_epochs=2"]), init_from="resume")
    run(load_leaf(leaf_path, ["training.max_epochs=2", "model.linear_skip=false"]), init_from="resume")
    warm = load_leaf(leaf_path, [f"weights.warm_start.source={last}", "model.linear_skip=true"])
    from models.training import make_spec
    from models.window_dataset import build_window_data

    module = MyTFTModule(make_spec(warm, build_window_data(warm)))
    report = warm_start(module, last, [""], [])
    assert report["new"] == ["net.skip_w"] and not report["skipped"]  # the skip starts at zero, the rest copied
    assert torch.count_nonzero(module.net.skip_w) == 0


def test_warm_start_without_source(leaf_path):
    with pytest.raises(ConfigError, match=r"key 'warm_start\.source' is empty"):
        run(load_leaf(leaf_path), init_from="warm")


def test_same_seed_same_weights(leaf_path, tmp_path, monkeypatch):
    run(load_leaf(leaf_path))
    a = _ckpt(load_leaf(leaf_path).ckpt_dir / "last.ckpt")["state_dict"]
    other = tmp_path / "again"
    other.mkdir()
    monkeypatch.chdir(other)
    run(load_leaf(leaf_path))
    b = _ckpt(load_leaf(leaf_path).ckpt_dir / "last.ckpt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_entry_scripts_smoke(leaf_path, caplog):
    assert train_multi_tft.main(["--config", str(leaf_path)]) == 0
    assert train_resume.main(["--config", str(leaf_path), "--set", "training.max_epochs=2"]) == 0
    assert warm_start_train.main(["--config", str(leaf_path), "--set", f"weights.warm_start.source={leaf_path}",
                                  "--set", "weights.warm_start.checkpoint=last"]) == 0
    assert train_multi_tft.main(["--config", str(leaf_path), "--set", "training.batch_size=0"]) == 2
    assert "key 'training.batch_size' = 0: must be >= 1" in caplog.text


def test_hybrid_loss_components_and_masks():
    loss = HybridMultiLoss(["classification", "regression"], [1.0, 3.0], [0.1, 0.5, 0.9])
    pred = torch.zeros(4, 2, 3)
    target = torch.tensor([[1.0, 2.0], [0.0, float("nan")], [1.0, -1.0], [0.0, 0.0]])
    total, comp = loss(pred, target)
    assert comp[0].item() == pytest.approx(np.log(2))
    y = np.array([2.0, -1.0, 0.0])
    q = np.array([0.1, 0.5, 0.9])
    pin = np.maximum(q * y[:, None], (q - 1) * y[:, None]).mean()
    assert comp[1].item() == pytest.approx(pin)
    assert total.item() == pytest.approx((np.log(2) + 3 * pin) / 4)
    focal = HybridMultiLoss(["classification"], [1.0], [0.5], classification_loss="focal", focal_gamma=2.0)
    assert focal(torch.zeros(2, 1, 1), torch.tensor([[1.0], [0.0]]))[0].item() == pytest.approx(0.25 * np.log(2))


DDP_SCRIPT = """
import json, sys
from pathlib import Path
from models.leaf_config import load_leaf
from models.training import run

if __name__ == "__main__":
    result = run(load_leaf(sys.argv[1]))
    print(json.dumps({"best": result.best_score, "last": result.last_model_path}))
"""


@pytest.mark.parametrize("source", [".parquet", ""], ids=["file", "partitioned"])
def test_ddp_two_cpu_processes(tmp_path, small_panel, source):
    """Real DDP (2 spawned CPU ranks): the self-sharding sampler, rank-zero outputs, results back in the parent;
    from the single parquet file and from the partitioned dataset (each rank reads the same projection)."""
    import subprocess
    import sys

    path = write_leaf(tmp_path, small_panel["base_csv"].with_suffix(source),
                      trainer={"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"})
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["best"] is not None
    ckpt = _ckpt(out["last"])
    assert ckpt["global_step"] == 3  # each rank ran its own 3 batches in lockstep
    assert list(tmp_path.glob("lightning_logs/experts/Test-TFT/1h/base/tft/version_*/tft_gating.csv"))


def test_warm_source_best_is_the_recorded_best_checkpoint(leaf_path, tmp_path):
    from models.training import _warm_source

    result = run(load_leaf(leaf_path, ["training.max_epochs=2", "training.save_top_k=2"]))
    rich = load_leaf(write_leaf(tmp_path, load_leaf(leaf_path).model.data.path, modality="rich"),
                     [f"weights.warm_start.source={leaf_path}"])
    assert str(_warm_source(rich)) == result.best_model_path and result.best_model_path.endswith(".ckpt")


def test_fresh_run_archives_the_previous_one(leaf_path):
    leaf = load_leaf(leaf_path)
    first = run(leaf)
    second = run(leaf)
    assert not list(leaf.ckpt_dir.glob("last-v*.ckpt"))  # the new run owns last.ckpt
    archived = list((leaf.ckpt_dir / "archive").glob("*/last.ckpt"))
    assert len(archived) == 1 and _ckpt(archived[0])["global_step"] == _ckpt(first.last_model_path)["global_step"]
    assert second.best_model_path.startswith(str(leaf.ckpt_dir.resolve()))


def test_warm_source_without_checkpoint(leaf_path, tmp_path):
    other = write_leaf(tmp_path, load_leaf(leaf_path).model.data.path, expert="Untrained-TFT")
    with pytest.raises(ConfigError, match=r"warm start: checkpoint .*last\.ckpt not found; train the source leaf"):
        run(load_leaf(leaf_path, [f"weights.warm_start.source={other}"]), init_from="warm")


@pytest.mark.parametrize(("over", "error", "pattern"), [
    (["training.monitor=val_target_binarytrnd_ap@1h"], ConfigError,
     r"key 'training\.monitor' = 'val_target_binarytrnd_ap@1h': target 'target_binarytrnd' is not one of"),
    (["training.monitor=val_target_binarytrend_ap@4h"], ConfigError, r"the period after '@' must be the leaf's"),
    (["split.train_end=2031-01-01", "split.val_end=2032-01-01"], DataError,
     r"key 'split' = train_end '2031-01-01'.*no val window"),
    (["split.train_end=0.6", "split.val_end=0.9999"], DataError, r"val_end 0\.9999: no test window"),
    (["features.include=[]"], ConfigError, r"key 'features' has no include, prefixes or selected_features_file"),
])
def test_bad_settings_fail_before_anything_is_archived(leaf_path, over, error, pattern):
    """Checked before the first batch: the previous run's checkpoints stay where they were."""
    run(load_leaf(leaf_path))
    ckpt_dir = load_leaf(leaf_path).ckpt_dir
    before = sorted(p.name for p in ckpt_dir.iterdir())
    with pytest.raises(error, match=pattern):
        run(load_leaf(leaf_path, over))
    assert sorted(p.name for p in ckpt_dir.iterdir()) == before and not (ckpt_dir / "archive").exists()


def test_leaf_keys_must_match_the_folder(leaf_path):
    import yaml

    data = yaml.safe_load(leaf_path.read_text())
    data["expert"] = "Other-TFT"
    leaf_path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"key 'expert' = 'Other-TFT' but the leaf folder says 'Test-TFT'"):
        load_leaf(leaf_path)


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_saves_the_step_marks_interrupted_and_resume_continues(leaf_path, signame, code):
    """A real signal mid-training: exit 143 / 130, last.ckpt at the current step, status interrupted; resume runs."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(train_multi_tft.__file__).resolve().parent
    cmd = [sys.executable, str(repo / "train_multi_tft.py"), "--config", str(leaf_path),
           "--set", "training.max_epochs=10000", "--set", "training.limit_train_batches=50"]
    log = leaf_path.parents[5] / f"{signame}.log"  # a file, not a pipe: nothing can block the child's writes
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=leaf_path.parents[5], stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(repo)})
        ckpt_dir = load_leaf(leaf_path).ckpt_dir
        deadline = time.time() + 120
        while not list(ckpt_dir.glob("epoch*.ckpt")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)  # training is under way once the first epoch's checkpoint exists
        time.sleep(1.0)  # into the next epoch's batches, past the epoch-end writes
        proc.send_signal(getattr(signal, signame))
        try:
            proc.wait(timeout=120)
        finally:
            proc.kill()  # never leave a training child behind when the test fails
    out = log.read_text(errors="replace")
    assert proc.returncode == code, out[-2000:]
    summary = json.loads((ckpt_dir / "stage_summary.json").read_text())
    assert summary["status"] == "interrupted" and "train_resume.py --config" in out
    state = _ckpt(ckpt_dir / "last.ckpt")
    assert state["global_step"] >= 50
    assert train_resume.main(["--config", str(leaf_path), "--set", f"training.max_epochs={state['epoch'] + 2}",
                              "--set", "training.limit_train_batches=50"]) == 0
    assert json.loads((ckpt_dir / "stage_summary.json").read_text())["status"] == "finished"
    assert _ckpt(ckpt_dir / "last.ckpt")["global_step"] > state["global_step"]


def _interrupt_at(epoch: int, batch: int):
    """A callback that delivers SIGTERM's effect after ``batch`` training batches of epoch ``epoch``: Lightning's
    signal handler only sets this flag, and the loop stops at the end of that batch (after an epoch-end
    validation), exactly as with a real signal."""
    import lightning as L

    class Stop(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, data, batch_idx):
            if trainer.current_epoch == epoch and batch_idx + 1 == batch:
                trainer._signal_connector.received_sigterm = True

    return Stop()


@pytest.mark.parametrize(("stop_epoch", "stop_batch"), [(0, 5), (1, 2)])
@pytest.mark.parametrize("skip", [["model.linear_skip=false"], ["model.linear_skip=true"],
                                  ["model.linear_skip=true", "model.interaction_l2=1.0"],
                                  ["model.linear_skip=true", "training.ema_decay=0.9"]],
                         ids=["plain", "linear_skip", "interactions", "ema"])
def test_resume_is_exact(leaf_path, monkeypatch, stop_epoch, stop_batch, skip):
    """2 epochs straight == stopped (at the end of epoch 1, or 2 batches into epoch 2) and resumed: identical
    weights, with dropout on and shuffled batches."""
    import models.training as tr
    from utils.errors import Interrupted

    over = ["training.max_epochs=2", "training.limit_train_batches=5", "model.dropout=0.2", *skip]
    straight = run(load_leaf(leaf_path, over))
    want = _ckpt(straight.last_model_path)["state_dict"]
    assert ("net.pair_w" in want) == any(s.startswith("model.interaction_l2") for s in skip)
    if "net.pair_w" in want:  # trained (it starts at zero), and the penalty keeps it small
        assert 0 < float(want["net.pair_w"].abs().max()) < 1
    real = tr._trainer

    def with_stop(*args, **kwargs):
        trainer, ckpt = real(*args, **kwargs)
        trainer.callbacks.append(_interrupt_at(stop_epoch, stop_batch))
        return trainer, ckpt

    monkeypatch.setattr(tr, "_trainer", with_stop)
    with pytest.raises(Interrupted):
        run(load_leaf(leaf_path, over))
    monkeypatch.setattr(tr, "_trainer", real)  # not undo(): that would also leave the leaf's working directory
    saved = _ckpt(load_leaf(leaf_path).ckpt_dir / "last.ckpt")["resume_state"]["batches_done"]
    assert saved == (0 if stop_batch == 5 else stop_batch)
    resumed = run(load_leaf(leaf_path, over), init_from="resume")
    got = _ckpt(resumed.last_model_path)["state_dict"]
    assert not list(load_leaf(leaf_path).ckpt_dir.glob("last-v*.ckpt"))
    gs = (_ckpt(resumed.last_model_path)["global_step"], _ckpt(straight.last_model_path)["global_step"])
    assert gs[0] == gs[1], gs
    assert set(got) == set(want)
    # the network bit for bit (the calibration buffers depend on which validations ran: a stop at an epoch's
    # last batch comes before that epoch's validation)
    diffs = {k: float((got[k].float() - want[k].float()).abs().max()) for k in want if k.startswith("net.")}
    assert max(diffs.values()) == 0.0, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]


def test_ema_weights_are_validated_checkpointed_and_predict(leaf_path):
    """With ``training.ema_decay`` the checkpoint's weights are the moving average (the raw ones kept beside them
    for a resume), with the calibration fit in validation, and loading the checkpoint (as the run's own prediction
    of the validation span does) gives the averaged network."""
    from models.prediction import load_expert

    over = ["training.max_epochs=1", "training.limit_train_batches=6", "training.ema_decay=0.5"]
    result = run(load_leaf(leaf_path, over))
    ckpt = _ckpt(result.last_model_path)
    avg, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert set(avg) == set(raw)
    moved = [k for k in avg if k.startswith("net.") and not torch.equal(avg[k], raw[k])]
    assert moved, "the averaged weights equal the raw ones"
    # the calibration is fit on the averaged network's logits and saved with it, not averaged with the weights
    assert torch.equal(avg["cal_scale"], raw["cal_scale"]) and not torch.equal(avg["cal_scale"], torch.ones(2))
    # the averaged network is what a checkpoint loads and predicts with
    module, _ = load_expert(result.last_model_path)
    got = dict(module.state_dict())
    assert all(torch.equal(got[k], avg[k]) for k in moved)
    assert result.prediction is not None


def test_last_checkpoint_is_the_last_epoch_when_the_monitor_does_not_improve(leaf_path):
    """Lightning 2.6 writes ``last.ckpt`` only with a new best; a resume from it would repeat epochs."""
    over = ["training.max_epochs=3", "training.limit_train_batches=3", "optimizer.lr=1e-12"]
    result = run(load_leaf(leaf_path, over))
    # weights that barely move -> the same validation AP each epoch -> epoch 0 stays the best
    assert Path(result.best_model_path).name == "epoch000.ckpt", result.best_model_path
    last = _ckpt(load_leaf(leaf_path).ckpt_dir / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 9)
    assert last["resume_state"]["batches_done"] == 0


def test_one_training_run_per_leaf(leaf_path, caplog):
    with folder_held(load_leaf(leaf_path).ckpt_dir):
        assert train_multi_tft.main(["--config", str(leaf_path), "--no-wait"]) == 2
    assert "is being written by another training run of this leaf" in caplog.text
    assert not (load_leaf(leaf_path).ckpt_dir / "last.ckpt").exists()


def test_split_fractions_become_dates_in_the_checkpoint_and_snapshot(leaf_path):
    import yaml

    result = run(load_leaf(leaf_path))
    leaf = load_leaf(leaf_path)
    snap = yaml.safe_load((leaf.ckpt_dir / "config_snapshot.yaml").read_text())
    split = _ckpt(result.last_model_path)["hyper_parameters"]["spec"]["config"]["model"]["split"]
    assert isinstance(split["train_end"], str) and isinstance(split["val_end"], str)
    assert snap["model"]["split"] == split
    assert snap["time_split"]["edges"][1:3] == [str(pd.Timestamp(split["train_end"]).isoformat()),
                                                 str(pd.Timestamp(split["val_end"]).isoformat())]
    assert snap["time_split"]["embargo_bars"] == 4 and snap["windows"]["train"] > 0


def test_resume_after_appended_data_keeps_the_checkpoints_spans_and_scalers(leaf_path, caplog):
    """Appending bars moves the dates a fraction gives; a resume keeps the checkpoint's dates and transforms."""
    from models.window_dataset import read_table

    leaf = load_leaf(leaf_path)
    full = read_table(leaf.model.data.path)
    cut = full["timestamp"].quantile(0.8)
    first = run(leaf, table=full[full["timestamp"] < cut])
    before = _ckpt(first.last_model_path)["hyper_parameters"]["spec"]
    resumed = run(load_leaf(leaf_path, ["training.max_epochs=2"]), init_from="resume", table=full)
    after = _ckpt(resumed.last_model_path)["hyper_parameters"]["spec"]
    assert after["config"]["model"]["split"] == before["config"]["model"]["split"]
    assert after["scalers"] == before["scalers"] and after["categories"] == before["categories"]
    assert "resuming with the checkpoint's split" in caplog.text
    assert _ckpt(resumed.last_model_path)["epoch"] == 1  # the second epoch (0-based), trained after the resume


def test_bf16_mixed_precision_trains_and_predicts_on_the_cpu(leaf_path):
    """The mixed-precision path a GPU run takes (bf16 autocast), exercised on the CPU."""
    result = run(load_leaf(leaf_path, ["trainer.precision=bf16-mixed"]))
    assert result.best_score is not None and np.isfinite(result.best_score)
    frame = pd.read_parquet(result.prediction.predictions)
    assert np.isfinite(frame["score"]).all()
    # identifiers survive the precision plugin's casts: the predicted bars are exactly the validation windows
    from models.prediction import checkpoint_data, load_expert

    module, leaf = load_expert(result.best_model_path)
    data = checkpoint_data(module, leaf)
    want = pd.to_datetime(data.timestamp[data.splits["val"]], utc=True)
    assert sorted(frame["timestamp"].unique()) == sorted(want.unique())
    logret = frame[frame["target"] == "target_logreturn_h4"]
    assert (logret["p10"] <= logret["p50"]).all() and (logret["p50"] <= logret["p90"]).all()


@pytest.mark.parametrize(("target", "metric"), [("target_logreturn_h4", "ic"), ("target_binarytrend", "roc_auc")])
def test_every_monitorable_metric_is_logged_and_agrees_with_the_eval_report(leaf_path, target, metric):
    """A monitor other than AP / RMSE used to pass the config check and fail after the first epoch (never logged).
    The regression monitor is in target units, here with per-symbol target scaling."""
    monitor = f"val_{target}_{metric}@1h"
    result = run(load_leaf(leaf_path, [f"training.monitor={monitor}", "features.normalize_targets=group"]))
    assert result.monitor == monitor and np.isfinite(result.best_score)
    report = pd.read_csv(leaf_path.parents[5] / result.log_dir / "val_calibration.csv")
    row = report[(report["target"] == target) & (report["epoch"] == report["epoch"].max())].iloc[0]
    assert result.best_score == pytest.approx(row[metric], abs=1e-6)


def test_group_target_normalization_trains_and_its_checkpoint_keeps_one_scale_per_symbol(leaf_path):
    leaf = load_leaf(leaf_path, ["features.normalize_targets=group"])
    run(leaf)
    module = MyTFTModule.load_from_checkpoint(leaf.ckpt_dir / "last.ckpt")
    n_symbols = len(module.spec["categories"]["symbol"])
    assert module.y_scale.shape == (n_symbols, 2) and np.unique(module.y_scale[:, 1]).size == n_symbols
    assert (module.y_scale[:, 0] == 1).all()  # the classification target stays a 0/1 label


def test_market_inputs_train_and_a_checkpoint_rebuilds_them(leaf_path):
    """With ``features.market`` the network takes the market means as inputs, and the checkpoint's leaf and
    feature list (market names included) rebuild exactly the training inputs for prediction."""
    from models.prediction import checkpoint_data, load_expert

    over = ["training.max_epochs=1", "features.market=[ret_1,ret_4]"]
    result = run(load_leaf(leaf_path, over))
    module, leaf = load_expert(result.best_model_path)
    assert module.spec["features"][-2:] == ["market_ret_1", "market_ret_4"]
    assert leaf.model.features.market == ["ret_1", "ret_4"]
    data = checkpoint_data(module, leaf)
    fresh = checkpoint_data(module, load_leaf(leaf_path, over))
    assert data.features == module.spec["features"] and torch.equal(data.x, fresh.x)
    assert pd.read_parquet(result.prediction.predictions)["score"].notna().all()


def test_resume_with_other_market_inputs_names_the_key_and_the_fix(leaf_path):
    run(load_leaf(leaf_path, ["training.max_epochs=1"]))
    with pytest.raises(ConfigError, match=r"key 'features.market' = \['ret_1'\], but the checkpoint was trained "
                                          r"with \[\]; use --set 'features.market=\[\]'"):
        run(load_leaf(leaf_path, ["training.max_epochs=2", "features.market=[ret_1]"]), init_from="resume")


def test_an_ensemble_trains_each_member_on_its_own_loss_and_its_checkpoint_predicts(leaf_path):
    """``model.ensemble_size=2``: two networks in one checkpoint, each fit to the targets alone (the gradient a
    member gets from the training loss is its own loss's, halved), the members' mean validated and predicted."""
    from models.prediction import checkpoint_data, load_expert
    from models.window_dataset import make_loader

    result = run(load_leaf(leaf_path, ["model.ensemble_size=2"]))
    module, leaf = load_expert(result.best_model_path)
    state = module.state_dict()
    assert "net.members.1.head_w" in state and "net.head_w" not in state
    assert not torch.equal(state["net.members.0.head_w"], state["net.members.1.head_w"])
    assert pd.read_parquet(result.prediction.predictions)["score"].notna().all()
    batch = next(iter(make_loader(checkpoint_data(module, leaf), "train", 16, False)))
    module.eval()  # no dropout: the same forward twice
    loss, _ = module._training_loss(module(batch), batch["target"])
    first = module.net.members[0]
    together = torch.autograd.grad(loss, list(first.parameters()), allow_unused=True)
    own, _ = module.loss_fn(first(batch)["pred"], batch["target"])
    alone = torch.autograd.grad(own, list(first.parameters()), allow_unused=True)
    for g, h in zip(together, alone, strict=True):
        assert (g is None) == (h is None)
        if g is not None:
            torch.testing.assert_close(g, h / 2)


def test_ensemble_size_must_match_to_resume_or_warm_start(leaf_path):
    run(load_leaf(leaf_path, ["model.ensemble_size=2"]))
    with pytest.raises(ConfigError, match=r"cannot resume .*'model' changed \{'ensemble_size': \(2, 1\)\}; .*resume "
                                          r"with --set model\.ensemble_size=2"):
        run(load_leaf(leaf_path, ["training.max_epochs=2"]), init_from="resume")
    last = load_leaf(leaf_path).ckpt_dir / "last.ckpt"
    with pytest.raises(ConfigError, match=r"warm-start from .*last\.ckpt: it has 2 network\(s\) "
                                          r"\(model\.ensemble_size\), this leaf 1; warm-start with --set "
                                          r"model\.ensemble_size=2"):
        run(load_leaf(leaf_path, [f"weights.warm_start.source={last}"]), init_from="warm")
    from models.training import make_spec
    from models.window_dataset import build_window_data

    warm = load_leaf(leaf_path, ["model.ensemble_size=2"])
    module = MyTFTModule(make_spec(warm, build_window_data(warm)))
    report = warm_start(module, last, ["net.sym_emb"], ["net.sym_emb"])  # prefixes name a part of every member
    assert report["transferred"] == ["net.members.0.sym_emb.weight", "net.members.1.sym_emb.weight"]
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    assert frozen == report["transferred"]


def test_warm_start_from_weights_trained_past_this_leafs_train_end_is_refused(leaf_path, tmp_path, caplog):
    """A source fit on rows inside this leaf's validation span would carry its outcomes into this leaf."""
    data = load_leaf(leaf_path).model.data.path
    source = write_leaf(tmp_path / "src", data, modality="rich", split={"train_end": 0.7, "val_end": 0.8})
    run(load_leaf(source))
    ckpt_dir = load_leaf(leaf_path).ckpt_dir
    with pytest.raises(ConfigError, match=r"cannot warm-start from .*: its weights were trained on rows up to .* after "
                                          r"this leaf's split\.train_end .*; retrain the source with --set "
                                          r"split\.train_end=\d{4}-\d\d-\d\d \(or earlier\)"):
        run(load_leaf(leaf_path, [f"weights.warm_start.source={source}"]), init_from="warm")
    assert not ckpt_dir.exists() or not list(ckpt_dir.glob("*.ckpt"))  # nothing written for the refused run
    # trained before this leaf's train_end, validated past it: allowed, with a warning that says so
    early = write_leaf(tmp_path / "early", data, modality="rich", split={"train_end": 0.5, "val_end": 0.7})
    run(load_leaf(early))
    with caplog.at_level("WARNING", logger="models.training"):
        run(load_leaf(leaf_path, [f"weights.warm_start.source={early}"]), init_from="warm")
    assert "chose its checkpoint on rows up to" in caplog.text and "--set split.val_end=" in caplog.text


def test_screened_pairs_are_fit_on_the_training_span_stored_kept_on_resume_and_not_warm_started_across(
        leaf_path, monkeypatch):
    """``model.interaction_pairs``: the screen sees only the training windows; its pairs go into the checkpoint's spec
    and ``config_snapshot.yaml``, a resume keeps them without screening again, and a warm start copies the pair
    weights only onto the same pairs. (The fixture has no interaction: the screen's result is fixed here; what it
    finds is tested in tests/features/test_interactions.py.)"""
    import yaml

    import models.training as tr
    from models.window_dataset import build_window_data

    seen = []

    def fit(self, X, Y, timestamps, kinds, horizons, names=None):
        seen.append((np.asarray(timestamps), len(X), list(kinds)))
        self.pairs_, self.tstats_, self.targets_ = [(0, 2), (1, 3)], np.array([6.0, -5.0]), [names[0], names[1]]
        self.n_tested_, self.critical_ = 21, 4.0
        return self

    monkeypatch.setattr(tr.PairScreen, "fit", fit)
    over = ["model.interaction_pairs=2", "model.dropout=0.0"]
    first = run(load_leaf(leaf_path, over))
    ckpt = _ckpt(first.last_model_path)
    spec = ckpt["hyper_parameters"]["spec"]
    pairs = [(p["left"], p["right"]) for p in spec["interaction_pairs"]]
    assert pairs == [("ret_1", "rv_24"), ("ret_4", "rsi_14")]
    snap = yaml.safe_load((load_leaf(leaf_path).ckpt_dir / "config_snapshot.yaml").read_text())
    (ts, n_rows, kinds), = seen
    assert n_rows == snap["windows"]["train"] and kinds == ["classification", "regression"]
    train_end = pd.Timestamp(spec["config"]["model"]["split"]["train_end"])
    assert pd.Timestamp(int(ts.max()), tz="UTC") <= (train_end if train_end.tzinfo else train_end.tz_localize("UTC"))
    assert ckpt["state_dict"]["net.pair_w"].shape == (2, 2, 3) and ckpt["state_dict"]["net.pair_w"].abs().max() > 0
    assert [(p["left"], p["right"]) for p in snap["interaction_pairs"]] == pairs

    def no_screen(*args, **kwargs):
        raise AssertionError("a resume keeps the checkpoint's pairs")

    monkeypatch.setattr(tr.PairScreen, "fit", no_screen)
    resumed = run(load_leaf(leaf_path, [*over, "training.max_epochs=2"]), init_from="resume")
    assert _ckpt(resumed.last_model_path)["hyper_parameters"]["spec"]["interaction_pairs"] == spec["interaction_pairs"]

    leaf = load_leaf(leaf_path, over)
    data = build_window_data(leaf)
    other = [{**spec["interaction_pairs"][0], "right": "bb_pctb"}, spec["interaction_pairs"][1]]
    for given, status in ((spec["interaction_pairs"], "transferred"), (other, "skipped")):
        module = MyTFTModule(tr.make_spec(leaf, data, given))
        assert "net.pair_w" in warm_start(module, Path(resumed.last_model_path), ["net."], [])[status]


def test_screen_pairs_caps_the_training_windows_before_copying_them(leaf_path, monkeypatch):
    """A real universe holds millions of training windows: the screen sees a seeded subset of ``max_rows`` of them,
    all from the training span, taken before the inputs are copied."""
    import models.training as tr
    from models.window_dataset import build_window_data

    leaf = load_leaf(leaf_path, ["model.interaction_pairs=3"])
    data = build_window_data(leaf)
    seen = []

    def fit(self, X, Y, timestamps, *args):
        seen.append((len(X), np.asarray(timestamps)))
        self.pairs_, self.tstats_, self.targets_, self.n_tested_, self.critical_ = [], np.zeros(0), [], 21, 4.0
        return self

    monkeypatch.setattr(tr.PairScreen, "fit", fit)
    monkeypatch.setattr(tr.PairScreen.__init__, "__defaults__", (0.05, 2.0, 50, 0))  # max_rows 50
    assert tr.screen_pairs(leaf, data) == []
    (n, ts), = seen
    assert n == 50 < len(data.splits["train"])
    assert set(ts) <= set(data.timestamp[data.splits["train"]])
