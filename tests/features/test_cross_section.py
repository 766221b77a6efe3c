import numpy as np
import pandas as pd
import pytest

from features.cross_section import cross_sectional_mean, market_names


def _panel(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three symbols on partly different bars (a late listing, a missing bar), two columns, a NaN."""
    rng = np.random.default_rng(seed)
    ts = np.concatenate([np.arange(10), np.arange(3, 10), np.delete(np.arange(10), 5)])
    values = rng.standard_normal((len(ts), 2))
    values[4, 1] = np.nan
    return values, ts


def test_each_row_gets_the_mean_of_its_timestamp_over_the_finite_values():
    values, ts = _panel()
    got = cross_sectional_mean(values, ts)
    frame = pd.DataFrame(values, columns=["a", "b"]).assign(ts=ts)
    want = frame.groupby("ts")[["a", "b"]].transform("mean").to_numpy()  # pandas skips NaN too
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.dtype == np.float32 and np.isfinite(got).all()


def test_input_is_left_unchanged_and_a_timestamp_without_values_gives_zero():
    values, ts = _panel()
    values[ts == 0, 0] = np.nan  # only symbol 0 and 2 have bar 0, both NaN in column 0
    before = values.copy()
    got = cross_sectional_mean(values, ts)
    np.testing.assert_array_equal(values, before)
    assert (got[ts == 0, 0] == 0).all()


def test_changing_later_bars_leaves_earlier_means_unchanged():
    values, ts = _panel(1)
    later = values.copy()
    later[ts >= 6] = np.random.default_rng(9).standard_normal(((ts >= 6).sum(), 2)) * 100
    np.testing.assert_array_equal(cross_sectional_mean(values, ts)[ts < 6], cross_sectional_mean(later, ts)[ts < 6])


def test_one_symbol_gets_its_own_values():
    values = np.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(cross_sectional_mean(values, np.arange(6)), values.astype(np.float32))


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"values of shape \(4,\) and 4 timestamps"):
        cross_sectional_mean(np.zeros(4), np.arange(4))
    with pytest.raises(ValueError, match=r"values of shape \(4, 1\) and 3 timestamps"):
        cross_sectional_mean(np.zeros((4, 1)), np.arange(3))


def test_market_names():
    assert market_names(["ret_1", "ret_24"]) == ["market_ret_1", "market_ret_24"]
