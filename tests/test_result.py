"""Simultaneous bands and p-value adjustment, checked against the draws and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from simmargins import Margins, MarginsValueError


@pytest.fixture(scope="module")
def curve(lmm_ri):
    m = Margins.linear_scale(lmm_ri, seed=3, n_sims=2000)
    return m.predict(atexog={"age": list(range(20, 76, 5)), "female": [0, 1]})


def test_sup_t_band_covers_the_draws_jointly_and_is_wider(curve):
    band = curve.conf_int(kind="simultaneous")
    point = curve.conf_int()
    d = curve.draws.to_numpy()
    inside = np.all((d >= band[:, 0]) & (d <= band[:, 1]), axis=1)
    assert inside.mean() >= curve.level
    # pointwise percentile intervals jointly cover far fewer draws
    inside_pt = np.all((d >= point[:, 0]) & (d <= point[:, 1]), axis=1)
    assert inside_pt.mean() < curve.level
    assert np.all(band[:, 1] - band[:, 0] > point[:, 1] - point[:, 0])
    assert curve.sup_t_critical() > 1.96


def test_delta_sup_t_matches_the_draw_based_one(curve):
    # identity link: the draws are exactly jointly normal with the delta covariance, so the
    # two critical values agree up to MC error (2000 and 20000 draws: a few percent)
    c_draws = curve.sup_t_critical(method="simulation")
    c_delta = curve.sup_t_critical(method="delta")
    assert c_delta == pytest.approx(c_draws, rel=0.05)
    band = curve.conf_int(kind="simultaneous", method="delta")
    np.testing.assert_allclose(band[:, 1] - curve.estimate, c_delta * curve.delta_std_err)


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh", "sidak"])
def test_adjusted_p_values_are_statsmodels_multipletests(lmm_ri, method):
    res = Margins.linear_scale(lmm_ri, seed=3).dydx(["age", "female", "treated", "school"])
    adj = res.adjust(method)
    np.testing.assert_allclose(adj.p_value(), multipletests(res.p_value(), method=method)[1])
    np.testing.assert_array_equal(adj.estimate, res.estimate)
    assert f"P-values adjusted for multiple comparisons: {method}" in adj.summary()


def test_sup_t_p_values_are_simultaneous(curve):
    adj = curve.adjust("sup-t")
    raw = curve.p_value()
    assert np.all(adj.p_value() >= raw - 1e-12)
    with pytest.raises(MarginsValueError, match="method: got 'holmes'"):
        curve.adjust("holmes")
    with pytest.raises(MarginsValueError, match="kind: got 'joint'"):
        curve.conf_int(kind="joint")
