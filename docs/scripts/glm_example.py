"""The GLM walkthrough of docs/glm.md: run it to reproduce the printed output."""

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf

from simmargins import Margins, pairwise

rng = np.random.default_rng(5)
n = 800
df = pd.DataFrame(
    {
        "dose": rng.uniform(0, 4, n),
        "arm": rng.choice(["control", "new"], n),
        "age": rng.normal(50, 10, n),
    }
)
eta = (
    -2.0
    + 0.6 * df["dose"]
    + 0.8 * (df["arm"] == "new")
    - 0.3 * df["dose"] * (df["arm"] == "new")
    + 0.02 * (df["age"] - 50)
)
df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
fit = smf.glm("y ~ dose * C(arm) + age", df, family=sm.families.Binomial()).fit()
m = Margins.response_scale(fit, seed=1)
print(m.dydx("dose").summary())
print()
print(m.dydx("dose", by="arm").summary())
print()
print(m.contrasts(*pairwise("arm", ["new", "control"])).summary())
print()
print(m.eyex("age").summary())
print()
print(fit.get_margeff(at="overall").summary_frame().loc[["dose"]])
# Poisson with exposure
df["t"] = rng.uniform(0.5, 2, n)
df["count"] = rng.poisson(df["t"] * np.exp(0.1 + 0.3 * df["dose"]))
pf = smf.poisson("count ~ dose + C(arm)", df, exposure=df["t"]).fit(disp=0)
mp = Margins.response_scale(pf, seed=1)
print(mp.predict(atexog={"dose": [0, 2, 4], "exposure": 1.0}).summary())
