"""What the plot functions share: their return type, argument checks and figure setup.

:class:`PlotArtists` (what a plot function drew); the checks of the arguments of
:func:`~simmargins.results.plotting.plot_dist`, ``plot_forest`` and ``plot_curve`` (the
result, its labels, its grid columns, the level, the given Axes); the axes they draw on (a
new figure, or the figure of the given Axes); and the words of their titles and legends.

matplotlib is imported inside the functions so ``import simmargins`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import check_level, suggest

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .result import MarginsResult


@dataclass(frozen=True)
class PlotArtists:
    """What a plot function drew.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        The figure holding the axes (the given ``ax``'s figure, or a new one).
    axes : tuple of matplotlib.axes.Axes
        The axes drawn on, one per panel.
    artists : dict of str to list
        The artists by role; see each function's "Returns" for the keys and what one
        entry of each list belongs to.
    keys : tuple of str
        What the entries of per-item lists in ``artists`` belong to: the labels
        (:func:`plot_dist`, :func:`plot_forest`) or the levels of ``by``
        (:func:`plot_curve`).
    """

    figure: Figure
    axes: tuple[Axes, ...]
    artists: dict[str, list[Any]] = field(default_factory=dict)
    keys: tuple[str, ...] = ()

    @property
    def ax(self) -> Axes:
        """The first (for single-panel plots, the only) axes."""
        return self.axes[0]


# -- validation -------------------------------------------------------------------------
def _check_result(res: Any, func: str) -> MarginsResult:
    from .result import MarginsResult

    if not isinstance(res, MarginsResult):
        raise MarginsTypeError(
            f"{func}: expected a MarginsResult (from Margins.predict, dydx or contrasts, "
            f"or simmargins.load), got {type(res).__name__}"
        )
    return res


def _root_figure(ax: Axes) -> Figure:
    """The figure an Axes lives in (the top-level one when it sits in a subfigure)."""
    from matplotlib.figure import Figure

    fig: Any = ax.figure
    while not isinstance(fig, Figure):
        fig = fig.figure
    return fig


def _check_ax(ax: Any) -> Axes:
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise MarginsTypeError(f"ax: expected a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _check_labels(res: MarginsResult, labels: Any) -> list[str]:
    if labels is None:
        return res.labels
    chosen = [labels] if isinstance(labels, str) else list(labels)
    if not chosen:
        raise MarginsValueError("labels: got an empty selection; pass None for all labels")
    for lab in chosen:
        if lab not in res.labels:
            raise MarginsValueError(
                f"labels: {lab!r} is not a label of this result; its labels are "
                + ", ".join(repr(x) for x in res.labels)
                + suggest(str(lab), res.labels)
            )
    return [str(lab) for lab in chosen]


def _level(res: MarginsResult, level: float | None) -> float:
    return res.level if level is None else check_level(level)


def _draws_method(res: MarginsResult) -> str:
    """The draws' route: the headline unless the headline is the delta method."""
    if res.method != "delta":
        return res.method
    return str(res.attrs.get("draws_kind", "simulation"))


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def _quantity(res: MarginsResult) -> str:
    """An axis title for the result's quantity."""
    names = {"predict": "prediction", "dydx": "marginal effect", "contrasts": "contrast"}
    q = str(res.attrs.get("quantity", "estimate"))
    return names.get(q, q)


def _check_grid(res: MarginsResult, x: Any, by: Any) -> None:
    cols = res.grid_columns
    if not cols:
        raise MarginsValueError(
            "plot_curve: this result has no grid columns to draw over (it is a contrast or "
            "a single quantity); use plot_forest or plot_dist, or a result of "
            "Margins.predict(atexog={...})"
        )
    for arg, value in (("x", x), ("by", by)):
        if value is None and arg == "by":
            continue
        if not isinstance(value, str) or value not in cols:
            raise MarginsValueError(
                f"{arg}: got {value!r}; it must be a grid column of the result: "
                + ", ".join(repr(c) for c in cols)
                + (suggest(value, cols) if isinstance(value, str) else "")
            )
    if by == x:
        raise MarginsValueError(f"by: got {by!r}, the same column as x; choose another or None")


# -- figure setup -----------------------------------------------------------------------
def _new_axes(ax: Any, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    import matplotlib.pyplot as plt

    if ax is None:
        fig, new = plt.subplots(figsize=figsize, layout="constrained")
        return fig, new
    one = _check_ax(ax)
    return _root_figure(one), one


def _dist_axes(n: int, ax: Any) -> tuple[Figure, list[Axes]]:
    import matplotlib.pyplot as plt

    if ax is None:
        ncols = min(n, 3)
        nrows = math.ceil(n / ncols)
        fig, grid = plt.subplots(
            nrows, ncols, figsize=(3.4 * ncols, 2.6 * nrows), squeeze=False, layout="constrained"
        )
        flat = list(grid.ravel())
        for spare in flat[n:]:
            fig.delaxes(spare)
        return fig, flat[:n]
    if isinstance(ax, (Sequence, np.ndarray)) and not isinstance(ax, str):
        axes = [_check_ax(a) for a in np.ravel(np.asarray(ax, dtype=object))]
        if len(axes) != n:
            raise MarginsValueError(
                f"ax: got {len(axes)} Axes for {n} label(s); pass one Axes per label, "
                "or leave ax=None for small multiples"
            )
        return _root_figure(axes[0]), axes
    one = _check_ax(ax)
    if n != 1:
        raise MarginsValueError(
            f"ax: got one Axes for {n} labels; pass a sequence of {n} Axes, leave ax=None "
            "for small multiples, or choose one label with labels=..."
        )
    return _root_figure(one), [one]
