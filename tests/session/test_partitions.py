"""newdata= as a Dask DataFrame or a Parquet dataset (issue 16, item 1): each partition is
evaluated where it lives and the partial averages are reduced by their weight totals, so
every result equals the in-memory one, for any partitioning and on a LocalCluster of two
worker processes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from simmargins import Margins, MarginsTypeError, MarginsValueError

dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    n = 1500
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g": rng.choice(["a", "b", "c"], n),
            "w": rng.uniform(0.5, 2.0, n),
        }
    )
    eta = 0.3 * df["x"] - 0.2 * df["z"] + 0.5 * (df["g"] == "b") + 0.3 * df["x"] * df["z"]
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    fit = smf.logit("y ~ x * z + C(g)", df).fit(disp=0)
    m = Margins(fit, seed=1, n_sims=200)
    frame = df.sample(900, random_state=2).reset_index(drop=True)
    return m, frame


def _verbs(m, nd):
    return [
        m.predict(atexog={"x": [-1.0, 0.0, 1.0]}, newdata=nd, weights="w", by="g"),
        m.dydx(["x", "z", "g"], newdata=nd, weights="w"),
        m.dydx("g", newdata=nd, comparison="ratio", by="g"),
        m.contrasts(shift={"x": 1.0}, newdata=nd),
    ]


def _same(a, b, m) -> None:
    """Equal to the in-memory result: labels, estimates, delta SEs, κ and draws to 1e-12;
    a numeric AME is (μ⁺ − μ⁻)/2ε, so it is compared as μ⁺ − μ⁻ (a few ulps of μ)."""
    assert a.labels == b.labels and a.attrs["quantity"] == b.attrs["quantity"]
    scale = np.ones(len(a.labels))
    if a.attrs["quantity"] == "dydx":
        for i, term in enumerate(a.to_frame()["term"]):
            if term in ("x", "z"):
                scale[i] = 2.0 * m._cf.fd_step(term)
    for got, want in ((b.estimate, a.estimate), (b.delta_std_err, a.delta_std_err)):
        np.testing.assert_allclose(got * scale, want * scale, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.kappa, a.kappa, rtol=1e-9, atol=1e-12)
    da = a.draws.transpose("draw", "label").to_numpy() * scale
    db = b.draws.transpose("draw", "label").to_numpy() * scale
    np.testing.assert_allclose(db, da, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("npartitions", [1, 4, 13])
def test_any_partitioning_gives_the_in_memory_result(case, npartitions):
    m, frame = case
    ddf = dd.from_pandas(frame, npartitions=npartitions)
    for a, b in zip(_verbs(m, frame), _verbs(m, ddf), strict=True):
        _same(a, b, m)
    assert "partitioned" in b.attrs["population"]


def test_a_parquet_dataset_by_path(case, tmp_path):
    m, frame = case
    path = tmp_path / "population"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask's own pandas deprecation notices
        dd.from_pandas(frame, npartitions=5).to_parquet(path)
    got = m.dydx(["x", "g"], newdata=str(path), weights="w")
    _same(m.dydx(["x", "g"], newdata=frame, weights="w"), got, m)


def test_on_a_local_cluster_of_two_worker_processes(case):
    distributed = pytest.importorskip("distributed")
    m, frame = case
    ddf = dd.from_pandas(frame, npartitions=6)
    want = _verbs(m, frame)[:2]
    with warnings.catch_warnings():
        # distributed's own start-up notices (ports, nanny) are not ours to fail on
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(cluster)
    try:
        got = _verbs(m, ddf)[:2]
        workers = client.run(lambda: __import__("os").getpid())
        assert len(workers) == 2  # the partitions went to the two processes
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()
            cluster.close()
    for a, b in zip(want, got, strict=True):
        _same(a, b, m)


def test_bad_partitioned_frames_name_the_argument(case, tmp_path):
    m, frame = case
    ddf = dd.from_pandas(frame, npartitions=3)
    with pytest.raises(MarginsValueError, match=r"newdata: .*does not exist"):
        m.predict(newdata=str(tmp_path / "nowhere.parquet"))
    with pytest.raises(MarginsTypeError, match="weights: with a partitioned newdata"):
        m.predict(newdata=ddf, weights=np.ones(len(frame)))
    with pytest.raises(MarginsValueError, match="missing column"):
        m.predict(newdata=ddf.drop(columns=["z"]))
    # a level the fit never saw, in the last partition only: found where it is evaluated
    bad = frame.copy()
    bad.loc[len(bad) - 1, "g"] = "zz"
    with pytest.raises(MarginsValueError, match="zz"):
        m.predict(newdata=dd.from_pandas(bad, npartitions=3))
    at_mean = Margins(m.adapter.fit, at="mean")
    with pytest.raises(MarginsValueError, match="at='mean'"):
        at_mean.predict(newdata=ddf)


def test_the_session_pieces_pickle_for_the_workers(case):
    """patsy's DesignInfo refuses pickling: the adapter and the counterfactual rows drop it
    and take it from the unpickled fit again, with the same designs after."""
    import pickle

    from simmargins.engine.design import Setting

    m, _ = case
    cf = pickle.loads(pickle.dumps(m._cf))
    assert type(cf.design_fn.__self__) is type(m.adapter)
    for setting in (Setting(), Setting((("g", "b"),), perturb=("x", 1e-3))):
        np.testing.assert_array_equal(cf.design(setting)[0], m._cf.design(setting)[0])
        assert cf.scenario_update(setting) is not None  # the spec is read by term again
