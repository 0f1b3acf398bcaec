"""The summary says what was computed: at, scale, route and interval kind, draws, refits,
failed replicates and any adjustment (issue 10, item 5)."""

from __future__ import annotations

import warnings

import pytest

from simmargins import DeltaMethodWarning, Margins, MarginsResult, pairwise

N_BOOT = 40


@pytest.fixture(scope="module")
def simulation(ols_fit):
    return Margins.linear_scale(ols_fit, seed=4, n_sims=500).dydx(["x", "z"])


@pytest.fixture(scope="module")
def delta(ols_fit):
    return Margins.linear_scale(ols_fit, method="delta", n_sims=1000, at="mean", seed=5).dydx("x")


@pytest.fixture(scope="module")
def bootstrap(ols_fit):
    m = Margins.linear_scale(
        ols_fit, method="bootstrap", n_boot=N_BOOT, seed=6, n_jobs=1, interval="basic",
        at={"k": 3},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeltaMethodWarning)
        return m.contrasts(*pairwise("b", [True, False]))


def test_simulation_summary(simulation):
    text = simulation.summary()
    assert "At: overall (covariates at their observed values, averaged over the rows)" in text
    assert "Scale: linear (link identity)" in text
    assert "Headline: simulation, percentile interval; p-value from the same draws" in text
    assert "Draws: 500 (simulation), seed = 4" in text
    assert "[95% Conf. Int.]" in text and "P>|z|" not in text
    assert "Bootstrap:" not in text and "adjusted" not in text


def test_delta_summary(delta):
    text = delta.summary()
    assert "Margins Result (delta, level=0.95)" in text
    assert "At: mean (one row with the covariates at the design means)" in text
    assert "Headline: delta, Wald interval (estimate ± z·delta SE); p-value 2·Φ(−|z|)" in text
    assert "P>|z|" in text
    assert "Draws: 1000 (simulation, for the cross-check), seed = 5" in text


def test_bootstrap_summary(bootstrap):
    text = bootstrap.summary()
    assert "At: {'k': 3} (fixed for every row; other covariates as observed)" in text
    assert "Headline: bootstrap, basic interval (2·estimate − draw quantiles)" in text
    assert f"Draws: {N_BOOT} (bootstrap), seed = 6" in text
    route = bootstrap.attrs["refit_route"]
    assert (
        f"Bootstrap: {N_BOOT} replicates, 0 failed and excluded; resampling rows; "
        f"refit route {route}"
    ) in text
    assert "Delta-vs-bootstrap disagreement" in text


def test_bootstrap_summary_counts_failed_replicates(bootstrap):
    ds = bootstrap.to_dataset()
    ds.attrs = {**ds.attrs, "n_failed": 3}
    text = MarginsResult(ds).summary()
    assert f"Bootstrap: {N_BOOT} replicates, 3 failed and excluded" in text


def test_summary_tolerates_results_without_the_newer_attrs(simulation):
    ds = simulation.to_dataset()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("at", "scale", "link")}
    text = MarginsResult(ds).summary()
    assert "At: overall" in text and "Scale:" not in text


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("sup-t", "Intervals: sup-t simultaneous band, estimate ± "),
        ("bonferroni", "Intervals: percentile interval at the Bonferroni level, per-comparison "
                       "level 0.975 (same route); p-values adjusted to match."),
        ("sidak", "Intervals: percentile interval at the Šidák level, per-comparison level "
                  "0.974679"),
        ("holm", "No interval for holm-adjusted p-values"),
        ("fdr_bh", "No interval for fdr_bh-adjusted p-values"),
    ],
)  # fmt: skip
def test_summary_names_the_adjustment_and_its_interval(simulation, method, expected):
    text = simulation.adjust(method).summary()
    assert f"P-values adjusted for multiple comparisons: {method}" in text
    assert expected in text
    header = {"sup-t": "Simult. Int.", "bonferroni": "Bonferroni Int.", "sidak": "Šidák Int."}
    assert f"[95% {header.get(method, 'Conf. Int.')}]" in text
    if method in ("holm", "fdr_bh"):
        rows = text.splitlines()[5:7]
        assert all(r.rstrip().endswith("n/a") for r in rows), rows


def test_delta_sup_t_names_its_source(delta):
    text = delta.adjust("sup-t").summary()
    assert "max-|t| distribution of the delta method's joint normal" in text
