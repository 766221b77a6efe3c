"""``bench/bench_interactions.py``: its spline basis and its argument errors (bench/ is scripts, loaded by path)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bench.conftest import load_bench_script


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("bench_interactions")


def test_spline_basis_is_fit_and_centred_on_the_fit_rows_only(bench):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    fit = np.arange(300)
    S = bench.spline_matrix(X, fit, 5)
    assert S.shape == (400, 3 * (5 + 3 - 1))
    np.testing.assert_allclose(S[fit].mean(axis=0), 0.0, atol=1e-12)
    # changing rows outside the fit span leaves every other row's basis unchanged (knots from the fit rows)
    X2 = X.copy()
    X2[300:] *= 10.0
    np.testing.assert_allclose(bench.spline_matrix(X2, fit, 5)[:300], S[:300])


@pytest.mark.parametrize(("argv", "message"), [
    (["--lambdas", "0"], "--lambdas '0': give one or more penalties > 0"),
    (["--splines", "1"], "--splines 1: give 2 or more knots"),
])
def test_bad_arguments_are_refused_with_a_message(bench, capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
