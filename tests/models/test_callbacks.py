"""The module computes; the callbacks write. Without the output callbacks a run writes nothing."""

import ast
import inspect

import lightning as L
import pandas as pd

from models import tft_module
from models.callbacks import PredictionWriter, ValidationOutputs
from models.leaf_config import load_leaf
from models.tft_module import MyTFTModule, ValidationResult
from models.training import make_spec
from models.window_dataset import build_window_data, make_loader


def _fit(leaf_path, tmp_path, callbacks, logger):
    leaf = load_leaf(leaf_path)
    data = build_window_data(leaf)
    module = MyTFTModule(make_spec(leaf, data))
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2, accelerator="cpu", logger=logger,
                        callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=False,
                        num_sanity_val_steps=0, default_root_dir=str(tmp_path / "root"))
    trainer.fit(module, make_loader(data, "train", 32, True), make_loader(data, "val", 32, False))
    return module, data, trainer


def test_module_returns_validation_results_and_writes_nothing(leaf_path, tmp_path):
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    module, _, _ = _fit(leaf_path, tmp_path, [], False)
    assert isinstance(module.latest_validation, ValidationResult)
    assert {"ece", "brier"} <= set(module.latest_validation.report.columns)
    assert set(module.latest_validation.calibration["method"]) >= {"platt"}
    assert {p for p in tmp_path.rglob("*") if p.is_file()} == before


def test_module_code_names_no_path_and_no_writer():
    tree = ast.parse(inspect.getsource(tft_module))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"Path", "write_csv", "write_parquet", "write_predictions", "write_eval_report", "log_dir",
                        "save_figure", "open"}


def test_callbacks_write_into_the_loggers_folder(leaf_path, tmp_path):
    logger = L.pytorch.loggers.TensorBoardLogger(save_dir=str(tmp_path / "logs"), name="run")
    module, data, trainer = _fit(leaf_path, tmp_path, [ValidationOutputs()], logger)
    log_dir = tmp_path / "logs" / "run" / "version_0"
    assert (log_dir / "val_calibration.csv").is_file() and (log_dir / "tft_gating.csv").is_file()
    assert list(log_dir.glob("eval_report_*.csv")) and list((log_dir / "reliability").glob("*.png"))
    writer = PredictionWriter("oof")
    L.Trainer(accelerator="cpu", logger=logger, callbacks=[writer], enable_progress_bar=False).predict(
        module, make_loader(data, "val", 32, False), return_predictions=False)
    frame = pd.read_parquet(writer.outputs["predictions"])
    assert set(frame["split"]) == {"oof"} and len(frame) == len(data.splits["val"]) * len(module.target_names)
    assert writer.outputs["predictions"].startswith(str(log_dir))


def test_release_freed_memory_trims_every_n_batches_of_each_loop(monkeypatch):
    import models.callbacks as callbacks

    calls = []
    monkeypatch.setattr(callbacks, "release_freed_memory", lambda: calls.append(1) or True)
    cb = callbacks.ReleaseFreedMemory(every=16)
    for i in range(32):
        cb.on_train_batch_end(None, None, None, None, i)
    for i in range(20):
        cb.on_predict_batch_end(None, None, None, None, i)
    assert len(calls) == 3  # after batches 15 and 31 of training, 15 of prediction
    cb.on_predict_epoch_end(None, None)
    cb.on_validation_epoch_end(None, None)
    assert len(calls) == 5  # and at the end of each pass


def test_release_freed_memory_runs_before_the_validation_writer(leaf_path):
    """Lightning calls epoch-end hooks in list order: the trim must come before the writer gathers outputs."""
    from models.callbacks import ReleaseFreedMemory, ValidationOutputs
    from models.leaf_config import load_leaf
    from models.training import _trainer

    trainer, _ = _trainer(load_leaf(leaf_path), "val_loss", "min")
    kinds = [type(cb) for cb in trainer.callbacks]
    assert kinds.index(ReleaseFreedMemory) < kinds.index(ValidationOutputs)
