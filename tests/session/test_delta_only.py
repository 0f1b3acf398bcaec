"""``Margins(method="delta", n_sims=0)``: the delta method alone, without coefficient draws."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import Margins, MarginsValueError, load


@pytest.fixture(scope="module")
def logit_200k():
    rng = np.random.default_rng(12)
    n = 200_000
    df = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(1, 4)})
    df["g"] = rng.choice([f"l{i:02d}" for i in range(5)], n)
    eta = -0.2 + 0.5 * df["x1"] - 0.3 * df["x2"] + 0.2 * df["x3"] + 0.3 * (df["g"] == "l02")
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return smf.logit("y ~ x1 + x2 + x3 + C(g)", df).fit(disp=0)


def test_delta_only_equals_the_default_delta_result_and_skips_the_draws(logit_200k, capsys):
    names = ["x1", "x2", "x3", "g"]
    Margins(logit_200k, method="delta", n_sims=0).dydx("x1")  # warm-up: imports, kernels
    t0 = time.perf_counter()
    full = Margins(logit_200k, method="delta", n_sims=1000, seed=0).dydx(names)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no degrees-of-freedom or sqrt warnings without draws
        alone = Margins(logit_200k, method="delta", n_sims=0, seed=0).dydx(names)
        frame = alone.to_frame()
        text = alone.summary()
        diag = alone.diagnostics()
    t2 = time.perf_counter()
    with capsys.disabled():
        print(f"\n200,000-row logit, dydx of {names}: delta with 1000 cross-check draws "
              f"{t1 - t0:.2f} s, n_sims=0 {t2 - t1:.2f} s")  # fmt: skip
    assert alone.labels == full.labels
    np.testing.assert_array_equal(alone.estimate, full.estimate)
    np.testing.assert_array_equal(alone.delta_std_err, full.delta_std_err)
    np.testing.assert_array_equal(alone.std_err, full.std_err)
    np.testing.assert_array_equal(alone.conf_int(), full.conf_int())
    np.testing.assert_array_equal(alone.p_value(), full.p_value())
    np.testing.assert_array_equal(alone.kappa, full.kappa)
    assert alone.n_draws == 0 and alone.draws.shape == (0, len(full.labels))
    assert alone.attrs["n_sims"] == 0
    for col in ("draws_std_err", "disagreement"):
        assert frame[col].isna().all()
    assert np.isnan(alone.noise)
    assert diag["asymmetry"].isna().all() and diag["delta_trustworthy"].all()
    assert "no draws (delta only" in text
    assert "disagreement: not computed (no draws)" in text


def test_n_sims_zero_only_with_the_delta_method(logit_200k):
    for method in ("simulation", "bootstrap"):
        with pytest.raises(MarginsValueError, match="only for method='delta'"):
            Margins(logit_200k, method=method, n_sims=0)
    with pytest.raises(MarginsValueError, match="at least 2"):
        Margins(logit_200k, method="delta", n_sims=1)
    with pytest.raises(TypeError):
        Margins(logit_200k, method="delta", n_sims=False)
    # the delta method alone by default (issue 12); the simulation routes draw 1000
    assert Margins(logit_200k, method="delta").n_sims == 0
    assert Margins(logit_200k).n_sims == 1000


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({"x": rng.uniform(1, 3, n), "g": rng.choice(["a", "b", "c"], n)})
    eta = -2.0 + 0.9 * df["x"] + 0.4 * (df["g"] == "b")
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    fit = smf.logit("y ~ x * C(g)", df).fit(disp=0)
    return fit, Margins(fit, method="delta", n_sims=0, seed=1)


def test_the_draws_routes_name_the_missing_draws(small):
    fit, m = small
    res = m.dydx(["x", "g"], by="g")
    for call in (
        lambda: res.conf_int(method="simulation"),
        lambda: res.p_value(method="simulation"),
        lambda: res.conf_int(method="simulation", kind="simultaneous"),
        lambda: res.to_inference_data(),
    ):
        with pytest.raises(MarginsValueError, match=r"needs the draws.*n_sims=0"):
            call()
    # the delta route's own intervals, bands and adjustments work
    band = res.conf_int(kind="simultaneous")
    assert np.all(band[:, 0] < res.estimate) and np.all(res.estimate < band[:, 1])
    assert np.isfinite(res.adjust("holm").p_value()).all()
    assert m.coefficient_draws.shape == (0, len(fit.params))


def test_every_verb_and_netcdf_without_draws(small, tmp_path):
    fit, m = small
    default = Margins(fit, method="delta", seed=1)
    calls = [
        lambda s: s.predict(atexog={"x": [1.5, 2.5]}, by="g"),
        lambda s: s.dydx("g", comparison="ratio"),
        lambda s: s.eyex("x", by="g"),
        lambda s: s.contrasts(shift={"x": 1.0}),
    ]
    for call in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = call(m)
        ref = call(default)
        np.testing.assert_array_equal(res.estimate, ref.estimate)
        np.testing.assert_array_equal(res.std_err, ref.std_err)
        assert res.n_draws == 0
    res = m.dydx(["x", "g"])
    back = load(res.to_netcdf(tmp_path / "delta_only.nc"))
    assert back.n_draws == 0
    pd.testing.assert_frame_equal(back.to_frame(), res.to_frame())
    assert "no draws (delta only" in back.summary()
