"""Calibration check of a trained expert against the prediction-contract acceptance goals.

Usage::

    python bench/bench_calibration.py [--config configs/experts/Alpha-Dir-TFT/1h/base/model_config.yaml]
                                      [--ckpt best|last|PATH] [--bins 15]

Predicts the validation span (where the calibration was fit) and the later test span (never seen by
training or calibration) from the checkpoint alone, and prints for every classification target the
ECE with equal-mass bins before and after calibration (Platt by default), the base rate and mean score,
and for every regression target the P10/P50/P90 coverage. Goals (Alpha-Dir 1h/base): validation ECE <= 0.02
for the direction target, P10/P90 coverage of the return target within 0.05 of 0.10/0.90.
"""

from __future__ import annotations

import argparse
import logging
import warnings

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from metrics.calibration import ece, quantile_coverage
from models.leaf_config import load_leaf
from models.prediction import checkpoint_data, load_expert, predict, resolve_checkpoint


def _span_rows(frame: pd.DataFrame, bins: int) -> list[dict]:
    rows = []
    known = frame[np.isfinite(frame["y_true"])]
    for (target, kind), g in known.groupby(["target", "kind"], sort=False):
        y = g["y_true"].to_numpy()
        if kind == "classification":
            # score = sigmoid(head_scale * logit + head_bias): recover the raw logit to show the uncalibrated ECE
            scale, bias = g["head_scale"].to_numpy(), g["head_bias"].to_numpy()
            raw = expit((logit(np.clip(g["score"].to_numpy(), 1e-12, 1 - 1e-12)) - bias) / scale)
            rows.append({"target": target, "n": len(g), "base_rate": y.mean(), "mean_score": g["score"].mean(),
                         "ece_raw": ece(y, raw, bins), "ece": ece(y, g["score"], bins), "scale": scale[0],
                         "bias": bias[0]})
        else:
            rows.append({"target": target, "n": len(g), "cov_p10": quantile_coverage(y, g["p10"]),
                         "cov_p50": quantile_coverage(y, g["p50"]), "cov_p90": quantile_coverage(y, g["p90"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the check and print one table per span."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/experts/Alpha-Dir-TFT/1h/base/model_config.yaml")
    p.add_argument("--ckpt", default="best")
    p.add_argument("--bins", type=int, default=15)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    ckpt = resolve_checkpoint(load_leaf(args.config), args.ckpt)
    module, leaf = load_expert(ckpt)
    data = checkpoint_data(module, leaf)
    print(f"{leaf.model.expert} {leaf.model.period}/{leaf.model.modality}, checkpoint {ckpt.name}, "
          f"ECE with {args.bins} equal-mass bins")
    for split in ("val", "test"):
        frame = pd.read_parquet(predict(module, leaf, split, data=data).predictions)
        table = pd.DataFrame(_span_rows(frame, args.bins))
        print(f"\n[{split}] {'fit span of the calibration' if split == 'val' else 'later, unseen span'}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
    print("\ngoals: val ECE <= 0.02 (direction target); P10/P90 coverage within 0.05 of 0.10/0.90 (return target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
