"""Only what a scenario changes is rebuilt (issue 12, item 1).

``CounterfactualData.design`` builds the base design once and rebuilds only the terms whose
factors read a variable the scenario sets or steps; these tests hold it to a full rebuild
through the fit's own formula spec (``full_design``) to 1e-12, for both formula engines and
OLS, GLM and MixedLM fits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels
import statsmodels.api as sm
import statsmodels.formula.api as smf

from simmargins.adapters import adapter_for
from simmargins.engine.design import CounterfactualData, Setting
from simmargins.engine.formula import spec_terms

ENGINES = ["patsy"]
if hasattr(getattr(statsmodels.formula, "options", None), "formula_engine"):
    ENGINES.append("formulaic")

FORMULAS = [
    # interactions of a factor with a numeric and of two numerics, I(), stateful center()
    "y ~ x * C(g) + z:x + I(x**2) + center(z) + h",
    # a B-spline (fit-time knots) and standardize() (fit-time mean and sd)
    "y ~ bs(x, df=4) + standardize(z) + C(g) + h",
    # contrast codings
    "y ~ C(g, Sum) + C(k, Helmert) + x",
    "y ~ C(g, Diff) * x + C(k, Treatment(reference='q3'))",
    "y ~ C(g, Sum):C(k) + x + z",
    # a natural cubic regression spline (patsy's cr, centred) interacting with a factor
    "y ~ cr(z, df=4, constraints='center') + cr(x, df=3):C(k) + h",
    # a factor also read by an expression: its column must reach patsy as it is
    "y ~ C(g) + I(g == 'hi'):x + C(k, levels=['q3', 'q1', 'q2'])",
]


def _raw_rebuild(spec, frame: pd.DataFrame) -> np.ndarray:
    """The whole design straight through the engine, on the frame as it is."""
    if type(spec).__module__.startswith("patsy"):
        return np.asarray(patsy.build_design_matrices([spec], frame, NA_action="raise")[0])
    return np.asarray(spec.get_model_matrix(frame, na_action="raise", output="numpy"))


@pytest.fixture(scope="module")
def frame(ols_frame) -> pd.DataFrame:
    """The shared OLS rows with a 3-level string factor k, a bool h, groups and a 0/1 y."""
    df = ols_frame.rename(columns={"k": "count", "b": "h"})
    df["k"] = np.array(["q1", "q2", "q3"])[df["count"].to_numpy() % 3]
    df["grp"] = np.arange(len(df)) // 10
    df["yb"] = (df["y"] > df["y"].median()).astype(float)
    return df


def _fit(kind: str, formula: str, df: pd.DataFrame, engine: str):
    # statsmodels 0.14 has no statsmodels.formula.options (and patsy is its only engine)
    options = getattr(statsmodels.formula, "options", None)
    old = getattr(options, "formula_engine", None) if engine != "patsy" else None
    if engine != "patsy":
        statsmodels.formula.options.formula_engine = engine
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "ols":
                return smf.ols(formula, df).fit()
            if kind == "glm":
                f = formula.replace("y ~", "yb ~")
                return smf.glm(f, df, family=sm.families.Binomial()).fit()
            return smf.mixedlm(formula, df, groups="grp").fit()
    finally:
        if engine != "patsy":
            statsmodels.formula.options.formula_engine = old


def _settings(cf: CounterfactualData) -> list[Setting]:
    eps = 1e-3
    return [
        Setting(),
        Setting(perturb=("x", eps), clip=True),  # bs() refuses x beyond its knots
        Setting(perturb=("x", -eps), clip=True),
        Setting(perturb=("z", eps)),
        Setting((("x", 0.5),)),
        Setting((("x", 0.5), ("h", True))),
        Setting((("g", "mid"),)),
        Setting((("g", "lo"),), perturb=("x", eps), clip=True),
        Setting((("k", "q2"), ("g", "hi"))),
        Setting((("k", "q1"),), perturb=("z", -eps)),
        Setting((("h", False), ("z", 1.25))),
    ]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["ols", "glm", "mixedlm"])
@pytest.mark.parametrize("formula", FORMULAS)
def test_partial_rebuild_equals_full_rebuild(frame, engine, kind, formula):
    fit = _fit(kind, formula, frame, engine)
    adapter = adapter_for(fit)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    assert cf.spec is not None and spec_terms(cf.spec, list(adapter.data.columns)) is not None
    for base in ({}, {"z": 0.75}, {"g": "mid"}):
        if any(n not in cf.variables for n in base) or any(
            isinstance(v, str) and not cf.variables[n].categorical for n, v in base.items()
        ):
            continue
        cf.base_values = base
        for setting in _settings(cf):
            names = [n for n, _ in setting.values]
            if setting.perturb is not None and setting.perturb[0] in base:
                continue
            if any(n not in cf.variables for n in names):
                continue
            if any(
                isinstance(v, str) and not cf.variables[n].categorical for n, v in setting.values
            ):
                continue  # a column some expression reads as a number cannot be set to a level
            if setting.perturb is not None and setting.perturb[0] not in cf.variables:
                continue
            X, off = cf.design(setting)
            X_full, off_full = cf.full_design(setting)
            X_raw = _raw_rebuild(cf.spec, cf.frame(setting))
            assert X.shape == X_full.shape == X_raw.shape
            np.testing.assert_allclose(X, X_raw, rtol=0, atol=1e-12, err_msg=str(setting))
            np.testing.assert_allclose(X_full, X_raw, rtol=0, atol=1e-12)
            if off_full is not None:
                np.testing.assert_allclose(off, off_full, rtol=0, atol=1e-12)


def test_unchanged_terms_are_not_rebuilt(frame):
    """A grid over x rebuilds only x's terms: the factor's columns come from the base."""
    fit = _fit("ols", "y ~ x + C(g) + z", frame, "patsy")
    adapter = adapter_for(fit)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    cols, values, _ = cf.design_update(Setting((("x", 2.0),)))  # type: ignore[misc]
    assert list(cols) == [adapter.coef_names.index("x")]
    np.testing.assert_array_equal(values[:, 0], 2.0)
    # the categorical column reaches patsy as codes in the fit's levels
    assert isinstance(cf._coded_data()["g"].dtype, pd.CategoricalDtype)
    assert tuple(cf._coded_data()["g"].cat.categories) == ("hi", "lo", "mid")


def test_bs_refusal_still_raises_for_the_stepped_term(frame):
    """needs_clip relies on the rebuilt spline refusing values beyond its knots."""
    fit = _fit("ols", "y ~ bs(x, df=4) + C(g)", frame, "patsy")
    adapter = adapter_for(fit)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    assert cf.needs_clip("x", 1e-3)


def test_array_fits_build_in_full(frame):
    X = sm.add_constant(frame[["x", "z"]])
    fit = sm.OLS(frame["y"], X).fit()
    adapter = adapter_for(fit, training_data=frame)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    assert cf.design_update(Setting((("x", 1.0),))) is None
    X1, _ = cf.design(Setting((("x", 1.0),)))
    np.testing.assert_array_equal(X1, cf.full_design(Setting((("x", 1.0),)))[0])


def test_columns_also_read_by_an_expression_reach_patsy_unchanged(frame):
    from simmargins.engine.formula import patsy_categoricals

    spec = _fit("ols", "y ~ C(g) + I(g == 'hi'):x + C(k) + h", frame, "patsy").model.data
    spec = getattr(spec, "model_spec", None) or spec.design_info
    coded = patsy_categoricals(spec, frame)
    assert coded["g"].dtype == frame["g"].dtype  # I() reads g as strings: left alone
    assert isinstance(coded["k"].dtype, pd.CategoricalDtype)
    assert isinstance(coded["h"].dtype, pd.CategoricalDtype)  # bool, read directly
    assert frame["k"].dtype != coded["k"].dtype  # the caller's frame is not modified


@pytest.mark.parametrize("full_grid", [4096, 4])  # 4: only the combinations present
def test_categorical_terms_from_level_combinations_equal_patsy(full_grid, monkeypatch):
    from simmargins.engine import formula
    from simmargins.engine.formula import build_design

    monkeypatch.setattr(formula, "_FULL_GRID", full_grid)
    n_levels = 5
    rng = np.random.default_rng(full_grid)
    n = 3000
    df = pd.DataFrame(
        {
            "a": rng.choice([f"a{i}" for i in range(n_levels)], n),
            "b": rng.choice([f"b{i}" for i in range(n_levels)], n),
            "t": rng.random(n) > 0.5,
            "x": rng.normal(size=n),
        }
    )
    df["y"] = rng.normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = smf.ols("y ~ C(a, Sum):C(b) + t + C(b):x + x", df).fit().model.data
    spec = getattr(spec, "model_spec", None) or spec.design_info
    np.testing.assert_array_equal(build_design(spec, df), _raw_rebuild(spec, df))
    bad = df.assign(a=df["a"].where(df.index != 7, "zz"))  # a value that is not a level
    with pytest.raises(Exception, match="zz"):
        build_design(spec, bad)


@pytest.mark.parametrize("max_bytes", [64 << 20, 1])  # 1 byte: one setting per batch
def test_one_pass_draws_equal_one_margin_per_setting(frame, max_bytes):
    """Item 3's route (every setting a low-rank update, one kernel pass per batch) equals
    margin_draws on each setting's full rebuild."""
    from simmargins.engine.kernels import margin_draws
    from simmargins.engine.links import LOGIT, LOGIT_LINK
    from simmargins.engine.one_pass import scenario_margin_draws

    fit = _fit("glm", "y ~ x * C(g) + bs(z, df=4) + C(k, Sum) + h", frame, "patsy")
    adapter = adapter_for(fit)
    cf = CounterfactualData(adapter.data, adapter.variables, adapter.design, adapter.offset)
    rng = np.random.default_rng(5)
    B = fit.params.to_numpy() + rng.normal(0, 0.05, (13, len(fit.params)))
    w = rng.uniform(0.5, 2.0, len(frame))
    settings = [
        Setting(),
        Setting(perturb=("x", 1e-3)),
        Setting(perturb=("x", -1e-3)),
        Setting((("g", "mid"),)),
        Setting((("g", "lo"), ("k", "q2"))),
        Setting((("x", 0.25), ("h", True))),
    ]
    got = scenario_margin_draws(cf, settings, w, B, LOGIT_LINK, max_bytes=max_bytes)
    assert got is not None
    for j, setting in enumerate(settings):
        X, off = cf.full_design(setting)
        off = np.zeros(len(frame)) if off is None else off
        want = margin_draws(X, off, w, B, LOGIT)
        np.testing.assert_allclose(got[j], want, rtol=1e-13, atol=1e-15)
    # a clipped step has per-row weights: the caller keeps the setting-by-setting route
    clipped = [Setting(perturb=("z", 1e-3), clip=True)]
    assert scenario_margin_draws(cf, clipped, w, B, LOGIT_LINK) is None
