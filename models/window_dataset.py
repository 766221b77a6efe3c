"""Tensorized window dataset for the TFT experts.

The whole table is converted once into float32 tensors; a batch is a single advanced-indexing
gather of ``[batch, encoder_length, features]`` (no per-sample Python objects), which is what
makes it orders of magnitude faster than ``TimeSeriesDataSet``.

A sample ends at row ``t`` (the decision bar). Its encoder covers rows ``t-L+1 .. t``, which
must lie in one contiguous segment: same (symbol, period), no ``gap_before`` and no ``time_idx``
jump inside. The decoder carries the known-future calendar covariates of bars ``t+1 .. t+H``,
computed from timestamps (so no future row is read). Targets are the row's forward targets.

Scaling (:mod:`models.scalers`: global or per symbol) follows sklearn's fit/transform and is fit on rows of the
training span only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from features.cross_section import MARKET_PREFIX, cross_sectional_mean, market_names
from features.stationarity import level_columns, test_symbols
from models.calendar import CALENDAR_CYCLES, calendar_features, known_future, usable_known  # noqa: F401 (moved)
from models.leaf_config import Leaf
from models.leaf_data import (  # noqa: F401  (data_source, leaf_columns, leaf_rows, read_table: their historical home)
    LeafTable,
    as_leaf_table,
    data_source,
    leaf_columns,
    leaf_rows,
    read_table,
)
from models.scalers import BLOCK_ROWS, FeatureScaler, GroupFeatureScaler, Scaler, scaler_from_state
from utils.errors import ConfigError, DataError
from utils.memory import release_freed_memory
from utils.timeline import TimeSplit, as_utc, embargo_bars, time_at_share

logger = logging.getLogger(__name__)



def select_features(table: pd.DataFrame | LeafTable, leaf: Leaf, fit_rows: np.ndarray | None = None,
                    levels: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Resolve the feature list: explicit names, a selected-features file, prefix rules (union, table order).

    Columns chosen by a prefix rule (or by "no rule: every numeric column") that are non-stationary levels
    (:func:`features.stationarity.level_columns`, tested on ``fit_rows`` only) are left out; a column listed
    explicitly (``include`` or the selected-features file) is always kept. ``levels`` replaces the test
    with a stored verdict (prediction and resume use the checkpoint's, so the columns cannot drift). Only the
    series the test samples (:func:`features.stationarity.test_symbols`) are read for it.

    Returns
    -------
    (features, excluded levels with their reasons)
    """
    fs = leaf.model.features
    targets = {t.name for t in leaf.targets.targets}
    table = table if isinstance(table, LeafTable) else LeafTable(table)
    numeric = table.numeric(exclude=targets)
    wanted = set(fs.include)
    if fs.selected_features_file:
        path = Path(fs.selected_features_file)
        if not path.is_file():
            raise DataError(f"features.selected_features_file not found: {path}")
        wanted |= {ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    unknown = sorted(wanted - set(numeric))
    if unknown:
        raise DataError(f"{leaf.config_path}: feature(s) {unknown[:10]} are not numeric columns of "
                        f"{leaf.model.data.path}")
    if not fs.include and not fs.selected_features_file and not fs.prefixes:
        raise ConfigError(f"{leaf.config_path}: key 'features' has no include, prefixes or selected_features_file: "
                          f"name the inputs (features.prefixes: [''] takes every numeric column, explicitly)")
    chosen = [c for c in numeric if c in wanted or any(c.startswith(p) for p in fs.prefixes)]
    chosen = [c for c in chosen if c not in set(fs.exclude)]
    by_rule = [c for c in chosen if c not in wanted]
    if levels is None:
        rows = np.arange(len(table.frame)) if fit_rows is None else np.asarray(fit_rows)
        sample = test_symbols(table.frame["symbol"].to_numpy()[rows]) if "symbol" in table.frame else None
        levels = level_columns(table.fit_frame(by_rule, rows, sample), by_rule) if by_rule else {}
    excluded = {c: why for c, why in levels.items() if c in by_rule}
    if excluded:
        logger.info("%s: %d non-stationary level column(s) left out of the prefix-selected inputs (list them in "
                    "features.include to keep them): %s", leaf.config_path, len(excluded), sorted(excluded))
    chosen = [c for c in chosen if c not in excluded]
    if not chosen:
        raise DataError(f"{leaf.config_path}: the feature rules select no column of {leaf.model.data.path}")
    return chosen, excluded


def segment_start(table: pd.DataFrame) -> np.ndarray:
    """For each row, the index of the first row of its contiguous segment (no group change or gap)."""
    new_group = (table["symbol"].ne(table["symbol"].shift()) | table["period"].ne(table["period"].shift())).to_numpy()
    jump = table["time_idx"].diff().ne(1).to_numpy() if "time_idx" in table else np.zeros(len(table), bool)
    gap = table["gap_before"].to_numpy(dtype=bool) if "gap_before" in table else np.zeros(len(table), bool)
    start = new_group | jump | gap
    start[0] = True
    pos = np.where(start, np.arange(len(table)), 0)
    return np.maximum.accumulate(pos)


def _no_window_message(leaf: Leaf, table: pd.DataFrame, targets: list[str], enough_history: np.ndarray,
                       in_train: np.ndarray, train_end: pd.Timestamp) -> str:
    m = leaf.model
    head = f"{leaf.config_path}: no trainable window in {m.data.path} for {m.period}"
    if not enough_history.any():
        return (f"{head}: no segment has {m.window.encoder_length} consecutive bars; shorten "
                f"window.encoder_length or fill the gaps")
    rows = enough_history & np.asarray(in_train)
    if not rows.any():
        return f"{head}: no row with enough history falls in the train span (before {train_end}); move split.train_end"
    nan_share = table.loc[rows, targets].isna().mean().sort_values(ascending=False)
    bad = {k: round(float(v), 3) for k, v in nan_share.items() if v > 0}
    return (f"{head}: every candidate row in the train span has a NaN target; NaN share by column: {bad}. "
            f"Drop or fix those target columns")


def _edge(ts: pd.Series, value: float | str | None) -> pd.Timestamp | None:
    if value is None or isinstance(value, str):
        return None if value is None else as_utc(value)
    return time_at_share(ts, value)


def resolve_split(leaf: Leaf, ts: pd.Series) -> Leaf:
    """``leaf`` with its fractional split bounds replaced by the dates they give on ``ts`` (the leaf's timeline).

    Called once when a run loads its table, so the dates are fixed from then on (stored in the checkpoint and in
    ``config_snapshot.yaml``): appending data does not move a resumed or re-predicted split.
    """
    sp = leaf.model.split
    dates = {k: _edge(ts, getattr(sp, k)).isoformat() for k in ("train_end", "val_end")
             if not isinstance(getattr(sp, k), str)}
    if not dates:
        return leaf
    model = dataclasses.replace(leaf.model, split=dataclasses.replace(sp, **dates))
    return dataclasses.replace(leaf, model=model)


def leaf_time_split(leaf: Leaf, ts: pd.Series) -> TimeSplit:
    """The leaf's train / val / test spans as one :class:`~utils.timeline.TimeSplit` (purge by the longest target
    horizon, the shared embargo rule)."""
    sp = leaf.model.split
    horizon = max(t.horizon for t in leaf.targets.targets)
    edges = (_edge(ts, sp.train_start), _edge(ts, sp.train_end), _edge(ts, sp.val_end), _edge(ts, sp.test_end))
    return TimeSplit(edges, leaf.model.period, horizon, embargo_bars(sp.embargo_bars, horizon, str(leaf.config_path)),
                     ("train", "val", "test"))


@dataclass
class WindowData:
    """Tensors of one leaf plus the sample end rows of each split."""

    x: torch.Tensor  # [N, F] scaled encoder inputs
    y: torch.Tensor  # [N, T] targets (regression scaled)
    y_raw: np.ndarray  # [N, T] targets in original units
    known: torch.Tensor  # [N, H, K] calendar covariates of the decoder steps
    static: torch.Tensor  # [N, 2] (symbol index, period index)
    time_idx: np.ndarray
    timestamp: np.ndarray
    close: np.ndarray
    splits: dict[str, np.ndarray]
    features: list[str]
    known_names: list[str]
    targets: list[str]
    categories: dict[str, list[str]]
    feature_scaler: Scaler
    target_scaler: Scaler
    encoder_length: int
    decoder_length: int
    train_window: tuple[str, str] = ("", "")  # first and last decision bar of the training span
    excluded_levels: dict[str, str] | None = None  # prefix-selected level columns left out, with reasons
    time_split: TimeSplit | None = None  # the spans the split indices come from


def _same_features(selected: list[str], stored: list[str] | None, path: str) -> list[str]:
    """The selected columns (market means included), which must be a checkpoint's own list when one is given."""
    if stored is not None and selected != stored:
        missing, extra = sorted(set(stored) - set(selected)), sorted(set(selected) - set(stored))
        raise DataError(f"{path}: its feature columns differ from the checkpoint's (missing {missing[:10]}, extra "
                        f"{extra[:10]}); use a table with the training columns, or start a new run "
                        f"(warm_start_train.py keeps the matching weights)")
    return selected


def _market_columns(leaf: Leaf, selected: list[str], stored: list[str] | None = None) -> list[str]:
    """The leaf's ``features.market`` inputs, each of which must be a selected input (and, with a checkpoint's
    feature list ``stored``, the ones it was trained with)."""
    market = list(leaf.model.features.market)
    missing = [c for c in market if c not in selected]
    if missing:
        raise ConfigError(f"{leaf.config_path}: key 'features.market' = {missing}: not among the leaf's selected "
                          f"inputs ({len(selected)} columns); name inputs that features.include or prefixes select")
    if len(set(market)) < len(market):
        raise ConfigError(f"{leaf.config_path}: key 'features.market' = {market}: a column is named twice")
    taken = sorted(set(market_names(market)) & set(selected))
    if taken:
        raise ConfigError(f"{leaf.config_path}: key 'features.market' = {market}: {taken} are already columns of "
                          f"{leaf.model.data.path}; rename those columns or leave them out of the inputs")
    if stored is not None:  # the checkpoint's market means: its names behind the prefix that the table lacks
        was = [c.removeprefix(MARKET_PREFIX) for c in stored if c.startswith(MARKET_PREFIX) and c not in selected]
        if was != market:
            raise ConfigError(f"{leaf.config_path}: key 'features.market' = {market}, but the checkpoint was trained "
                              f"with {was}; use --set 'features.market=[{','.join(was)}]' with this checkpoint")
    return market


def _inputs_of(leaf: Leaf, source: LeafTable, fit_rows: np.ndarray, levels: dict[str, str] | None,
               stored: list[str] | None) -> tuple[list[str], list[str], dict[str, str]]:
    """(every input name, the market means last; the ``features.market`` columns; the excluded levels)."""
    selected, excluded = select_features(source, leaf, fit_rows, levels)
    market = _market_columns(leaf, selected, stored)
    return _same_features(selected + market_names(market), stored, leaf.model.data.path), market, excluded


def _scaled_inputs(fx: Scaler, inputs: np.ndarray, n_own: int, symbols: np.ndarray, market: list[int],
                   ts: np.ndarray) -> np.ndarray:
    """``inputs`` with its first ``n_own`` columns scaled in place and the cross-sectional means of the scaled
    columns ``market`` written behind them."""
    own = inputs[:, :n_own]
    _transform_rows(fx, own, symbols, out=own)
    if market:
        inputs[:, n_own:] = cross_sectional_mean(own[:, market], ts)
    return inputs


def _split_rows(enough_history: np.ndarray, finite_y: np.ndarray, spans: dict[str, np.ndarray]) -> dict:
    """Sample end rows per split. train/val/test need known targets (loss, calibration); the predict_* spans only
    need history, so the latest bars, whose outcomes are not known yet, are predicted too."""
    valid = enough_history & finite_y
    rows = {"train": valid & spans["train"], "val": valid & spans["val"], "test": valid & spans["test"],
            "predict_test": enough_history & spans["test"], "predict_all": enough_history}
    kind = np.int32 if len(valid) < 2**31 else np.int64  # half the memory of the index arrays
    return {name: np.flatnonzero(mask).astype(kind) for name, mask in rows.items()}


def _window_rows(leaf: Leaf, table: pd.DataFrame, raw_y: np.ndarray, spans: dict[str, np.ndarray],
                 time_split: TimeSplit) -> dict[str, np.ndarray]:
    """End rows of each split's windows (:func:`_split_rows`); a DataError when the training span has none."""
    enough_history = np.arange(len(table)) - segment_start(table) >= leaf.model.window.encoder_length - 1
    splits = _split_rows(enough_history, np.isfinite(raw_y).all(axis=1), spans)
    if splits["train"].size == 0:
        targets = [t.name for t in leaf.targets.targets]
        raise DataError(_no_window_message(leaf, table, targets, enough_history, spans["train"], time_split.edges[1]))
    release_freed_memory()  # the table-length temporaries of finding the windows, before the scalers' own
    return splits


def _scalers(leaf: Leaf, scalers: dict | None, raw: tuple[np.ndarray, np.ndarray], symbols: np.ndarray,
             fit_rows: tuple[np.ndarray, np.ndarray]) -> tuple[Scaler, Scaler]:
    """The checkpoint's scalers, or scalers fit on the training span's rows (``fit_rows``: those of the inputs and
    those with known targets; class labels stay 0/1); inputs per symbol with ``features.normalize: group``,
    regression targets with ``features.normalize_targets: group``."""
    if scalers:
        fx, fy = scaler_from_state(scalers["features"]), scaler_from_state(scalers["targets"])
    else:
        f = leaf.model.features
        fx = GroupFeatureScaler() if f.normalize == "group" else FeatureScaler()
        fy = GroupFeatureScaler() if f.normalize_targets == "group" else FeatureScaler()
        (x, y), (rx, ry) = raw, fit_rows
        fx, fy = _fit_rows(fx, x, symbols, rx), _fit_rows(fy, y, symbols, ry)
        release_freed_memory()  # the blocks' float64 temporaries
    fy.fix_columns(np.array([t.kind == "classification" for t in leaf.targets.targets]))
    return fx, fy


def _fit_rows(scaler: Scaler, x: np.ndarray, groups: np.ndarray, rows: np.ndarray) -> Scaler:
    """``scaler`` fit on ``x[rows]``, gathered block by block (a universe's training rows are never copied whole)."""
    scaler.fit(x[rows[:BLOCK_ROWS]], groups[rows[:BLOCK_ROWS]])
    for start in range(BLOCK_ROWS, len(rows), BLOCK_ROWS):
        block = rows[start:start + BLOCK_ROWS]
        scaler.partial_fit(x[block], groups[block])
    return scaler


def _transform_rows(fx: Scaler, raw_x: np.ndarray, symbols: np.ndarray, block: int = BLOCK_ROWS,
                    out: np.ndarray | None = None) -> np.ndarray:
    """``fx.transform`` block by block into one float32 array (``out``: in place, when ``raw_x`` is a float32
    copy of its own): the float64 temporaries of the scaling stay the size of a block, not of the table (a
    universe's window tensor is most of a training run's memory)."""
    out = np.empty(raw_x.shape, dtype=np.float32) if out is None else out
    for start in range(0, len(raw_x), block):
        rows = slice(start, start + block)
        out[rows] = fx.transform(raw_x[rows], symbols[rows])
    return out


def _scaled_targets(raw_y: np.ndarray, fy: Scaler, symbols: np.ndarray) -> np.ndarray:
    """Targets scaled row by row with the statistics of the row's symbol (NaN, an unknown outcome, stays NaN)."""
    out = np.empty(raw_y.shape, dtype=np.float32)
    for start in range(0, len(raw_y), BLOCK_ROWS):  # block by block: the float64 temporaries stay small
        rows = slice(start, start + BLOCK_ROWS)
        mean, scale = fy.row_stats(symbols[rows])
        out[rows] = np.where(np.isfinite(raw_y[rows]), (raw_y[rows] - mean) / scale, np.nan)
    return out


def _encodings(table: pd.DataFrame, period: str, categories: dict | None) -> tuple[dict, np.ndarray]:
    """Category lists (the checkpoint's, or the table's) and the ``[N, 2]`` (symbol, period) codes."""
    cats = categories or {"symbol": sorted(table["symbol"].unique()), "period": [period]}
    sym_idx = pd.Categorical(table["symbol"], categories=cats["symbol"]).codes
    if (sym_idx < 0).any():
        raise DataError(f"symbols {sorted(set(table['symbol']) - set(cats['symbol']))} unknown to the checkpoint")
    per_idx = pd.Categorical(table["period"], categories=cats["period"]).codes
    return cats, np.stack([sym_idx, per_idx], 1).astype(np.int64)


def _targets(leaf: Leaf, table: pd.DataFrame) -> list[str]:
    """The leaf's target names, which must be columns of its table."""
    targets = [t.name for t in leaf.targets.targets]
    missing = [t for t in targets if t not in table.columns]
    if missing:
        raise ConfigError(f"{leaf.config_path.parent / 'targets.yaml'}: key 'targets' = {missing}: not columns of "
                          f"{leaf.model.data.path}")
    return targets


def build_window_data(leaf: Leaf, table: pd.DataFrame | LeafTable | None = None, categories: dict | None = None,
                      scalers: dict | None = None, features: list[str] | None = None,
                      levels: dict[str, str] | None = None, known_names: list[str] | None = None) -> WindowData:
    """Build tensors and split indices for ``leaf``.

    Parameters
    ----------
    leaf : Leaf
        Loaded leaf configs.
    table : DataFrame or LeafTable, optional
        The leaf table (read from ``leaf.model.data.path`` if omitted: from a partitioned dataset, only the
        narrow columns are held and the inputs are read partition by partition into the float32 input array).
    categories, scalers : dict, optional
        Fixed encodings and fitted scalers from a checkpoint (prediction / resume); when omitted the
        categories come from the whole table (identical on every DDP rank) and the scalers are fit on
        the training span.
    features : list of str, optional
        The checkpoint's feature list (with ``scalers``): the leaf's rules must select exactly these
        columns of ``table``, or the fitted scalers and weights would be applied to the wrong inputs.
    levels : dict, optional
        The checkpoint's excluded level columns (see :func:`select_features`); tested on the training
        span when omitted.
    known_names : list of str, optional
        The checkpoint's known-future covariates; when omitted, the leaf's ``known_future`` whose cycle the
        training span covers twice (:func:`usable_known`).
    """
    m = leaf.model
    source = as_leaf_table(leaf, table)
    table = source.frame
    targets = _targets(leaf, table)
    L, H = m.window.encoder_length, m.window.max_prediction_length
    ts = pd.DatetimeIndex(table["timestamp"]).as_unit("ns")
    time_split = leaf_time_split(leaf, table["timestamp"])
    spans = time_split.masks(ts)
    features, market, excluded = _inputs_of(leaf, source, np.flatnonzero(spans["train"]), levels, features)
    n_own = len(features) - len(market)
    inputs = source.inputs(features[:n_own], extra=len(market))  # our own: scaled in place, market means appended
    raw_x = inputs[:, :n_own]
    raw_y = table[targets].to_numpy(dtype=np.float64)
    splits = _window_rows(leaf, table, raw_y, spans, time_split)
    symbols = table["symbol"].to_numpy()
    fx, fy = _scalers(leaf, scalers, (raw_x, raw_y), symbols, (np.flatnonzero(spans["train"]), splits["train"]))
    y = _scaled_targets(raw_y, fy, symbols)
    cats, static = _encodings(table, m.period, categories)
    known_names, known = known_future(ts, splits["train"], leaf, H, known_names)
    release_freed_memory()  # the calendar's float64 temporaries, before the scaling's
    x = _scaled_inputs(fx, inputs, n_own, symbols, [features.index(c) for c in market], ts.asi8)
    return WindowData(
        x=torch.from_numpy(x), y=torch.from_numpy(y), y_raw=raw_y,
        known=torch.from_numpy(known), static=torch.from_numpy(static),
        # views of the table's one-column blocks (no copies; the loaders only index them); close is copied: a
        # view of it would keep the table's whole float64 block (close and the targets) alive
        time_idx=table["time_idx"].to_numpy(dtype=np.int64) if "time_idx" in table else np.arange(len(table)),
        timestamp=ts.asi8, close=table["close"].to_numpy(dtype=np.float64, copy=True), splits=splits,
        features=features, known_names=list(known_names), targets=targets, categories=cats,
        feature_scaler=fx, target_scaler=fy, encoder_length=L, decoder_length=H,
        train_window=(ts[splits["train"]].min().isoformat(), ts[splits["train"]].max().isoformat()),
        excluded_levels=excluded, time_split=time_split,
    )


class WindowDataset(Dataset):
    """Map-style dataset whose items are whole batches: ``dataset[array_of_end_rows] -> dict``."""

    def __init__(self, data: WindowData, ends: np.ndarray) -> None:
        self.data = data
        self.ends = ends
        self._offsets = torch.arange(-data.encoder_length + 1, 1)
        # numpy arrays, indexed per batch: they may be read-only views of the leaf's table (no copy of them)
        self._time_idx = np.asarray(data.time_idx, dtype=np.int64)
        self._timestamp = np.asarray(data.timestamp, dtype=np.int64)
        # float64 close prices as int64 bits: precision plugins cast floating batch tensors to half types
        self._close_bits = np.asarray(data.close, dtype=np.float64).view(np.int64)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, rows: np.ndarray | list[int]) -> dict[str, torch.Tensor]:
        d = self.data
        end_np = np.asarray(rows, dtype=np.int64)
        end = torch.from_numpy(end_np)
        window = end_np[:, None] + self._offsets.numpy()[None, :]
        # The gathers run in numpy (one thread, zero-copy views of the tensors): torch's indexing kernel splits
        # these small gathers over its thread pool and stalls when the cores are busy (bench/RESULTS.md).
        return {
            "encoder_cont": torch.from_numpy(d.x.numpy()[window]),
            "decoder_known": torch.from_numpy(d.known.numpy()[end_np]),
            "static_cat": torch.from_numpy(d.static.numpy()[end_np]),
            "target": torch.from_numpy(d.y.numpy()[end_np]),
            "row": end,
            # identifiers and the decision bar's close travel with the batch for prediction output
            "time_idx": torch.from_numpy(self._time_idx[end_np]),
            "timestamp": torch.from_numpy(self._timestamp[end_np]),
            "close_bits": torch.from_numpy(self._close_bits[end_np]),
        }


class WindowBatchSampler(Sampler[np.ndarray]):
    """Yields arrays of end rows. Shuffles per epoch (seed + epoch) and shards across DDP ranks.

    With ``shard=True`` every rank gets the same number of batches from a disjoint slice of the
    same permutation (padded by wrapping), which is what DistributedSampler does per sample.
    """

    def __init__(self, ends: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0, shard: bool = False) -> None:
        self.ends, self.batch_size, self.shuffle, self.seed, self.shard = ends, batch_size, shuffle, seed, shard
        self.epoch = 0
        self.skip = 0  # batches of the current epoch already trained on (a resume mid-epoch), skipped once

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start."""
        self.epoch = epoch

    def _rank_world(self) -> tuple[int, int]:
        if self.shard and torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _rows(self) -> np.ndarray:
        rows = self.ends
        if self.shuffle:
            rows = rows[np.random.default_rng(self.seed + self.epoch).permutation(len(rows))]
        rank, world = self._rank_world()
        if world > 1:
            per = -(-len(rows) // world)
            rows = np.resize(rows, per * world)[rank::world]
        return rows

    def __iter__(self) -> Iterator[np.ndarray]:
        rows = self._rows()
        start, self.skip = self.skip * self.batch_size, 0
        for i in range(start, len(rows), self.batch_size):
            yield rows[i : i + self.batch_size]

    def __len__(self) -> int:
        _, world = self._rank_world()
        n = -(-len(self.ends) // world)
        return -(-n // self.batch_size)


class SeededLoader(torch.utils.data.DataLoader):
    """A DataLoader whose iterators draw their worker base seed from its own generator.

    Starting an iterator draws that seed; from the global generator (PyTorch's default) the draw moves the
    random stream dropout uses, so a resumed run (which starts iterators at other moments: a sanity check, a
    restart) would see other dropout masks than an uninterrupted one. The generator is rebuilt from the seed
    after pickling (DDP's spawn cannot pickle a ``torch.Generator``).
    """

    def __init__(self, *args: object, seed: int = 0, **kwargs: object) -> None:
        # Lightning may re-create the loader with its original arguments, generator included
        kwargs["generator"] = kwargs.get("generator") or torch.Generator().manual_seed(seed)
        super().__init__(*args, **kwargs)
        self._seed = seed

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["generator"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__["generator"] = torch.Generator().manual_seed(self._seed)


def make_loader(data: WindowData, split: str, batch_size: int, shuffle: bool, seed: int = 0,
                num_workers: int = 0) -> torch.utils.data.DataLoader:
    """DataLoader over one split (``batch_size=None``: the sampler already yields batches)."""
    sampler = WindowBatchSampler(data.splits[split], batch_size, shuffle, seed, shard=shuffle)
    return SeededLoader(WindowDataset(data, data.splits[split]), batch_size=None, sampler=sampler,
                        num_workers=num_workers, persistent_workers=num_workers > 0, seed=seed)