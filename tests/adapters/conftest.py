"""Fixtures shared by the adapter tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf


@dataclass(frozen=True)
class OneWay:
    """A balanced one-way random-intercept design, J groups × n rows, and its ANOVA."""

    J: int
    n: int
    fit: Any  # REML MixedLM fit of y ~ 1 | g (Powell: at the optimum)
    msb: float  # between-group mean square, J − 1 df
    msw: float  # within-group mean square, J(n − 1) df


@pytest.fixture(scope="session")
def one_way() -> OneWay:
    """REML equals the ANOVA estimators here (an interior fit): σ_u² = (MSB − MSW)/n and
    σ² = MSW, with the mean squares' variances 2 MS²/df — the classical closed forms."""
    rng = np.random.default_rng(3)
    J, n = 8, 6
    df = pd.DataFrame({"g": np.repeat(np.arange(J), n)})
    df["y"] = 10 + rng.normal(0, 1.0, J)[df["g"]] + rng.normal(0, 1.5, J * n)
    fit = smf.mixedlm("y ~ 1", df, groups="g").fit(method=["powell"])
    means = df.groupby("g")["y"].mean()
    msb = n * float(((means - df["y"].mean()) ** 2).sum()) / (J - 1)
    msw = float(((df["y"] - df["g"].map(means)) ** 2).sum()) / (J * (n - 1))
    assert msb > msw  # an interior fit: the ANOVA estimators are the REML ones
    return OneWay(J, n, fit, msb, msw)
