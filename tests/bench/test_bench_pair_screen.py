"""``bench/bench_pair_screen.py``: the null-panel screen and the argument errors (bench/ is scripts, loaded by path)."""

from __future__ import annotations

import pytest

from tests.bench.conftest import load_bench_script


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("bench_pair_screen")


def test_null_screen_uses_every_indicator_and_keeps_no_pair(bench):
    screen, largest = bench.null_screen(seed=3, n_bars=900, n_symbols=2, calendar="24/7", max_pairs=8)
    assert screen.n_tested_ > 5_000  # all numeric indicator columns of the real indicator code, pairwise
    assert screen.pairs_ == [] and 0 < largest < screen.critical_


def test_bad_arguments_are_refused_with_a_message(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--max-pairs", "0"])
    assert "--max-pairs 0: give 1 or more" in capsys.readouterr().err
