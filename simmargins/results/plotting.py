"""Pictures of a MarginsResult: draw distributions, forest plots and curves over a grid.

Presentation only: intervals come from :meth:`MarginsResult.conf_int`, draws from
:attr:`MarginsResult.draws`, estimates and delta SEs from the result. The one thing
computed here is display smoothing (a Gaussian KDE or histogram of the draws). What the
three functions share (:class:`PlotArtists`, which they return, the checks of their
arguments and the setup of their axes) is in :mod:`.plot_common`.

matplotlib is drawn on directly rather than through arviz: arviz 0.x (``az.plot_*``) and
arviz 1.x (``arviz_plots``' PlotCollection) have incompatible plotting APIs, and drawing
directly lets every function return the exact artists it made. For arviz's own plots use
``az.plot_posterior(res.to_inference_data())``.

matplotlib (and scipy.stats) are imported inside the functions so ``import simmargins``
stays light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import check_choice
from .plot_common import (
    PlotArtists,
    _check_grid,
    _check_labels,
    _check_result,
    _dist_axes,
    _draws_method,
    _level,
    _new_axes,
    _pct,
    _quantity,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .result import MarginsResult

_SQRT_2PI = math.sqrt(2.0 * math.pi)
_NORMAL_HALF_WIDTH = 4.5  # the delta curve spans estimate ± 4.5 delta SEs
_FOREST_OFFSET = 0.12  # vertical offset between the two routes' rows in plot_forest


# -- plot_dist --------------------------------------------------------------------------
def _normal_curve(est: float, se: float) -> tuple[np.ndarray, np.ndarray]:
    # an odd number of points symmetric about est puts the peak exactly at the estimate
    x = est + se * np.linspace(-_NORMAL_HALF_WIDTH, _NORMAL_HALF_WIDTH, 401)
    z = (x - est) / se
    return x, np.exp(-0.5 * z**2) / (_SQRT_2PI * se)


def plot_dist(
    res: MarginsResult,
    labels: str | Sequence[str] | None = None,
    *,
    kind: str = "kde",
    level: float | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> PlotArtists:
    """The draw distribution of each label with the delta method's normal curve over it.

    For each label: the density of the draws (a Gaussian KDE, or a histogram), the
    percentile interval of the draws shaded under it, the point estimate μ(β̂) as a
    vertical line, and the delta method's N(estimate, delta SE²) as a dashed curve. Where
    the two routes agree the dashed curve lies on the density — the cross-check at a
    glance.

    Parameters
    ----------
    res : MarginsResult
        The result to draw.
    labels : str or sequence of str, optional
        The labels to draw (default: all), one panel each.
    kind : {"kde", "hist"}
        Gaussian kernel density estimate or density-scaled histogram of the draws.
    level : float, optional
        Level of the percentile interval (default: the result's level).
    ax : Axes or sequence of Axes, optional
        Where to draw: one Axes for one label, or one Axes per label. By default a new
        figure of small multiples (up to three columns). One Axes for several labels
        raises :class:`MarginsValueError`.

    Returns
    -------
    PlotArtists
        ``axes`` has one panel per label and ``keys`` the labels. ``artists`` holds,
        one entry per label: ``"density"`` (the KDE's ``Line2D``, or the histogram's
        patches), ``"interval"`` (the shaded ``PolyCollection``), ``"estimate"`` (the
        vertical ``Line2D``) and ``"delta"`` (the normal curve's ``Line2D``; ``None``
        when the delta SE is zero); ``"legend"`` holds the legend (the figure's, below
        the panels, when ``ax`` is None; else the first panel's). A label
        whose draws have no spread gets ``None`` for ``"density"`` and ``"interval"``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import statsmodels.formula.api as smf
    >>> from simmargins import Margins, classroom_data, plot_dist
    >>> fit = smf.ols("score ~ age + female + treated", classroom_data(seed=42)).fit()
    >>> res = Margins.linear_scale(fit, seed=0).predict(atexog={"treated": [0, 1]})
    >>> drawn = plot_dist(res)
    >>> len(drawn.axes), drawn.keys
    (2, ('treated=0', 'treated=1'))
    >>> plt.close(drawn.figure)
    """
    res = _check_result(res, "plot_dist")
    if res.n_draws == 0:
        raise MarginsValueError(
            "plot_dist: this result has no draws to draw (it comes from Margins(method="
            "'delta') without n_sims, the delta method alone); plot_forest or plot_curve "
            "show its delta intervals, or pass n_sims >= 2 to the session for draws"
        )
    check_choice("kind", kind, ("kde", "hist"))
    chosen = _check_labels(res, labels)
    lev = _level(res, level)
    fig, axes = _dist_axes(len(chosen), ax)

    index = {lab: i for i, lab in enumerate(res.labels)}
    draws = res.draws.transpose("draw", "label").to_numpy()
    ci = res.conf_int(lev, method=_draws_method(res), interval="percentile")
    est_all, dse_all = res.estimate, res.delta_std_err

    out: dict[str, list[Any]] = {"density": [], "interval": [], "estimate": [], "delta": []}
    for lab, a in zip(chosen, axes, strict=True):
        i = index[lab]
        d, est, dse = draws[:, i], float(est_all[i]), float(dse_all[i])
        lo, hi = (float(v) for v in ci[i])
        density, band = _draw_density(a, d, lo, hi, est, dse, kind, lev)
        out["density"].append(density)
        out["interval"].append(band)
        out["estimate"].append(a.axvline(est, color="black", lw=1.2, label="estimate"))
        if dse > 0 and np.isfinite(dse):
            x, y = _normal_curve(est, dse)
            (curve,) = a.plot(x, y, color="C3", ls="--", lw=1.2, label="delta N(est, SE²)")
            out["delta"].append(curve)
        else:
            out["delta"].append(None)
        a.set_title(lab, fontsize="medium")
        a.set_ylim(bottom=0)
    for a in axes:
        spec = a.get_subplotspec()
        if a is axes[0] or (spec is not None and spec.is_first_col()):
            a.set_ylabel("density")
    if ax is None:
        # one legend for all panels, below them, so it never hides a density
        handles, texts = axes[0].get_legend_handles_labels()
        legend = fig.legend(
            handles, texts, loc="outside lower center", ncols=4, fontsize="small", frameon=False
        )
    else:
        legend = axes[0].legend(fontsize="small", frameon=False)
    out["legend"] = [legend]
    return PlotArtists(fig, tuple(axes), out, tuple(chosen))


def _draw_density(
    a: Axes, d: np.ndarray, lo: float, hi: float, est: float, dse: float, kind: str, lev: float
) -> tuple[Any, Any]:
    """Draw the draws' density and shade the interval under it; (None, None) if no spread."""
    if not np.ptp(d) > 0:
        return None, None
    shade: dict[str, Any] = {
        "color": "C0",
        "alpha": 0.3,
        "lw": 0,
        "label": f"{_pct(lev)} percentile interval",
    }
    if kind == "hist":
        heights, edges, patches = a.hist(
            d, bins="auto", density=True, histtype="stepfilled", color="C0", alpha=0.35,
            label="draws (histogram)",
        )  # fmt: skip
        inner = edges[(edges > lo) & (edges < hi)]
        xs = np.concatenate([[lo], inner, [hi]])
        bin_of = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, len(heights) - 1)
        band = a.fill_between(xs, heights[bin_of], step="post", **shade)
        return patches, band

    from scipy.stats import gaussian_kde

    kde = gaussian_kde(d)
    span = [d.min(), d.max()]
    if dse > 0 and np.isfinite(dse):
        span += [est - _NORMAL_HALF_WIDTH * dse, est + _NORMAL_HALF_WIDTH * dse]
    xs = np.linspace(min(span), max(span), 512)
    (line,) = a.plot(xs, kde(xs), color="C0", lw=1.5, label="draws (KDE)")
    inside = np.concatenate([[lo], xs[(xs > lo) & (xs < hi)], [hi]])
    band = a.fill_between(inside, kde(inside), **shade)
    return line, band


# -- plot_forest ------------------------------------------------------------------------
def _wald(res: MarginsResult) -> str:
    """The delta interval's kind: Wald (normal) or t with the result's small-sample df."""
    df_method = res.attrs.get("df_method")
    return f"t, {df_method} df" if df_method and df_method != "asymptotic" else "Wald"


def plot_forest(
    res: MarginsResult, *, level: float | None = None, ax: Axes | None = None
) -> PlotArtists:
    """Estimates with intervals from both routes, one row per label, first label on top.

    Each row shows the estimate twice, slightly offset: with the draws' interval (the
    result's headline interval, e.g. the simulation percentile interval) and with the
    delta method's Wald interval, so that a disagreement between the routes shows as
    bars of different length or asymmetry. A result without draws (the delta method
    alone) shows the delta interval only. A vertical line marks zero.

    Parameters
    ----------
    res : MarginsResult
        The result to draw.
    level : float, optional
        Level of both intervals (default: the result's level).
    ax : Axes, optional
        Where to draw; by default a new figure sized to the number of labels.

    Returns
    -------
    PlotArtists
        ``keys`` are the labels, top to bottom. For each route, ``"draws"`` and
        ``"delta"``, one artist draws all rows: ``artists["<route>_interval"]`` holds the
        ``LineCollection`` of interval segments and ``artists["<route>_estimate"]`` the
        ``Line2D`` of estimate markers, both in label order (no ``"draws"`` entries for a
        result without draws); ``"zero"`` holds the zero line and ``"legend"`` the legend.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import statsmodels.formula.api as smf
    >>> from simmargins import Margins, classroom_data, plot_forest, reference
    >>> fit = smf.ols("score ~ age + C(school)", classroom_data(seed=42)).fit()
    >>> scen, W = reference("school", ["A", "B", "C", "D"], ref_level="A")
    >>> res = Margins.linear_scale(fit, seed=0).contrasts(scenarios=scen, contrasts=W)
    >>> drawn = plot_forest(res)
    >>> [t.get_text() for t in drawn.ax.get_yticklabels()] == res.labels
    True
    >>> plt.close(drawn.figure)
    """
    res = _check_result(res, "plot_forest")
    lev = _level(res, level)
    labels = res.labels
    n = len(labels)
    fig, a = _new_axes(ax, (6.0, 1.2 + 0.45 * n))

    est = res.estimate
    how = _draws_method(res)
    rows = np.arange(n, dtype=float)
    delta_only = res.n_draws == 0
    routes = (
        ("draws", None if delta_only else res.conf_int(lev, method=how), -_FOREST_OFFSET,
         "o", "C0", f"{how} ({res.interval}) {_pct(lev)}"),
        ("delta", res.conf_int(lev, method="delta"), 0.0 if delta_only else _FOREST_OFFSET,
         "s", "C3", f"delta ({_wald(res)}) {_pct(lev)}"),
    )  # fmt: skip
    out: dict[str, list[Any]] = {}
    handles: list[Any] = []
    texts: list[str] = []
    for key, ci, offset, marker, color, text in routes:
        if ci is None:
            continue
        # segments and markers drawn apart (not errorbar): a percentile interval need not
        # contain the estimate, and errorbar cannot draw one that does not
        y = rows + offset
        segs = a.hlines(y, ci[:, 0], ci[:, 1], color=color, lw=1.6)
        (pts,) = a.plot(est, y, marker, color=color, ms=5, ls="none")
        out[f"{key}_interval"], out[f"{key}_estimate"] = [segs], [pts]
        handles.append((segs, pts))
        texts.append(text)
    out["zero"] = [a.axvline(0.0, color="grey", lw=0.8, zorder=0)]
    a.set_yticks(rows, labels)
    a.set_ylim(n - 0.5, -0.5)  # inverted: the first label on top
    a.set_xlabel(_quantity(res))
    out["legend"] = [
        a.legend(
            handles,
            texts,
            fontsize="small",
            frameon=False,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=2,
        )
    ]
    return PlotArtists(fig, (a,), out, tuple(labels))


# -- plot_curve -------------------------------------------------------------------------
def plot_curve(
    res: MarginsResult,
    x: str,
    by: str | None = None,
    *,
    simultaneous: bool = True,
    level: float | None = None,
    ax: Axes | None = None,
) -> PlotArtists:
    """Predictions over a grid: one line per level of ``by``, with pointwise and sup-t bands.

    The line is the estimate at each grid point, the shaded band the headline pointwise
    interval (:meth:`MarginsResult.conf_int`), and with ``simultaneous`` the dashed lines
    are the sup-t band (``conf_int(kind="simultaneous")``), which covers the whole result
    jointly at ``level``: wider than the pointwise band.

    Parameters
    ----------
    res : MarginsResult
        A result over a grid, e.g. ``m.predict(atexog={"age": [...], "female": [0, 1]})``.
    x : str
        The grid column along the horizontal axis. Non-numeric values are placed at
        equally spaced positions in order of appearance.
    by : str, optional
        Another grid column: one line per level, in order of appearance. Every other
        grid column must hold a single value, or :class:`MarginsValueError` names it.
    simultaneous : bool
        Also draw the sup-t band (dashed lines).
    level : float, optional
        Level of both bands (default: the result's level).
    ax : Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    PlotArtists
        ``keys`` are the levels of ``by`` as text (``("",)`` without ``by``). One entry per
        level in ``artists["line"]`` (``Line2D``), ``"band"`` (the pointwise
        ``PolyCollection``) and, with ``simultaneous``, ``"sup_t_lower"`` and
        ``"sup_t_upper"`` (dashed ``Line2D``); ``"legend"`` holds the legend, whose
        entries are the levels then the two band kinds.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import statsmodels.formula.api as smf
    >>> from simmargins import Margins, classroom_data, plot_curve
    >>> fit = smf.ols("score ~ age + female + treated", classroom_data(seed=42)).fit()
    >>> res = Margins.linear_scale(fit, seed=0).predict(
    ...     atexog={"age": [20, 40, 60], "female": [0, 1]}
    ... )
    >>> drawn = plot_curve(res, x="age", by="female")
    >>> drawn.keys, len(drawn.artists["band"])
    (('0', '1'), 2)
    >>> plt.close(drawn.figure)
    """
    res = _check_result(res, "plot_curve")
    _check_grid(res, x, by)
    if not isinstance(simultaneous, (bool, np.bool_)):
        raise MarginsTypeError(
            f"simultaneous: expected True or False, got {type(simultaneous).__name__}"
        )
    lev = _level(res, level)
    frame = res.to_frame()
    fixed = [c for c in res.grid_columns if c not in (x, by)]
    varying = [c for c in fixed if frame[c].nunique(dropna=False) > 1]
    if varying:
        raise MarginsValueError(
            "plot_curve: grid column(s) "
            + ", ".join(repr(c) for c in varying)
            + f" take several values but are neither x={x!r} nor by={by!r}; pass one as by=, "
            "or predict with a single value for them"
        )

    fig, a = _new_axes(ax, (6.0, 4.0))
    est = res.estimate
    point = res.conf_int(lev)
    band = res.conf_int(lev, kind="simultaneous") if simultaneous else None

    xvals = frame[x].to_numpy()
    numeric = np.issubdtype(xvals.dtype, np.number) or xvals.dtype == bool
    if numeric:
        xpos = xvals.astype(float)
    else:
        order = list(dict.fromkeys(xvals.tolist()))
        xpos = np.array([order.index(v) for v in xvals.tolist()], dtype=float)
        a.set_xticks(range(len(order)), [str(v) for v in order])

    if by is None:
        groups: list[tuple[str, np.ndarray]] = [("", np.arange(len(frame)))]
    else:
        byvals = frame[by].to_numpy()
        groups = [
            (str(level_), np.flatnonzero(byvals == level_))
            for level_ in dict.fromkeys(byvals.tolist())
        ]

    out: dict[str, list[Any]] = {"line": [], "band": []}
    if simultaneous:
        out["sup_t_lower"], out["sup_t_upper"] = [], []
    for name, rows in groups:
        rows = rows[np.argsort(xpos[rows], kind="stable")]
        xs = xpos[rows]
        text = f"{by}={name}" if by is not None else _quantity(res)
        (line,) = a.plot(xs, est[rows], lw=1.8, label=text)
        color = line.get_color()
        out["line"].append(line)
        out["band"].append(
            a.fill_between(xs, point[rows, 0], point[rows, 1], color=color, alpha=0.2, lw=0)
        )
        if band is not None:
            for key, col in (("sup_t_lower", 0), ("sup_t_upper", 1)):
                (edge,) = a.plot(xs, band[rows, col], color=color, ls="--", lw=0.9)
                out[key].append(edge)

    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, texts = a.get_legend_handles_labels()
    handles.append(Patch(facecolor="grey", alpha=0.3, lw=0))
    texts.append(f"pointwise {_pct(lev)}")
    if simultaneous:
        handles.append(Line2D([], [], color="grey", ls="--", lw=0.9))
        texts.append(f"simultaneous {_pct(lev)} (sup-t)")
    out["legend"] = [a.legend(handles, texts, fontsize="small", frameon=False)]
    a.set_xlabel(x)
    a.set_ylabel(_quantity(res))
    return PlotArtists(fig, (a,), out, tuple(name for name, _ in groups))
