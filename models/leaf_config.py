"""Typed configs of one expert leaf: ``configs/experts/<Expert>/<period>/<modality>/``.

Three files, three dataclasses, one loader (:func:`load_leaf`):

* ``model_config.yaml`` -> :class:`ModelConfig` (data, features, window, split, model, optimizer,
  training, trainer, seed, meta),
* ``targets.yaml`` -> :class:`TargetsConfig` (each target's kind and horizon),
* ``weights_config.yaml`` -> :class:`WeightsConfig` (loss weights; warm-start source and transfers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from utils.config import bounded, from_mapping, load_config, parse_override
from utils.errors import ConfigError
from utils.loss_factory import check_loss
from utils.timeline import PERIODS, check_periods

KNOWN_FUTURE = ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "month_sin", "month_cos"]


@dataclass
class DataSection:
    """Where the leaf's table lives (an expert_group dataset)."""

    path: str
    symbols: list[str] | None = None


@dataclass
class FeatureSection:
    """Feature selection: explicit list, a ``selected_features.txt`` file, and/or prefix rules (union)."""

    include: list[str] = field(default_factory=list)
    selected_features_file: str | None = None
    prefixes: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    known_future: list[str] = field(default_factory=lambda: list(KNOWN_FUTURE))
    #: ``global``: one mean / std per input over the training span; ``group``: per symbol (its training rows),
    #: as pytorch-forecasting's GroupNormalizer does for targets, so a volatile symbol's inputs share the scale of
    #: a quiet one's
    normalize: Literal["global", "group"] = "global"
    #: the same choice for regression targets (pytorch-forecasting's GroupNormalizer): ``group`` scales each
    #: symbol's returns by its own training mean / std, so the pinball loss weighs a quiet symbol like a volatile one
    normalize_targets: Literal["global", "group"] = "global"
    #: inputs whose cross-sectional mean over the symbols at each bar is added as an input ``market_<name>``
    #: (:mod:`features.cross_section`): what the whole market did over the same bars, which a window of one
    #: symbol cannot see; each name must be one of the leaf's selected inputs
    market: list[str] = field(default_factory=list)


@dataclass
class WindowSection:
    """Encoder length and decoder length (bars)."""

    encoder_length: int = bounded(64, ge=2, le=4096)
    max_prediction_length: int = bounded(24, ge=1, le=1024)


@dataclass
class SplitSection:
    """Time split. ``train_end``/``val_end`` are fractions of the timeline or ISO dates."""

    train_end: float | str = 0.7
    val_end: float | str = 0.85
    embargo_bars: int | None = bounded(None, ge=0)
    train_start: str | None = None  # ISO date: training rows start here (rolling walk-forward windows)
    test_end: str | None = None  # ISO date: the test / predict span stops before it (default: end of data)

    def check(self) -> None:
        """Fractions must be ordered and inside (0, 1)."""
        a, b = self.train_end, self.val_end
        if isinstance(a, float) and isinstance(b, float) and not 0 < a < b <= 1:
            raise ConfigError(f"key 'split' = {a}, {b}: need 0 < train_end < val_end <= 1")


@dataclass
class WalkForwardSection:
    """Walk-forward out-of-fold windows (``experts_cli.py oof``), laid out backwards from the end of the data.

    Window ``k`` of ``n_windows`` predicts one ``oof_days`` block; it validates on the ``val_days`` before that
    block (minus an embargo) and trains on everything earlier (or the last ``train_days`` when set).
    """

    n_windows: int = bounded(3, ge=1, le=100)
    train_days: int | None = bounded(None, ge=1)
    val_days: int = bounded(30, ge=1)
    oof_days: int = bounded(60, ge=1)
    embargo_bars: int | None = bounded(None, ge=0)


@dataclass
class ArchSection:
    """TFT sizes."""

    hidden_size: int = bounded(32, ge=4, le=4096)
    attention_heads: int = bounded(4, ge=1, le=64)
    lstm_layers: int = bounded(1, ge=1, le=8)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)
    hidden_continuous_size: int = bounded(8, ge=1, le=1024)
    quantiles: list[float] = bounded([0.1, 0.5, 0.9], gt=0.0, lt=1.0)
    # a linear map of the decision bar's inputs added to every head (LSTNet's "highway"): see TFTNet. On by
    # default since it raised AP in 4 of 5 paired seed runs (bench/RESULTS.md); checkpoints without the key had none
    linear_skip: bool = True
    # ridge penalty of the skip's pairwise interactions of the decision bar's inputs, in units of the per-sample
    # loss (0: no interactions; needs linear_skip). See TFTNet and bench/RESULTS.md
    interaction_l2: float = bounded(0.0, ge=0.0)
    # at most this many pairwise products of the decision bar's inputs in the skip, each chosen on the training span
    # by a score test with a Bonferroni bound (features.interactions.PairScreen; 0: none; needs linear_skip)
    interaction_pairs: int = bounded(0, ge=0, le=1000)
    # K independently initialised networks trained side by side on the same batches, their outputs averaged (a deep
    # ensemble: the spread between seeds is as large as most levers, bench/RESULTS.md). K times the training cost
    ensemble_size: int = bounded(1, ge=1, le=32)

    def check(self) -> None:
        """Heads must divide the hidden size; quantiles sorted and containing the median."""
        if self.hidden_size % self.attention_heads:
            raise ConfigError(f"key 'model.attention_heads' = {self.attention_heads}: must divide hidden_size "
                              f"{self.hidden_size}")
        if self.interaction_l2 > 0 and not self.linear_skip:
            raise ConfigError(f"key 'model.interaction_l2' = {self.interaction_l2}: the interactions are part of the "
                              "linear skip; set model.linear_skip=true or model.interaction_l2=0")
        if self.interaction_pairs > 0 and (not self.linear_skip or self.interaction_l2 > 0):
            raise ConfigError(f"key 'model.interaction_pairs' = {self.interaction_pairs}: the screened pairs are part "
                              "of the linear skip and replace the penalized all-pairs map; set model.linear_skip=true "
                              "and model.interaction_l2=0, or model.interaction_pairs=0")
        if sorted(self.quantiles) != self.quantiles or 0.5 not in self.quantiles:
            raise ConfigError(f"key 'model.quantiles' = {self.quantiles}: must be increasing and include 0.5")


@dataclass
class CalibrationSection:
    """Calibration of classification heads on the validation span (``metrics.calibration``).

    ``platt`` (slope and intercept; the default: its intercept keeps the mean probability at the base rate),
    ``temperature`` (one divisor, no intercept) or ``isotonic`` (monotone step map).
    """

    method: Literal["platt", "temperature", "isotonic"] = "platt"


@dataclass
class OptimizerSection:
    """AdamW with an optional schedule."""

    lr: float = bounded(1e-3, gt=0.0, le=1.0)
    weight_decay: float = bounded(1e-4, ge=0.0)
    scheduler: Literal["none", "cosine", "plateau"] = "cosine"


@dataclass
class TrainingSection:
    """Loop settings; ``monitor: auto`` is the first classification target's AP (else first RMSE)."""

    batch_size: int = bounded(256, ge=1)
    max_epochs: int = bounded(10, ge=1)
    log_every_n_steps: int | None = bounded(None, ge=1)
    log_interval: int | None = bounded(None, ge=1)
    monitor: str = "auto"
    save_top_k: int = bounded(2, ge=-1)
    early_stopping_patience: int | None = bounded(None, ge=1)
    num_workers: int = bounded(0, ge=0)
    limit_train_batches: float | None = bounded(None, gt=0)
    limit_val_batches: float | None = bounded(None, gt=0)
    gradient_clip_val: float = bounded(1.0, ge=0.0)
    #: Run the encoder's variable selection in chunks of time steps and recompute it in the backward pass: a
    #: training step's activation memory drops ~10x and, on a CPU, the step is faster (bench/RESULTS.md).
    activation_checkpointing: bool = True
    #: Decay of an exponential moving average of the weights, updated after every optimizer step (0: off).
    #: Validation, checkpoints and predictions use the averaged weights; training continues from the raw ones.
    ema_decay: float = bounded(0.0, ge=0.0, lt=1.0)

    @property
    def log_steps(self) -> int:
        """``log_every_n_steps`` if set, else ``log_interval``, else 100."""
        return self.log_every_n_steps or self.log_interval or 100


@dataclass
class TrainerSection:
    """Lightning trainer settings (``auto`` precision: bf16-mixed on CUDA, 32 on CPU)."""

    accelerator: str = "auto"
    devices: int | str = "auto"
    precision: str = "auto"
    strategy: str = "auto"
    num_nodes: int = bounded(1, ge=1)


@dataclass
class MetaSection:
    """Version fields carried into checkpoints and predictions (empty allowed)."""

    schema_version: str = ""
    data_version: str = ""
    expert_version: str = ""
    train_window_id: str = ""


@dataclass
class ModelConfig:
    """``model_config.yaml``."""

    period: str
    data: DataSection
    expert: str = ""
    modality: str = ""
    features: FeatureSection = field(default_factory=FeatureSection)  # which columns are inputs
    window: WindowSection = field(default_factory=WindowSection)  # encoder / decoder lengths
    split: SplitSection = field(default_factory=SplitSection)  # fractions become dates once per run
    model: ArchSection = field(default_factory=ArchSection)  # TFT sizes
    calibration: CalibrationSection = field(default_factory=CalibrationSection)  # of the classification heads
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    seed: int = 42
    meta: MetaSection = field(default_factory=MetaSection)
    walk_forward: WalkForwardSection = field(default_factory=WalkForwardSection)

    def check(self) -> None:
        """The period must be a known label."""
        check_periods("period", self.period)


@dataclass
class TargetSpec:
    """One target column."""

    name: str
    kind: Literal["classification", "regression"]
    horizon: int = bounded(1, ge=1)


@dataclass
class TargetsConfig:
    """``targets.yaml``."""

    targets: list[TargetSpec]

    def check(self) -> None:
        """At least one target, no duplicates."""
        names = [t.name for t in self.targets]
        if not names:
            raise ConfigError("key 'targets' = []: list at least one target")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"key 'targets': duplicated target(s) {dup}")


@dataclass
class WarmStartSection:
    """Warm-start source and what to transfer or freeze (parameter-name prefixes)."""

    source: str | None = None
    checkpoint: str = "best"
    transfer: list[str] = field(default_factory=lambda: [""])
    freeze: list[str] = field(default_factory=list)


@dataclass
class WeightsConfig:
    """``weights_config.yaml``."""

    loss_weights: dict[str, float] = field(default_factory=dict)
    classification_loss: str = "bce"  # a classification loss of utils.loss_factory: bce | focal
    focal_gamma: float = bounded(2.0, ge=0.0)
    warm_start: WarmStartSection = field(default_factory=WarmStartSection)

    def check(self) -> None:
        """Weights must be non-negative; the loss must be a registered classification loss."""
        try:
            check_loss(self.classification_loss, "classification")
        except ConfigError as exc:
            raise ConfigError(f"key 'classification_loss' = {self.classification_loss!r}: {exc}") from None
        bad = {k: v for k, v in self.loss_weights.items() if v < 0}
        if bad:
            raise ConfigError(f"key 'loss_weights' = {bad}: weights must be >= 0")


@dataclass
class Leaf:
    """A fully loaded leaf: its three configs plus where it lives."""

    model: ModelConfig
    targets: TargetsConfig
    weights: WeightsConfig
    config_path: Path
    run_tag: str = ""  # e.g. 'wf00' for walk-forward window 0: its own log and checkpoint folders

    def model_log_dir(self, model: str) -> Path:
        """Log root of one model of the leaf (``tft``, or a baseline's name: :mod:`models.baselines`):
        ``lightning_logs/experts/<expert>/<period>/<modality>/<model>[/<run_tag>]``."""
        m = self.model
        root = Path("lightning_logs/experts") / m.expert / m.period / m.modality / model
        return root / self.run_tag if self.run_tag else root

    def model_ckpt_dir(self, model: str) -> Path:
        """Checkpoint folder of one model: ``checkpoints/experts/<expert>/<period>/<modality>/<model>[/<run_tag>]``."""
        m = self.model
        root = Path("checkpoints/experts") / m.expert / m.period / m.modality / model
        return root / self.run_tag if self.run_tag else root

    @property
    def log_dir(self) -> Path:
        """TensorBoard root of the TFT: ``lightning_logs/experts/<expert>/<period>/<modality>/tft[/<run_tag>]``."""
        return self.model_log_dir("tft")

    @property
    def ckpt_dir(self) -> Path:
        """TFT checkpoints: ``checkpoints/experts/<expert>/<period>/<modality>/tft[/<run_tag>]``."""
        return self.model_ckpt_dir("tft")

    def to_dict(self) -> dict[str, Any]:
        """Resolved configuration (stored in checkpoints)."""
        return {"model": dataclasses.asdict(self.model), "targets": dataclasses.asdict(self.targets),
                "weights": dataclasses.asdict(self.weights), "config_path": str(self.config_path),
                "run_tag": self.run_tag}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<checkpoint>") -> Leaf:
        """Inverse of :meth:`to_dict` (rebuilds a leaf from a checkpoint's stored configuration; keys the checkpoint
        predates take the value it was trained with, :data:`LEGACY_MODEL`)."""
        return cls(from_mapping(ModelConfig, with_legacy(data["model"]), source),
                   from_mapping(TargetsConfig, data["targets"], source),
                   from_mapping(WeightsConfig, data["weights"], source), Path(data["config_path"]),
                   data.get("run_tag", ""))


# what a checkpoint's stored model config means by a key it predates: the setting it was trained with (a new
# default must not change an old network)
LEGACY_MODEL = {"model": {"linear_skip": False, "interaction_l2": 0.0, "interaction_pairs": 0}}


def with_legacy(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """A stored ``model_config`` mapping with the keys it predates filled in from :data:`LEGACY_MODEL`."""
    return {**model_cfg, **{sec: {**legacy, **model_cfg.get(sec, {})} for sec, legacy in LEGACY_MODEL.items()}}


def _split_overrides(overrides: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--set`` items: ``targets.x=..``/``weights.x=..`` go to those files, anything else to model_config."""
    out: dict[str, dict[str, Any]] = {"model": {}, "targets": {}, "weights": {}}
    for item in overrides or []:
        key, value = parse_override(item)
        head, _, rest = key.partition(".")
        if head in ("targets", "weights") and rest:
            out[head][rest] = value
        else:
            out["model"][key] = value
    return out


def load_leaf(model_config: str | Path, overrides: list[str] | None = None) -> Leaf:
    """Load a leaf's three configs; infer expert/period/modality from the path when not set.

    Raises
    ------
    ConfigError
        For any invalid value in any of the three files, naming the file, key and value.
    """
    path = Path(model_config)
    ov = _split_overrides(overrides)
    model = load_config(path, ModelConfig, ov["model"])
    parts = path.parent.parts
    if len(parts) >= 3:
        model.expert = model.expert or parts[-3]
        model.modality = model.modality or parts[-1]
        if parts[-2] in PERIODS and parts[-2] != model.period:
            raise ConfigError(f"{path}: key 'period' = {model.period!r} but the leaf folder is {parts[-2]!r}")
        if parts[-2] in PERIODS:  # a leaf folder <Expert>/<period>/<modality>: its keys must name it
            for key, value, folder in (("expert", model.expert, parts[-3]), ("modality", model.modality, parts[-1])):
                if value != folder:
                    raise ConfigError(f"{path}: key {key!r} = {value!r} but the leaf folder says {folder!r}; "
                                      f"it would train into another leaf's checkpoints and logs")
    targets = load_config(path.parent / "targets.yaml", TargetsConfig, ov["targets"])
    weights = load_config(path.parent / "weights_config.yaml", WeightsConfig, ov["weights"])
    unknown = [k for k in weights.loss_weights if k not in {t.name for t in targets.targets}]
    if unknown:
        raise ConfigError(f"{path.parent / 'weights_config.yaml'}: key 'loss_weights.{unknown[0]}' names no target "
                          f"of targets.yaml")
    return Leaf(model, targets, weights, path)


def data_root_override(model_config: str | Path, data_root: str | None) -> list[str]:
    """``--set`` items that move the leaf's ``data.path`` under ``data_root`` (``--data-root``; none without one)."""
    if not data_root:
        return []
    from utils.paths import rebase

    path = load_config(Path(model_config), ModelConfig).data.path
    return [f"data.path={rebase(path, data_root)}"]
