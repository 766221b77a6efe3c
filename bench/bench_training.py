"""Training benchmark against pytorch-forecasting, in one run, on the same frame.

Usage::

    python bench/bench_training.py [--symbols 10 --bars 5000 --features 32 --encoder 64] [--steps 30]
    python bench/bench_training.py --device cuda --nvidia-sizes      # hidden 128, 4 heads, encoder 168,
                                                                     # decoder 24, batch 1024, bf16-mixed
    python bench/bench_training.py --quality [--epochs 4]

(a) dataset throughput: samples/s of our window dataloader vs ``TimeSeriesDataSet.to_dataloader``;
(b) training throughput: samples/s of ``MyTFTModule`` vs pytorch-forecasting's stock
    ``TemporalFusionTransformer`` with the same sizes, data, batch size and number of steps;
(c) ``--quality``: trains the Alpha-Dir-TFT 1h/base leaf on the synthetic market and prints its validation
    AP for the 1-bar direction target beside the base rate and the oracle's AP (from ``oracle.parquet``).
Ratios above 1.0 mean we are faster.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from models.leaf_config import Leaf, ModelConfig, TargetsConfig, WeightsConfig
from models.prediction import checkpoint_data
from models.tft_module import MyTFTModule
from models.training import make_spec
from models.window_dataset import build_window_data, make_loader
from utils.config import from_mapping


def synthetic_frame(symbols: int, bars: int, features: int, seed: int = 0) -> pd.DataFrame:
    """A long panel with ``features`` random-walk-ish columns and a regression target."""
    rng = np.random.default_rng(seed)
    n = symbols * bars
    ts = np.tile(pd.date_range("2020-01-01", periods=bars, freq="h", tz="UTC").to_numpy(), symbols)
    frame = pd.DataFrame({
        "symbol": np.repeat([f"S{i}" for i in range(symbols)], bars), "period": "1h",
        "timestamp": pd.to_datetime(ts, utc=True), "time_idx": np.tile(np.arange(bars), symbols),
        "gap_before": False, "close": 100.0,
    })
    for j in range(features):
        frame[f"f{j}"] = rng.standard_normal(n).astype(np.float32)
    frame["target_logreturn"] = (0.1 * frame["f0"] + rng.standard_normal(n)).astype(np.float32)
    return frame


def _leaf(args: argparse.Namespace, features: list[str]) -> Leaf:
    model = from_mapping(ModelConfig, {
        "period": "1h", "data": {"path": "<memory>"}, "features": {"include": features, "known_future": ["hour_sin"]},
        "window": {"encoder_length": args.encoder, "max_prediction_length": args.decoder},
        "split": {"train_end": 0.95, "val_end": 0.99},
        "model": {"hidden_size": args.hidden, "attention_heads": args.heads,
                  "hidden_continuous_size": args.hidden_continuous, "dropout": 0.1},
        "training": {"batch_size": args.batch}, "trainer": {"accelerator": args.device},
    }, source="bench")
    targets = from_mapping(TargetsConfig, {"targets": [{"name": "target_logreturn", "kind": "regression"}]})
    return Leaf(model, targets, WeightsConfig(), Path("bench/leaf/model_config.yaml"))


def _pf_dataset(frame: pd.DataFrame, features: list[str], encoder: int, decoder: int = 1):
    from pytorch_forecasting import TimeSeriesDataSet

    df = frame.assign(hour_sin=np.sin(2 * np.pi * frame["timestamp"].dt.hour / 24).astype(np.float32))
    return TimeSeriesDataSet(
        df, time_idx="time_idx", target="target_logreturn", group_ids=["symbol"], max_encoder_length=encoder,
        max_prediction_length=decoder, static_categoricals=["symbol"], time_varying_known_reals=["hour_sin"],
        time_varying_unknown_reals=features, target_normalizer=None, add_relative_time_idx=False,
        add_target_scales=False, add_encoder_length=False, scalers={f: None for f in features},
    )


def _rate(loader, n_batches: int) -> float:
    it = iter(loader)
    next(it)  # warm-up (worker start, first allocation)
    t0, seen = time.perf_counter(), 0
    for _ in range(n_batches):
        batch = next(it)
        seen += (batch[1][0] if isinstance(batch, tuple | list) else batch["target"]).shape[0]
    return seen / (time.perf_counter() - t0)


def _train_rate(module: L.LightningModule, loader, steps: int, device: str = "cpu",
                precision: str = "32-true") -> float:
    trainer = L.Trainer(max_steps=steps + 2, accelerator=device, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        precision=precision)
    timer = {}

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 2:  # skip the first steps (allocation warm-up)
                timer["t0"] = time.perf_counter()

    trainer.callbacks.append(Clock())
    trainer.fit(module, loader)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * loader_batch_size(loader) / (time.perf_counter() - timer["t0"])


def loader_batch_size(loader) -> int:
    """Batch size of a pf loader or of ours (whose sampler yields batches)."""
    return loader.batch_size or loader.sampler.batch_size


def throughput(args: argparse.Namespace) -> None:
    """Parts (a) and (b)."""
    from pytorch_forecasting import TemporalFusionTransformer
    from pytorch_forecasting.metrics import QuantileLoss

    frame = synthetic_frame(args.symbols, args.bars, args.features)
    features = [f"f{j}" for j in range(args.features)]
    leaf = _leaf(args, features)
    data = build_window_data(leaf, frame)
    ours = make_loader(data, "train", args.batch, shuffle=True)
    pf_ds = _pf_dataset(frame, features, args.encoder, args.decoder)
    pf = pf_ds.to_dataloader(train=True, batch_size=args.batch, num_workers=0)
    r_ours, r_pf = _rate(ours, args.batches), _rate(pf, min(args.batches, 20))
    precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    print(f"frame: {args.symbols} symbols x {args.bars} bars x {args.features} features, encoder {args.encoder}, "
          f"decoder {args.decoder}, batch {args.batch}; device {args.device}, precision {precision}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    print(f"(a) dataset  samples/s  ours {r_ours:12,.0f}   pytorch-forecasting {r_pf:10,.0f}   "
          f"ratio {r_ours / r_pf:8.1f}x")
    torch.manual_seed(0)
    mine = MyTFTModule(make_spec(leaf, data))
    stock = TemporalFusionTransformer.from_dataset(
        pf_ds, hidden_size=args.hidden, attention_head_size=args.heads, hidden_continuous_size=args.hidden_continuous,
        dropout=0.1, lstm_layers=1,
        loss=QuantileLoss([0.1, 0.5, 0.9]), learning_rate=1e-3)
    t_ours = _train_rate(mine, ours, args.steps, args.device, precision)
    t_pf = _train_rate(stock, pf, args.steps, args.device, precision)
    print(f"(b) training samples/s  ours {t_ours:12,.0f}   pytorch-forecasting {t_pf:10,.0f}   "
          f"ratio {t_ours / t_pf:8.2f}x   ({args.steps} steps each, same sizes: hidden {args.hidden}, heads "
          f"{args.heads}, hidden_continuous {args.hidden_continuous})")
    plain = MyTFTModule(make_spec(leaf, data))
    plain.net.enc_vsn.chunk_steps = 0  # training.activation_checkpointing: false
    t_plain = _train_rate(plain, ours, args.steps, args.device, precision)
    print(f"    ours without activation checkpointing {t_plain:12,.0f} samples/s: checkpointing (the default) "
          f"{t_ours / t_plain:.2f}x its speed")


def _observable_drivers(features: list[str]) -> list[str]:
    """Planted drivers whose inputs are in the leaf's features (regime and reversal come from prices)."""
    has = {p: any(f.startswith(p) for f in features) for p in ("funding_", "oi_", "onchain_")}
    drivers = ["regime", "reversal"]
    drivers += ["funding"] * has["funding_"] + ["oi_momentum"] * has["oi_"] + ["flow"] * has["onchain_"]
    return drivers


def evaluate_quality(leaf, ckpt: str, epochs_note: str) -> None:
    """Validation AP of ``ckpt`` beside the base rate, the full oracle and the oracle of observable drivers."""
    from scipy import stats
    from sklearn.metrics import average_precision_score

    module = MyTFTModule.load_from_checkpoint(ckpt)
    data = checkpoint_data(module, module.leaf)  # the checkpoint's split dates and transforms
    module.eval()
    with torch.no_grad():
        p = torch.cat([torch.sigmoid(module(b)["pred"][:, 0, 0]) for b in make_loader(data, "val", 1024, False)])
    p = p.numpy()
    rows = data.splits["val"]
    y = data.y_raw[rows, 0]
    table = pd.read_parquet(leaf.model.data.path, columns=["symbol", "period", "timestamp"])
    table = table[table.period == leaf.model.period].sort_values(["symbol", "timestamp"])
    table = table.reset_index(drop=True).iloc[rows]
    oracle = table.merge(pd.read_parquet("data/raw/oracle.parquet"), on=["symbol", "timestamp"], how="left")
    seen = _observable_drivers(data.features)
    drift = oracle[[f"drift_h1_{d}" for d in seen]].sum(axis=1)
    observable = stats.t.cdf(drift / oracle["sigma_h1"] * np.sqrt(2.0), df=4.0)
    ok = oracle["prob_up_h1"].notna().to_numpy()
    base = y.mean()
    ap = {"model": average_precision_score(y, p), "oracle": average_precision_score(y[ok], oracle["prob_up_h1"][ok]),
          "observable": average_precision_score(y[ok], observable[ok])}
    print(f"(c) {leaf.model.expert} {leaf.model.period}/{leaf.model.modality}, validation span ({len(rows):,} windows, "
          f"{epochs_note})")
    print(f"    base rate {base:.4f}   model AP {ap['model']:.4f}   oracle AP {ap['oracle']:.4f}   "
          f"oracle AP from the drivers this table can observe ({', '.join(seen)}) {ap['observable']:.4f}")
    full, seen_lift = (ap["model"] - base) / (ap["oracle"] - base), (ap["model"] - base) / (ap["observable"] - base)
    print(f"    lift captured: {full:.1%} of the oracle's AP lift (goal >= 70%); "
          f"{seen_lift:.1%} of the observable-driver oracle's")


def quality(args: argparse.Namespace) -> None:
    """Part (c): train (unless ``--eval-only``) and evaluate a leaf (default Alpha-Dir-TFT 1h/base)."""
    from models.leaf_config import load_leaf
    from models.training import run

    config = args.leaf_config
    overrides = [f"training.max_epochs={args.epochs}", "training.early_stopping_patience=null"]
    overrides += [f"training.limit_train_batches={args.limit}"] * (args.limit is not None)
    leaf = load_leaf(config, overrides)
    ckpt = args.eval_only or run(leaf).best_model_path
    evaluate_quality(leaf, ckpt, "checkpoint " + Path(ckpt).name if args.eval_only else f"{args.epochs} epochs")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--symbols", type=int, default=10)
    p.add_argument("--bars", type=int, default=5000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--encoder", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=100, help="batches timed for the dataset comparison")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps timed for the training comparison")
    p.add_argument("--decoder", type=int, default=1, help="decoder (prediction) length")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--hidden-continuous", type=int, default=8)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default=None, help="default bf16-mixed on cuda, 32-true on cpu")
    p.add_argument("--nvidia-sizes", action="store_true",
                   help="NVIDIA's reference TFT sizes: hidden 128, 4 heads, encoder 168, decoder 24, batch 1024")
    p.add_argument("--quality", action="store_true")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--limit", type=int, default=None, help="train batches per epoch in --quality")
    p.add_argument("--eval-only", metavar="CKPT", help="with --quality: evaluate this checkpoint, no training")
    p.add_argument("--leaf-config", default="configs/experts/Alpha-Dir-TFT/1h/base/model_config.yaml",
                   help="with --quality: the leaf to train and score (its first target must be the 1-bar direction)")
    args = p.parse_args(argv)
    if args.nvidia_sizes:
        args.hidden, args.heads, args.encoder, args.decoder, args.batch = 128, 4, 168, 24, 1024
        args.hidden_continuous = max(args.hidden_continuous, 32)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    if args.quality:
        quality(args)
    else:
        throughput(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
