"""Pictures: rendered with Agg, checked through the artists they return.

Expected values come from routes independent of the plotting code: closed forms (the
normal density's peak, est ± z·SE), numpy quantiles of the draws, and ``to_frame()``
filtered by hand.
"""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from scipy import stats

from simmargins import (
    Margins,
    MarginsTypeError,
    MarginsValueError,
    PlotArtists,
    plot_curve,
    plot_dist,
    plot_forest,
    reference,
)

Z975 = 1.959963984540054  # the 0.975 standard-normal quantile
AGES = list(range(20, 76, 5))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def session(lmm_ri):
    return Margins.linear_scale(lmm_ri, seed=0)


@pytest.fixture(scope="module")
def curve(session):
    return session.predict(atexog={"age": AGES, "female": [0, 1]})


@pytest.fixture(scope="module")
def schools(session):
    scen, W = reference("school", ["A", "B", "C", "D"], ref_level="A")
    return session.contrasts(scenarios=scen, contrasts=W)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def _is_png(fig) -> bool:
    return _png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def _legend_texts(drawn: PlotArtists) -> list[str]:
    return [t.get_text() for t in drawn.artists["legend"][0].get_texts()]


def _band_edges(poly: PolyCollection, xs: np.ndarray) -> np.ndarray:
    """(lower, upper) of a fill_between band at each x, read off the polygon's vertices."""
    v = np.concatenate([p.vertices for p in poly.get_paths()])
    return np.array([[v[v[:, 0] == x, 1].min(), v[v[:, 0] == x, 1].max()] for x in xs])


# -- plot_dist ----------------------------------------------------------------------------
def test_dist_draws_one_panel_per_label_with_the_delta_curve(schools):
    drawn = plot_dist(schools)
    assert _is_png(drawn.figure)
    assert drawn.keys == tuple(schools.labels)
    assert len(drawn.axes) == 3 and len(drawn.figure.axes) == 3  # spare grid cells removed
    assert [a.get_title() for a in drawn.axes] == schools.labels
    for key in ("density", "interval", "estimate", "delta"):
        assert len(drawn.artists[key]) == 3
    assert all(isinstance(line, Line2D) for line in drawn.artists["density"])
    assert all(isinstance(band, PolyCollection) for band in drawn.artists["interval"])
    for a, band in zip(drawn.axes, drawn.artists["interval"], strict=True):
        assert band in a.collections
        assert len(a.lines) == 3  # density, estimate, delta curve
    assert _legend_texts(drawn) == [
        "draws (KDE)",
        "95% percentile interval",
        "estimate",
        "delta N(est, SE²)",
    ]


def test_dist_delta_curve_peaks_at_the_normal_density_height(schools):
    drawn = plot_dist(schools)
    for i, curve_ in enumerate(drawn.artists["delta"]):
        se, est = schools.delta_std_err[i], schools.estimate[i]
        y, x = curve_.get_ydata(), curve_.get_xdata()
        assert y.max() == pytest.approx(1.0 / (math.sqrt(2.0 * math.pi) * se), rel=1e-12)
        assert x[np.argmax(y)] == pytest.approx(est, abs=1e-12)
        assert curve_.get_linestyle() == "--"
        np.testing.assert_allclose(drawn.artists["estimate"][i].get_xdata(), [est, est])


def test_dist_shades_the_percentile_interval_of_the_draws(schools):
    drawn = plot_dist(schools, level=0.9)
    q = np.quantile(schools.draws.to_numpy(), [0.05, 0.95], axis=0).T
    for band, (lo, hi) in zip(drawn.artists["interval"], q, strict=True):
        xs = np.concatenate([p.vertices[:, 0] for p in band.get_paths()])
        assert xs.min() == pytest.approx(lo, abs=1e-12)
        assert xs.max() == pytest.approx(hi, abs=1e-12)
    assert "90% percentile interval" in _legend_texts(drawn)


def test_dist_histogram_and_label_selection(schools):
    label = schools.labels[1]
    drawn = plot_dist(schools, labels=label, kind="hist")
    assert _is_png(drawn.figure)
    assert drawn.keys == (label,) and len(drawn.axes) == 1
    (patches,) = drawn.artists["density"]
    assert len(patches) >= 1 and patches[0] in drawn.ax.patches
    assert isinstance(drawn.artists["interval"][0], PolyCollection)
    assert "draws (histogram)" in _legend_texts(drawn)


def test_dist_onto_given_axes(schools):
    fig, axes = plt.subplots(1, 3)
    drawn = plot_dist(schools, ax=axes)
    assert drawn.figure is fig and drawn.axes == tuple(axes)
    fig1, ax1 = plt.subplots()
    one = plot_dist(schools, labels=[schools.labels[0]], ax=ax1)
    assert one.figure is fig1 and one.ax is ax1


def test_dist_bad_input(schools):
    _, ax = plt.subplots()
    with pytest.raises(MarginsValueError, match=re.escape("ax: got one Axes for 3 labels")):
        plot_dist(schools, ax=ax)
    with pytest.raises(MarginsValueError, match=re.escape("ax: got 2 Axes for 3 label(s)")):
        plot_dist(schools, ax=[ax, ax])
    with pytest.raises(MarginsValueError, match="did you mean 'school=B - school=A'"):
        plot_dist(schools, labels="school=B-school=A")
    with pytest.raises(MarginsValueError, match=re.escape("kind: got 'density'")):
        plot_dist(schools, kind="density")
    with pytest.raises(MarginsTypeError, match="expected a MarginsResult"):
        plot_dist(schools.to_frame())


# -- plot_forest --------------------------------------------------------------------------
def _segments(drawn: PlotArtists, route: str) -> np.ndarray:
    """Interval segments of one route, shape (row, 2 ends, xy)."""
    return np.asarray(drawn.artists[f"{route}_interval"][0].get_segments())


def test_forest_rows_labels_and_legend(schools):
    drawn = plot_forest(schools)
    assert _is_png(drawn.figure)
    ax = drawn.ax
    assert [t.get_text() for t in ax.get_yticklabels()] == schools.labels
    assert ax.yaxis_inverted()  # first label on top
    assert _legend_texts(drawn) == ["simulation (percentile) 95%", "delta (Wald) 95%"]
    draws_marker = drawn.artists["draws_estimate"][0].get_marker()
    assert draws_marker != drawn.artists["delta_estimate"][0].get_marker()
    np.testing.assert_array_equal(drawn.artists["zero"][0].get_xdata(), [0, 0])


def test_forest_error_bars_are_both_routes_intervals(schools):
    drawn = plot_forest(schools)
    est, se = schools.estimate, schools.delta_std_err
    sim, delta = _segments(drawn, "draws"), _segments(drawn, "delta")
    np.testing.assert_allclose(sim[:, :, 0], schools.conf_int(), rtol=1e-12)
    wald = np.column_stack([est - Z975 * se, est + Z975 * se])
    np.testing.assert_allclose(delta[:, :, 0], wald, rtol=1e-12)
    # same row, slightly apart, each segment horizontal
    rows = np.arange(len(est))
    assert np.all(sim[:, 0, 1] == sim[:, 1, 1]) and np.all(delta[:, 0, 1] == delta[:, 1, 1])
    for seg in (sim, delta):
        assert np.all(np.abs(seg[:, 0, 1] - rows) < 0.25)
    assert np.all(sim[:, 0, 1] != delta[:, 0, 1])
    for route, seg in (("draws", sim), ("delta", delta)):
        pts = drawn.artists[f"{route}_estimate"][0]
        np.testing.assert_array_equal(pts.get_xdata(), est)
        np.testing.assert_array_equal(pts.get_ydata(), seg[:, 0, 1])


def test_forest_level_and_given_axes(schools):
    fig, ax = plt.subplots()
    drawn = plot_forest(schools, level=0.8, ax=ax)
    assert drawn.figure is fig and drawn.ax is ax
    q = np.quantile(schools.draws.to_numpy(), [0.1, 0.9], axis=0).T
    np.testing.assert_allclose(_segments(drawn, "draws")[:, :, 0], q, rtol=1e-12)
    assert _legend_texts(drawn)[1] == "delta (Wald) 80%"


def test_forest_with_delta_headline_still_shows_the_draws(lmm_ri, schools):
    scen, W = reference("school", ["A", "B", "C", "D"], ref_level="A")
    res = Margins.linear_scale(lmm_ri, seed=0, method="delta", n_sims=1000).contrasts(
        scenarios=scen, contrasts=W
    )
    drawn = plot_forest(res)
    q = np.quantile(res.draws.to_numpy(), [0.025, 0.975], axis=0).T
    np.testing.assert_allclose(_segments(drawn, "draws")[:, :, 0], q, rtol=1e-12)


def test_forest_of_a_delta_only_result_shows_its_t_intervals_and_dist_refuses(lmm_ri):
    res = Margins(lmm_ri, method="delta", df="satterthwaite").predict(
        atexog={"treated": [0, 1]}
    )
    assert res.n_draws == 0
    drawn = plot_forest(res)
    assert "draws_interval" not in drawn.artists
    frame = res.to_frame()
    half = stats.t.ppf(0.975, frame["df"]) * frame["std_err"]
    ends = np.column_stack([frame["estimate"] - half, frame["estimate"] + half])
    np.testing.assert_allclose(_segments(drawn, "delta")[:, :, 0], ends, rtol=1e-12)
    assert _legend_texts(drawn) == ["delta (t, satterthwaite df) 95%"]
    with pytest.raises(MarginsValueError, match=r"plot_dist: this result has no draws"):
        plot_dist(res)


# -- plot_curve ---------------------------------------------------------------------------
def test_curve_one_line_per_level_equal_to_the_estimates(curve):
    drawn = plot_curve(curve, x="age", by="female")
    assert _is_png(drawn.figure)
    assert drawn.keys == ("0", "1")
    frame = curve.to_frame()
    for level, line in zip((0, 1), drawn.artists["line"], strict=True):
        sub = frame[frame["female"] == level].sort_values("age")
        np.testing.assert_array_equal(line.get_xdata(), AGES)
        np.testing.assert_array_equal(line.get_ydata(), sub["estimate"].to_numpy())
    assert len(drawn.artists["band"]) == 2
    assert all(b in drawn.ax.collections for b in drawn.artists["band"])
    assert len(drawn.ax.lines) == 2 + 4  # two curves, two dashed sup-t edges each
    assert all(e.get_linestyle() == "--" for e in drawn.artists["sup_t_lower"])
    assert _legend_texts(drawn) == [
        "female=0",
        "female=1",
        "pointwise 95%",
        "simultaneous 95% (sup-t)",
    ]
    assert drawn.ax.get_xlabel() == "age"


def test_curve_pointwise_band_is_the_headline_interval(curve):
    drawn = plot_curve(curve, x="age", by="female")
    frame = curve.to_frame()
    for level, band in zip((0, 1), drawn.artists["band"], strict=True):
        sub = frame[frame["female"] == level].sort_values("age")
        edges = _band_edges(band, np.asarray(AGES, dtype=float))
        np.testing.assert_allclose(edges, sub[["ci_lower", "ci_upper"]].to_numpy(), rtol=1e-12)


def test_curve_sup_t_band_covers_the_draws_jointly_and_is_wider(curve):
    drawn = plot_curve(curve, x="age", by="female")
    frame = curve.to_frame()
    lower = np.empty(len(frame))
    upper = np.empty(len(frame))
    point = np.empty((len(frame), 2))
    for level, lo, hi, band in zip(
        (0, 1),
        drawn.artists["sup_t_lower"],
        drawn.artists["sup_t_upper"],
        drawn.artists["band"],
        strict=True,
    ):
        rows = frame.index[frame["female"] == level][np.argsort(AGES)]
        lower[rows], upper[rows] = lo.get_ydata(), hi.get_ydata()
        point[rows] = _band_edges(band, np.asarray(AGES, dtype=float))
    d = curve.draws.transpose("draw", "label").to_numpy()
    inside = np.all((d >= lower) & (d <= upper), axis=1)
    assert inside.mean() >= curve.level
    assert np.all(upper - lower > point[:, 1] - point[:, 0])
    # the pointwise band alone does not cover the curve jointly at the nominal level
    inside_pt = np.all((d >= point[:, 0]) & (d <= point[:, 1]), axis=1)
    assert inside_pt.mean() < curve.level


def test_curve_without_sup_t_or_by_and_with_categorical_x(session):
    by_age = session.predict(atexog={"age": [30, 50, 70]})
    drawn = plot_curve(by_age, x="age", simultaneous=False)
    assert drawn.keys == ("",) and len(drawn.ax.lines) == 1 and "sup_t_lower" not in drawn.artists
    assert _legend_texts(drawn) == ["prediction", "pointwise 95%"]
    per_school = session.predict(atexog={"school": ["A", "B", "C", "D"], "treated": [0, 1]})
    fig, ax = plt.subplots()
    drawn = plot_curve(per_school, x="school", by="treated", ax=ax)
    assert drawn.figure is fig and _is_png(fig)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C", "D"]
    np.testing.assert_array_equal(drawn.artists["line"][0].get_xdata(), [0, 1, 2, 3])


def test_curve_accepts_other_single_valued_grid_columns(session):
    res = session.predict(atexog={"age": [30, 50], "female": [0, 1], "treated": [1]})
    drawn = plot_curve(res, x="age", by="female")
    assert len(drawn.artists["line"]) == 2


def test_curve_bad_input(session, curve, schools):
    with pytest.raises(
        MarginsValueError, match=re.escape("x: got 'agee'; it must be a grid column")
    ) as err:
        plot_curve(curve, x="agee")
    assert "did you mean 'age'?" in str(err.value)
    with pytest.raises(MarginsValueError, match=re.escape("by: got 'sex'")):
        plot_curve(curve, x="age", by="sex")
    with pytest.raises(MarginsValueError, match="the same column as x"):
        plot_curve(curve, x="age", by="age")
    three = session.predict(atexog={"age": [30, 50], "female": [0, 1], "treated": [0, 1]})
    with pytest.raises(
        MarginsValueError, match=re.escape("grid column(s) 'treated' take several values")
    ):
        plot_curve(three, x="age", by="female")
    with pytest.raises(MarginsValueError, match=re.escape("grid column(s) 'female', 'treated'")):
        plot_curve(three, x="age")
    with pytest.raises(MarginsValueError, match="no grid columns"):
        plot_curve(schools, x="age")
    with pytest.raises(MarginsTypeError, match=re.escape("ax: expected a matplotlib Axes")):
        plot_curve(curve, x="age", by="female", ax="left")


def test_import_simmargins_does_not_import_matplotlib():
    code = "import sys, simmargins; print('matplotlib' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False"]


def test_curve_of_a_conditional_effect_over_its_moderator():
    """The interaction plot: dydx of x with the moderator held at each grid value, drawn
    over the moderator with pointwise and sup-t bands equal to the result's intervals."""
    import pandas as pd
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(8)
    n = 600
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    eta = 0.2 + 0.5 * df["x"] - 0.3 * df["z"] + 0.6 * df["x"] * df["z"]
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    fit = smf.logit("y ~ x * z", df).fit(disp=0)
    zs = [-1.5, -0.5, 0.5, 1.5]
    res = Margins(fit, seed=2, n_sims=400).dydx("x", atexog={"z": zs})
    drawn = plot_curve(res, x="z")
    assert drawn.ax.get_ylabel() == "marginal effect"
    (line,) = drawn.artists["line"]
    np.testing.assert_array_equal(line.get_xdata(), zs)
    np.testing.assert_array_equal(line.get_ydata(), res.estimate)
    edges = _band_edges(drawn.artists["band"][0], np.asarray(zs))
    np.testing.assert_allclose(edges, res.conf_int(), rtol=1e-12)
    band = res.conf_int(kind="simultaneous")
    np.testing.assert_allclose(drawn.artists["sup_t_lower"][0].get_ydata(), band[:, 0])
    np.testing.assert_allclose(drawn.artists["sup_t_upper"][0].get_ydata(), band[:, 1])
