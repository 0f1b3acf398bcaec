"""Bootstrap refits: faithful, cluster-aware, seeded, parallel-invariant, failure-tolerant."""

from __future__ import annotations

import re
import warnings
from typing import ClassVar

import joblib
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import DeltaMethodWarning, Margins, MarginsValueError, pairwise
from simmargins.adapters import StatsmodelsMixedLMAdapter
from simmargins.resampling import bootstrap as boot
from simmargins.resampling import problem as shared

N_BOOT = 200


@pytest.fixture(scope="module")
def classroom_boot(lmm_ri):
    m = Margins.linear_scale(lmm_ri, method="bootstrap", n_boot=N_BOOT, seed=123, n_jobs=1)
    scen, w = pairwise("treated", [1, 0])
    # the cluster bootstrap and the model-based SE may honestly differ by more than 3× the
    # 5% MC noise of B = 200 (treated=0 does, by 16%): the warning is expected, the 20%
    # bound below is what this test asserts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeltaMethodWarning)
        margins = m.predict(atexog={"treated": [0, 1]})
        contrast = m.contrasts(scenarios=scen, contrasts=w)
    return m, margins, contrast


def test_cluster_bootstrap_ses_match_delta_on_the_classroom_data(classroom_boot):
    m, margins, contrast = classroom_boot
    # an SE from B = 200 replicates has relative MC error 1/sqrt(2·199) ≈ 5%; the 20% bound is
    # four of those (and the two routes estimate slightly different things besides)
    for res in (margins, contrast):
        ratio = res.draws_std_err / res.delta_std_err
        assert np.all(np.abs(ratio - 1) < 0.20), ratio
        assert res.attrs["draws_kind"] == "bootstrap" and res.attrs["n_boot"] == N_BOOT
    assert contrast.estimate[0] == pytest.approx(
        m.adapter.params[m.adapter.coef_names.index("treated")]
    )


def test_one_refit_set_per_session(classroom_boot):
    m, margins, _ = classroom_boot
    first = m.coefficient_draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeltaMethodWarning)
        again = m.dydx("age")
    assert m.coefficient_draws is first
    assert again.n_draws == margins.n_draws
    cd = m.coefficient_draws
    assert {"converged", "optimizer", "seed", "replicate"} <= set(cd.coords)
    assert bool(cd["converged"].all())
    ds = margins.to_dataset()
    assert "boot_optimizer" in ds.coords and ds.attrs["n_failed"] == 0


def test_interval_kinds(classroom_boot):
    _, _, contrast = classroom_boot
    d = contrast.draws.to_numpy()[:, 0]
    est = contrast.estimate[0]
    q = np.quantile(d, [0.025, 0.975])
    np.testing.assert_allclose(contrast.conf_int(interval="percentile")[0], q)
    np.testing.assert_allclose(
        contrast.conf_int(interval="basic")[0], [2 * est - q[1], 2 * est - q[0]]
    )
    sd = np.std(d, ddof=1)
    np.testing.assert_allclose(
        contrast.conf_int(interval="normal")[0],
        [est - 1.959963984540054 * sd, est + 1.959963984540054 * sd],
    )


def _identity_resample(problem, rng):
    n = problem.n_rows
    if problem.clusters is None:
        return np.arange(n), None, None
    order = np.argsort(problem.clusters, kind="stable")
    g = int(problem.clusters.max()) + 1
    return order, problem.clusters[order], np.arange(g)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("spec", ["ri", "rs", "vc"])
def test_refit_reproduces_the_original_fit(classroom, monkeypatch, reml, spec):
    df = classroom.assign(cls=classroom["student"] % 4)
    kwargs = {"rs": {"re_formula": "~age"}, "vc": {"vc_formula": {"c": "0 + C(cls)"}}}.get(spec, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("score ~ age + treated", df, groups="student", **kwargs).fit(reml=reml)
    ad = StatsmodelsMixedLMAdapter(fit)
    problem = ad.refit_problem(ad.group_codes(), warm=True)
    assert problem.fit_kwargs["reml"] is reml
    monkeypatch.setattr(boot, "resample", _identity_resample)
    rep = boot.refit_once(problem, 0, np.random.SeedSequence(0))
    assert rep.error == "" and rep.converged
    if fit.converged:
        np.testing.assert_allclose(rep.params, fit.fe_params.to_numpy(), rtol=1e-4, atol=1e-6)
        assert rep.llf == pytest.approx(fit.llf, rel=1e-6)
    else:
        # statsmodels' default run stopped short (it does on the random-slope model); the
        # fallback chain must reach a strictly better criterion, not the same stopping point
        assert rep.llf > fit.llf + 1.0


def test_cluster_resampling_relabels_repeated_groups():
    codes = np.repeat(np.arange(5), [2, 3, 1, 4, 2])
    problem = shared.RefitProblem(
        model_cls=object, endog=np.zeros(12), exog=np.zeros((12, 1)), row_arrays={},
        init_kwargs={}, fit_kwargs={}, chain=("",), start_params=None,
        fe_positions=np.arange(1), clusters=codes,
    )  # fmt: skip
    rows, labels, picked = boot.resample(problem, np.random.default_rng(3))
    assert len(set(picked)) < len(picked)  # this seed repeats a cluster
    for new_label, old in enumerate(picked):
        got = rows[labels == new_label]
        np.testing.assert_array_equal(np.sort(got), np.flatnonzero(codes == old))
    assert labels.max() == 4


@pytest.fixture(scope="module")
def clustered_ols():
    """y = 1 + 2x + u_g + e with x constant within clusters: rows are far from independent."""
    rng = np.random.default_rng(2024)
    n_g, m = 30, 20
    g = np.repeat(np.arange(n_g), m)
    x = rng.normal(size=n_g)[g]
    y = 1 + 2 * x + rng.normal(0, 2, n_g)[g] + rng.normal(0, 1, n_g * m)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    X = np.column_stack([np.ones(len(x)), x])
    # the exact sampling variance of the OLS slope under this DGP, given the design
    sigma = 4.0 * (g[:, None] == g[None, :]) + 1.0 * np.eye(len(x))
    bread = np.linalg.inv(X.T @ X)
    true_se = float(np.sqrt((bread @ X.T @ sigma @ X @ bread)[1, 1]))
    return smf.ols("y ~ x", df).fit(), true_se


def test_row_bootstrap_understates_clustered_uncertainty(clustered_ols):
    fit, true_se = clustered_ols
    rows = Margins.linear_scale(fit, method="bootstrap", n_boot=300, seed=5, n_jobs=1).dydx("x")
    # the naive OLS covariance ignores the clustering, so the delta SE disagrees with the
    # cluster bootstrap far beyond MC noise — exactly what the warning is for
    with pytest.warns(DeltaMethodWarning, match="that of the bootstrap disagree by"):
        clus = Margins.linear_scale(
            fit, method="bootstrap", n_boot=300, seed=5, n_jobs=1, cluster="g"
        ).dydx("x")
    # MC error of an SE from 300 replicates is ~4%; with 30 clusters the cluster bootstrap
    # itself is biased low by roughly sqrt(29/30), so allow 25% around the truth
    assert rows.draws_std_err[0] < 0.5 * true_se
    assert clus.draws_std_err[0] == pytest.approx(true_se, rel=0.25)
    assert clus.attrs["cluster"] == "g" and rows.attrs["cluster"] == "rows"


def _draws_with(fit, **kwargs):
    m = Margins.linear_scale(fit, method="bootstrap", n_boot=12, seed=99, progress=False, **kwargs)
    draws = m.coefficient_draws
    assert m._boot is not None
    return draws, m._boot.parallel


@pytest.fixture
def fast_goes_parallel(monkeypatch):
    """The fast route runs 12 small replicates in-process unless told that they are slow:
    with no time threshold, everything after the 8 timed replicates goes through joblib."""
    monkeypatch.setattr(boot, "_FAST_PARALLEL_MIN_SECONDS", 0.0)


@pytest.mark.parametrize("refit", ["fast", "statsmodels"])
def test_draws_identical_for_any_n_jobs_and_backend(lmm_ri, fast_goes_parallel, refit):
    serial, where = _draws_with(lmm_ri, n_jobs=1, refit=refit)
    assert where.startswith("in-process"), where
    parallel, where = _draws_with(lmm_ri, n_jobs=2, refit=refit)
    assert where.startswith("joblib loky (n_jobs=2)"), where
    np.testing.assert_array_equal(serial.to_numpy(), parallel.to_numpy())
    np.testing.assert_array_equal(serial["seed"].to_numpy(), parallel["seed"].to_numpy())
    with joblib.parallel_config(backend="threading", n_jobs=2):
        threaded, where = _draws_with(lmm_ri, refit=refit)
    assert where.startswith("joblib threading (n_jobs=2)"), where
    np.testing.assert_array_equal(serial.to_numpy(), threaded.to_numpy())


@pytest.mark.parametrize("refit", ["fast", "statsmodels"])
def test_draws_identical_on_a_dask_cluster(lmm_ri, fast_goes_parallel, refit):
    distributed = pytest.importorskip("distributed")
    serial, _ = _draws_with(lmm_ri, n_jobs=1, refit=refit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask's own start-up chatter (ports, resources)
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster),
            joblib.parallel_config("dask"),
        ):
            remote, where = _draws_with(lmm_ri, n_jobs=2, refit=refit)
    assert where.startswith("joblib dask"), where
    np.testing.assert_array_equal(serial.to_numpy(), remote.to_numpy())


class _Raises:
    """Test double: replicates listed in ``bad`` raise ``error`` inside the worker."""

    def __init__(self, bad: set[int], error: BaseException | None = None):
        self.bad = bad
        self.error = error

    def __call__(self, b: int) -> None:
        if b in self.bad:
            if self.error is not None:
                raise self.error
            raise FloatingPointError(f"injected failure in replicate {b}")


class _FailingAdapter(StatsmodelsMixedLMAdapter):
    bad: ClassVar[set[int]] = set()
    error: ClassVar[BaseException | None] = None

    def refit_problem(self, clusters, warm=True):
        problem = super().refit_problem(clusters, warm)
        problem.fail_hook = _Raises(self.bad, self.error)
        return problem


@pytest.mark.parametrize(
    ("bad", "outcome"), [({3}, "ok"), ({1, 4}, "warn"), ({0, 2, 5, 7}, "error")]
)
def test_failing_replicates_are_counted_not_fatal(lmm_ri, bad, outcome):
    ad = _FailingAdapter(lmm_ri)
    ad.bad = bad
    m = Margins.linear_scale(lmm_ri, adapter=ad, method="bootstrap", n_boot=12, seed=1, n_jobs=1)
    if outcome == "error":
        with pytest.raises(
            MarginsValueError, match=re.escape("4 of 12 bootstrap replicates failed")
        ):
            m.predict()
        return
    if outcome == "warn":
        with pytest.warns(RuntimeWarning, match="2 of 12 bootstrap replicates failed"):
            res = m.predict()
    else:
        m.boot_warn_fail = 0.1  # 1 of 12 is 8.3%: under this threshold, silent
        res = m.predict()
    assert res.n_draws == 12 - len(bad)
    assert res.attrs["n_failed"] == len(bad)
    assert set(m.coefficient_draws["replicate"].values).isdisjoint(bad)


NUMERICAL = [
    np.linalg.LinAlgError("Singular matrix"),
    FloatingPointError("overflow encountered in exp"),
    OverflowError("math range error"),
    ValueError("array must not contain infs or NaNs"),
    ValueError("Matrix is not positive definite"),
]
BUGS = [
    TypeError("fit() got an unexpected keyword argument 'metod'"),
    NameError("name 'exog_re' is not defined"),
    AttributeError("'NoneType' object has no attribute 'cov_re'"),
    KeyError("exog_re"),
    IndexError("index 40 is out of bounds for axis 0 with size 40"),
    AssertionError("invariant broken"),
    ValueError("operands could not be broadcast together with shapes (3,) (4,)"),
]


@pytest.mark.parametrize("error", NUMERICAL, ids=lambda e: f"{type(e).__name__}:{str(e)[:16]}")
@pytest.mark.parametrize("refit", ["fast", "statsmodels"])
def test_numerical_failures_are_counted(lmm_ri, refit, error):
    assert shared.is_numerical_failure(error)
    ad = _FailingAdapter(lmm_ri)
    ad.bad, ad.error = {3}, error
    m = Margins.linear_scale(
        lmm_ri, adapter=ad, method="bootstrap", n_boot=12, seed=1, n_jobs=1, refit=refit
    )
    m.boot_warn_fail = 0.1
    res = m.predict()
    assert res.attrs["n_failed"] == 1 and res.n_draws == 11


@pytest.mark.parametrize("error", BUGS, ids=lambda e: f"{type(e).__name__}:{str(e)[:16]}")
@pytest.mark.parametrize("refit", ["fast", "statsmodels"])
def test_programming_errors_in_a_replicate_raise(lmm_ri, refit, error):
    assert not shared.is_numerical_failure(error)
    ad = _FailingAdapter(lmm_ri)
    ad.bad, ad.error = {3}, error
    m = Margins.linear_scale(
        lmm_ri, adapter=ad, method="bootstrap", n_boot=12, seed=1, n_jobs=1, refit=refit
    )
    with pytest.raises(type(error)) as info:
        m.predict()
    assert any("bootstrap replicate 3" in note for note in getattr(info.value, "__notes__", []))
    assert m._coef_draws is None


def test_a_programming_error_in_a_worker_process_raises(lmm_ri):
    ad = _FailingAdapter(lmm_ri)
    ad.bad, ad.error = {5}, KeyError("exog_re")
    m = Margins.linear_scale(
        lmm_ri, adapter=ad, method="bootstrap", n_boot=8, seed=1, n_jobs=2, refit="statsmodels"
    )
    with pytest.raises(KeyError, match="exog_re"):
        m.predict()


def test_statsmodels_numerical_errors_are_counted():
    from statsmodels.tools.sm_exceptions import MissingDataError, PerfectSeparationError

    assert shared.is_numerical_failure(PerfectSeparationError("Perfect separation detected"))
    assert shared.is_numerical_failure(MissingDataError("exog contains inf or nans"))
    # our own input errors are not numerical trouble of a resample
    assert not shared.is_numerical_failure(MarginsValueError("cluster: bad"))


@pytest.mark.parametrize(("n", "warns"), [(2, True), (11, True), (40, True), (49, True),
                                          (50, False), (400, False)])  # fmt: skip
def test_few_clusters_message(n, warns):
    msg = shared.few_clusters_message(n)
    if not warns:
        assert msg is None
        return
    assert msg is not None
    assert f"over {n} clusters" in msg and "fewer than 50 clusters" in msg
    assert "86.5–91.5%" in msg and "10–40 clusters" in msg and "docs/validation.md" in msg


BAD = [
    ({"n_boot": 1}, MarginsValueError, "n_boot: must be at least 2, got 1"),
    ({"cluster": "klass"}, MarginsValueError, "cluster: 'klass' is not a variable"),
    ({"interval": "bca"}, MarginsValueError, "interval: got 'bca'"),
    ({"n_jobs": 0}, MarginsValueError, "n_jobs: expected a non-zero integer"),
    ({"boot_max_fail": 2}, MarginsValueError, "boot_max_fail: expected a fraction in [0, 1]"),
]


@pytest.mark.parametrize(("kwargs", "err", "msg"), BAD)
def test_bad_bootstrap_arguments(ols_fit, kwargs, err, msg):
    with pytest.raises(err, match=re.escape(msg)):
        Margins(ols_fit, method="bootstrap", **kwargs)


def test_mixedlm_rejects_cluster_and_single_cluster_is_refused(lmm_ri, ols_frame):
    with pytest.raises(
        MarginsValueError, match="MixedLM bootstraps resample the model's own groups"
    ):
        Margins(lmm_ri, method="bootstrap", cluster="school")
    fit = smf.ols("y ~ x", ols_frame.assign(one=1)).fit()
    m = Margins(fit, method="bootstrap", cluster="one", n_boot=5)
    with pytest.raises(MarginsValueError, match="cluster: 'one' has 1 cluster"):
        m.predict()


class _KillsWorker:
    """Test double: replicate 3 kills its worker process outright (as an OOM kill would)."""

    def __call__(self, b: int) -> None:
        if b == 3:
            import os

            os._exit(1)


class _KillingAdapter(StatsmodelsMixedLMAdapter):
    def refit_problem(self, clusters, warm=True):
        problem = super().refit_problem(clusters, warm)
        problem.fail_hook = _KillsWorker()
        return problem


def test_a_killed_worker_fails_clearly_and_returns_nothing(lmm_ri):
    from simmargins import BootstrapError

    ad = _KillingAdapter(lmm_ri)
    # refit="statsmodels": the refits must run in worker processes for one of them to die
    m = Margins.linear_scale(
        lmm_ri, adapter=ad, method="bootstrap", n_boot=8, seed=1, n_jobs=2, refit="statsmodels"
    )
    with pytest.raises(BootstrapError, match="a worker process died during the refits"):
        m.predict()
    assert m._coef_draws is None  # no partial draws were kept as if complete
