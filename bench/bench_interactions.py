"""How much of a leaf's signal is pairwise interactions of the decision bar's inputs (the evidence behind
``model.interaction_l2``).

Usage::

    python bench/bench_interactions.py --leaf Alpha-Dir-TFT/1h/base [--target target_binarytrend]
                                       [--C 0.01,0.001] [--lambdas 0.03,0.1,0.3,1,3,10,30] [--set KEY=VALUE ...]

On exactly the leaf's rows and scaled inputs (:func:`build_window_data`: the decision bar's features, the training
span for the fit, the validation span for the score), a logistic regression on the inputs (penalty ``C`` as in
scikit-learn) is compared with the same model plus every pairwise product ``tanh(x_i * x_j)`` (inputs clipped to
+-5, products centred on the training span) whose coefficients carry their own ridge penalty ``lambda * b^2`` in
units of the per-sample log-loss, the penalty the TFT's interaction skip uses. Prints the validation AP per
``(C, lambda)``, the no-skill AP (the validation base rate) and the largest product coefficients. The validation
span is the one every figure of ``bench_quality.py`` is read on, so choosing lambda here is a selection on it:
compare lambdas across leaves and on a null market (``--set data.path=...``), not by the best cell of one.

``--splines K`` adds the same comparison for one-variable curves instead of products: a cubic B-spline basis of each
clipped input (``K`` knots at the training span's quantiles, centred on it) beside the linear inputs, under the
same separate ridge ``lambda``: a generalized additive logistic model. It says whether the gap to the oracle is in
single-input shapes (thresholds, extremes) rather than in interactions.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import SplineTransformer

from features.interactions import pair_products
from models.leaf_config import load_leaf
from models.window_dataset import build_window_data, read_table


def pair_matrix(X: np.ndarray, fit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``tanh(x_i * x_j)`` for ``i < j`` of the clipped inputs, centred on ``fit_rows``; and the pair indices."""
    left, right = np.triu_indices(X.shape[1], 1)
    P = pair_products(X, left, right)
    return P - P[fit_rows].mean(axis=0), left, right


def spline_matrix(X: np.ndarray, fit_rows: np.ndarray, n_knots: int) -> np.ndarray:
    """Cubic B-spline basis of each clipped input, knots at the quantiles of ``fit_rows``, centred on them."""
    Xc = np.clip(X, -5.0, 5.0)
    basis = SplineTransformer(n_knots=n_knots, degree=3, knots="quantile", extrapolation="linear").fit(Xc[fit_rows])
    S = basis.transform(Xc)
    return S - S[fit_rows].mean(axis=0)


def fit_score(X: np.ndarray, P: np.ndarray | None, y: np.ndarray, train: np.ndarray, val: np.ndarray, C: float,
              lam: float) -> tuple[float, np.ndarray | None]:
    """Validation AP of the logistic model (with the pairs under ``lam`` when given) and the pair coefficients."""
    # scaling a column by 1/s turns sklearn's common penalty 1/(2C) * w^2 on it into lam * b^2 per sample on the
    # coefficient b = w/s of the unscaled column: s = sqrt(2 C n lam)
    scale = np.sqrt(2.0 * C * len(train) * lam) if P is not None else 1.0
    Z = np.hstack([X, P / scale]) if P is not None else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=C, max_iter=3000).fit(Z[train], y[train])
    ap = average_precision_score(y[val], model.decision_function(Z[val]))
    return ap, (model.coef_[0, X.shape[1]:] / scale if P is not None else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--leaf", default="Alpha-Dir-TFT/1h/base", help="<Expert>/<period>/<modality>")
    p.add_argument("--target", default="target_binarytrend", help="a classification target of the leaf")
    p.add_argument("--C", default="0.01,0.001", help="logistic penalty of the main effects (comma list)")
    p.add_argument("--lambdas", default="0.03,0.1,0.3,1,3,10,30",
                   help="ridge penalty of the products (and of the splines) (comma list)")
    p.add_argument("--splines", type=int, default=0, metavar="K",
                   help="also fit additive cubic splines of each input with K knots (0: off)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="leaf overrides (as --set)")
    args = p.parse_args(argv)
    lambdas = [float(v) for v in args.lambdas.split(",") if v]
    if not lambdas or min(lambdas) <= 0:
        p.error(f"--lambdas {args.lambdas!r}: give one or more penalties > 0")
    if args.splines and args.splines < 2:
        p.error(f"--splines {args.splines}: give 2 or more knots (0: off)")
    logging.basicConfig(level=logging.WARNING)
    leaf = load_leaf(Path("configs/experts") / args.leaf / "model_config.yaml", args.set)
    data = build_window_data(leaf, read_table(leaf.model.data.path))
    X = data.x.numpy().astype(np.float64)
    train, val = data.splits["train"], data.splits["val"]
    y = data.y_raw[:, data.targets.index(args.target)]
    P, left, right = pair_matrix(X, train)
    S = spline_matrix(X, train, args.splines) if args.splines else None  # the same for every C
    print(f"{args.leaf} {args.target}: {X.shape[1]} inputs, {P.shape[1]:,} pairs, {len(train):,} training rows, "
          f"{len(val):,} validation rows; no skill (validation base rate) {np.mean(y[val]):.4f}")
    for C in (float(v) for v in args.C.split(",") if v):
        cells = [f"no pairs {fit_score(X, None, y, train, val, C, 0.0)[0]:.4f}"]
        best = (-np.inf, None, None)
        for lam in lambdas:
            ap, coef = fit_score(X, P, y, train, val, C, lam)
            cells.append(f"lambda {lam:g} {ap:.4f}")
            best = max(best, (ap, lam, coef), key=lambda t: t[0])
        print(f"C={C:g}: " + ", ".join(cells))
        top = np.argsort(-np.abs(best[2]))[:5]
        print(f"  largest products at lambda {best[1]:g}: " + ", ".join(
            f"{data.features[left[k]]} x {data.features[right[k]]} {best[2][k]:+.4f}" for k in top)
            + f"; median |b| {np.median(np.abs(best[2])):.5f}")
        if S is not None:
            print(f"C={C:g}, additive splines ({S.shape[1]:,} columns): " + ", ".join(
                f"lambda {lam:g} {fit_score(X, S, y, train, val, C, lam)[0]:.4f}" for lam in lambdas))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
