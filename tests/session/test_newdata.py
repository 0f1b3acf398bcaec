"""newdata=: averaging over a population frame other than the fit's rows (post-
stratification), checked against statsmodels' predictions on that frame; the fit's own
data as newdata reproduces the default exactly; bad frames are refused by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import Margins, MarginsTypeError, MarginsValueError, pairwise


@pytest.fixture(scope="module")
def logit_gx():
    rng = np.random.default_rng(21)
    n = 600
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "age": rng.integers(20, 70, n),
            "g": rng.choice(["a", "b", "c"], n),
        }
    )
    eta = -0.4 + 0.7 * df["x"] + 0.02 * (df["age"] - 45) + 0.5 * (df["g"] == "c")
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return df, smf.logit("y ~ x + age + C(g)", df).fit(disp=0)


def _same(a, b):
    np.testing.assert_array_equal(a.estimate, b.estimate)
    np.testing.assert_array_equal(a.delta_std_err, b.delta_std_err)
    np.testing.assert_array_equal(a.draws.to_numpy(), b.draws.to_numpy())
    assert a.labels == b.labels


def test_the_fits_own_data_as_newdata_reproduces_the_default(logit_gx):
    df, fit = logit_gx
    m = Margins(fit, seed=3)
    _same(m.predict(newdata=df), m.predict())
    _same(m.dydx(["x", "g"], newdata=df), m.dydx(["x", "g"]))
    _same(m.dydx("g", by="g", newdata=df), m.dydx("g", by="g"))
    _same(m.eyex("age", newdata=df), m.eyex("age"))
    scen, w = pairwise("g", ["c", "a"])
    _same(m.contrasts(scen, w, newdata=df), m.contrasts(scen, w))
    _same(m.contrasts(shift={"x": 1}, newdata=df), m.contrasts(shift={"x": 1}))
    assert m.predict(newdata=df).attrs["population"] == "newdata (600 rows, equal)"


def test_newdata_with_an_offset_reproduces_the_default(glm_frame, poisson_glm):
    m = Margins(poisson_glm, seed=0)
    frame = glm_frame.assign(offset=np.log(glm_frame["t"]))
    _same(m.dydx(["x1", "g"], newdata=frame), m.dydx(["x1", "g"]))
    with pytest.raises(MarginsValueError, match="newdata: this model was fitted with offset="):
        m.predict(newdata=glm_frame)
    # fixed for every row by at=, no column needed
    fixed = Margins(poisson_glm, seed=0, at={"offset": 0.0}).predict(newdata=glm_frame)
    assert fixed.estimate[0] == pytest.approx(
        poisson_glm.predict(glm_frame, offset=np.zeros(len(glm_frame))).mean(), rel=1e-12
    )


def test_post_stratification_weights_cells_by_their_population_counts(logit_gx):
    _, fit = logit_gx
    cells = pd.DataFrame(
        {
            "g": ["a", "a", "b", "b", "c", "c"],
            "age": [30, 60, 30, 60, 30, 60],
            "x": [0.0, 0.5, -0.5, 0.0, 1.0, 0.2],
            "n": [120.0, 80.0, 50.0, 150.0, 30.0, 70.0],
        }
    )
    n = cells["n"].to_numpy()
    p = fit.predict(cells).to_numpy()
    m = Margins(fit, seed=0)
    assert m.predict(newdata=cells, weights="n").estimate[0] == pytest.approx(
        np.average(p, weights=n), rel=1e-12
    )
    slope = m.dydx("x", newdata=cells, weights="n").estimate[0]
    assert slope == pytest.approx(np.average(fit.params["x"] * p * (1 - p), weights=n), rel=1e-7)
    by_g = m.predict(newdata=cells, weights="n", by="g")
    for j, g in enumerate("abc"):
        mask = (cells["g"] == g).to_numpy()
        assert by_g.estimate[j] == pytest.approx(np.average(p[mask], weights=n[mask]), rel=1e-12)
    # levels compared within the population frame
    pa = np.average(fit.predict(cells.assign(g="a")), weights=n)
    pc = np.average(fit.predict(cells.assign(g="c")), weights=n)
    ratio = m.dydx("g", newdata=cells, weights=n, comparison="ratio").estimate[1]
    assert ratio == pytest.approx(pc / pa, rel=1e-12)
    assert cells["g"].tolist() == ["a", "a", "b", "b", "c", "c"]  # the caller's frame is kept


def test_newdata_categorical_dtypes_and_fixed_columns(logit_gx):
    df, fit = logit_gx
    m = Margins(fit, seed=0)
    cat = df.assign(g=pd.Categorical(df["g"], categories=["c", "b", "a"]))
    _same(m.predict(newdata=cat), m.predict())
    # a variable fixed by at= may be absent from newdata
    fixed = Margins(fit, seed=0, at={"age": 40})
    expected = fit.predict(df.assign(age=40)).mean()
    assert fixed.predict(newdata=df.drop(columns="age")).estimate[0] == pytest.approx(
        expected, rel=1e-12
    )


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda m, d: m.predict(newdata=d.to_dict()), MarginsTypeError, "newdata: expected"),
        (lambda m, d: m.predict(newdata=d.iloc[:0]), MarginsValueError, "newdata: the frame"),
        (
            lambda m, d: m.predict(newdata=d.drop(columns=["x", "g"])),
            MarginsValueError,
            "newdata: missing column\\(s\\) the model uses: 'x', 'g'",
        ),
        (
            lambda m, d: m.predict(newdata=d.assign(g=["a", "zz"] * 300)),
            MarginsValueError,
            "newdata: column 'g' has levels the fit never saw: 'zz'",
        ),
        (
            lambda m, d: m.predict(newdata=d.assign(x="1.0")),
            MarginsTypeError,
            "newdata: column 'x' is numeric in the fit",
        ),
        (
            lambda m, d: m.predict(newdata=d.assign(x=np.where(d["x"] > 2, np.nan, d["x"]))),
            MarginsValueError,
            "newdata: column 'x' has .* missing values",
        ),
        (lambda m, d: m.predict(newdata=d, weights="nope"), MarginsValueError, "weights"),
        (
            lambda m, d: m.predict(newdata=d, weights=np.ones(3)),
            MarginsValueError,
            "weights: expected 600 values",
        ),
        (
            lambda m, d: m.predict(newdata=d, weights=-np.ones(600)),
            MarginsValueError,
            "weights: must be finite",
        ),
        (
            lambda m, d: m.predict(newdata=d, weights="g"),
            MarginsTypeError,
            "weights: column 'g' of newdata must be numeric",
        ),
        (lambda m, d: m.predict(weights="age"), MarginsValueError, "weights: a verb's"),
        (lambda m, d: m.predict(newdata=d, by="nope"), MarginsValueError, "by"),
    ],
)
def test_bad_newdata_names_the_argument(logit_gx, call, error, pattern):
    df, fit = logit_gx
    with pytest.raises(error, match=pattern):
        call(Margins(fit, seed=0, n_sims=20), df)


def test_balanced_and_newdata_are_exclusive(logit_gx):
    df, fit = logit_gx
    with pytest.raises(MarginsValueError, match="newdata: at='balanced'"):
        Margins(fit, seed=0, n_sims=20, at="balanced").predict(newdata=df)
