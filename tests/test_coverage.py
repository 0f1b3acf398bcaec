"""A CI-sized coverage study that can fail: 95% intervals must cover about 95% of the time."""

from __future__ import annotations

import numpy as np

from validation.coverage import run_design


def test_poisson_offset_intervals_cover_at_the_nominal_rate():
    reps = 300
    res = run_design("poisson_offset", reps=reps, boot_reps=0, n_sims=400, seed=11)
    assert set(res["route"]) == {"delta", "simulation"}
    assert (res["reps"] == reps).all()
    # binomial MC SE of a 95% coverage from 300 replications is 1.26%; asymptotics hold at
    # n = 300, so coverage must sit within 3 MC SEs (an SE 20% too small gives ~89%: fails)
    mc_se = np.sqrt(0.95 * 0.05 / reps)
    assert np.all(np.abs(res["coverage"] - 0.95) <= 3 * mc_se), res
