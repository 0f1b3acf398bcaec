"""Shared fitted models (session-scoped: MixedLM fits are the slow part of the suite)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import classroom_data

SEED_FORMULA = "score ~ age + female + treated + C(school)"


@pytest.fixture(scope="session")
def classroom() -> pd.DataFrame:
    return classroom_data(seed=42)


def _quiet_fit(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**kwargs)


@pytest.fixture(scope="session")
def lmm_ri(classroom):
    """The seed page's random-intercept model."""
    return _quiet_fit(smf.mixedlm(SEED_FORMULA, groups="student", data=classroom))


@pytest.fixture(scope="session")
def lmm_rs(classroom):
    """Random intercept and random slope of age per student.

    statsmodels' default optimisers stop short on this model (llf -1251.8, converged=False,
    which the session now warns about); Nelder-Mead reaches -1233.8 and converges."""
    return _quiet_fit(
        smf.mixedlm(SEED_FORMULA, groups="student", re_formula="~age", data=classroom),
        method="nm",
        maxiter=5000,
    )


@pytest.fixture(scope="session")
def ols_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame(
        {
            "x": rng.normal(2.0, 1.5, n),
            "z": rng.uniform(-1, 3, n),
            "k": rng.integers(0, 10, n),
            "g": rng.choice(["lo", "mid", "hi"], n),
            "b": rng.random(n) > 0.4,
            "w": rng.uniform(0.5, 2.0, n),
        }
    )
    df["y"] = (
        1.0
        + 0.8 * df["x"]
        - 0.3 * df["z"] ** 2
        + 0.1 * df["k"]
        + (df["g"] == "hi") * 1.5
        + 0.7 * df["b"]
        + 0.4 * df["x"] * (df["g"] == "mid")
        + rng.normal(0, 1, n)
    )
    return df


@pytest.fixture(scope="session")
def ols_fit(ols_frame):
    return smf.ols("y ~ x * C(g) + z + I(z**2) + k + b", ols_frame).fit()


# -- GLM and discrete models (tests/adapters/test_glm.py, test_discrete.py) -------------------
@pytest.fixture(scope="session")
def glm_frame() -> pd.DataFrame:
    """A binary outcome with an x1 × g interaction, and counts over an exposure time t."""
    rng = np.random.default_rng(11)
    n = 2000
    df = pd.DataFrame(
        {
            "x1": rng.normal(0.0, 1.0, n),
            "x2": rng.normal(0.0, 1.0, n),
            "g": rng.choice(["a", "b", "c"], n),
            "k": rng.integers(0, 5, n),
            "d": rng.integers(0, 2, n),
            "t": rng.uniform(0.5, 3.0, n),
        }
    )
    gb, gc = (df["g"] == "b").to_numpy(), (df["g"] == "c").to_numpy()
    x1, x2 = df["x1"].to_numpy(), df["x2"].to_numpy()
    eta = -0.2 + 0.6 * x1 + 0.4 * gb - 0.3 * gc + 0.5 * x1 * gb - 0.4 * x2 + 0.1 * df["k"]
    df["y"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    mu = df["t"] * np.exp(0.1 + 0.3 * x1 - 0.2 * x2 + 0.3 * gc + 0.05 * df["k"])
    df["c"] = rng.poisson(mu)
    return df


@pytest.fixture(scope="session")
def logit_glm(glm_frame):
    import statsmodels.api as sm

    return smf.glm("y ~ x1 * C(g) + x2", glm_frame, family=sm.families.Binomial()).fit()


@pytest.fixture(scope="session")
def poisson_glm(glm_frame):
    import statsmodels.api as sm

    return smf.glm(
        "c ~ x1 + x2 + C(g)",
        glm_frame,
        family=sm.families.Poisson(),
        offset=np.log(glm_frame["t"]),
    ).fit()


@pytest.fixture(scope="session")
def logit_xz():
    """100 rows, y ~ x + z logit: small enough that a margin at x = 2.3 is visibly curved."""
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"x": rng.normal(size=100), "z": rng.normal(size=100)})
    p = 1.0 / (1.0 + np.exp(-(0.3 + 0.5 * d["x"] - 0.4 * d["z"])))
    d["y"] = (rng.random(100) < p).astype(float)
    return d, smf.logit("y ~ x + z", d).fit(disp=0)


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
