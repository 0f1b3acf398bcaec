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


# measured 96.0, 94.5, 95.7 and 94.4% on fits at the REML optimum; on statsmodels' default
# fits, which stop short of it in 75% of these replications, the margin at treated = 0 had
# covered 96.7% (+2.5 MC SEs) while lme4/pbkrtest on the same data sets covered 96.0%
# (validation/kr_same_data.py)
@pytest.mark.parametrize("quantity", QUANTITIES)
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
    # at R = 300, the mean of four about half that): measured 1.75 (studentized) and 2.2
    # (percentile) points against 3.65 for the cluster bootstrap
    assert gap["parametric studentized"] < gap["cluster percentile"], res
    assert gap["parametric percentile"] < gap["cluster percentile"], res
