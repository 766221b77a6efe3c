import numpy as np
import pandas as pd
import pytest
import yaml

from models.leaf_config import load_leaf
from models.window_dataset import build_window_data
from utils.errors import ConfigError, DataError


def test_shipped_leaves_load():
    from scripts.experts_cli import leaves

    paths = leaves()
    assert len(paths) == 18
    for path in paths:
        leaf = load_leaf(path)
        assert (leaf.model.expert, leaf.model.period, leaf.model.modality) == path.parent.parts[-3:]
        assert leaf.model.window.max_prediction_length == max(t.horizon for t in leaf.targets.targets)


def test_typo_key(leaf_path):
    data = yaml.safe_load(leaf_path.read_text())
    data["training"]["max_epoch"] = 3
    leaf_path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"model_config\.yaml: unknown key 'training\.max_epoch' = 3"):
        load_leaf(leaf_path)


def test_wrong_type_and_range_via_overrides(leaf_path):
    with pytest.raises(ConfigError, match=r"key 'training\.batch_size' = 'big': expected an integer"):
        load_leaf(leaf_path, ["training.batch_size=big"])
    with pytest.raises(ConfigError, match=r"key 'model\.dropout' = 1\.5: must be < 1\.0"):
        load_leaf(leaf_path, ["model.dropout=1.5"])
    with pytest.raises(ConfigError, match=r"key 'training\.ema_decay' = 1\.0: must be < 1\.0"):
        load_leaf(leaf_path, ["training.ema_decay=1.0"])
    with pytest.raises(ConfigError, match=r"key 'model\.attention_heads' = 3: must divide hidden_size 8"):
        load_leaf(leaf_path, ["model.attention_heads=3"])


def test_targets_and_weights_files(leaf_path):
    with pytest.raises(ConfigError, match=r"targets\.yaml: key 'targets\[0\]\.kind' = 'ranking': must be one of"):
        load_leaf(leaf_path, ["targets.targets=[{name: target_vol, kind: ranking}]"])
    with pytest.raises(ConfigError, match=r"weights_config\.yaml: key 'loss_weights\.target_vol' names no target"):
        load_leaf(leaf_path, ["weights.loss_weights={target_vol: 1.0}"])


def test_unknown_period(leaf_path):
    with pytest.raises(ConfigError, match=r"key 'period' = '7x': unknown period\(s\) \['7x'\]; valid periods"):
        load_leaf(leaf_path, ["period=7x"])


def test_period_must_match_folder(leaf_path):
    with pytest.raises(ConfigError, match=r"key 'period' = '4h' but the leaf folder is '1h'"):
        load_leaf(leaf_path, ["period=4h"])


def test_target_missing_from_table_is_a_config_error(leaf_path):
    leaf = load_leaf(leaf_path, ["targets.targets=[{name: target_alpha, kind: regression}]",
                                 "weights.loss_weights={}"])
    with pytest.raises(ConfigError, match=r"targets\.yaml: key 'targets' = \['target_alpha'\]: not columns of"):
        build_window_data(leaf)


def test_no_trainable_window_names_the_columns(leaf_path):
    leaf = load_leaf(leaf_path)
    table = pd.read_parquet(leaf.model.data.path)
    table["target_binarytrend"] = np.nan
    with pytest.raises(DataError, match=r"no trainable window .* NaN share by column: \{'target_binarytrend': 1\.0\}"):
        build_window_data(leaf, table)
    with pytest.raises(DataError, match=r"no segment has 4000 consecutive bars; shorten window\.encoder_length"):
        build_window_data(load_leaf(leaf_path, ["window.encoder_length=4000"]))


def test_unknown_feature(leaf_path):
    leaf = load_leaf(leaf_path, ["features.include=[ret_1, not_a_column]"])
    with pytest.raises(DataError, match=r"feature\(s\) \['not_a_column'\] are not numeric columns"):
        build_window_data(leaf)


@pytest.mark.parametrize(("override", "pattern"), [
    ("model.quantiles=[0.1, 0.9]", r"key 'model\.quantiles' = \[0\.1, 0\.9\]: must be increasing and include 0\.5"),
    ("split.train_end=0.9", r"key 'split' = 0\.9, 0\.8: need 0 < train_end < val_end <= 1"),
    ("weights.loss_weights={target_binarytrend: -1.0}", r"key 'loss_weights' = \{'target_binarytrend': -1\.0\}"),
    ("targets.targets=[]", r"key 'targets' = \[\]: list at least one target"),
    ("model.interaction_l2=-1", r"'model\.interaction_l2' = -1"),
    ("model.ensemble_size=0", r"key 'model\.ensemble_size' = 0"),
    ("model.interaction_pairs=-1", r"'model\.interaction_pairs' = -1"),
    (["model.linear_skip=false", "model.interaction_pairs=4"],
     r"key 'model\.interaction_pairs' = 4: the screened pairs are part of the linear skip .*linear_skip=true"),
    (["model.interaction_l2=1.0", "model.interaction_pairs=4"],
     r"key 'model\.interaction_pairs' = 4: .*replace the penalized all-pairs map; .*model\.interaction_l2=0"),
    (["model.linear_skip=false", "model.interaction_l2=1.0"],
     r"key 'model\.interaction_l2' = 1\.0: the interactions are part of the linear skip; set model\.linear_skip=true"),
])
def test_cross_field_checks(leaf_path, override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_leaf(leaf_path, override if isinstance(override, list) else [override])


def test_data_and_feature_file_errors(leaf_path, tmp_path):
    with pytest.raises(DataError, match=r"leaf data file not found: .*nope\.parquet"):
        build_window_data(load_leaf(leaf_path, [f"data.path={tmp_path / 'nope.parquet'}"]))
    with pytest.raises(DataError, match=r"features\.selected_features_file not found"):
        build_window_data(load_leaf(leaf_path, ["features.selected_features_file=missing.txt"]))
    leaf = load_leaf(leaf_path, ["features.exclude=[ret_1, ret_4, rv_24, rsi_14, bb_pctb, volume_z_48, hour_sin]"])
    with pytest.raises(DataError, match=r"the feature rules select no column"):
        build_window_data(leaf)
    (tmp_path / "sel.txt").write_text("# chosen\nret_1\nrsi_14\n")
    data = build_window_data(load_leaf(leaf_path, [f"features.selected_features_file={tmp_path / 'sel.txt'}",
                                                   "features.include=[]"]))
    assert data.features == ["ret_1", "rsi_14"]


def test_symbols_unknown_to_checkpoint(leaf_path):
    leaf = load_leaf(leaf_path)
    with pytest.raises(DataError, match=r"symbols \['BTCUSDT', 'SOLUSDT'\] unknown to the checkpoint"):
        build_window_data(leaf, categories={"symbol": ["ETHUSDT"], "period": ["1h"]})


def test_loss_and_monitor_names_come_from_the_registries(leaf_path):
    from models.leaf_config import load_leaf
    from models.training import monitor_for

    with pytest.raises(ConfigError, match=r"key 'classification_loss' = 'hinge': unknown classification loss "
                                          r"'hinge'; valid: \['bce', 'focal'\]"):
        load_leaf(leaf_path, ["weights.classification_loss=hinge"])
    assert monitor_for(load_leaf(leaf_path, ["training.monitor=val_target_binarytrend_roc_auc@1h"]))[1] == "max"
    assert monitor_for(load_leaf(leaf_path, ["training.monitor=val_target_logreturn_h4_rmse@1h"]))[1] == "min"
    assert monitor_for(load_leaf(leaf_path, ["training.monitor=val_loss"])) == ("val_loss", "min")
    with pytest.raises(ConfigError, match=r"key 'training.monitor' = 'val_target_binarytrend_auc@1h': use val_loss"):
        monitor_for(load_leaf(leaf_path, ["training.monitor=val_target_binarytrend_auc@1h"]))
    assert monitor_for(load_leaf(leaf_path, ["training.monitor=val_target_logreturn_h4_ic@1h"]))[1] == "max"
    # ECE needs the calibration that the same validation fits: reported, never a monitor
    with pytest.raises(ConfigError, match=r"'val_target_binarytrend_ece@1h': use val_loss or val_<target>_<metric>@1h "
                                          r"with a metric of \['ap', 'ic', 'mae', 'pinball', 'rmse', 'roc_auc'\]"):
        monitor_for(load_leaf(leaf_path, ["training.monitor=val_target_binarytrend_ece@1h"]))
    with pytest.raises(ConfigError, match=r"'ap' is not a regression metric; use one of \['rmse', 'mae', 'ic', "):
        monitor_for(load_leaf(leaf_path, ["training.monitor=val_target_logreturn_h4_ap@1h"]))
