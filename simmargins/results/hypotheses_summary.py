"""Text summary of a HypothesisTest. Formats what the test holds; computes nothing new."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .hypotheses import HypothesisTest


def _num(x: float, digits: int = 4) -> str:
    return "" if not np.isfinite(x) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "" if not np.isfinite(x) else f"{x:.3f}"


def format_test(t: HypothesisTest) -> str:
    frame = t.to_frame()
    equivalence = t.kind == "equivalence"
    header = ["", "estimate", "delta SE", "draws SE", "p delta", "p draws"]
    if not equivalence:
        header.insert(2, "value")
    rows = []
    for _, row in frame.iterrows():
        cells = [str(row["hypothesis"]), _num(row["estimate"])]
        if not equivalence:
            cells.append(_num(row["value"], 4).rstrip("0").rstrip(".") or "")
        cells += [_num(row["delta_std_err"]), _num(row["draws_std_err"])]
        cells += [_p(row["p_delta"]), _p(row["p_draws"])]
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
        )

    words = t.describe()
    width = max(len(line(header)), len(words["test"]) + 4)
    out = ["=" * width, words["test"].center(width), "=" * width, line(header), "-" * width]
    out += [line(r) for r in rows]
    out.append("=" * width)
    attrs = t.combination.attrs
    draws = f"{t.combination.n_draws} {attrs.get('draws_kind', 'simulation')} draws"
    draws_line = f"Draws: {words['draws']}; p = {_p(t.p_draws)} ({draws})"
    if t.combination.n_draws == 0:
        draws_line = "Draws: not computed (no draws: the delta method alone)"
    if equivalence:
        lo, hi = t.bounds or (np.nan, np.nan)
        out.append(f"H0: Rθ ≤ {lo:g} or Rθ ≥ {hi:g}; H1: {lo:g} < Rθ < {hi:g}")
        out.append(
            f"Delta: {words['delta']} (smallest z to a bound {t.statistic:.3f}); "
            f"p = {_p(t.p_delta)}"
        )
        out.append(draws_line)
        out.append("p < α exactly when the route's interval at level 1 − 2α lies inside the bounds")
    else:
        stat = (
            f"z = {t.statistic:.3f}"
            if t.df == 1 and len(t.hypotheses) == 1
            else (f"χ²({t.df}) = {t.statistic:.3f}")
        )
        out.append(f"Delta: {stat}; {words['delta']}; p = {_p(t.p_delta)}")
        out.append(draws_line)
    out.append(f"Headline ({t.route}): p = {_p(t.p_value)}; seed = {attrs.get('seed')}")
    return "\n".join(out)
