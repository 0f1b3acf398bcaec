"""GLM adapter: links, offsets and exposure, weights and rows, on both scales.

Every number asserted comes from outside simmargins: statsmodels' own ``predict`` on
counterfactual frames, designs rebuilt here with patsy from the formula text, statsmodels'
inverse links, and delta-method SEs whose gradients are taken by complex step (exact to
rounding) through those closed forms.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.genmod.families import links

from simmargins import Margins, MarginsTypeError, MarginsValueError, pairwise, reference
from simmargins.adapters import (
    ModelAdapter,
    StatsmodelsGLMAdapter,
    adapter_for,
    supported_models,
)
from simmargins.adapters.glm import link_for

LEVELS = "levels=['a', 'b', 'c']"
LOGIT_RHS = f"x1 * C(g, {LEVELS}) + x2"
POISSON_RHS = f"x1 + x2 + C(g, {LEVELS})"
DOMAIN_WARNING = "ignore::statsmodels.tools.sm_exceptions.DomainWarning"


def _exog(rhs: str, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(patsy.dmatrix(rhs, frame), dtype=np.float64)


class Route:
    """Margins of a GLM by hand: patsy designs, statsmodels' link, complex-step gradients."""

    def __init__(self, fit, rhs: str, frame: pd.DataFrame, offset: np.ndarray) -> None:
        self.rhs, self.frame, self.offset = rhs, frame, offset
        self._designs: dict[tuple, np.ndarray] = {}
        self.beta = fit.params.to_numpy()
        self.cov = fit.cov_params().to_numpy()
        self.link = fit.model.family.link
        # the designs built here reproduce statsmodels' own linear predictor
        np.testing.assert_allclose(
            self.design() @ self.beta + offset,
            fit.predict(frame, offset=offset, which="linear"),
            rtol=1e-12,
        )

    def design(self, shift: str | None = None, **settings) -> np.ndarray:
        """The design with ``settings`` applied and, optionally, ``shift`` raised by one."""
        key = (shift, *sorted(settings.items()))
        if key not in self._designs:
            cf = self.frame.assign(**settings)
            if shift is not None:
                cf[shift] = cf[shift] + 1.0
            self._designs[key] = _exog(self.rhs, cf)
        return self._designs[key]

    def margin(self, beta: np.ndarray, scale: str, offset=None, **settings) -> complex:
        off = self.offset if offset is None else offset
        eta = self.design(**settings) @ beta + off
        return np.mean(self.link.inverse(eta) if scale == "response" else eta)

    def slope(self, beta: np.ndarray, scale: str, var: str, offset=None) -> complex:
        """AME of a variable that enters η linearly: mean of h′(η)·∂η/∂v, exactly."""
        ds = (self.design(shift=var) - self.design()) @ beta
        if scale == "linear":
            return np.mean(ds)
        off = self.offset if offset is None else offset
        return np.mean(self.link.inverse_deriv(self.design() @ beta + off) * ds)

    def se(self, f: Callable[[np.ndarray], complex]) -> float:
        h = 1e-30
        grad = np.array([(f(self.beta + 1j * h * e)).imag / h for e in np.eye(self.beta.size)])
        return float(np.sqrt(grad @ self.cov @ grad))


# -- links --------------------------------------------------------------------------------
LINKS = [
    (links.Logit(), (-6.0, 6.0)),
    (links.Probit(), (-4.0, 4.0)),
    (links.Cauchy(), (-5.0, 5.0)),
    (links.Log(), (-3.0, 3.0)),
    (links.CLogLog(), (-3.0, 1.5)),
    (links.LogLog(), (-1.5, 3.0)),
    (links.Identity(), (-3.0, 3.0)),
    (links.InversePower(), (0.2, 3.0)),
    (links.InverseSquared(), (0.2, 3.0)),
    (links.Sqrt(), (0.2, 3.0)),
    (links.Power(1.0 / 3.0), (0.2, 3.0)),
    (links.Power(2.5), (0.2, 3.0)),
    (links.CDFLink(), (-4.0, 4.0)),
]


@pytest.mark.parametrize(("link", "domain"), LINKS, ids=lambda v: type(v).__name__)
def test_inverse_links_and_derivatives_match_statsmodels(link, domain):
    ours = link_for(link)
    eta = np.linspace(*domain, 41)
    np.testing.assert_allclose(ours.h(eta), link.inverse(eta), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ours.dh(eta), link.inverse_deriv(eta), rtol=1e-12, atol=1e-15)
    # statsmodels' generic h″ goes through g″/g′³: it agrees only to 3e-10 in the tails
    np.testing.assert_allclose(ours.d2h(eta), link.inverse_deriv2(eta), rtol=1e-8, atol=1e-12)
    assert ours.is_identity == isinstance(link, links.Identity)


def _family_data(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    x = rng.uniform(0.0, 1.0, n)
    mu = 2.0 + 0.8 * x  # positive for every link below
    if kind == "binary":
        y = (rng.random(n) < 0.3 + 0.4 * x).astype(float)
    elif kind == "count":
        y = rng.poisson(mu).astype(float)
    elif kind == "gamma":
        y = rng.gamma(5.0, mu / 5.0)
    elif kind == "wald":
        y = rng.wald(mu, 20.0)
    else:
        y = mu + rng.normal(0.0, 0.3, n)
    return pd.DataFrame({"x": x, "y": y, "t": rng.uniform(0.5, 2.0, n)})


FAMILIES = [
    ("binary", sm.families.Binomial, links.Logit()),
    ("binary", sm.families.Binomial, links.Probit()),
    ("binary", sm.families.Binomial, links.Cauchy()),
    ("binary", sm.families.Binomial, links.CLogLog()),
    ("binary", sm.families.Binomial, links.LogLog()),
    ("binary", sm.families.Binomial, links.Log()),
    ("count", sm.families.Poisson, links.Log()),
    ("count", sm.families.Poisson, links.Sqrt()),
    ("count", sm.families.Poisson, links.Identity()),
    ("count", sm.families.NegativeBinomial, links.Log(), {"alpha": 0.5}),
    ("count", sm.families.Tweedie, links.Log(), {"var_power": 1.5}),
    ("normal", sm.families.Gaussian, links.Identity()),
    ("normal", sm.families.Gaussian, links.Log()),
    ("normal", sm.families.Gaussian, links.Power(1.0 / 3.0), {"check_link": False}),
    ("gamma", sm.families.Gamma, links.InversePower()),
    ("gamma", sm.families.Gamma, links.Log()),
    ("gamma", sm.families.Gamma, links.Identity()),
    ("wald", sm.families.InverseGaussian, links.InverseSquared()),
    ("wald", sm.families.InverseGaussian, links.Log()),
]


@pytest.mark.filterwarnings(DOMAIN_WARNING)
@pytest.mark.parametrize(
    ("kind", "family", "link", "kwargs"),
    [(*f, {})[:4] for f in FAMILIES],
    ids=[f"{f.__name__}-{type(lk).__name__}" for _, f, lk, *_ in FAMILIES],
)
def test_every_family_and_link_agrees_with_statsmodels_predict(kind, family, link, kwargs):
    df = _family_data(kind)
    fit = smf.glm("y ~ x", df, family=family(link=link, **kwargs)).fit()
    assert isinstance(adapter_for(fit), StatsmodelsGLMAdapter)
    resp = Margins.response_scale(fit, seed=0)
    lin = Margins.linear_scale(fit, seed=0)
    assert resp.predict().estimate[0] == pytest.approx(np.mean(fit.predict(df)), rel=1e-14, abs=0)
    assert lin.predict().estimate[0] == pytest.approx(
        np.mean(fit.predict(df, which="linear")), rel=1e-13, abs=1e-12
    )
    # AME: the derivative of statsmodels' mean prediction, by a central difference here
    h = 1e-4
    up, dn = df.assign(x=df["x"] + h), df.assign(x=df["x"] - h)
    expected = np.mean(np.asarray(fit.predict(up)) - np.asarray(fit.predict(dn))) / (2 * h)
    assert resp.dydx("x").estimate[0] == pytest.approx(expected, rel=1e-7)
    assert lin.dydx("x").estimate[0] == pytest.approx(fit.params["x"], rel=3e-9)
    assert lin.dydx("x").delta_std_err[0] == pytest.approx(fit.bse["x"], rel=3e-10)


# -- logit GLM with an interaction, and Poisson GLM with an offset, on both scales ----------
@pytest.fixture(scope="module")
def logit_route(logit_glm, glm_frame):
    return Route(logit_glm, LOGIT_RHS, glm_frame, np.zeros(len(glm_frame)))


@pytest.fixture(scope="module")
def poisson_route(poisson_glm, glm_frame):
    return Route(poisson_glm, POISSON_RHS, glm_frame, np.log(glm_frame["t"].to_numpy()))


def _session(fit, scale: str, **kwargs) -> Margins:
    return Margins(fit, scale=scale, seed=5, **kwargs)


def _sm_mean(fit, frame: pd.DataFrame, offset: np.ndarray, scale: str) -> float:
    which = "mean" if scale == "response" else "linear"
    return float(np.mean(fit.predict(frame, offset=offset, which=which)))


@pytest.mark.parametrize("scale", ["response", "linear"])
@pytest.mark.parametrize("model", ["logit", "poisson"])
def test_ames_against_closed_forms(model, scale, request):
    fit = request.getfixturevalue(f"{model}_glm")
    route: Route = request.getfixturevalue(f"{model}_route")
    res = _session(fit, scale).dydx(["x1", "x2", "g"])
    assert res.labels == ["x1", "x2", "g=b - g=a", "g=c - g=a"]
    for j, var in enumerate(["x1", "x2"]):

        def ame(b, var=var):
            return route.slope(b, scale, var)

        assert res.estimate[j] == pytest.approx(ame(route.beta).real, rel=3e-9)
        assert res.delta_std_err[j] == pytest.approx(route.se(ame), rel=3e-10)
    for j, lv in enumerate(["b", "c"], start=2):

        def diff(b, lv=lv):
            return route.margin(b, scale, g=lv) - route.margin(b, scale, g="a")

        assert res.estimate[j] == pytest.approx(diff(route.beta).real, rel=1e-13, abs=0)
        assert res.delta_std_err[j] == pytest.approx(route.se(diff), rel=1e-14, abs=0)


@pytest.mark.parametrize("scale", ["response", "linear"])
@pytest.mark.parametrize("model", ["logit", "poisson"])
def test_margins_over_a_grid_against_statsmodels_predict(model, scale, request, glm_frame):
    fit = request.getfixturevalue(f"{model}_glm")
    route: Route = request.getfixturevalue(f"{model}_route")
    res = _session(fit, scale).predict(atexog={"g": ["a", "b", "c"], "x2": [-1.0, 0.0, 1.5]})
    frame = res.to_frame()
    assert len(frame) == 9
    for j, row in enumerate(frame.itertuples()):
        cf = glm_frame.assign(g=row.g, x2=row.x2)
        assert res.estimate[j] == pytest.approx(
            _sm_mean(fit, cf, route.offset, scale), rel=3e-12, abs=0
        )

        def mu(b, g=row.g, x2=row.x2):
            return route.margin(b, scale, g=g, x2=x2)

        assert res.delta_std_err[j] == pytest.approx(route.se(mu), rel=3e-13, abs=0)


@pytest.mark.parametrize("scale", ["response", "linear"])
@pytest.mark.parametrize("model", ["logit", "poisson"])
def test_contrasts_against_statsmodels_predict(model, scale, request, glm_frame):
    fit = request.getfixturevalue(f"{model}_glm")
    route: Route = request.getfixturevalue(f"{model}_route")
    m = _session(fit, scale)
    means = {
        lv: _sm_mean(fit, glm_frame.assign(g=lv), route.offset, scale) for lv in ["a", "b", "c"]
    }
    pairs = {"pairwise": [("c", "b")], "reference": [("b", "a"), ("c", "a")]}
    for kind, scen_w in {
        "pairwise": pairwise("g", ["c", "b"]),
        "reference": reference("g", ["a", "b", "c"], ref_level="a"),
    }.items():
        res = m.contrasts(*scen_w)
        for j, (hi, lo) in enumerate(pairs[kind]):
            assert res.labels[j] == f"g={hi} - g={lo}"
            assert res.estimate[j] == pytest.approx(means[hi] - means[lo], rel=1e-13, abs=0)

            def diff(b, hi=hi, lo=lo):
                return route.margin(b, scale, g=hi) - route.margin(b, scale, g=lo)

            assert res.delta_std_err[j] == pytest.approx(route.se(diff), rel=1e-14, abs=0)


@pytest.mark.parametrize("scale", ["response", "linear"])
@pytest.mark.parametrize("model", ["logit", "poisson"])
def test_simulation_and_delta_agree_within_monte_carlo_error(model, scale, request):
    # the SD of S normal draws has relative SE 1/√(2S); 4 of those bound every row here.
    # Both designs are well conditioned (n = 2000, moderate slopes), so the curvature term,
    # of order κ², stays far below that.
    n_sims = 4000
    fit = request.getfixturevalue(f"{model}_glm")
    m = Margins(fit, scale=scale, n_sims=n_sims, seed=20240)
    scen, w = reference("g", ["a", "b", "c"])
    results = [
        m.dydx(["x1", "x2", "g"]),
        m.predict(atexog={"g": ["a", "b", "c"], "x2": [-1.0, 1.0]}),
        m.contrasts(scen, w),
    ]
    tol = 4.0 / np.sqrt(2 * n_sims)
    for res in results:
        sd = np.asarray(res.draws).std(axis=0, ddof=1)
        np.testing.assert_array_less(np.abs(sd / res.delta_std_err - 1.0), tol)
        if scale == "linear":
            # linear in β, so the draws centre on the estimate up to the MC error of a mean
            # (on the response scale they are off by ½·tr(H V̂), the curvature bias)
            centre = np.asarray(res.draws).mean(axis=0)
            np.testing.assert_array_less(
                np.abs(centre - res.estimate), 4.0 * res.delta_std_err / np.sqrt(n_sims)
            )


# -- offsets and exposure -------------------------------------------------------------------
def test_each_row_keeps_its_offset_and_settings_replace_it(poisson_glm, poisson_route, glm_frame):
    n = len(glm_frame)
    own = poisson_route.offset
    m = Margins.response_scale(poisson_glm, seed=0)
    assert m.predict().estimate[0] == pytest.approx(
        np.mean(poisson_glm.fittedvalues), rel=1e-14, abs=0
    )
    res = m.predict(atexog={"offset": [0.0, np.log(2.0)]})
    for j, o in enumerate([0.0, np.log(2.0)]):
        expected = np.mean(poisson_glm.predict(glm_frame, offset=np.full(n, o)))
        assert res.estimate[j] == pytest.approx(expected, rel=1e-14, abs=0)
    assert res.to_frame()["offset"].tolist() == pytest.approx([0.0, np.log(2.0)])
    # a rate per unit of time: the AME of x1 with the offset set to 0 for every row
    at0 = Margins.response_scale(poisson_glm, at={"offset": 0.0}, seed=0).dydx("x1")
    zero = np.zeros(n)

    def ame0(b):
        return poisson_route.slope(b, "response", "x1", offset=zero)

    assert at0.estimate[0] == pytest.approx(ame0(poisson_route.beta).real, rel=1e-10)
    assert at0.delta_std_err[0] == pytest.approx(poisson_route.se(ame0), rel=3e-10)
    # linear scale, at the means: x̄·β + mean offset
    lin = Margins.linear_scale(poisson_glm, at="mean", seed=0).predict()
    xbar = _exog(POISSON_RHS, glm_frame).mean(axis=0)
    assert lin.estimate[0] == pytest.approx(
        xbar @ poisson_route.beta + own.mean(), rel=1e-14, abs=0
    )


def test_exposure_and_offset_together(glm_frame):
    df = glm_frame
    n = len(df)
    off = 0.1 * df["k"].to_numpy()
    fit = smf.glm(
        "c ~ x1 + x2", df, family=sm.families.Poisson(), exposure=df["t"], offset=off
    ).fit()
    ad = StatsmodelsGLMAdapter(fit)
    assert ad.offset_keys == ("offset", "exposure")
    np.testing.assert_allclose(ad.offset(ad.data), off + np.log(df["t"]), rtol=1e-14)
    m = Margins.response_scale(fit, seed=0)
    assert m.predict().estimate[0] == pytest.approx(np.mean(fit.fittedvalues), rel=1e-14, abs=0)
    res = m.predict(atexog={"exposure": [1.0, 2.0]})
    for j, t in enumerate([1.0, 2.0]):
        expected = np.mean(fit.predict(df, offset=off, exposure=np.full(n, t)))
        assert res.estimate[j] == pytest.approx(expected, rel=1e-14, abs=0)
    both = m.predict(atexog={"exposure": 2.0, "offset": 0.0}).estimate[0]
    assert both == pytest.approx(
        np.mean(fit.predict(df, offset=np.zeros(n), exposure=np.full(n, 2.0))), rel=1e-14, abs=0
    )
    lin = Margins.linear_scale(fit, at={"exposure": 2.0}, seed=0).predict().estimate[0]
    assert lin == pytest.approx(
        np.mean(fit.predict(df, offset=off, exposure=np.full(n, 2.0), which="linear")),
        rel=1e-14,
        abs=0,
    )


def test_exposure_matches_the_equivalent_offset(glm_frame, poisson_glm):
    fit = smf.glm(
        "c ~ x1 + x2 + C(g)", glm_frame, family=sm.families.Poisson(), exposure=glm_frame["t"]
    ).fit()
    # the same model as offset=log(t): statsmodels gives the same coefficients
    np.testing.assert_allclose(fit.params, poisson_glm.params, rtol=1e-14)
    res = Margins.response_scale(fit, seed=0).predict(atexog={"exposure": 1.0})
    expected = np.mean(poisson_glm.predict(glm_frame, offset=np.zeros(len(glm_frame))))
    assert res.estimate[0] == pytest.approx(expected, rel=1e-14, abs=0)


def test_a_variable_named_like_a_reserved_key_stays_a_variable(glm_frame):
    df = glm_frame.assign(exposure=glm_frame["k"] + 1.0)
    off = np.log(df["t"].to_numpy())
    fit = smf.glm("c ~ x1 + exposure", df, family=sm.families.Poisson(), offset=off).fit()
    ad = StatsmodelsGLMAdapter(fit)
    assert ad.offset_keys == ("offset",)
    res = Margins.response_scale(fit, seed=0).predict(atexog={"exposure": 2.0})
    assert res.estimate[0] == pytest.approx(
        np.mean(fit.predict(df.assign(exposure=2.0), offset=off)), rel=1e-14, abs=0
    )


def test_bad_offset_and_exposure_settings(poisson_glm, glm_frame, ols_fit):
    m = Margins.response_scale(poisson_glm, seed=0)
    with pytest.raises(
        MarginsValueError,
        match=re.escape(
            "atexog: 'exposure' sets a model's exposure, but this model was fitted without "
            "exposure= and has no variable named 'exposure'; it has offset=, so set 'offset'"
        ),
    ):
        m.predict(atexog={"exposure": 1.0})
    with pytest.raises(MarginsTypeError, match=re.escape("at: 'offset' must be a number")):
        Margins(poisson_glm, at={"offset": "zero"})
    with pytest.raises(MarginsValueError, match=re.escape("'offset' must be finite, got nan")):
        m.contrasts([{"offset": 0.0}, {"offset": np.nan}], [[1.0, -1.0]])
    with pytest.raises(MarginsValueError, match="fitted without offset="):
        Margins.linear_scale(ols_fit).predict(atexog={"offset": 0.0})
    fit = smf.glm("c ~ x1", glm_frame, family=sm.families.Poisson(), exposure=glm_frame["t"]).fit()
    with pytest.raises(
        MarginsValueError, match=re.escape("'exposure' must be positive and finite, got 0.0")
    ):
        Margins(fit).predict(atexog={"exposure": [1.0, 0.0]})


# -- weights ----------------------------------------------------------------------------------
def test_freq_weights_shape_the_fit_and_weights_shape_the_average(glm_frame):
    df = glm_frame.iloc[:600].reset_index(drop=True)
    f = (np.arange(600) % 3 + 1).astype(float)
    fit = smf.glm("y ~ x1 + x2", df, family=sm.families.Binomial(), freq_weights=f).fit()
    # the same fit on the rows repeated f times
    long = df.loc[df.index.repeat(f.astype(int))].reset_index(drop=True)
    fit_long = smf.glm("y ~ x1 + x2", long, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(fit.params, fit_long.params, rtol=1e-13)

    # by default a row counts f times in the average too (Stata's fweights); equal weights
    # must be asked for
    atexog = {"x2": [0.0, 1.0]}
    default = Margins.response_scale(fit, seed=0).predict(atexog=atexog)
    plain = Margins.response_scale(fit, weights=np.ones(len(df)), seed=0).predict(atexog=atexog)
    weighted = Margins.response_scale(fit, weights=f, seed=0).predict(atexog=atexog)
    np.testing.assert_array_equal(default.estimate, weighted.estimate)
    route = Route(fit, "x1 + x2", df, np.zeros(len(df)))
    for j, x2 in enumerate([0.0, 1.0]):
        p = np.asarray(fit.predict(df.assign(x2=x2)))
        assert plain.estimate[j] == pytest.approx(p.mean(), rel=1e-14, abs=0)
        assert weighted.estimate[j] == pytest.approx(np.average(p, weights=f), rel=1e-14, abs=0)
        # weighting by f is averaging over the repeated rows
        p_long = np.asarray(fit_long.predict(long.assign(x2=x2)))
        assert weighted.estimate[j] == pytest.approx(p_long.mean(), rel=1e-13, abs=0)

        def mu(b, x2=x2):
            return route.margin(b, "response", x2=x2)

        assert plain.delta_std_err[j] == pytest.approx(route.se(mu), rel=1e-14, abs=0)


def test_var_weights_leave_the_average_unweighted(glm_frame):
    df = glm_frame.iloc[:500].reset_index(drop=True)
    vw = np.linspace(0.5, 2.0, len(df))
    fit = smf.glm("c ~ x1", df, family=sm.families.Poisson(), var_weights=vw).fit()
    res = Margins.response_scale(fit, seed=0).predict(atexog={"x1": [0.0, 1.0]})
    for j, x1 in enumerate([0.0, 1.0]):
        assert res.estimate[j] == pytest.approx(
            np.mean(fit.predict(df.assign(x1=x1))), rel=1e-14, abs=0
        )


# -- the adapter itself and bad input ---------------------------------------------------------
def test_protocol_registry_and_design(logit_glm, poisson_glm):
    assert {"GLM", "Logit", "Probit", "Poisson", "NegativeBinomial"} <= set(supported_models())
    for fit in (logit_glm, poisson_glm):
        ad = adapter_for(fit)
        assert isinstance(ad, StatsmodelsGLMAdapter) and isinstance(ad, ModelAdapter)
        np.testing.assert_allclose(ad.design(ad.data), fit.model.exog, rtol=1e-14)
        assert ad.coef_names == tuple(fit.params.index)
        np.testing.assert_allclose(ad.cov, fit.cov_params().to_numpy(), rtol=1e-14)
    assert adapter_for(logit_glm).offset(adapter_for(logit_glm).data) is None
    assert "g" in adapter_for(logit_glm).variables  # the hidden offset column is no variable
    assert "__simmargins_offset__" not in adapter_for(poisson_glm).variables


def test_array_interface(glm_frame):
    X = sm.add_constant(glm_frame[["x1", "x2"]])
    off = np.log(glm_frame["t"])
    fit = sm.GLM(glm_frame["c"], X, family=sm.families.Poisson(), offset=off).fit()
    with pytest.raises(MarginsValueError, match="training_data"):
        Margins(fit)
    m = Margins(fit, adapter=StatsmodelsGLMAdapter(fit, training_data=glm_frame), seed=0)
    assert m.predict().estimate[0] == pytest.approx(np.mean(fit.fittedvalues), rel=1e-14, abs=0)
    ame = m.dydx("x1").estimate[0]
    assert ame == pytest.approx(fit.params["x1"] * np.mean(fit.fittedvalues), rel=3e-10)


class _MyLogit(links.Logit):
    """A link class statsmodels does not ship; a subclass may redefine the inverse."""


class _MyPoisson(sm.families.Poisson):
    """A family defined outside statsmodels (its mean could be anything)."""


@pytest.mark.filterwarnings(DOMAIN_WARNING)
def test_unknown_link_and_family_are_refused(glm_frame):
    df = glm_frame.iloc[:300]
    fit = smf.glm("y ~ x1", df, family=sm.families.Binomial(link=_MyLogit())).fit()
    with pytest.raises(MarginsTypeError) as err:
        Margins(fit)
    msg = str(err.value)
    assert msg.startswith("link: the GLM adapter does not know the")
    assert "_MyLogit link" in msg
    for name in ("Logit", "Probit", "CLogLog", "InverseSquared", "Power(p)"):
        assert name in msg
    fit = smf.glm("c ~ x1", df, family=_MyPoisson()).fit()
    with pytest.raises(
        MarginsTypeError, match=r"family: the GLM adapter does not know .*_MyPoisson"
    ):
        Margins(fit)
    with pytest.raises(TypeError, match="supported families are Binomial, Gamma, Gaussian"):
        StatsmodelsGLMAdapter(fit)


def test_rows_with_missing_values_keep_their_offsets(glm_frame):
    df = glm_frame.copy()
    df.index = np.arange(len(df))[::-1] * 10  # labels unlike positions
    drop = [5, 17, 900]
    df.loc[df.index[drop], "x1"] = np.nan
    off = np.log(df["t"].to_numpy())
    fit = smf.glm("c ~ x1 + C(g)", df, family=sm.families.Poisson(), offset=off).fit()
    assert fit.nobs == len(df) - 3
    m = Margins.response_scale(fit, seed=0)
    assert len(m.adapter.data) == len(df) - 3
    kept = np.delete(off, drop)
    np.testing.assert_allclose(m.adapter.offset(m.adapter.data), kept, rtol=1e-14)
    assert m.predict().estimate[0] == pytest.approx(np.mean(fit.fittedvalues), rel=1e-14, abs=0)
    clean = df.dropna(subset=["x1"])
    res = m.predict(atexog={"offset": 0.0, "g": "b"})
    expected = np.mean(fit.predict(clean.assign(g="b"), offset=np.zeros(len(clean))))
    assert res.estimate[0] == pytest.approx(expected, rel=1e-14, abs=0)
