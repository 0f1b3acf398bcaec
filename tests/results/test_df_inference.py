"""t-based delta intervals and p-values when a result's Dataset holds ``df`` per label."""

from __future__ import annotations

import numpy as np
import statsmodels.formula.api as smf
from scipy import stats

import simmargins
from simmargins import Margins
from simmargins.adapters.lmm_df import small_sample_df
from simmargins.results.result import MarginsResult


def _with_df(res: MarginsResult, method: str, fit: object) -> MarginsResult:
    """What the session does with df=: SEs and coef_cov from the method, ``df`` per label."""
    ds = res.to_dataset()
    G = ds["gradient"].to_numpy()
    df, cov = small_sample_df(fit, G, method)
    ds["coef_cov"] = (ds["coef_cov"].dims, cov)
    ds["delta_std_err"] = ("label", np.sqrt(np.einsum("lk,kj,lj->l", G, cov, G)))
    ds["df"] = ("label", df)
    ds.attrs["df_method"] = method
    return MarginsResult(ds)


def test_delta_route_uses_t_with_the_datasets_df(tmp_path: object) -> None:
    data = simmargins.sleepstudy_data()
    fit = smf.mixedlm("Reaction ~ Days", data, groups="Subject", re_formula="~Days").fit()
    base = Margins(fit, method="delta").predict(atexog={"Days": [0, 4, 9]})
    assert base.df is None and "df" not in base.to_frame()
    res = _with_df(base, "kenward-roger", fit)
    np.testing.assert_allclose(res.df, 17.0, rtol=1e-9)
    est, se = res.estimate, res.delta_std_err
    q = stats.t.ppf(0.975, res.df)
    np.testing.assert_allclose(res.conf_int(), np.column_stack([est - q * se, est + q * se]))
    p_t = 2 * stats.t.sf(np.abs(est / se), res.df)
    np.testing.assert_allclose(res.p_value(), p_t, rtol=1e-9)
    frame = res.to_frame()
    np.testing.assert_allclose(frame["df"], res.df)
    assert "t with kenward-roger df" in frame.attrs["p_value"]
    # wider than the z interval, and p < 1 − level exactly when the interval excludes 0
    lo, hi = res.with_level(0.999999).conf_int().T
    assert np.all(hi - lo > (base.with_level(0.999999).conf_int() @ [-1, 1]))
    assert np.array_equal(res.p_value() < 1e-6, (lo > 0) | (hi < 0))
    # the variable travels through netCDF
    path = res.to_netcdf(tmp_path / "r.nc")  # type: ignore[operator]
    np.testing.assert_allclose(simmargins.load(path).df, res.df)


def test_infinite_df_is_normal_theory() -> None:
    data = simmargins.sleepstudy_data()
    fit = smf.mixedlm("Reaction ~ Days", data, groups="Subject", re_formula="~Days").fit()
    base = Margins(fit, method="delta").dydx("Days")
    ds = base.to_dataset()
    ds["df"] = ("label", np.full(ds.sizes["label"], np.inf))
    res = MarginsResult(ds)
    np.testing.assert_allclose(res.conf_int(), base.conf_int(), rtol=1e-14)
    np.testing.assert_allclose(res.p_value(), base.p_value(), rtol=1e-12)
