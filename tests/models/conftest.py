"""A tiny trainable leaf on the small synthetic panel."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from utils.locks import lock_path


@contextmanager
def folder_held(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s output lock, as another run writing it would."""
    holder = FileLock(str(lock_path(folder)))
    holder.acquire()
    try:
        yield
    finally:
        holder.release()


def write_leaf(root: Path, data_path: Path, expert: str = "Test-TFT", modality: str = "base", **model_over) -> Path:
    """Write a tiny leaf under ``root/configs/experts/<expert>/1h/<modality>`` and return its model_config path."""
    leaf = root / "configs" / "experts" / expert / "1h" / modality
    leaf.mkdir(parents=True, exist_ok=True)
    model = {
        "period": "1h", "data": {"path": str(data_path)},
        "features": {"include": ["ret_1", "ret_4", "rv_24", "rsi_14", "bb_pctb", "volume_z_48", "hour_sin"]},
        "window": {"encoder_length": 12, "max_prediction_length": 4},
        "split": {"train_end": 0.6, "val_end": 0.8},
        "model": {"hidden_size": 8, "attention_heads": 2, "hidden_continuous_size": 4, "dropout": 0.0},
        "optimizer": {"lr": 0.01, "scheduler": "cosine"},
        "training": {"batch_size": 32, "max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 2,
                     "log_every_n_steps": 1, "save_top_k": 1},
        "trainer": {"accelerator": "cpu", "devices": 1},
        "seed": 7,
    }
    for key, value in model_over.items():
        section, _, name = key.partition("__")
        if name:
            model[section][name] = value
        else:
            model[section] = value
    (leaf / "model_config.yaml").write_text(yaml.safe_dump(model))
    (leaf / "targets.yaml").write_text(yaml.safe_dump({"targets": [
        {"name": "target_binarytrend", "kind": "classification", "horizon": 1},
        {"name": "target_logreturn_h4", "kind": "regression", "horizon": 4}]}))
    (leaf / "weights_config.yaml").write_text(yaml.safe_dump({"loss_weights": {"target_binarytrend": 1.0}}))
    return leaf / "model_config.yaml"


@pytest.fixture
def leaf_path(tmp_path, small_panel, monkeypatch) -> Path:
    """A tiny leaf; the working directory is ``tmp_path`` so logs and checkpoints land there."""
    monkeypatch.chdir(tmp_path)
    return write_leaf(tmp_path, small_panel["base_csv"].with_suffix(".parquet"))
