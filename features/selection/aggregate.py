"""Aggregation of the four stages' evidence into core / plus / optimized feature lists (pure).

Per (modality, period, target) *pair* a feature is a **candidate** when stage 1 allowlisted it (significant
after FDR control, cluster representative, not a leak suspect) and at least one later stage that ran
confirms it (stage 2 kept it, stage 3's permutation interval is above zero, or stage 4 selected it); when
stage 3 saw two or more eras (years), it must also lose score when permuted in at least
``min_appear_rate_era`` of them.
Its **appear rate** is the share of pairs in which it is a candidate; the **core** list holds candidates
with an appear rate of at least ``min_appear_rate``, ranked by weighted evidence (stage ``weights``; rich
evidence scaled by ``rich_quality_weights[period]``), at most ``topk_core``. ``plus`` holds other stage-1
survivors (best ``topk_per_pair`` per pair), ``optimized`` the union of stage 4's selections.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.selection.config import AggregationSection

PAIR = ["modality", "period", "target"]
STAGES = ("filter", "embedded", "tree_perm", "wrapper")


def evidence_table(filter_stats: pd.DataFrame, embedded: pd.DataFrame | None, tree_perm: pd.DataFrame | None,
                   wrapper: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (pair, feature) with a 0/1 column per stage (NaN when the stage did not run)."""
    ev = filter_stats[[*PAIR, "feature", "t_nw", "leak_suspect", "representative"]].copy()
    # features dropped before testing have no leak verdict: NaN must read as "not a suspect", never True
    ev["leak_suspect"] = ev["leak_suspect"].fillna(False).astype(bool)
    ev["filter"] = ev["representative"].astype(float)
    if embedded is not None and len(embedded):
        ev = ev.merge(embedded[[*PAIR, "feature", "kept"]], on=[*PAIR, "feature"], how="left")
        ev["embedded"] = ev.pop("kept").astype(float).fillna(0.0).where(ev["filter"] > 0, 0.0)
    else:
        ev["embedded"] = np.nan
    if tree_perm is not None and len(tree_perm):
        allrows = tree_perm[tree_perm["era"] == "all"][[*PAIR, "feature", "perm_ci95_low"]]
        eras = tree_perm[tree_perm["era"] != "all"].assign(pos=lambda d: d["perm_delta"] > 0)
        grouped = eras.groupby([*PAIR, "feature"])["pos"]
        # stability across eras needs at least two eras; with one it would only repeat the interval test
        era_rate = grouped.mean().where(grouped.size() >= 2).rename("era_rate").reset_index()
        ev = ev.merge(allrows, on=[*PAIR, "feature"], how="left").merge(era_rate, on=[*PAIR, "feature"], how="left")
        ev["tree_perm"] = (ev.pop("perm_ci95_low") > 0).astype(float).where(ev["filter"] > 0, 0.0)
    else:
        ev["tree_perm"], ev["era_rate"] = np.nan, np.nan
    if wrapper is not None and len(wrapper):
        ev = ev.merge(wrapper[[*PAIR, "feature", "selected"]], on=[*PAIR, "feature"], how="left")
        ev["wrapper"] = ev.pop("selected").astype(float).fillna(0.0).where(ev["filter"] > 0, 0.0)
    else:
        ev["wrapper"] = np.nan
    return ev


def aggregate(ev: pd.DataFrame, cfg: AggregationSection, weights: dict[str, float] | None = None) -> dict:
    """Core, plus and optimized lists plus the per-feature table (``aggregated_core.csv``)."""
    w = {**cfg.weights, **(weights or {})}
    confirm = [s for s in ("embedded", "tree_perm", "wrapper") if ev[s].notna().any()]
    confirmed = ev[confirm].fillna(0).max(axis=1) > 0 if confirm else ev["filter"] > 0
    cand = (ev["filter"] > 0) & confirmed & ~ev["leak_suspect"]
    cand &= ev["era_rate"].isna() | (ev["era_rate"] >= cfg.min_appear_rate_era)
    scale = np.where(ev["modality"] == "rich", ev["period"].map(cfg.rich_quality_weights).fillna(1.0), 1.0)
    ev = ev.assign(candidate=cand, score=scale * sum(w.get(s, 1.0) * ev[s].fillna(0) for s in STAGES))
    n_pairs = ev[PAIR].drop_duplicates().shape[0]
    per = ev.groupby("feature").agg(appear=("candidate", "sum"), score=("score", "sum"),
                                    best_abs_t=("t_nw", lambda s: s.abs().max()),
                                    leak_suspect=("leak_suspect", "max"))
    per["appear_rate"] = per["appear"] / max(n_pairs, 1)
    per = per.sort_values(["score", "best_abs_t"], ascending=False)
    core = per[(per["appear_rate"] >= cfg.min_appear_rate) & (per["appear"] > 0)].head(cfg.topk_core)
    per["core"] = per.index.isin(core.index)
    survivors = ev[(ev["filter"] > 0) & ~ev["feature"].isin(core.index)]
    plus = (survivors.assign(abs_t=survivors["t_nw"].abs()).sort_values("abs_t", ascending=False)
            .groupby(PAIR).head(cfg.topk_per_pair)["feature"].drop_duplicates().tolist())
    optimized = ev.loc[ev["wrapper"] > 0, "feature"].drop_duplicates().tolist() if ev["wrapper"].notna().any() \
        else core.index.tolist()
    return {"core": core.index.tolist(), "plus": plus, "optimized": optimized,
            "leak_suspects": sorted(per.index[per["leak_suspect"]]), "table": per.reset_index(),
            "pairs": n_pairs}
