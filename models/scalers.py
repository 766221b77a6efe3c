"""Input and target scalers of the window dataset (sklearn's fit / transform; fit on training rows only).

:class:`FeatureScaler` standardizes each column with one mean and standard deviation; :class:`GroupFeatureScaler`
(``features.normalize: group``, and ``features.normalize_targets: group`` for regression targets) keeps one per
symbol. Both are stored in checkpoints as plain data; ``row_stats`` gives the mean and scale each row was scaled
with, so a scaled output can be put back in the target's units row by row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.moments import Moments

#: Rows the statistics are accumulated over at a time.
BLOCK_ROWS = 1 << 16


class FeatureScaler:
    """Per-column standardization (NaN-aware); NaN becomes 0 (the mean) and values are clipped.

    Parameters
    ----------
    clip : float
        Scaled values are clipped to [-clip, clip] so one bad print cannot dominate a batch.
    """

    def __init__(self, clip: float = 10.0) -> None:
        self.clip = clip

    def fit(self, x: np.ndarray, groups: np.ndarray | None = None) -> FeatureScaler:
        """Learn means and standard deviations from ``x`` (rows of the fit window only; ``groups`` is ignored)."""
        self._moments, self.n_rows_ = None, 0
        return self.partial_fit(x, groups)

    def partial_fit(self, x: np.ndarray, groups: np.ndarray | None = None) -> FeatureScaler:
        """Add fit rows to those already seen by :meth:`fit` / :meth:`partial_fit` (not to a checkpoint's state).

        ``x`` is read in blocks of :data:`BLOCK_ROWS` rows, so the float64 temporaries stay the size of a block:
        a universe's training rows are fit without a float64 copy of them. Statistics equal a one-shot fit's up
        to floating-point rounding.
        """
        moments = getattr(self, "_moments", None)
        for start in range(0, len(x), BLOCK_ROWS):
            part = Moments.of(x[start:start + BLOCK_ROWS])
            moments = part if moments is None else moments.merge(part)
        self._moments = moments if moments is not None else Moments.of(np.empty((0, np.shape(x)[1])))
        self.n_rows_ = getattr(self, "n_rows_", 0) + len(x)
        std = self._moments.std()
        self.mean_ = np.nan_to_num(np.where(self._moments.count > 0, self._moments.mean, np.nan))
        self.scale_ = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return self

    def transform(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Scaled float32 copy of ``x`` (``groups`` is ignored)."""
        if not hasattr(self, "mean_"):
            raise RuntimeError("FeatureScaler.transform called before fit")
        out = (x - self.mean_) / self.scale_
        out = np.nan_to_num(out, nan=0.0, posinf=self.clip, neginf=-self.clip)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Back to original units."""
        return x * self.scale_ + self.mean_

    def row_stats(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, scale)``, each ``[n, C]``: the statistics every row is scaled with (the same for all rows)."""
        n = len(groups)
        return np.broadcast_to(self.mean_, (n, self.mean_.size)), np.broadcast_to(self.scale_, (n, self.scale_.size))

    def fix_columns(self, columns: np.ndarray, mean: float = 0.0, scale: float = 1.0) -> None:
        """Set the statistics of ``columns`` (e.g. 0 / 1 for class labels, which stay 0/1)."""
        self.mean_[columns], self.scale_[columns] = mean, scale

    def state_dict(self) -> dict:
        """Plain-data state (stored in checkpoints)."""
        return {"clip": self.clip, "mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> FeatureScaler:
        """Inverse of :meth:`state_dict`."""
        obj = cls(state["clip"])
        obj.mean_, obj.scale_ = np.asarray(state["mean"]), np.asarray(state["scale"])
        return obj


class GroupFeatureScaler:
    """Per-group (symbol) standardization; groups with fewer than ``min_rows`` fit rows use the global statistics.

    Parameters
    ----------
    clip : float
        As :class:`FeatureScaler`.
    min_rows : int
        Fit rows a group needs for its own statistics.
    """

    def __init__(self, clip: float = 10.0, min_rows: int = 100) -> None:
        self.clip = clip
        self.min_rows = min_rows

    def fit(self, x: np.ndarray, groups: np.ndarray) -> GroupFeatureScaler:
        """Learn the global and each group's means and standard deviations (rows of the fit window only)."""
        self.global_, self._each = FeatureScaler(self.clip), {}
        return self.partial_fit(x, groups)

    def partial_fit(self, x: np.ndarray, groups: np.ndarray) -> GroupFeatureScaler:
        """Add fit rows (see :meth:`FeatureScaler.partial_fit`); a group gets its own statistics once it has
        ``min_rows`` rows in all."""
        if not hasattr(self, "_each"):
            self.global_, self._each = FeatureScaler(self.clip), {}
        groups = np.asarray(groups)
        self.global_.partial_fit(x)
        for g in pd.unique(groups):  # a loop over the symbols of the rows given
            rows = groups == g
            self._each.setdefault(str(g), FeatureScaler(self.clip)).partial_fit(x[rows])
        self.groups_ = {g: s for g, s in sorted(self._each.items()) if s.n_rows_ >= self.min_rows}
        return self

    def transform(self, x: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``x``, each row by its group's statistics."""
        if not hasattr(self, "global_"):
            raise RuntimeError("GroupFeatureScaler.transform called before fit")
        groups = np.asarray(groups).astype(str)
        out = self.global_.transform(x)
        for g, scaler in self.groups_.items():
            rows = groups == g
            if rows.any():
                out[rows] = scaler.transform(x[rows])
        return out

    def row_stats(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, scale)``, each ``[n, C]``: the statistics of each row's group (the global ones for a group
        without its own)."""
        groups = np.asarray(groups).astype(str)
        mean, scale = (np.array(a) for a in self.global_.row_stats(groups))
        for g, scaler in self.groups_.items():
            rows = groups == g
            mean[rows], scale[rows] = scaler.mean_, scaler.scale_
        return mean, scale

    def fix_columns(self, columns: np.ndarray, mean: float = 0.0, scale: float = 1.0) -> None:
        """Set the statistics of ``columns`` in the global and every group's scaler."""
        for scaler in (self.global_, *self.groups_.values()):
            scaler.fix_columns(columns, mean, scale)

    def state_dict(self) -> dict:
        """Plain-data state (stored in checkpoints)."""
        return {"kind": "group", "clip": self.clip, "min_rows": self.min_rows, "global": self.global_.state_dict(),
                "groups": {g: s.state_dict() for g, s in self.groups_.items()}}

    @classmethod
    def from_state(cls, state: dict) -> GroupFeatureScaler:
        """Inverse of :meth:`state_dict`."""
        obj = cls(state["clip"], state["min_rows"])
        obj.global_ = FeatureScaler.from_state(state["global"])
        obj.groups_ = {g: FeatureScaler.from_state(s) for g, s in state["groups"].items()}
        return obj


Scaler = FeatureScaler | GroupFeatureScaler


def scaler_from_state(state: dict) -> Scaler:
    """A checkpoint's input scaler, global or per group."""
    return GroupFeatureScaler.from_state(state) if state.get("kind") == "group" else FeatureScaler.from_state(state)
