"""``MyTFTModule``: a multi-target Temporal Fusion Transformer as a LightningModule.

Architecture (Lim et al., 2021): static covariate encoders feeding four context vectors;
variable selection networks (static / encoder / decoder); an LSTM encoder-decoder initialised
from the static context; static enrichment; interpretable multi-head attention with a causal
mask; gated skip connections throughout. Gated residual networks, the interpretable attention
and gate-add-norm blocks are pytorch-forecasting's modules. The variable selection network is
vectorized here (one batched matmul for all variables) because pytorch-forecasting's runs one
small network per variable, which dominates the cost with hundreds of inputs.

One head per target reads the decoder step at the target's horizon: a logit for classification,
quantiles (P10/P50/P90 by default) for regression. Quantiles are ordered by construction: the head
outputs the median and non-negative (softplus) increments outwards from it, so P10 <= P50 <= P90 for every
input. :class:`HybridMultiLoss` weights BCE (or focal) and pinball losses per target.

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
import math
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    GateAddNorm,
    GatedResidualNetwork,
    InterpretableMultiHeadAttention,
)
from torch import nn

from metrics.calibration import make_calibrator, sigma_from_quantiles
from models.outputs import (
    append_calibration_csv,
    long_frame,
    reliability_figure,
    save_figure,
    utc_stamp,
    write_predictions,
)
from utils.eval_report import eval_report, write_eval_report
from utils.loss_factory import check_loss, get_loss
from utils.metric_factory import get_metric

logger = logging.getLogger(__name__)


class VectorizedVSN(nn.Module):
    """Variable selection over ``n_vars`` scalar inputs, all variables in one batched op.

    Each variable is embedded by its own linear map (weights ``[n_vars, d]``) and passed through a
    per-variable GRN implemented with grouped (einsum) weights; a context-aware GRN over the
    flattened embeddings produces softmax selection weights.
    """

    def __init__(self, n_vars: int, d_embed: int, hidden: int, dropout: float, context_size: int | None) -> None:
        super().__init__()
        self.n_vars = n_vars
        self.embed_w = nn.Parameter(torch.randn(n_vars, d_embed) * 0.1)
        self.embed_b = nn.Parameter(torch.zeros(n_vars, d_embed))
        # per-variable GRN (ELU hidden + GLU gate + skip projection), grouped weights
        # hidden layer of width d_embed, as in the paper's single-variable GRNs (min(input, hidden))
        self.w1 = nn.Parameter(torch.randn(n_vars, d_embed, d_embed) / math.sqrt(d_embed))
        self.b1 = nn.Parameter(torch.zeros(n_vars, d_embed))
        self.w2 = nn.Parameter(torch.randn(n_vars, d_embed, 2 * hidden) / math.sqrt(d_embed))
        self.b2 = nn.Parameter(torch.zeros(n_vars, 2 * hidden))
        self.skip = nn.Parameter(torch.randn(n_vars, d_embed, hidden) / math.sqrt(d_embed))
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.selector = GatedResidualNetwork(n_vars * d_embed, hidden, n_vars, dropout, context_size, residual=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: [..., n_vars] -> (selected [..., hidden], weights [..., n_vars])."""
        e = x.unsqueeze(-1) * self.embed_w + self.embed_b  # [..., V, d]
        h = nn.functional.elu(torch.einsum("...vd,vdh->...vh", e, self.w1) + self.b1)
        # No dropout on this [..., V, 2H] tensor: sampling it dominated the step time on CPU.
        h = torch.einsum("...vh,vhk->...vk", h, self.w2) + self.b2
        h = nn.functional.glu(h, dim=-1) + torch.einsum("...vd,vdh->...vh", e, self.skip)
        h = self.norm(h)
        ctx = context
        if ctx is not None and e.dim() == 4:  # time-varying input, static context [B, C]
            ctx = ctx.unsqueeze(1).expand(-1, e.shape[1], -1)
        weights = torch.softmax(self.selector(e.flatten(-2), ctx), dim=-1)
        return self.drop((h * weights.unsqueeze(-1)).sum(-2)), weights


def ordered_quantiles(raw: torch.Tensor, median_idx: int) -> torch.Tensor:
    """Quantiles ``[..., Q]`` that never cross: ``raw[median_idx]`` is the median, the other entries are turned
    into non-negative steps (softplus) added above it or subtracted below it, cumulatively outwards."""
    mid = raw[..., median_idx : median_idx + 1]
    up = torch.cumsum(nn.functional.softplus(raw[..., median_idx + 1 :]), dim=-1)
    down = torch.flip(torch.cumsum(nn.functional.softplus(torch.flip(raw[..., :median_idx], [-1])), dim=-1), [-1])
    return torch.cat([mid - down, mid, mid + up], dim=-1)


class TFTNet(nn.Module):
    """The network; ``forward(batch) -> dict(pred=[B, T, Q], weights...)``."""

    def __init__(self, n_enc: int, n_dec: int, n_symbols: int, n_periods: int, n_targets: int, head_steps: list[int],
                 hidden: int, heads: int, lstm_layers: int, dropout: float, d_embed: int, n_quantiles: int,
                 median_idx: int | None = None, regression: list[bool] | None = None) -> None:
        super().__init__()
        self.head_steps = head_steps
        # regression heads: raw[median] is P50, the other raw outputs are softplus increments outwards from it
        self.median_idx = median_idx
        self.register_buffer("is_reg", torch.tensor(regression or [False] * n_targets, dtype=torch.bool),
                             persistent=False)
        self.sym_emb = nn.Embedding(n_symbols, hidden)
        self.per_emb = nn.Embedding(n_periods, hidden)
        self.static_select = GatedResidualNetwork(2 * hidden, hidden, 2, dropout)
        self.ctx = nn.ModuleDict({k: GatedResidualNetwork(hidden, hidden, hidden, dropout)
                                  for k in ("select", "enrich", "h", "c")})
        self.enc_vsn = VectorizedVSN(n_enc, d_embed, hidden, dropout, hidden)
        self.dec_vsn = VectorizedVSN(n_dec, d_embed, hidden, dropout, hidden)
        self.lstm_layers = lstm_layers
        self.encoder = nn.LSTM(hidden, hidden, lstm_layers, batch_first=True, dropout=dropout if lstm_layers > 1 else 0)
        self.decoder = nn.LSTM(hidden, hidden, lstm_layers, batch_first=True, dropout=dropout if lstm_layers > 1 else 0)
        self.post_lstm = GateAddNorm(hidden, dropout=dropout)
        self.enrich = GatedResidualNetwork(hidden, hidden, hidden, dropout, context_size=hidden)
        self.attn = InterpretableMultiHeadAttention(n_head=heads, d_model=hidden, dropout=dropout)
        self.post_attn = GateAddNorm(hidden, dropout=dropout)
        self.pos_ff = GatedResidualNetwork(hidden, hidden, hidden, dropout)
        self.pre_out = GateAddNorm(hidden, dropout=None)
        # one linear head per target: weights [target, hidden, quantile]
        self.head_w = nn.Parameter(torch.randn(n_targets, hidden, n_quantiles) / math.sqrt(hidden))
        self.head_b = nn.Parameter(torch.zeros(n_targets, n_quantiles))

    def _static(self, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = torch.stack([self.sym_emb(cat[:, 0]), self.per_emb(cat[:, 1])], dim=1)  # [B, 2, H]
        w = torch.softmax(self.static_select(emb.flatten(1)), dim=-1)
        return (emb * w.unsqueeze(-1)).sum(1), w

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the TFT on one batch."""
        static, static_w = self._static(batch["static_cat"])
        c_sel = self.ctx["select"](static)
        enc_x, enc_w = self.enc_vsn(batch["encoder_cont"], c_sel)
        dec_x, dec_w = self.dec_vsn(batch["decoder_known"], c_sel)
        h0 = self.ctx["h"](static).unsqueeze(0).expand(self.lstm_layers, -1, -1).contiguous()
        c0 = self.ctx["c"](static).unsqueeze(0).expand(self.lstm_layers, -1, -1).contiguous()
        enc_out, state = self.encoder(enc_x, (h0, c0))
        dec_out, _ = self.decoder(dec_x, state)
        seq = self.post_lstm(torch.cat([enc_out, dec_out], 1), torch.cat([enc_x, dec_x], 1))
        enriched = self.enrich(seq, self.ctx["enrich"](static).unsqueeze(1).expand(-1, seq.shape[1], -1))
        n_enc, n_dec = enc_x.shape[1], dec_x.shape[1]
        q = enriched[:, n_enc:]
        # decoder step i may attend to the encoder and to decoder steps <= i
        mask = torch.triu(torch.ones(n_dec, n_enc + n_dec, dtype=torch.bool, device=q.device), diagonal=n_enc + 1)
        att, att_w = self.attn(q, enriched, enriched, mask=mask.unsqueeze(0).expand(q.shape[0], -1, -1))
        out = self.post_attn(att, q)
        out = self.pre_out(self.pos_ff(out), seq[:, n_enc:])
        steps = torch.as_tensor(self.head_steps, device=out.device)
        picked = out[:, steps]  # [B, T, H]: each target reads the decoder step at its horizon
        pred = torch.einsum("bth,thq->btq", picked, self.head_w) + self.head_b
        if self.median_idx is not None and pred.shape[-1] > 1:
            pred = torch.where(self.is_reg[None, :, None], ordered_quantiles(pred, self.median_idx), pred)
        return {"pred": pred, "encoder_weights": enc_w, "decoder_weights": dec_w, "static_weights": static_w,
                "attention": att_w}


class HybridMultiLoss(nn.Module):
    """Weighted sum over targets of named losses (``utils.loss_factory``); NaN targets are masked.

    Parameters
    ----------
    kinds : list of str
        ``'classification'`` or ``'regression'`` per target.
    weights : list of float
        Loss weight per target.
    quantiles : list of float
        Quantile levels of regression heads.
    classification_loss : str
        Loss of classification heads (``bce`` or ``focal``).
    focal_gamma : float
        ``gamma`` of the focal loss.
    regression_loss : str
        Loss of regression heads (``pinball``).
    """

    def __init__(self, kinds: list[str], weights: list[float], quantiles: list[float],
                 classification_loss: str = "bce", focal_gamma: float = 2.0, regression_loss: str = "pinball") -> None:
        super().__init__()
        self.kinds = kinds
        self.register_buffer("w", torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("q", torch.tensor(quantiles, dtype=torch.float32))
        self.classification_loss = classification_loss
        cls_params = {"gamma": focal_gamma} if classification_loss == "focal" else {}
        self._cls = get_loss(classification_loss, "classification", **cls_params)
        self._reg_name = regression_loss
        check_loss(regression_loss, "regression")

    def components(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted loss per target, shape [T]."""
        reg = get_loss(self._reg_name, "regression", quantiles=self.q)  # bound here: q follows the device
        out = []
        for k, kind in enumerate(self.kinds):
            y = target[:, k]
            ok = torch.isfinite(y)
            if not ok.any():
                out.append(pred.new_zeros(()))
                continue
            fn = self._cls if kind == "classification" else reg
            out.append(fn(pred[ok, k, :], y[ok]).mean())
        return torch.stack(out)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total weighted loss, per-target components)."""
        comp = self.components(pred, target)
        return (comp * self.w).sum() / self.w.sum().clamp_min(1e-12), comp


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
        cfg = spec["config"]["model"]
        arch = cfg["model"]
        targets = spec["targets"]
        dec_len = cfg["window"]["max_prediction_length"]
        self.kinds = [t["kind"] for t in targets]
        self.target_names = [t["name"] for t in targets]
        self.period = cfg["period"]
        self.net = TFTNet(
            n_enc=len(spec["features"]), n_dec=len(spec["known"]), n_symbols=len(spec["categories"]["symbol"]),
            n_periods=len(spec["categories"]["period"]), n_targets=len(targets),
            head_steps=[min(t["horizon"], dec_len) - 1 for t in targets], hidden=arch["hidden_size"],
            heads=arch["attention_heads"], lstm_layers=arch["lstm_layers"], dropout=arch["dropout"],
            d_embed=arch["hidden_continuous_size"], n_quantiles=len(arch["quantiles"]),
            # checkpoints from before ordered quantiles keep their free head (spec without the flag)
            median_idx=list(arch["quantiles"]).index(0.5) if spec.get("ordered_quantiles") else None,
            regression=[t["kind"] == "regression" for t in targets],
        )
        w = spec["config"]["weights"]
        self.loss_fn = HybridMultiLoss(
            self.kinds, [w["loss_weights"].get(n, 1.0) for n in self.target_names], arch["quantiles"],
            classification_loss=w["classification_loss"], focal_gamma=w["focal_gamma"])
        self.quantiles = list(arch["quantiles"])
        self.median_idx = self.quantiles.index(0.5)
        # fitted at each validation end; saved in checkpoints with the weights (isotonic knots: on_save_checkpoint)
        self.register_buffer("cal_scale", torch.ones(len(targets)))
        self.register_buffer("cal_bias", torch.zeros(len(targets)))
        # configs from before the calibration section used temperature scaling
        self.cal_method = cfg.get("calibration", {}).get("method", "temperature")
        self.cal_knots: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(targets)
        self.cal_warnings: list[str] = [""] * len(targets)
        self.is_cls = np.array([k == "classification" for k in self.kinds])
        self.is_logreturn = np.array([k == "regression" and "logreturn" in n
                                      for n, k in zip(self.target_names, self.kinds, strict=True)])
        self.y_scale = np.asarray(spec["scalers"]["targets"]["scale"], dtype=np.float64)
        self.y_mean = np.asarray(spec["scalers"]["targets"]["mean"], dtype=np.float64)
        self.versions = spec.get("versions", {})
        # no-skill constants for the eval reports (older checkpoints: the evaluated rows' own, see eval_report)
        self.no_skill = dict(zip(self.target_names, spec.get("train_target_means", []), strict=False)) or None
        self.predict_split = "val"
        self.last_outputs: dict[str, str] = {}
        self._pred: list[dict] = []
        self._val: list[dict] = []
        self._imp: dict[str, torch.Tensor] = {}
        self._imp_n = 0

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Network outputs for a batch."""
        return self.net(batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Weighted loss; each component logged as ``train/loss_<target>``."""
        out = self(batch)
        loss, comp = self.loss_fn(out["pred"], batch["target"])
        bs = batch["target"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for name, c in zip(self.target_names, comp, strict=True):
            self.log(f"train/loss_{name}", c, batch_size=bs)
        return loss

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

        Logs ``val_<target>_ap@<period>`` / ``val_<target>_rmse@<period>`` (the monitors) and, outside the
        sanity check, ``val_ece@<target>``, ``val_brier@<target>``, ``val_cal_scale@<target>``,
        ``val_cal_bias@<target>`` (classification) and ``val_cov_p10@<target>``, ``val_cov_p90@<target>``,
        ``val_pinball@<target>`` (regression).
        """
        if not self._val:
            return
        fields = {k: np.concatenate([b[k] for b in self._val]) for k in self._val[0]}
        self._val.clear()
        self._log_monitors(fields["pred"], fields["target"])
        if self.trainer.sanity_checking:
            return
        y_true = self._denormalize(fields["target"])
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
        if self.trainer.is_global_zero:
            self._write_validation_artifacts(frame, report)

    def _log_monitors(self, pred: np.ndarray, y: np.ndarray) -> None:
        for k, (name, kind) in enumerate(zip(self.target_names, self.kinds, strict=True)):
            ok = np.isfinite(y[:, k])
            if not ok.any():
                continue
            if kind == "classification":  # AP is rank-based: logits rank like probabilities
                value = get_metric("ap").fn(y[ok, k], pred[ok, k, 0])
                self.log(f"val_{name}_ap@{self.period}", float(value), sync_dist=False)
            else:  # RMSE of the median in target units (the scaler's mean cancels in the error)
                scale = self.y_scale[k]
                value = get_metric("rmse").fn(y[ok, k] * scale, {0.5: pred[ok, k, self.median_idx] * scale})
                self.log(f"val_{name}_rmse@{self.period}", float(value), sync_dist=False)

    def _write_validation_artifacts(self, frame: pd.DataFrame, report: pd.DataFrame) -> None:
        """``val_calibration.csv``, ``eval_report_*.csv``, reliability PNG + TensorBoard figure."""
        log_dir = self._log_dir()
        epoch = int(self.current_epoch)
        writer = self._tb_writer()
        cfg = self.spec["config"]["model"]
        stamp = getattr(self, "_fit_stamp", None) or utc_stamp()
        self._fit_stamp = stamp  # one report file per run, rewritten each epoch with the latest one
        rows = report[report["symbol"] == "ALL"].assign(epoch=epoch, step=int(self.global_step))
        k_of = [self.target_names.index(t) for t in rows["target"]]
        cls = (rows["kind"] == "classification").to_numpy()
        rows["method"] = np.where(cls, self.cal_method, "")
        rows["cal_scale"] = np.where(cls, [self.cal_scale[k].item() for k in k_of], np.nan)
        rows["cal_bias"] = np.where(cls, [self.cal_bias[k].item() for k in k_of], np.nan)
        rows["calibration_warning"] = [self.cal_warnings[k] for k in k_of]
        append_calibration_csv(rows, log_dir / "val_calibration.csv")
        write_eval_report(report.assign(epoch=epoch), log_dir, cfg["expert"], cfg["period"], stamp, writer,
                          int(self.global_step), tag="val_eval")
        if (frame["kind"] == "classification").any():
            fig = reliability_figure(frame, title=f"{cfg['expert']} {cfg['period']}/{cfg['modality']} "
                                                  f"validation, epoch {epoch}")
            if writer is not None:
                writer.add_figure("val/reliability", fig, global_step=int(self.global_step), close=False)
            save_figure(fig, log_dir / "reliability" / f"reliability_epoch{epoch:03d}.png")

    def _log_dir(self) -> Path:
        logger_ = self.trainer.logger if self._trainer is not None else None
        if logger_ is not None and logger_.log_dir:
            return Path(logger_.log_dir)
        m = self.spec["config"]["model"]
        return Path("lightning_logs/experts") / m["expert"] / m["period"] / m["modality"] / "tft"

    def _tb_writer(self):
        logger_ = self.trainer.logger if self._trainer is not None else None
        experiment = getattr(logger_, "experiment", None)
        return experiment if hasattr(experiment, "add_scalar") else None

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

    def _denormalize(self, y_scaled: np.ndarray) -> np.ndarray:
        return y_scaled.astype(np.float64) * self.y_scale + self.y_mean

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
        q = pred * self.y_scale[None, :, None] + self.y_mean[None, :, None]
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
            "head_scale": np.broadcast_to(np.where(self.is_cls, self.cal_scale.cpu().numpy(), self.y_scale),
                                          (n, len(self.kinds))),
            "head_bias": np.broadcast_to(np.where(self.is_cls, self.cal_bias.cpu().numpy(), self.y_mean),
                                         (n, len(self.kinds))),
            "antilog_return": np.where(logret, np.expm1(p50), np.nan),
            "future_price": np.where(logret, fields["close"][:, None] * np.exp(p50), np.nan),
            "y_true": self._denormalize(fields["target"]),
            "symbol_idx": fields["static"][:, 0], "period_idx": fields["static"][:, 1],
            "time_idx": fields["time_idx"], "timestamp": fields["timestamp"],
        }

    def prediction_frame(self, fields: dict[str, np.ndarray], split: str) -> pd.DataFrame:
        """The long contract frame of accumulated CPU fields."""
        return self._long_frame(self.decode(fields), split)

    def _long_frame(self, decoded: dict[str, np.ndarray], split: str) -> pd.DataFrame:
        return long_frame(decoded, self.target_names, self.kinds, self.quantiles, self.spec["categories"],
                          self.versions, split)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Contract outputs of one batch, already on the CPU.

        Returns ``{'score', 'uncertainty', 'meta': {'symbol_idx', 'period_idx', 'time_idx', 'head_scale',
        'head_bias'}, 'schema_ver', 'data_ver', 'expert_ver', 'train_window_id', 'antilog_return',
        'future_price'}`` plus ``quantiles`` [B, T, Q], ``y_true`` and ``meta['timestamp']``.
        """
        decoded = self.decode(self._cpu_fields(self(batch)["pred"], batch))
        self._pred.append(decoded)  # decoded once; the epoch end only concatenates
        d = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in decoded.items()}
        return {
            "score": d["score"], "uncertainty": d["uncertainty"], "quantiles": d["quantiles"], "y_true": d["y_true"],
            "meta": {k: d[k] for k in ("symbol_idx", "period_idx", "time_idx", "head_scale", "head_bias",
                                       "timestamp")},
            **{k: str(self.versions.get(k, "")) for k in ("schema_ver", "data_ver", "expert_ver", "train_window_id")},
            "antilog_return": d["antilog_return"], "future_price": d["future_price"],
        }

    def on_predict_epoch_start(self) -> None:
        """Start a fresh accumulation."""
        self._pred = []

    def on_predict_epoch_end(self) -> None:
        """Write ``predictions_{expert}_{period}_{timestamp}.parquet`` and its eval report into the log dir."""
        if not self._pred or not self.trainer.is_global_zero:
            self._pred = []
            return
        decoded = {k: np.concatenate([b[k] for b in self._pred]) for k in self._pred[0]}
        self._pred = []
        frame = self._long_frame(decoded, self.predict_split)
        cfg = self.spec["config"]["model"]
        log_dir, stamp = self._log_dir(), utc_stamp()
        path = write_predictions(frame, log_dir / "predictions", cfg["expert"], cfg["period"], stamp)
        report = eval_report(frame, no_skill=self.no_skill).assign(split=self.predict_split)
        report_path = write_eval_report(report, log_dir, cfg["expert"], cfg["period"], stamp, self._tb_writer(),
                                        int(self.global_step), tag=f"predict_{self.predict_split}")
        self.last_outputs = {"predictions": str(path), "eval_report": str(report_path)}

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

    def on_fit_end(self) -> None:
        """Write ``tft_gating.csv`` into the log dir (inside the worker process under ddp_spawn)."""
        logger_ = self.trainer.logger
        if self.trainer.is_global_zero and logger_ is not None and logger_.log_dir:
            self.export_gating(Path(logger_.log_dir) / "tft_gating.csv")

    def export_gating(self, path: str | Path) -> Path:
        """Write :meth:`importances` as CSV."""
        from utils.io import write_csv

        return write_csv(self.importances(), path)

    def configure_optimizers(self):
        """AdamW, optionally with a cosine or plateau schedule."""
        opt_cfg = self.spec["config"]["model"]["optimizer"]
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=opt_cfg["lr"],
                                weight_decay=opt_cfg["weight_decay"])
        if opt_cfg["scheduler"] == "cosine":
            max_epochs = max(1, self.spec["config"]["model"]["training"]["max_epochs"])
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)}
        if opt_cfg["scheduler"] == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}
        return opt
