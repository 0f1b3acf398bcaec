"""The mixed-model coverage claims of docs/validation.md, as tests that can fail.

Slow (a few minutes each on 2 cores): marked ``slow``, left out of the default run
(``-m 'not slow'`` in pyproject's addopts) and run by CI (``.ci/run``: ``pytest -m slow``).
Both use the study's own seeds and settings, so they reproduce the table's figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from validation.coverage_lmm import run_design

pytestmark = pytest.mark.slow

QUANTITIES = ["margin treated=0", "margin treated=1", "contrast treated 1-0", "AME age"]


@pytest.fixture(scope="module")
def kenward_roger():
    return run_design("lmm_ri_10x10", reps=1000, boot_reps=0, routes=("kenward-roger",))


@pytest.mark.parametrize(
    "quantity",
    [
        # measured 96.7 ± 0.6%: the margin at treated = 0 rests mostly on the intercept, whose
        # Kenward–Roger df are few (between-cluster information of 10 clusters), and the
        # interval is conservative by 1.7 points (+2.4 MC SEs); kept as a known failure of
        # the ±2 SE target so that a change either way is noticed
        pytest.param(QUANTITIES[0], marks=pytest.mark.xfail(strict=True, reason="over-covers")),
        *QUANTITIES[1:],
    ],
)
def test_kenward_roger_covers_at_10_clusters(kenward_roger, quantity):
    row = kenward_roger.set_index("quantity").loc[quantity]
    assert row["reps"] >= 995  # a refit may fail
    # within ±2 binomial MC SEs of 95% (SE √(0.95·0.05/R) = 0.69% at R = 1,000)
    mc_se = np.sqrt(0.95 * 0.05 / row["reps"])
    assert abs(row["coverage"] - 0.95) <= 2 * mc_se, row


def test_parametric_bootstrap_beats_the_cluster_bootstrap_at_10_clusters():
    reps = 300
    routes = ("parametric percentile", "parametric studentized", "cluster percentile")
    res = run_design("lmm_ri_10x10", reps=reps, boot_reps=reps, n_boot=199, routes=routes)
    gap = res.assign(gap=(res["coverage"] - 0.95).abs()).groupby("route")["gap"].mean()
    # mean distance from 95% over the four quantities (each coverage has MC SE ≈ 1.2-1.7%
    # at R = 300, the mean of four about half that): measured 0.9 (studentized) and 1.4
    # (percentile) points against 3.7 for the cluster bootstrap
    assert gap["parametric studentized"] < gap["cluster percentile"], res
    assert gap["parametric percentile"] < gap["cluster percentile"], res
