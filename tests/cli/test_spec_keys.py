"""The spec keys that map onto the comparisons, representative values, new data and
small-sample df of the Python API: each run through ``main([...])`` in this process.

Every margins.csv is checked twice: against the same call of the Python API made here on a
fit made here (same seed, so the same draws: the numbers must agree to rounding), and, where
there is one, against a closed form from statsmodels (a coefficient, a prediction, lme4's
and lmerTest's published table). The bad values of these keys are in test_command.py's
``MORE_BAD_SPECS``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import Margins, MarginsResult, pairwise, sleepstudy_data

N_SIMS = 300
COMPARED = ["estimate", "std_err", "p_value", "ci_lower", "ci_upper", "delta_std_err"]


def frame(seed: int = 3, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "t": rng.integers(0, 2, n),
            "z": rng.normal(size=n).round(3),
            "g": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    eta = -2.0 + 0.04 * df["age"] + 0.6 * df["t"] + 0.5 * df["z"] * df["t"] + (df["g"] == "b")
    df["y"] = eta + rng.normal(size=n)
    df["yb"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


def run(tmp_path: Path, body: str, data: pd.DataFrame, **files: pd.DataFrame) -> Path:
    """Write data.csv (and ``files``), a spec of ``body`` on it, run it; the analysis folder."""
    from simmargins.cli.command import main

    data.to_csv(tmp_path / "data.csv", index=False)
    for name, f in files.items():
        f.to_csv(tmp_path / f"{name}.csv", index=False)
    spec = body if "[data]" in body else f'data = "data.csv"\n{body}'
    (tmp_path / "spec.toml").write_text(spec)
    code = main(["run", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out")])
    assert code == 0, spec
    return tmp_path / "out" / "main"


def margins(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name / "margins.csv").set_index("label")


def same_as(csv: pd.DataFrame, res: MarginsResult, extra: tuple[str, ...] = ()) -> None:
    """The CLI's numbers are the Python API's, label by label."""
    ours = res.to_frame().set_index("label")
    assert list(csv.index) == list(ours.index)
    for col in [*COMPARED, *extra]:
        np.testing.assert_allclose(csv[col], ours[col], rtol=1e-10, atol=1e-14, err_msg=col)


LOGIT = "yb ~ age + t + C(g)"
OLS = "y ~ age + t * z + C(g)"


def spec(kind: str, formula: str, *quantities: str, inference: str = "") -> str:
    """A spec's model, inference and quantity tables (``run`` adds the data)."""
    tables = "".join(f"\n[[quantity]]\n{q.strip()}\n" for q in quantities)
    head = f'[model]\nkind = "{kind}"\nformula = "{formula}"\n'
    return f"{head}\n[inference]\nn_sims = {N_SIMS}\n{inference}\n{tables}"


# -- [inference] df ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["satterthwaite", "kenward-roger"])
def test_df_of_a_mixed_model(tmp_path, method):
    body = f"""
[data]
path = "data.csv"
categorical = ["Subject"]

[model]
kind = "mixedlm"
formula = "Reaction ~ Days"
groups = "Subject"
re_formula = "~Days"

[inference]
n_sims = {N_SIMS}
df = "{method}"

[[quantity]]
name = "slope"
kind = "dydx"
variables = "Days"
"""
    df = sleepstudy_data()
    out = run(tmp_path, body, df)
    csv = margins(out, "slope")
    df["Subject"] = df["Subject"].astype(str)
    fit = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit()
    same_as(csv, Margins(fit, seed=0, n_sims=N_SIMS, df=method).dydx("Days"), ("df",))
    # lmerTest / pbkrtest on lme4's fit: Days 10.467, SE 1.546, 17 df (balanced design)
    row = csv.loc["Days"]
    assert abs(row["estimate"] - 10.467) < 5e-4 and abs(row["delta_std_err"] - 1.546) < 5e-4
    assert abs(row["df"] - 17.0) < 1e-3


# -- [inference] at --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "at"),
    [
        ('"median"', "median"),
        ('"balanced"', "balanced"),
        ('{ age = "mean", g = "mode" }', {"age": "mean", "g": "mode"}),
    ],
)
def test_at_representative_values(tmp_path, toml, at):
    df = frame()
    arms = 'name = "arms"\nkind = "predict"\natexog = { t = [0, 1] }'
    out = run(tmp_path, spec("logit", LOGIT, arms, inference=f"at = {toml}"), df)
    csv = margins(out, "arms")
    fit = smf.logit(LOGIT, df).fit(disp=0)
    same_as(csv, Margins(fit, seed=0, n_sims=N_SIMS, at=at).predict(atexog={"t": [0, 1]}))
    # closed forms: statsmodels' prediction at the representative row(s)
    mode = df["g"].value_counts().idxmax()
    for t in (0, 1):
        if at == "balanced":  # each level of g once, age at its mean
            rows = pd.DataFrame({"g": ["a", "b", "c"], "age": df["age"].mean(), "t": t})
        else:  # one row: age at its median (mean), g at its mode
            age = df["age"].median() if at == "median" else df["age"].mean()
            rows = pd.DataFrame({"g": [mode], "age": [age], "t": [t]})
        expected = fit.predict(rows).mean()
        np.testing.assert_allclose(csv.loc[f"t={t}", "estimate"], expected, rtol=1e-10)


# -- [[quantity]] dydx: atexog and comparison ------------------------------------------------
def test_dydx_conditional_on_a_moderator(tmp_path):
    body = spec(
        "ols",
        OLS,
        """
name = "cond"
kind = "dydx"
variables = "t"
atexog = { z = [-1.0, 0.0, 1.5] }
""",
    )
    df = frame()
    csv = margins(run(tmp_path, body, df), "cond")
    fit = smf.ols(OLS, df).fit()
    m = Margins(fit, seed=0, n_sims=N_SIMS)
    same_as(csv, m.dydx("t", atexog={"z": [-1.0, 0.0, 1.5]}))
    # the conditional AME in y ~ t*z is β_t + β_t:z·z
    expected = fit.params["t"] + fit.params["t:z"] * np.array([-1.0, 0.0, 1.5])
    np.testing.assert_allclose(csv["estimate"], expected, rtol=1e-9)


def test_dydx_of_a_factor_as_a_ratio(tmp_path):
    body = spec(
        "logit",
        LOGIT,
        """
name = "rr"
kind = "dydx"
variables = "g"
comparison = "ratio"
""",
    )
    df = frame()
    csv = margins(run(tmp_path, body, df), "rr")
    fit = smf.logit(LOGIT, df).fit(disp=0)
    same_as(csv, Margins(fit, seed=0, n_sims=N_SIMS).dydx("g", comparison="ratio"))
    base = fit.predict(df.assign(g="a")).mean()
    for lv in ("b", "c"):
        ratio = fit.predict(df.assign(g=lv)).mean() / base
        np.testing.assert_allclose(csv.loc[f"g={lv} / g=a", "estimate"], ratio, rtol=1e-10)


# -- [[quantity]] contrasts: comparison, type = "shift" -----------------------------------------
@pytest.mark.parametrize("comparison", ["difference", "ratio", "lnratio", "lnor", "lift"])
def test_contrast_comparisons(tmp_path, comparison):
    body = spec(
        "logit",
        LOGIT,
        f"""
name = "arm"
kind = "contrasts"
type = "pairwise"
var = "t"
levels = [1, 0]
comparison = "{comparison}"
""",
    )
    df = frame()
    csv = margins(run(tmp_path, body, df), "arm")
    fit = smf.logit(LOGIT, df).fit(disp=0)
    scen, W = pairwise("t", [1, 0])
    same_as(csv, Margins(fit, seed=0, n_sims=N_SIMS).contrasts(scen, W, comparison=comparison))
    a, b = (fit.predict(df.assign(t=v)).mean() for v in (1, 0))
    expected = {
        "difference": a - b,
        "ratio": a / b,
        "lnratio": np.log(a / b),
        "lnor": np.log(a / (1 - a)) - np.log(b / (1 - b)),
        "lift": (a - b) / b,
    }[comparison]
    np.testing.assert_allclose(csv["estimate"].iloc[0], expected, rtol=1e-10)


def test_contrasts_of_shifted_and_scaled_data(tmp_path):
    body = spec(
        "ols",
        OLS,
        """
name = "moves"
kind = "contrasts"
type = "shift"
shift = { age = 1, z = "sd" }
scale = { age = 1.1 }
""",
    )
    df = frame()
    csv = margins(run(tmp_path, body, df), "moves")
    fit = smf.ols(OLS, df).fit()
    m = Margins(fit, seed=0, n_sims=N_SIMS)
    same_as(csv, m.contrasts(shift={"age": 1, "z": "sd"}, scale={"age": 1.1}))
    b, V = fit.params, fit.cov_params()
    sd = df["z"].std(ddof=1)
    # a linear model: age + 1 moves every prediction by β_age; z + sd by sd·(β_z + β_t:z·t̄)
    rows = {
        "age + 1 - observed": (b["age"], np.sqrt(V.loc["age", "age"])),
        "age × 1.1 - observed": (0.1 * df["age"].mean() * b["age"], None),
    }
    for label, (est, se) in rows.items():
        np.testing.assert_allclose(csv.loc[label, "estimate"], est, rtol=1e-8)
        if se is not None:
            np.testing.assert_allclose(csv.loc[label, "delta_std_err"], se, rtol=1e-8)
    z_row = next(lb for lb in csv.index if lb.startswith("z + sd"))
    z_effect = sd * (b["z"] + b["t:z"] * df["t"].mean())
    np.testing.assert_allclose(csv.loc[z_row, "estimate"], z_effect, rtol=1e-8)


# -- newdata (+ weights) on a quantity -------------------------------------------------------
def test_newdata_with_weights(tmp_path):
    body = spec(
        "logit",
        LOGIT,
        """
name = "census"
kind = "predict"
atexog = { t = [0, 1] }
newdata = { path = "population.csv", weights = "people" }
""",
        """
name = "census_rr"
kind = "dydx"
variables = "g"
comparison = "ratio"
newdata = "population.csv"
""",
    )
    pop = pd.DataFrame(
        {
            "age": [30, 45, 60, 30, 45, 60],
            "t": [0, 1, 0, 1, 0, 1],
            "g": ["a", "b", "c", "c", "b", "a"],
            "people": [100.0, 250.0, 80.0, 40.0, 300.0, 90.0],
        }
    )
    df = frame()
    out = run(tmp_path, body, df, population=pop)
    fit = smf.logit(LOGIT, df).fit(disp=0)
    m = Margins(fit, seed=0, n_sims=N_SIMS)
    census = margins(out, "census")
    same_as(census, m.predict(atexog={"t": [0, 1]}, newdata=pop, weights="people"))
    for t in (0, 1):
        expected = np.average(fit.predict(pop.assign(t=t)), weights=pop["people"])
        np.testing.assert_allclose(census.loc[f"t={t}", "estimate"], expected, rtol=1e-10)
    same_as(margins(out, "census_rr"), m.dydx("g", comparison="ratio", newdata=pop))
    report = (out / "census" / "report.md").read_text(encoding="utf-8")
    assert "population.csv" in report and "people" in report


# -- [inference] bootstrap and random_effects ------------------------------------------------
SLEEP = """
[data]
path = "data.csv"
categorical = ["Subject"]

[model]
kind = "mixedlm"
formula = "Reaction ~ Days"
groups = "Subject"
re_formula = "~Days"

[inference]
{inference}

[[quantity]]
name = "slope"
kind = "dydx"
variables = "Days"
"""


def _sleep_fit():
    df = sleepstudy_data()
    df["Subject"] = df["Subject"].astype(str)
    return smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit()


def test_parametric_bootstrap_key(tmp_path):
    keys = 'method = "bootstrap"\nbootstrap = "parametric"\nn_boot = 20\ninterval = "studentized"'
    csv = margins(run(tmp_path, SLEEP.format(inference=keys), sleepstudy_data()), "slope")
    m = Margins(_sleep_fit(), seed=0, method="bootstrap", bootstrap="parametric", n_boot=20,
                interval="studentized")  # fmt: skip
    same_as(csv, m.dydx("Days"))
    assert abs(csv.loc["Days", "estimate"] - 10.467) < 5e-4  # lme4's fixed effect


def test_random_effects_new_key(tmp_path):
    keys = f'n_sims = {N_SIMS}\nrandom_effects = "new"'
    csv = margins(run(tmp_path, SLEEP.format(inference=keys), sleepstudy_data()), "slope")
    fit = _sleep_fit()
    same_as(csv, Margins(fit, seed=0, n_sims=N_SIMS, random_effects="new").dydx("Days"))
    # closed form: the slope of a new subject, SE² = Var(β̂_Days) + Ψ̂_Days,Days
    want = np.sqrt(fit.cov_params().loc["Days", "Days"] + fit.cov_re.loc["Days", "Days"])
    assert csv.loc["Days", "delta_std_err"] == pytest.approx(want, rel=1e-8)


# -- [model] kind = "mnlogit" | "ordered": margins per outcome -----------------------------
def _outcomes(seed: int = 5, n: int = 500) -> pd.DataFrame:
    df = frame(seed, n)
    rng = np.random.default_rng(seed)
    latent = 0.03 * df["age"] + 0.5 * df["z"] + 0.4 * (df["g"] == "b") + rng.logistic(size=n)
    df["k"] = np.digitize(latent, np.quantile(latent, [0.3, 0.7]))  # 0, 1, 2
    return df


def test_mnlogit_margins_per_outcome_equal_the_python_api_and_get_margeff(tmp_path):
    df = _outcomes()
    quantities = ['name = "ame"\nkind = "dydx"\nvariables = ["age", "z"]']
    folder = run(tmp_path, spec("mnlogit", "k ~ age + z + C(g)", *quantities), df)
    csv = margins(folder, "ame")
    fit = smf.mnlogit("k ~ age + z + C(g)", df).fit(disp=0)
    res = Margins(fit, n_sims=N_SIMS, seed=0).dydx(["age", "z"])
    same_as(csv, res)
    assert set(csv["outcome"].astype(str)) == {"0", "1", "2"}
    eff = fit.get_margeff(at="overall").margeff  # (variables, outcomes)
    names = list(fit.model.exog_names)
    for _, row in csv.reset_index().iterrows():
        j = names.index(str(row["term"])) - 1  # get_margeff drops the constant
        np.testing.assert_allclose(row["estimate"], eff[j, int(row["outcome"])], atol=1e-8)


def test_ordered_model_in_the_spec(tmp_path):
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    df = _outcomes()
    quantities = ['name = "p"\nkind = "predict"']
    body = spec("ordered", "k ~ age + z + C(g)", *quantities).replace(
        '[inference]', 'distr = "logit"\n\n[inference]', 1
    )
    folder = run(tmp_path, body, df)
    csv = margins(folder, "p")
    fit = OrderedModel.from_formula("k ~ age + z + C(g)", df, distr="logit").fit(
        method="bfgs", disp=0
    )
    res = Margins(fit, n_sims=N_SIMS, seed=0).predict()
    same_as(csv, res)
    # the averaged predicted probabilities are statsmodels' own, one per category
    np.testing.assert_allclose(csv["estimate"], fit.predict().mean(axis=0), rtol=1e-9)
    report = (folder / "report.md").read_text()
    assert "latent distribution" in report and "logit" in report
