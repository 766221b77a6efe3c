"""``MyTFTModule``: a multi-target Temporal Fusion Transformer (:mod:`models.tft_network`) as a LightningModule.

The module computes and returns: losses, monitors, the validation calibration and report
(:attr:`MyTFTModule.latest_validation`), and decoded prediction batches (``predict_step``). It knows no paths;
the files come from the callbacks of :mod:`models.callbacks` (validation outputs, prediction writer).

Output contract (``predict_step`` and ``predictions_*.parquet``), per row and target:

* classification: ``score = sigmoid(head_scale * logit + head_bias)``, the calibration fit on validation
  (``calibration.method``): Platt's slope and intercept (the default), or ``1/T`` and 0 for temperature
  scaling; with ``isotonic`` the score is the isotonic map of the logit and ``head_scale`` / ``head_bias``
  are NaN. ``uncertainty`` and quantiles are NaN;
* regression: quantiles are de-normalized as ``q = head_scale * q_scaled + head_bias`` (the target
  scaler's standard deviation and mean); ``score = P50``; ``uncertainty = (Q_hi - Q_lo) / (z_hi - z_lo)``
  with the outermost configured quantiles and ``z = Phi^-1`` (for P10/P90: ``(P90 - P10) / 2.5631``), the
  standard deviation of a normal with those quantiles;
* log-return targets: ``antilog_return = exp(P50) - 1`` and ``future_price = close * exp(P50)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightning as L
import numpy as np
import pandas as pd
import torch

from metrics.calibration import make_calibrator, sigma_from_quantiles
from models.leaf_config import Leaf
from models.outputs import long_frame
from models.scalers import scaler_from_state
from models.tft_network import HybridMultiLoss, TFTEnsemble, TFTNet
from utils.eval_report import eval_report
from utils.metric_factory import MONITORABLE, compute

logger = logging.getLogger(__name__)


@dataclass
class ValidationResult:
    """What one validation pass computed: the contract frame, its eval report, the calibration rows, the epoch."""

    frame: pd.DataFrame
    report: pd.DataFrame
    calibration: pd.DataFrame
    epoch: int


class MyTFTModule(L.LightningModule):
    """Lightning wrapper: training, validation metrics, importances; the checkpoint is self-contained.

    Parameters
    ----------
    spec : dict
        Everything needed to rebuild the model and its data transforms: the resolved leaf config
        (``config``), ``features``, ``known``, ``targets`` (name, kind, horizon), ``categories`` and
        fitted ``scalers``. Stored as hyper-parameters, so ``MyTFTModule.load_from_checkpoint`` alone
        can predict.
    """

    def __init__(self, spec: dict) -> None:
        super().__init__()
        self.save_hyperparameters("spec")
        self.spec = spec
        # the stored config is read through the typed loader once; the rest of the module uses the dataclasses
        self.leaf = Leaf.from_dict(spec["config"], source="checkpoint spec")
        m, w = self.leaf.model, self.leaf.weights
        arch, targets = m.model, self.leaf.targets.targets
        dec_len = m.window.max_prediction_length
        self.kinds = [t.kind for t in targets]
        self.target_names = [t.name for t in targets]
        self.period = m.period
        net_args = dict(
            n_enc=len(spec["features"]), n_dec=len(spec["known"]), n_symbols=len(spec["categories"]["symbol"]),
            n_periods=len(spec["categories"]["period"]), n_targets=len(targets),
            head_steps=[min(t.horizon, dec_len) - 1 for t in targets], hidden=arch.hidden_size,
            heads=arch.attention_heads, lstm_layers=arch.lstm_layers, dropout=arch.dropout,
            d_embed=arch.hidden_continuous_size, n_quantiles=len(arch.quantiles),
            # checkpoints from before ordered quantiles keep their free head (spec without the flag)
            median_idx=list(arch.quantiles).index(0.5) if spec.get("ordered_quantiles") else None,
            regression=[k == "regression" for k in self.kinds],
            linear_skip=arch.linear_skip,  # False for checkpoints from before the key (Leaf.from_dict)
            interaction_l2=arch.interaction_l2,
            # the pairs screened on the training span (models.training.make_spec), by name; none in older checkpoints
            pairs=[(spec["features"].index(p["left"]), spec["features"].index(p["right"]))
                   for p in spec.get("interaction_pairs", [])],
        )
        # members are built one after the other from the seeded generator: different, reproducible initialisations;
        # one member is the plain network (state-dict names as before ensembles existed)
        nets = [TFTNet(**net_args) for _ in range(arch.ensemble_size)]
        self.net = nets[0] if len(nets) == 1 else TFTEnsemble(nets)
        if m.training.activation_checkpointing:  # the encoder's selection holds most of a step's activations
            for net in nets:
                net.enc_vsn.chunk_steps = net.enc_vsn.CHUNK_STEPS
        self.loss_fn = HybridMultiLoss(
            self.kinds, [w.loss_weights.get(n, 1.0) for n in self.target_names], arch.quantiles,
            classification_loss=w.classification_loss, focal_gamma=w.focal_gamma)
        self.quantiles = list(arch.quantiles)
        self.median_idx = self.quantiles.index(0.5)
        # fitted at each validation end; saved in checkpoints with the weights (isotonic knots: on_save_checkpoint)
        self.register_buffer("cal_scale", torch.ones(len(targets)))
        self.register_buffer("cal_bias", torch.zeros(len(targets)))
        # configs from before the calibration section used temperature scaling
        self.cal_method = m.calibration.method if "calibration" in spec["config"]["model"] else "temperature"
        self.cal_knots: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(targets)
        self.cal_warnings: list[str] = [""] * len(targets)
        self.is_cls = np.array([k == "classification" for k in self.kinds])
        self.is_logreturn = np.array([k == "regression" and "logreturn" in n
                                      for n, k in zip(self.target_names, self.kinds, strict=True)])
        # the target scaler's mean / std per symbol (category order), [S, T]: one row each for a global scaler
        mean, scale = scaler_from_state(spec["scalers"]["targets"]).row_stats(spec["categories"]["symbol"])
        self.y_mean, self.y_scale = np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64)
        self.versions = spec.get("versions", {})
        # no-skill constants for the eval reports (older checkpoints: the evaluated rows' own, see eval_report)
        self.no_skill = dict(zip(self.target_names, spec.get("train_target_means", []), strict=False)) or None
        #: what the latest validation pass computed (None before the first one and after a sanity check)
        self.latest_validation: ValidationResult | None = None
        self._val: list[dict] = []
        self._imp: dict[str, torch.Tensor] = {}
        self._imp_n = 0

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Network outputs for a batch."""
        return self.net(batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Weighted loss; each component logged as ``train/loss_<target>``."""
        out = self(batch)
        loss, comp = self._training_loss(out, batch["target"])
        bs = batch["target"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if self.net.pair_w is not None and self.leaf.model.model.interaction_l2 > 0:
            penalty = self.net.penalty(self.loss_fn.w / self.loss_fn.w.sum().clamp_min(1e-12))
            self.log("train/interaction_penalty", penalty, batch_size=bs)
            loss = loss + penalty
        for name, c in zip(self.target_names, comp, strict=True):
            self.log(f"train/loss_{name}", c, batch_size=bs)
        return loss

    def _training_loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and its per-target components; for an ensemble, the members' mean (see :class:`TFTEnsemble`)."""
        if "member_pred" not in out:
            return self.loss_fn(out["pred"], target)
        losses, comps = zip(*(self.loss_fn(p, target) for p in out["member_pred"]), strict=True)
        return torch.stack(losses).mean(), torch.stack(comps).mean(0)

    def on_validation_epoch_start(self) -> None:
        """Importances describe the latest validation pass only (not the sanity check or earlier epochs)."""
        self._imp, self._imp_n = {}, 0
        self._val.clear()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Accumulate predictions (on the CPU), targets, identifiers and variable-selection weights."""
        out = self(batch)
        loss, _ = self.loss_fn(out["pred"], batch["target"])
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["target"].shape[0], sync_dist=True)
        self._val.append(self._cpu_fields(out["pred"], batch))
        for key in ("encoder_weights", "decoder_weights", "static_weights"):
            w = out[key].detach().float()
            w = w.reshape(-1, w.shape[-1]).mean(0).cpu()
            self._imp[key] = self._imp.get(key, 0) + w
        self._imp_n += 1

    def on_validation_epoch_end(self) -> None:
        """Monitor metrics, calibration fit, calibration metrics, eval report and reliability curves.

        Logs ``val_<target>_<metric>@<period>`` for the monitorable metrics (AP and ROC-AUC of classification
        targets; RMSE, MAE, IC and pinball of the regression median / quantiles, in target units) and, outside the
        sanity check, ``val_ece@<target>``, ``val_brier@<target>``, ``val_cal_scale@<target>``,
        ``val_cal_bias@<target>`` (classification) and ``val_cov_p10@<target>``, ``val_cov_p90@<target>``,
        ``val_pinball@<target>`` (regression).
        """
        self.latest_validation = None
        if not self._val:
            return
        fields = {k: np.concatenate([b[k] for b in self._val]) for k in self._val[0]}
        self._val.clear()
        y_true = self._denormalize(fields["target"], fields["static"][:, 0])
        self._log_monitors(fields["pred"], y_true, fields["static"][:, 0])
        if self.trainer.sanity_checking:
            return
        self.fit_calibration(fields["pred"][:, :, 0], y_true)
        frame = self.prediction_frame(fields, "val")
        report = eval_report(frame, no_skill=self.no_skill)
        for _, row in report[report["symbol"] == "ALL"].iterrows():
            k = self.target_names.index(row["target"])
            values = ({"ece": row.get("ece"), "brier": row.get("brier"), "cal_scale": self.cal_scale[k].item(),
                       "cal_bias": self.cal_bias[k].item()}
                      if row["kind"] == "classification" else
                      {"cov_p10": row.get("cov_p10"), "cov_p90": row.get("cov_p90"), "pinball": row.get("pinball")})
            for metric, value in values.items():
                if value is not None and np.isfinite(value):
                    self.log(f"val_{metric}@{row['target']}", float(value), sync_dist=False)
        self.latest_validation = ValidationResult(frame, report, self._calibration_rows(report),
                                                  int(self.current_epoch))

    def _log_monitors(self, pred: np.ndarray, y_true: np.ndarray, symbol_idx: np.ndarray) -> None:
        """Log ``val_<target>_<metric>@<period>`` for every monitorable metric (``MONITORABLE``), so that any
        monitor the config may name exists after the first validation (``y_true`` in target units)."""
        for k, (name, kind) in enumerate(zip(self.target_names, self.kinds, strict=True)):
            ok = np.isfinite(y_true[:, k])
            if not ok.any():
                continue
            if kind == "classification":  # rank metrics: logits rank like probabilities
                values = compute(MONITORABLE[kind], y_true[ok, k], pred[ok, k, 0])
            else:  # in target units: per-symbol target scaling would change the pooled ranks and errors
                scale, mean = self.y_scale[symbol_idx[ok], k, None], self.y_mean[symbol_idx[ok], k, None]
                q = pred[ok, k, :].astype(np.float64) * scale + mean
                values = compute(MONITORABLE[kind], y_true[ok, k], dict(zip(self.quantiles, q.T, strict=True)))
            for metric, value in values.items():
                self.log(f"val_{name}_{metric}@{self.period}", float(value), sync_dist=False)

    def _calibration_rows(self, report: pd.DataFrame) -> pd.DataFrame:
        """The pooled report rows with the fitted calibration (``val_calibration.csv``)."""
        rows = report[report["symbol"] == "ALL"].assign(epoch=int(self.current_epoch), step=int(self.global_step))
        k_of = [self.target_names.index(t) for t in rows["target"]]
        cls = (rows["kind"] == "classification").to_numpy()
        rows["method"] = np.where(cls, self.cal_method, "")
        rows["cal_scale"] = np.where(cls, [self.cal_scale[k].item() for k in k_of], np.nan)
        rows["cal_bias"] = np.where(cls, [self.cal_bias[k].item() for k in k_of], np.nan)
        rows["calibration_warning"] = [self.cal_warnings[k] for k in k_of]
        return rows

    # ---- prediction contract -------------------------------------------------------------------------

    def _cpu_fields(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Move one batch's outputs and identifiers to the CPU at once (nothing accumulates on the GPU)."""
        return {
            "pred": pred.detach().float().cpu().numpy(), "target": batch["target"].detach().float().cpu().numpy(),
            "static": batch["static_cat"].cpu().numpy(), "time_idx": batch["time_idx"].cpu().numpy(),
            "timestamp": batch["timestamp"].cpu().numpy(),
            # float64 prices travel as int64 bits: true-half precision plugins cast floating batch tensors
            "close": batch["close_bits"].cpu().numpy().view(np.float64),
        }

    def _denormalize(self, y_scaled: np.ndarray, symbol_idx: np.ndarray) -> np.ndarray:
        return y_scaled.astype(np.float64) * self.y_scale[symbol_idx] + self.y_mean[symbol_idx]

    def fit_calibration(self, logits: np.ndarray, y_true: np.ndarray):
        """Fit the leaf's calibration method per classification target on validation logits.

        Sets ``cal_scale`` / ``cal_bias`` (NaN for isotonic, whose map is kept in ``cal_knots``) and
        ``cal_warnings``; a single-class target keeps ``sigmoid(logit)`` (scale 1, bias 0). Every warning of
        the fit (a bound reached, a negative slope, scores without spread) is logged, naming the target.
        Returns the fitted calibrator (``None`` without classification targets).
        """
        cls = np.flatnonzero(self.is_cls)
        if cls.size == 0:
            return None
        names = [self.target_names[k] for k in cls]
        cal = make_calibrator(self.cal_method, names).fit(logits[:, cls], y_true[:, cls])
        for j, k in enumerate(cls):
            self.cal_scale[k] = float(cal.scale_[j]) if self.cal_method != "isotonic" else float("nan")
            self.cal_bias[k] = float(cal.bias_[j]) if self.cal_method != "isotonic" else float("nan")
            self.cal_knots[k] = cal.knots_[j] if self.cal_method == "isotonic" else None
            self.cal_warnings[k] = cal.warnings_[j]
            if cal.warnings_[j]:
                logger.warning("%s %s calibration (%s): %s", self.period, self.target_names[k], self.cal_method,
                               cal.warnings_[j])
        return cal

    def calibrated(self, logit: np.ndarray) -> np.ndarray:
        """Probabilities ``[n, T]`` of logits ``[n, T]`` under the fitted calibration (NaN-free for classification)."""
        scale = self.cal_scale.detach().cpu().numpy().astype(np.float64)
        bias = self.cal_bias.detach().cpu().numpy().astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            prob = 1.0 / (1.0 + np.exp(-(np.nan_to_num(scale, nan=1.0) * logit + np.nan_to_num(bias))))
        for k, knots in enumerate(self.cal_knots):
            if knots is not None:
                prob[:, k] = np.interp(logit[:, k], knots[0], knots[1])
        return prob

    def decode(self, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Network outputs -> contract arrays ``[n, T]`` (see the module docstring for the formulas)."""
        pred = fields["pred"].astype(np.float64)
        n = pred.shape[0]
        sym = fields["static"][:, 0]
        y_scale, y_mean = self.y_scale[sym], self.y_mean[sym]  # [n, T]
        q = pred * y_scale[:, :, None] + y_mean[:, :, None]
        logit = pred[:, :, 0]
        cls = self.is_cls[None, :]
        prob = self.calibrated(logit)
        lo, hi = self.quantiles[0], self.quantiles[-1]
        sigma = sigma_from_quantiles(q[:, :, 0], q[:, :, -1], lo, hi) if len(self.quantiles) > 1 \
            else np.full((n, len(self.kinds)), np.nan)
        p50 = q[:, :, self.median_idx]
        logret = self.is_logreturn[None, :]
        return {
            "score": np.where(cls, prob, p50), "uncertainty": np.where(cls, np.nan, sigma),
            "quantiles": np.where(cls[:, :, None], np.nan, q),
            "head_scale": np.where(self.is_cls, self.cal_scale.cpu().numpy(), y_scale),
            "head_bias": np.where(self.is_cls, self.cal_bias.cpu().numpy(), y_mean),
            "antilog_return": np.where(logret, np.expm1(p50), np.nan),
            "future_price": np.where(logret, fields["close"][:, None] * np.exp(p50), np.nan),
            "y_true": self._denormalize(fields["target"], sym),
            "symbol_idx": fields["static"][:, 0], "period_idx": fields["static"][:, 1],
            "time_idx": fields["time_idx"], "timestamp": fields["timestamp"],
        }

    def prediction_frame(self, fields: dict[str, np.ndarray], split: str) -> pd.DataFrame:
        """The long contract frame of accumulated CPU fields."""
        return self.contract_frame(self.decode(fields), split)

    def contract_frame(self, decoded: dict[str, np.ndarray], split: str) -> pd.DataFrame:
        """The long contract frame (``predictions_*.parquet`` rows) of decoded arrays, labelled ``split``."""
        return long_frame(decoded, self.target_names, self.kinds, self.quantiles, self.spec["categories"],
                          self.versions, split)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Contract outputs of one batch, already on the CPU.

        Returns ``{'score', 'uncertainty', 'meta': {'symbol_idx', 'period_idx', 'time_idx', 'head_scale',
        'head_bias'}, 'schema_ver', 'data_ver', 'expert_ver', 'train_window_id', 'antilog_return',
        'future_price'}`` plus ``quantiles`` [B, T, Q], ``y_true`` and ``meta['timestamp']``.
        """
        decoded = self.decode(self._cpu_fields(self(batch)["pred"], batch))
        d = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in decoded.items()}
        return {
            "score": d["score"], "uncertainty": d["uncertainty"], "quantiles": d["quantiles"], "y_true": d["y_true"],
            "meta": {k: d[k] for k in ("symbol_idx", "period_idx", "time_idx", "head_scale", "head_bias",
                                       "timestamp")},
            **{k: str(self.versions.get(k, "")) for k in ("schema_ver", "data_ver", "expert_ver", "train_window_id")},
            "antilog_return": d["antilog_return"], "future_price": d["future_price"],
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Isotonic maps are variable-length: they travel as plain lists beside the state dict."""
        checkpoint["calibration"] = {"method": self.cal_method, "warnings": list(self.cal_warnings), "knots": [
            None if k is None else [k[0].tolist(), k[1].tolist()] for k in self.cal_knots]}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the calibration; older checkpoints carry a temperature (scale ``1/T``, bias 0) or nothing."""
        state = checkpoint.get("state_dict", {})
        if "cal_scale" not in state:
            temp = state.pop("temperature", None)
            if temp is None:
                logger.warning("checkpoint has no fitted calibration; probabilities are uncalibrated")
                temp = torch.ones(len(self.target_names))
            state["cal_scale"] = 1.0 / temp.float()
            state["cal_bias"] = torch.zeros(len(self.target_names))
        saved = checkpoint.get("calibration", {})
        self.cal_warnings = list(saved.get("warnings", self.cal_warnings))
        self.cal_knots = [None if k is None else (np.asarray(k[0]), np.asarray(k[1]))
                          for k in saved.get("knots", self.cal_knots)]

    def importances(self) -> pd.DataFrame:
        """Mean variable-selection weights seen in validation (``tft_gating.csv``)."""
        rows = []
        names = {"encoder_weights": self.spec["features"], "decoder_weights": self.spec["known"],
                 "static_weights": ["symbol", "period"]}
        for key, total in self._imp.items():
            for var, w in zip(names[key], (total / max(self._imp_n, 1)).tolist(), strict=True):
                rows.append({"kind": key.split("_")[0], "variable": var, "importance": w})
        frame = pd.DataFrame(rows, columns=["kind", "variable", "importance"])
        return frame.sort_values(["kind", "importance"], ascending=[True, False])

    def configure_optimizers(self):
        """AdamW, optionally with a cosine or plateau schedule."""
        opt_cfg = self.leaf.model.optimizer
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=opt_cfg.lr,
                                weight_decay=opt_cfg.weight_decay)
        if opt_cfg.scheduler == "cosine":
            max_epochs = max(1, self.leaf.model.training.max_epochs)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)}
        if opt_cfg.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}
        return opt
