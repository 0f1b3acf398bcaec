"""MNLogit and OrderedModel: one margin per outcome, checked against statsmodels' own
predictions and marginal effects (real data: the 1996 American National Election Study,
party identification on a 7-point scale — nominal for MNLogit, ordered for OrderedModel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.discrete.discrete_margins import _effects_at
from statsmodels.miscmodels.ordinal_model import OrderedModel

import simmargins
from simmargins import DeltaMethodWarning, Margins, MarginsValueError, pairwise
from simmargins.adapters import StatsmodelsMNLogitAdapter, StatsmodelsOrderedModelAdapter

MN_FORMULA = "PID ~ logpopul + selfLR + age + C(college) + income"
OM_FORMULA = "PID ~ logpopul + age + C(college) + income + educ"


class CLogLog(stats.rv_continuous):
    """statsmodels' documented complementary log-log distribution for OrderedModel."""

    def _ppf(self, q):
        return np.log(-np.log(1 - q))

    def _cdf(self, x):
        return 1 - np.exp(-np.exp(x))


@pytest.fixture(scope="session")
def anes() -> pd.DataFrame:
    df = sm.datasets.anes96.load_pandas().data
    return df.assign(college=(df["educ"] >= 6).astype(int))


@pytest.fixture(scope="session")
def mnlogit(anes):
    return smf.mnlogit(MN_FORMULA, anes).fit(disp=0)


@pytest.fixture(scope="session")
def ordered(anes):
    fits = {}
    for name, distr in (("probit", "probit"), ("logit", "logit"), ("cloglog", CLogLog())):
        model = OrderedModel.from_formula(OM_FORMULA, anes, distr=distr)
        fits[name] = model.fit(method="bfgs", disp=0, maxiter=5000)
    return fits


def _mn_predict(fit, params: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """statsmodels' own averaged probabilities at a flat parameter vector."""
    exog = np.asarray(fit.model.exog if frame is None else _exog(fit, frame))
    return fit.model.predict(params.reshape(fit.params.shape, order="F"), exog).mean(axis=0)


def _exog(fit, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(fit.model.data.model_spec.get_design_matrix(frame)
                      if hasattr(fit.model.data.model_spec, "get_design_matrix")
                      else _patsy(fit, frame))  # fmt: skip


def _patsy(fit, frame):
    import patsy

    return patsy.build_design_matrices([fit.model.data.model_spec], frame)[0]


def _num_grad(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    eye = np.eye(theta.size)
    return np.array([(f(theta + h * eye[q]) - f(theta - h * eye[q])) / (2 * h)
                     for q in range(theta.size)]).T  # fmt: skip


def test_mnlogit_adapter_takes_every_equation_aligned_with_cov_params(mnlogit):
    ad = simmargins.adapters.adapter_for(mnlogit)
    assert isinstance(ad, StatsmodelsMNLogitAdapter)
    assert ad.outcomes == tuple(str(j) for j in range(7))
    assert ad.coef_names[:2] == ("PID=1:Intercept", "PID=1:C(college)[T.1]")
    np.testing.assert_array_equal(ad.params, mnlogit.params.to_numpy().ravel(order="F"))
    cov = mnlogit.cov_params()
    assert [(f"PID={e}:{x}") for e, x in cov.index] == list(ad.coef_names)
    v = cov.to_numpy()
    np.testing.assert_array_equal(ad.cov, (v + v.T) / 2)


@pytest.mark.filterwarnings("ignore::simmargins.DeltaMethodWarning")  # κ > 0.3 for rare outcomes
def test_mnlogit_predictions_equal_statsmodels_averages(mnlogit, anes):
    m = Margins(mnlogit, method="delta")
    res = m.predict()
    np.testing.assert_allclose(res.estimate, mnlogit.predict().mean(axis=0), rtol=0, atol=1e-12)
    grid = m.predict(atexog={"selfLR": [2, 6]})
    for r, v in enumerate((2, 6)):
        want = mnlogit.predict(anes.assign(selfLR=v)).to_numpy().mean(axis=0)
        np.testing.assert_allclose(grid.estimate[7 * r : 7 * (r + 1)], want, rtol=0, atol=1e-12)
    frame = grid.to_frame()
    assert list(frame["outcome"][:7]) == list(m.adapter.outcomes)
    assert "outcome=6" in grid.summary()
    # delta SEs of the probabilities against a numerical gradient of statsmodels' predict
    g = _num_grad(lambda t: _mn_predict(mnlogit, t, None), m.adapter.params)
    se = np.sqrt(np.einsum("jp,pq,jq->j", g, m.adapter.cov, g))
    np.testing.assert_allclose(res.to_frame()["delta_std_err"], se, rtol=1e-6)


def test_mnlogit_numeric_ames_equal_get_margeff(mnlogit):
    """AMEs (at='overall') and their delta SEs against statsmodels' get_margeff."""
    res = Margins(mnlogit, method="delta").dydx(["age", "selfLR", "income"])
    me = mnlogit.get_margeff(at="overall", method="dydx")
    rows = [mnlogit.model.exog_names[1:].index(v) for v in ("age", "selfLR", "income")]
    np.testing.assert_allclose(res.estimate, me.margeff[rows].ravel(), rtol=0, atol=1e-8)
    se = res.to_frame()["delta_std_err"].to_numpy()
    np.testing.assert_allclose(se, me.margeff_se[rows].ravel(), rtol=1e-7)


def test_mnlogit_factor_ames_equal_statsmodels_dummy_effects(mnlogit, anes):
    """A 0/1 factor's AME is statsmodels' dummy=True effect. get_margeff(dummy=True) itself
    fails for MNLogit in statsmodels 0.15 when it computes the SEs (a shape error in
    _derivative_predict), so the estimate is taken from the same internal route it uses,
    and the SE from a numerical gradient of statsmodels' predictions."""
    m = Margins(mnlogit, method="delta")
    res = m.dydx("college")
    exog = np.asarray(mnlogit.model.exog)
    col = mnlogit.model.exog_names.index("C(college)[T.1]")
    params = mnlogit.params.to_numpy()
    effects = _effects_at(mnlogit.model._derivative_exog(params, exog, "dydx", [col]), "overall")
    want = effects.reshape(exog.shape[1], 7, order="F")[col]
    np.testing.assert_allclose(res.estimate, want, rtol=0, atol=1e-8)

    def diff(t: np.ndarray) -> np.ndarray:
        one, zero = exog.copy(), exog.copy()
        one[:, col], zero[:, col] = 1.0, 0.0
        p = t.reshape(params.shape, order="F")
        return (mnlogit.model.predict(p, one) - mnlogit.model.predict(p, zero)).mean(axis=0)

    g = _num_grad(diff, m.adapter.params)
    se = np.sqrt(np.einsum("jp,pq,jq->j", g, m.adapter.cov, g))
    np.testing.assert_allclose(res.to_frame()["delta_std_err"], se, rtol=1e-6)


def test_mnlogit_draws_are_statsmodels_predictions_at_each_draw(mnlogit):
    """Every draw of every outcome equals statsmodels' averaged prediction at that draw's
    coefficients; the draws' SD agrees with the delta SE within Monte-Carlo error where κ
    is small."""
    m = Margins(mnlogit, seed=1, n_sims=400)
    res = m.predict()
    B = m.coefficient_draws.to_numpy()
    want = np.array([_mn_predict(mnlogit, b, None) for b in B[:25]])
    np.testing.assert_allclose(res.draws.to_numpy()[:25], want, rtol=0, atol=1e-13)
    frame = res.to_frame()
    calm = frame["kappa"] < 0.1
    assert calm.sum() >= 4
    ratio = frame["draws_std_err"][calm] / frame["delta_std_err"][calm]
    assert np.all(np.abs(ratio - 1) < 4 / np.sqrt(2 * 400))


@pytest.mark.filterwarnings("ignore::simmargins.DeltaMethodWarning")  # κ > 0.3 for rare outcomes
@pytest.mark.parametrize("distr", ["probit", "logit", "cloglog"])
def test_ordered_model_against_its_own_predictions(ordered, anes, distr):
    """Probabilities against fit.predict() averages (1e-12); a numeric AME against a central
    difference of statsmodels' predictions; a factor's AME against predictions with the
    factor set; delta SEs against numerical gradients of those same functions."""
    fit = ordered[distr]
    m = Margins(fit, method="delta")
    assert isinstance(m.adapter, StatsmodelsOrderedModelAdapter)
    assert m.adapter.link.name == f"ordinal {distr}"
    assert m.adapter.outcomes == tuple(str(float(j)) for j in range(7))
    pred = m.predict()
    np.testing.assert_allclose(pred.estimate, fit.predict().mean(axis=0), rtol=0, atol=1e-12)
    exog = np.asarray(fit.model.exog)
    cov, theta = m.adapter.cov, m.adapter.params

    col = fit.model.exog_names.index("age")
    eps = 1e-4 * exog[:, col].std()

    def ame(t: np.ndarray, step: float = eps) -> np.ndarray:
        up, dn = exog.copy(), exog.copy()
        up[:, col] += step
        dn[:, col] -= step
        return (fit.model.predict(t, exog=up) - fit.model.predict(t, exog=dn)).mean(0) / (2 * step)

    res = m.dydx("age")
    np.testing.assert_allclose(res.estimate, ame(theta), rtol=0, atol=1e-9)
    g = _num_grad(lambda t: ame(t, 1e-2 * exog[:, col].std()), theta, 1e-5)
    se = np.sqrt(np.einsum("jp,pq,jq->j", g, cov, g))
    np.testing.assert_allclose(res.to_frame()["delta_std_err"], se, rtol=1e-5)

    dummy = fit.model.exog_names.index("C(college)[T.1]")

    def diff(t: np.ndarray) -> np.ndarray:
        one, zero = exog.copy(), exog.copy()
        one[:, dummy], zero[:, dummy] = 1.0, 0.0
        return (fit.model.predict(t, exog=one) - fit.model.predict(t, exog=zero)).mean(0)

    fac = m.dydx("college")
    np.testing.assert_allclose(fac.estimate, diff(theta), rtol=0, atol=1e-12)
    g = _num_grad(diff, theta)
    se = np.sqrt(np.einsum("jp,pq,jq->j", g, cov, g))
    np.testing.assert_allclose(fac.to_frame()["delta_std_err"], se, rtol=1e-6)


def test_groups_contrasts_ratios_and_at_mean(ordered, anes, tmp_path):
    fit = ordered["logit"]
    m = Margins(fit, seed=3, n_sims=200)
    by = m.predict(by="vote")
    assert by.labels[:2] == ["overall | outcome=0.0, vote=0", "overall | outcome=0.0, vote=1"]
    for v in (0, 1):
        rows = np.flatnonzero(by.to_frame()["vote"].to_numpy() == v)
        want = fit.predict()[anes["vote"].to_numpy() == v].mean(axis=0)
        np.testing.assert_allclose(by.estimate[rows], want, rtol=0, atol=1e-12)
    scen, w = pairwise("college", [1, 0])
    with pytest.warns(DeltaMethodWarning, match="relative curvature"):  # rare outcomes
        con = m.contrasts(scenarios=scen, contrasts=w, comparison="ratio")
    p1 = fit.model.predict(fit.params, exog=_set(fit, "C(college)[T.1]", 1.0)).mean(0)
    p0 = fit.model.predict(fit.params, exog=_set(fit, "C(college)[T.1]", 0.0)).mean(0)
    np.testing.assert_allclose(con.estimate, p1 / p0, rtol=1e-12)
    at_mean = Margins(fit, at="mean", method="delta").predict()
    xbar = np.asarray(fit.model.exog).mean(axis=0)[None, :]
    np.testing.assert_allclose(
        at_mean.estimate, fit.model.predict(fit.params, exog=xbar)[0], rtol=0, atol=1e-14
    )
    path = tmp_path / "ordered.nc"
    con.to_netcdf(path)
    back = simmargins.load(path)
    assert list(back.to_frame()["outcome"]) == list(con.to_frame()["outcome"])
    pd.testing.assert_frame_equal(back.to_frame(), con.to_frame())


def _set(fit, column: str, value: float) -> np.ndarray:
    exog = np.asarray(fit.model.exog).copy()
    exog[:, fit.model.exog_names.index(column)] = value
    return exog


def test_what_multi_outcome_models_refuse(mnlogit, anes):
    with pytest.raises(MarginsValueError, match="scale: a MNLogit has one linear predictor"):
        Margins(mnlogit, scale="linear").predict()
    with pytest.raises(MarginsValueError, match="method: bootstrap refits of a MNLogit"):
        Margins(mnlogit, method="bootstrap", n_boot=5).predict()
    with pytest.raises(MarginsValueError, match="slope: not available for MNLogit"):
        Margins(mnlogit, method="delta").dydx("age", slope="eyex")
    with pytest.raises(MarginsValueError, match="by: 'outcome' names the outcome categories"):
        Margins(mnlogit, method="delta").predict(by="outcome", newdata=anes.assign(outcome=1))

    class Gumbel(stats.rv_continuous):
        def _cdf(self, x):
            return 1 - np.exp(-np.exp(x / 2))

    odd = OrderedModel.from_formula("PID ~ age", anes, distr=Gumbel()).fit(
        method="bfgs", disp=0, maxiter=2000
    )
    with pytest.raises(MarginsValueError, match=r"fit: this OrderedModel's distr \(Gumbel\)"):
        Margins(odd)
