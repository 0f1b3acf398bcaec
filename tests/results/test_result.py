"""Intervals and p-values: one route, one adjustment, checked against the draws and statsmodels.

The rule under test (docs/design.md, "Which p-value each route reports"): for every route,
interval kind and adjustment that has an interval, p < 1 − level exactly when the table's
interval excludes 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
import xarray as xr
from scipy import special
from statsmodels.stats.multitest import multipletests

from simmargins import Margins, MarginsResult, MarginsValueError, all_pairwise, classroom_data
from simmargins import pairwise as pairwise_contrast


def _excludes_zero(ci: np.ndarray) -> np.ndarray:
    return np.asarray((ci[:, 0] > 0) | (ci[:, 1] < 0))


def _synthetic(
    draws: np.ndarray,
    estimate: np.ndarray,
    se: np.ndarray,
    *,
    method: str = "simulation",
    interval: str = "percentile",
    level: float = 0.95,
) -> MarginsResult:
    """A result built straight from arrays: draws (draw, label), independent delta errors."""
    s, k = draws.shape
    labels = [f"q{i}" for i in range(k)]
    ds = xr.Dataset(
        {
            "estimate": ("label", estimate),
            "delta_std_err": ("label", se),
            "kappa": ("label", np.zeros(k)),
            "draws": (("draw", "label"), draws),
            "gradient": (("label", "coef"), np.eye(k)),
            "coef_cov": (("coef", "coef_col"), np.diag(se**2)),
        },
        coords={"label": labels, "draw": np.arange(s), "coef": labels, "coef_col": labels},
        attrs={
            "method": method,
            "draws_kind": "bootstrap" if method == "bootstrap" else "simulation",
            "interval": interval,
            "level": level,
            "seed": 0,
            "n_sims": s,
            "nobs": 10,
            "at": "overall",
            "scale": "linear",
            "link": "identity",
        },
    )
    return MarginsResult(ds)


def _tied_draws(seed: int, s: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws on a coarse grid (many exact ties, exact zeros) and estimates near 0."""
    rng = np.random.default_rng(seed)
    centre = rng.choice([-0.3, -0.1, 0.0, 0.1, 0.2, 0.5], k)
    draws = np.round(rng.normal(centre, 0.25, (s, k)), 1)
    if seed % 3 == 0:
        draws[: s // 4, 0] = 0.0  # a block of exact zeros
    estimate = np.round(centre + rng.normal(0, 0.05, k), 2)
    return draws, estimate


# -- the two reported inconsistencies, reproduced ----------------------------------------------
@pytest.fixture(scope="module")
def fair_contrast():
    df = sm.datasets.fair.load_pandas().data
    df["affair"] = (df.affairs > 0).astype(int)
    fit = smf.logit("affair ~ educ + children + C(occupation) + C(rate_marriage)", df).fit(disp=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Margins.response_scale(fit, seed=0).contrasts(
            *pairwise_contrast("rate_marriage", [2.0, 1.0])
        )


def test_simulation_p_value_agrees_with_its_percentile_interval(fair_contrast):
    # before: p = 0.0504 (normal theory) beside the percentile interval (-0.2079, -0.0003)
    row = fair_contrast.to_frame().iloc[0]
    assert row.ci_upper < 0
    assert row.p_value < 0.05
    d = fair_contrast.draws.to_numpy()[:, 0]
    # independently: twice the smaller share of draws on either side of 0, to one draw
    share = 2 * min(np.mean(d <= 0), np.mean(d >= 0))
    assert abs(row.p_value - share) <= 2 / d.size
    # and p is where the percentile interval reaches 0
    p = row.p_value
    assert _excludes_zero(fair_contrast.conf_int(level=1 - p * (1 + 1e-6)))[0]
    assert not _excludes_zero(fair_contrast.conf_int(level=1 - p * (1 - 1e-6)))[0]
    assert fair_contrast.to_frame().attrs["p_value"] == "draws (percentile)"


@pytest.fixture(scope="module")
def school_pairs():
    fit = smf.ols("score ~ age + female + treated + C(school)", classroom_data(seed=4)).fit()
    return Margins.linear_scale(fit, seed=0).contrasts(*all_pairwise("school", list("ABCD")))


def test_sup_t_p_values_sit_beside_the_sup_t_band(school_pairs):
    # before: A - D showed the sup-t p = 0.082 beside its pointwise interval (-2.920, -0.295)
    frame = school_pairs.adjust("sup-t").to_frame()
    row = frame.set_index("label").loc["school=A - school=D"]
    assert 0.05 < row.p_value < 0.1
    assert row.ci_lower < 0 < row.ci_upper
    np.testing.assert_array_equal(
        frame[["ci_lower", "ci_upper"]].to_numpy(), school_pairs.conf_int(kind="simultaneous")
    )
    assert frame.attrs["ci"] == "sup-t simultaneous band"
    # the unadjusted table still shows the pointwise interval and the pointwise p
    plain = school_pairs.to_frame().set_index("label").loc["school=A - school=D"]
    assert plain.ci_upper < 0 and plain.p_value < 0.05


# -- p < 1 − level exactly when the interval excludes 0 ----------------------------------------
LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)


def _levels_to_try(res: MarginsResult, p: np.ndarray, rng: np.random.Generator) -> list[float]:
    """Round levels, random ones, and the adversarial 1 − p and 1 − k/S boundaries."""
    s = res.n_draws
    boundary = [1 - float(x) for x in p if 0 < x < 0.999]
    grid = [1 - k / s for k in (1, 2, 3, s // 20, s // 10) if 0 < 1 - k / s < 1]
    return [*LEVELS, *rng.uniform(0.3, 0.999, 6), *boundary, *grid]


@pytest.mark.parametrize("interval", ["percentile", "basic", "normal"])
@pytest.mark.parametrize("method", ["simulation", "bootstrap", "delta"])
@pytest.mark.parametrize("adjust", ["none", "sup-t", "bonferroni", "sidak"])
def test_p_below_alpha_exactly_when_interval_excludes_zero(interval, method, adjust):
    rng = np.random.default_rng(0)
    for seed in range(12):
        s = int(rng.choice([7, 20, 101, 400]))
        draws, est = _tied_draws(seed, s, 5)
        se = np.std(draws, axis=0, ddof=1) + 0.01
        res = _synthetic(draws, est, se, method=method, interval=interval).adjust(adjust)
        p = res.p_value()
        assert np.all((p >= 0) & (p <= 1))
        for level in _levels_to_try(res, p, rng):
            ci = res.conf_int(level=level, kind="adjusted")
            np.testing.assert_array_equal(
                p < 1 - level, _excludes_zero(ci), err_msg=f"seed {seed}, level {level!r}"
            )


def test_consistency_on_real_results(school_pairs, fair_contrast):
    for res in (school_pairs, fair_contrast):
        for adj in ("none", "sup-t", "bonferroni", "sidak"):
            for interval in ("percentile", "basic", "normal"):
                for method in ("simulation", "delta"):
                    p = res.adjust(adj).p_value(method=method, interval=interval)
                    for level in LEVELS:
                        ci = res.adjust(adj).conf_int(
                            level=level, method=method, interval=interval, kind="adjusted"
                        )
                        np.testing.assert_array_equal(p < 1 - level, _excludes_zero(ci))


# -- each route's p-value and interval, checked independently -------------------------------
def test_percentile_interval_is_numpys_quantile_even_with_ties():
    for seed in range(6):
        draws, est = _tied_draws(seed, 57, 4)
        res = _synthetic(draws, est, np.ones(4))
        for level in LEVELS:
            a = (1 - level) / 2
            q = np.quantile(draws, [a, 1 - a], axis=0).T
            np.testing.assert_allclose(res.conf_int(level=level), q, rtol=1e-12, atol=1e-15)
            basic = res.conf_int(level=level, interval="basic")
            np.testing.assert_allclose(basic, 2 * est[:, None] - q[:, ::-1], atol=1e-14)


def test_normal_theory_p_values_for_delta_and_normal_kinds(school_pairs):
    z = school_pairs.estimate / school_pairs.delta_std_err
    delta = school_pairs.p_value(method="delta")
    np.testing.assert_allclose(delta, 2 * special.ndtr(-np.abs(z)), rtol=1e-12)
    zd = school_pairs.estimate / school_pairs.draws_std_err
    normal = school_pairs.p_value(interval="normal")
    np.testing.assert_allclose(normal, 2 * special.ndtr(-np.abs(zd)), rtol=1e-12)


def test_basic_p_value_is_the_reflected_percentile_one():
    draws, est = _tied_draws(4, 300, 5)
    reflected = _synthetic(2 * est - draws, est, np.ones(5))
    basic = _synthetic(draws, est, np.ones(5), interval="basic")
    np.testing.assert_array_equal(basic.p_value(), reflected.p_value())


@pytest.mark.parametrize("method", ["bonferroni", "sidak", "holm", "fdr_bh"])
def test_adjusted_p_values_are_statsmodels_multipletests(school_pairs, method):
    adj = school_pairs.adjust(method)
    raw = school_pairs.p_value()
    np.testing.assert_array_equal(adj.p_value(), multipletests(raw, method=method)[1])
    np.testing.assert_array_equal(adj.estimate, school_pairs.estimate)
    assert f"P-values adjusted for multiple comparisons: {method}" in adj.summary()


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_bonferroni_and_sidak_intervals_are_percentile_intervals_at_the_adjusted_level(
    school_pairs, level
):
    d = school_pairs.draws.to_numpy()
    m = d.shape[1]
    for method, alpha in (
        ("bonferroni", (1 - level) / m),
        ("sidak", 1 - level ** (1 / m)),
    ):
        res = school_pairs.adjust(method)
        q = np.quantile(d, [alpha / 2, 1 - alpha / 2], axis=0).T
        np.testing.assert_allclose(res.conf_int(level=level, kind="adjusted"), q, rtol=1e-9)
        ci_level = res.with_level(level).inference()["ci_level"]
        np.testing.assert_allclose(ci_level, 1 - alpha, rtol=1e-12)
        np.testing.assert_allclose(school_pairs.conf_int(level=level, kind=method), q, rtol=1e-9)
    # the delta route widens its Wald intervals the same way
    z = special.ndtri(1 - (1 - level) / m / 2)
    wald = school_pairs.adjust("bonferroni").conf_int(level, method="delta", kind="adjusted")
    se = school_pairs.delta_std_err
    np.testing.assert_allclose(wald[:, 1] - school_pairs.estimate, z * se, rtol=1e-9)


def test_methods_without_an_interval_show_none(school_pairs):
    holm = school_pairs.adjust("holm")
    frame = holm.to_frame()
    assert frame[["ci_lower", "ci_upper"]].isna().all().all()
    assert frame.attrs["ci"] == "none" and np.isnan(frame.attrs["ci_level"])
    assert "No interval for holm-adjusted p-values" in holm.summary()
    # the pointwise interval is still there for those who ask for it by name
    np.testing.assert_array_equal(holm.conf_int(), school_pairs.conf_int())


def test_inference_attrs_say_what_each_row_reports(school_pairs):
    attrs = school_pairs.to_frame().attrs
    assert attrs == {
        "route": "simulation",
        "interval": "percentile",
        "p_value": "draws (percentile)",
        "adjust": "none",
        "ci": "percentile interval",
        "ci_level": 0.95,
    }
    bonf = school_pairs.adjust("bonferroni").to_frame().attrs
    assert bonf["p_value"] == "bonferroni-adjusted draws (percentile)"
    assert bonf["ci"] == "percentile interval at the Bonferroni level"
    assert bonf["ci_level"] == pytest.approx(1 - 0.05 / 6, rel=1e-12)


# -- sup-t ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def curve(lmm_ri):
    m = Margins.linear_scale(lmm_ri, seed=3, n_sims=2000)
    return m.predict(atexog={"age": list(range(20, 76, 5)), "female": [0, 1]})


def test_sup_t_band_covers_the_draws_jointly_and_is_wider(curve):
    band = curve.conf_int(kind="simultaneous")
    point = curve.conf_int()
    d = curve.draws.to_numpy()
    inside = np.all((d >= band[:, 0]) & (d <= band[:, 1]), axis=1)
    assert inside.mean() >= curve.level
    # pointwise percentile intervals jointly cover far fewer draws
    inside_pt = np.all((d >= point[:, 0]) & (d <= point[:, 1]), axis=1)
    assert inside_pt.mean() < curve.level
    assert np.all(band[:, 1] - band[:, 0] > point[:, 1] - point[:, 0])
    assert curve.sup_t_critical() > 1.96


@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_sup_t_band_is_a_brute_force_max_t_quantile(school_pairs, level):
    d = school_pairs.draws.to_numpy()
    est, se = school_pairs.estimate, d.std(axis=0, ddof=1)
    t = np.abs((d - est) / se).max(axis=1)
    # the smallest max-|t| draw that fewer than a share 1 − level of the draws exceed
    c = min(x for x in t if np.mean(t > x) < 1 - level)
    assert school_pairs.sup_t_critical(level) == pytest.approx(c, rel=1e-12)
    band = school_pairs.conf_int(level=level, kind="simultaneous")
    np.testing.assert_allclose(band, np.column_stack([est - c * se, est + c * se]), rtol=1e-12)
    # sup-t p-value: the share of max-|t| draws at or above |estimate| / SE
    p = np.array([np.mean(t >= abs(e) / s) for e, s in zip(est, se, strict=True)])
    np.testing.assert_allclose(school_pairs.adjust("sup-t").p_value(), p, atol=1.5 / len(t))


def test_delta_sup_t_matches_the_draw_based_one(curve):
    # identity link: the draws are exactly jointly normal with the delta covariance, so the
    # two critical values agree up to MC error (2000 and 20000 draws: a few percent)
    c_draws = curve.sup_t_critical(method="simulation")
    c_delta = curve.sup_t_critical(method="delta")
    assert c_delta == pytest.approx(c_draws, rel=0.05)
    band = curve.conf_int(kind="simultaneous", method="delta")
    np.testing.assert_allclose(band[:, 1] - curve.estimate, c_delta * curve.delta_std_err)


def test_sup_t_p_values_are_simultaneous(curve):
    adj = curve.adjust("sup-t")
    d = curve.draws.to_numpy()
    se = curve.draws_std_err
    # each label's own |t| is at most the max over labels, so simultaneous p ≥ per-label p
    own = np.array(
        [np.mean(np.abs(d[:, j] - curve.estimate[j]) >= abs(curve.estimate[j]))
         for j in range(d.shape[1])]
    )  # fmt: skip
    assert np.all(adj.p_value() >= own - 1 / d.shape[0])
    with pytest.raises(MarginsValueError, match="method: got 'holmes'"):
        curve.adjust("holmes")
    with pytest.raises(MarginsValueError, match="kind: got 'joint'"):
        curve.conf_int(kind="joint")
    assert se.shape == (d.shape[1],)
