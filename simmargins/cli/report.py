"""Files the command line writes for a result: summary, table, draws, plots and report.md.

Presentation only: everything shown comes from the :class:`~simmargins.MarginsResult`
(its summary, frame, attributes and the plot functions), so a saved ``draws.nc`` renders
the same folder again without the model (``simmargins report``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..results.result import MarginsResult

MAX_DIST_PANELS = 12  # a distribution panel per label; beyond this, an even selection
MAX_CURVE_LINES = 10  # more levels of `by` than this make an unreadable curve plot
RESULT_FILES = ("summary.txt", "margins.csv", "draws.nc")


@dataclass(frozen=True)
class Picture:
    file: str
    caption: str


@dataclass(frozen=True)
class Written:
    """What :func:`write_result` put in a folder."""

    folder: Path
    pictures: tuple[Picture, ...]
    notes: tuple[str, ...]  # plots left out, and why


def write_result(
    res: MarginsResult,
    folder: Path,
    *,
    title: str,
    lines: Sequence[str] = (),
    plots: bool = True,
    dpi: int = 100,
) -> Written:
    """summary.txt, margins.csv, draws.nc, the PNG plots and a report.md linking them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.txt").write_text(res.summary() + "\n", encoding="utf-8")
    res.to_frame().to_csv(folder / "margins.csv", index=False)
    res.to_netcdf(folder / "draws.nc")
    pictures, notes = draw_plots(res, folder, dpi) if plots else ((), ())
    written = Written(folder, tuple(pictures), tuple(notes))
    (folder / "report.md").write_text(result_markdown(res, title, lines, written), "utf-8")
    return written


# -- plots ----------------------------------------------------------------------------------
def curve_axes(res: MarginsResult) -> tuple[str, str | None] | None:
    """(x, by) for a curve plot of a prediction grid, or None when a curve does not fit.

    x is the first numeric grid column with three or more values; by is the one other
    grid column that varies (if any). Grids varying in three or more columns, and
    quantities other than predictions, get no curve.
    """
    if res.attrs.get("quantity") != "predict" or not res.grid_columns:
        return None
    frame = res.to_frame()
    varying = [c for c in res.grid_columns if frame[c].nunique(dropna=False) > 1]
    numeric = [
        c
        for c in varying
        if pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
        and frame[c].nunique() >= 3
    ]
    if not numeric:
        return None
    x = numeric[0]
    others = [c for c in varying if c != x]
    if len(others) > 1 or (others and frame[others[0]].nunique() > MAX_CURVE_LINES):
        return None
    return x, (others[0] if others else None)


def _dist_labels(res: MarginsResult) -> list[str]:
    labels = res.labels
    if len(labels) <= MAX_DIST_PANELS:
        return labels
    idx = np.unique(np.linspace(0, len(labels) - 1, MAX_DIST_PANELS).round().astype(int))
    return [labels[i] for i in idx]


def _figure(drawn: Any) -> Any:
    """The figure a plot function drew on, whatever it returned."""
    for attr in ("figure", "fig"):
        fig = getattr(drawn, attr, None)
        if fig is not None:
            return fig
    import matplotlib.pyplot as plt

    return plt.gcf()


def draw_plots(res: MarginsResult, folder: Path, dpi: int) -> tuple[list[Picture], list[str]]:
    """dist.png (when there are draws); curve.png for a prediction grid over a number,
    else forest.png.

    A plot that cannot be drawn is left out with a note; the numbers are already saved.
    """
    import matplotlib.pyplot as plt

    from ..results.plotting import plot_curve, plot_dist, plot_forest

    pictures: list[Picture] = []
    notes: list[str] = []
    dist_labels = _dist_labels(res)
    shown = (
        ""
        if len(dist_labels) == len(res.labels)
        else f" ({len(dist_labels)} of {len(res.labels)} labels)"
    )
    axes = curve_axes(res)
    plans: list[tuple[str, str, Any]] = []
    if res.n_draws:  # the delta method alone (method = "delta" without n_sims) has none
        plans.append(
            (
                "dist.png",
                f"Distribution of the draws with the delta method's normal curve{shown}",
                lambda: plot_dist(res, labels=dist_labels),
            )
        )
    if axes is not None:
        x, by = axes
        plans.append(
            (
                "curve.png",
                f"Predictions over {x}"
                + (f" by {by}" if by else "")
                + " with pointwise and simultaneous (sup-t) bands",
                lambda: plot_curve(res, x=x, by=by),
            )
        )
    else:
        plans.append(
            (
                "forest.png",
                "Estimates with draws and delta-method intervals"
                if res.n_draws
                else "Estimates with delta-method intervals",
                lambda: plot_forest(res),
            )
        )
    for file, caption, draw in plans:
        try:
            drawn = draw()
        except Exception as exc:  # a picture must never cost the saved numbers
            notes.append(f"{file} not drawn: {type(exc).__name__}: {exc}")
            plt.close("all")
            continue
        fig = _figure(drawn)
        try:
            fig.savefig(folder / file, dpi=dpi)
        finally:
            plt.close(fig)
        pictures.append(Picture(file, caption))
    return pictures, notes


# -- markdown ------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def provenance(res: MarginsResult) -> list[tuple[str, str]]:
    """What the result says about where it came from, as (field, value) rows."""
    a = res.attrs
    method = str(a.get("method", ""))
    draws = f"{res.n_draws} {a.get('draws_kind', 'simulation')} draws"
    if a.get("draws_kind") == "bootstrap":
        draws += f" ({a.get('n_failed', 0)} of {a.get('n_boot', '?')} replicates failed)"
    rows = [
        ("quantity", a.get("quantity", "")),
        ("model", f"{a.get('model_class', '')}: `{a.get('formula', '')}`"),
        ("link / scale", f"{a.get('link', '')} / {a.get('scale', '')}"),
        ("at", a.get("at", "")),
        ("method", f"{method}, level {res.level:g}, {draws}, seed {a.get('seed')}"),
        ("n (rows averaged)", a.get("nobs", "")),
        ("data fingerprint", f"sha256 {str(a.get('data_fingerprint', ''))[:16]}…"),
        ("versions", a.get("versions", "")),
    ]
    if a.get("p_adjust", "none") != "none":
        rows.insert(5, ("p-value adjustment", a["p_adjust"]))
    return [(k, str(v)) for k, v in rows]


def result_markdown(res: MarginsResult, title: str, lines: Sequence[str], written: Written) -> str:
    out = [f"# {title}", ""]
    out += [*lines, ""] if lines else []
    out += ["| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in provenance(res)]
    out += ["", "```text", res.summary(), "```", ""]
    out.append("Files: " + " · ".join(f"[{f}]({f})" for f in RESULT_FILES))
    out.append("")
    for pic in written.pictures:
        out += [f"![{pic.caption}]({pic.file})", "", f"*{pic.caption}.*", ""]
    for note in written.notes:
        out += [f"> {note}", ""]
    return "\n".join(out)


def relative(target: Path, start: Path) -> str:
    """A relative link from the folder ``start`` to ``target``, with forward slashes."""
    return Path(os.path.relpath(target, start)).as_posix()


@dataclass(frozen=True)
class QuantitySection:
    name: str
    description: str
    result: MarginsResult
    written: Written


def analysis_markdown(
    title: str,
    facts: Sequence[tuple[str, str]],
    sections: Sequence[QuantitySection],
    warnings: Sequence[str],
    folder: Path,
    extra: Sequence[str] = (),
) -> str:
    """The report of one analysis: the model, then each quantity with its plots."""
    out = [f"# {title}", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in facts]
    out.append("")
    if warnings:
        out += ["## Warnings", ""] + [f"- {_cell(w)}" for w in warnings] + [""]
    out += [*extra]
    for s in sections:
        link = relative(s.written.folder, folder)
        out += [
            f"## {s.name}",
            "",
            s.description + ".",
            "",
            "```text",
            s.result.summary(),
            "```",
            "",
        ]
        out.append(
            "Files: " + " · ".join(f"[{f}]({link}/{f})" for f in (*RESULT_FILES, "report.md"))
        )
        out.append("")
        for pic in s.written.pictures:
            out += [f"![{pic.caption}]({link}/{pic.file})", ""]
        for note in s.written.notes:
            out += [f"> {note}", ""]
    return "\n".join(out)


def index_markdown(
    title: str,
    lines: Sequence[str],
    rows: Sequence[tuple[str, str, str, str]],
    after: Sequence[str] = (),
) -> str:
    """The top-level report: one row per analysis (and data file) linking its report."""
    out = [f"# {title}", "", *lines, ""]
    out += ["| analysis | data | quantities | report |", "|---|---|---|---|"]
    out += [f"| {_cell(a)} | {_cell(d)} | {_cell(q)} | [report.md]({r}) |" for a, d, q, r in rows]
    out += ["", *after]
    return "\n".join(out).rstrip("\n") + "\n"
