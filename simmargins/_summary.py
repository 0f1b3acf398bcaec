"""Text summary of a MarginsResult. Formats what the result holds; computes nothing new."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._result import TRUST_NOISE_MULTIPLE

if TYPE_CHECKING:
    from ._result import MarginsResult


def _fmt(x: float, digits: int = 4) -> str:
    if not np.isfinite(x):
        return "nan"
    return f"{x:.{digits}f}"


def _pvalue(p: float) -> str:
    return "nan" if not np.isfinite(p) else f"{p:.3f}"


def format_summary(res: MarginsResult) -> str:
    frame = res.to_frame()
    pct = f"{100 * res.level:g}%"
    header = ["", "estimate", "std err", "z", "P>|z|", f"[{pct} Conf. Int.]"]
    cols = {
        c: frame[c].to_numpy(dtype=float)
        for c in ("estimate", "std_err", "statistic", "p_value", "ci_lower", "ci_upper")
    }
    rows = [
        [
            str(label),
            _fmt(cols["estimate"][i]),
            _fmt(cols["std_err"][i]),
            _fmt(cols["statistic"][i]),
            _pvalue(cols["p_value"][i]),
            f"{_fmt(cols['ci_lower'][i])}, {_fmt(cols['ci_upper'][i])}",
        ]
        for i, label in enumerate(frame["label"])
    ]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
    )
    width = len(line(header))
    title = f"Margins Result ({res.method}, level={res.level:g})"
    out = ["=" * width, title.center(width), "=" * width, line(header), "-" * width]
    out += [line(r) for r in rows]
    out.append("=" * width)

    attrs = res.attrs
    kappa = res.kappa
    dis = res.disagreement
    noise = res.noise
    draws_kind = attrs.get("draws_kind", "simulation")
    out.append("")
    out.append(f"n = {attrs.get('nobs')}")
    out.append(
        f"κ: {_fmt(float(kappa[0]), 3)}"
        if len(kappa) == 1
        else f"κ: max={_fmt(float(np.max(kappa)), 3)}"
    )
    worst = float(np.nanmax(dis)) if np.any(np.isfinite(dis)) else float("nan")
    times = TRUST_NOISE_MULTIPLE
    within = "within" if np.isfinite(worst) and worst <= times * noise else "beyond"
    label = "Delta-vs-sim" if draws_kind == "simulation" else "Delta-vs-bootstrap"
    qual = "" if len(dis) == 1 else "max "
    out.append(
        f"{label} disagreement: {qual}{100 * worst:.3f}% "
        f"(Monte-Carlo noise {100 * noise:.3f}%; {within} {times:g}× noise)"
    )
    out.append(f"Draws: {res.n_draws} ({draws_kind}), seed = {attrs.get('seed')}")
    if attrs.get("p_adjust", "none") != "none":
        out.append(f"P-values adjusted for multiple comparisons: {attrs['p_adjust']}")
    if not res.delta_trustworthy():
        out.append(
            "The delta method is not trustworthy here (κ above 0.3 or disagreement beyond "
            "3× Monte-Carlo noise for " + ", ".join(res.untrustworthy_labels()) + "): "
            "report the draws."
        )
    elif draws_kind == "simulation" and not np.any(kappa > 0):
        out.append(
            "The delta method is exact here (the quantities are linear in β); any "
            "disagreement is Monte-Carlo noise."
        )
    else:
        out.append("The delta method agrees with the draws: both routes can be trusted here.")
    return "\n".join(out)
