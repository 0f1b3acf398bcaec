"""Text summary of a MarginsResult. Formats what the result holds; computes nothing new."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .criteria import TRUST_NOISE_MULTIPLE

if TYPE_CHECKING:
    from .result import MarginsResult


def _fmt(x: float, digits: int = 4) -> str:
    if not np.isfinite(x):
        return "nan"
    return f"{x:.{digits}f}"


def _pvalue(p: float) -> str:
    return "nan" if not np.isfinite(p) else f"{p:.3f}"


_CI_NAMES = {
    "pointwise": "Conf. Int.",
    "simultaneous": "Simult. Int.",
    "bonferroni": "Bonferroni Int.",
    "sidak": "Šidák Int.",
}
_INTERVAL_WORDS = {
    "percentile": "percentile interval; p-value from the same draws (where that interval "
    "reaches 0)",
    "basic": "basic interval (2·estimate − draw quantiles); p-value from the same draws, reflected",
    "normal": "normal interval (estimate ± z·SD of the draws); p-value 2·Φ(−|z|)",
    "studentized": "studentized (bootstrap-t) interval (estimate − SE·quantiles of "
    "(draw − estimate)/SE_draw); p-value from the same t's",
    "wald": "Wald interval (estimate ± z·delta SE); p-value 2·Φ(−|z|)",
}
_AT_WORDS = {
    "overall": "covariates at their observed values, averaged over the rows",
    "mean": "one row with the covariates at the design means",
    "median": "every variable at its median, factors at their mode, offset/exposure at medians",
    "balanced": "emmeans' reference grid: each combination of factor levels once, numeric "
    "covariates at their means",
}
_RANDOM_EFFECTS_WORDS = {
    "blup": "each row's cluster's predicted random effects",
    "new": "a new cluster: estimates are the population average; SEs and intervals add the "
    "new cluster's random-effects variance z̄Ψ̂z̄ᵀ, a prediction interval for that cluster's "
    "mean, without the residual variance",
    "integrate": "population-averaged: E_u[h(xβ + zu)], the random effects integrated over "
    "their fitted distribution (each draw's own variances; the integration error is in the "
    "result's integration_error attribute)",
}
_COMPARISON_WORDS = {
    "ratio": "ratio of averaged predictions, μ1/μ0 (z and p-values test a ratio of 1)",
    "lnratio": "log ratio of averaged predictions, log(μ1/μ0)",
    "lnor": "log odds ratio of averaged predictions",
    "lift": "lift of averaged predictions, (μ1 − μ0)/μ0",
}


def _interval_cell(lo: float, hi: float) -> str:
    if np.isnan(lo) and np.isnan(hi):
        return "n/a"
    return f"{_fmt(lo)}, {_fmt(hi)}"


def _what_was_computed(res: MarginsResult, info: dict[str, object]) -> list[str]:
    """at, scale, the headline route and interval kind, draws, bootstrap refits, adjustment."""
    attrs = res.attrs
    at = str(attrs.get("at", "overall"))
    out = [f"At: {at} ({_AT_WORDS.get(at, 'fixed for every row; other covariates as observed')})"]
    if "scale" in attrs:
        out.append(f"Scale: {attrs['scale']} (link {attrs.get('link', '?')})")
    if attrs.get("population"):
        out.append(f"Population: {attrs['population']}")
    effects = str(attrs.get("random_effects", "zero"))
    if effects != "zero":
        out.append(f"Random effects: {effects} ({_RANDOM_EFFECTS_WORDS.get(effects, effects)})")
        if "residual_variance" in attrs:
            out.append(
                f"Residual variance σ̂² = {_fmt(float(attrs['residual_variance']))} (for one new "
                "observation's interval use √(SE² + σ̂²))"
            )
    comparison = str(attrs.get("comparison", "difference"))
    if comparison in _COMPARISON_WORDS:
        out.append(f"Comparison: {_COMPARISON_WORDS[comparison]}")
    if attrs.get("df_method"):
        out.append(f"Degrees of freedom: {attrs['df_method']} (t intervals and p-values)")
    weights = attrs.get("weights")
    if weights and weights != "equal":  # say so whenever rows do not count equally
        out.append(f"Weights: {weights}")
    route = str(info["route"])
    words = _INTERVAL_WORDS[str(info["interval"])]
    if attrs.get("comparison") == "ratio":
        words = words.replace("reaches 0", "reaches 1")
    if info["interval"] == "wald" and attrs.get("df_method"):
        words = "Wald interval (estimate ± t·delta SE, t with each row's df); p-value from t"
    out.append(f"Headline: {route}, {words}")
    draws_kind = attrs.get("draws_kind", "simulation")
    use = ", for the cross-check" if route == "delta" else ""
    if res.n_draws == 0:
        out.append("Draws: no draws (delta only; Margins(method='delta', n_sims=0))")
    else:
        out.append(f"Draws: {res.n_draws} ({draws_kind}{use}), seed = {attrs.get('seed')}")
    if draws_kind == "bootstrap":
        n_boot, failed = attrs.get("n_boot", "?"), attrs.get("n_failed", "?")
        line = f"Bootstrap: {n_boot} replicates, {failed} failed and excluded"
        if attrs.get("bootstrap") == "parametric":
            line += "; parametric (responses simulated from the fitted model)"
        elif "cluster" in attrs:
            line += f"; resampling {attrs['cluster']}"
        if "refit_route" in attrs:
            line += f"; refit route {attrs['refit_route']}"
        out.append(line)
    adj = str(info["adjust"])
    if adj != "none":
        out.append(f"P-values adjusted for multiple comparisons: {adj}")
        ci = str(info["ci"])
        if ci == "none":
            out.append(
                f"No interval for {adj}-adjusted p-values: the interval column is left "
                "empty rather than showing unadjusted intervals beside adjusted p-values."
            )
        elif adj == "sup-t":
            c = res.sup_t_critical()
            source = "the delta method's joint normal" if route == "delta" else "the draws"
            out.append(
                f"Intervals: sup-t simultaneous band, estimate ± {c:.3f}·SE ({c:.3f} from the "
                f"max-|t| distribution of {source}); p-values from the same distribution."
            )
        else:
            out.append(
                f"Intervals: {ci}, per-comparison level {float(str(info['ci_level'])):.6g} "
                "(same route); p-values adjusted to match."
            )
    return out


def _delta_only_verdict(res: MarginsResult) -> list[str]:
    """The trust lines of a result without draws: only κ can speak."""
    out = ["Delta-vs-draws disagreement: not computed (no draws)"]
    if not res.delta_trustworthy():
        out.append(
            "The delta method is not trustworthy here (κ above 0.3 for "
            + ", ".join(res.untrustworthy_labels())
            + "): rerun with draws (n_sims >= 2) and report them."
        )
    elif np.all(res.kappa == 0):
        out.append("The delta method is exact here (the quantities are linear in β).")
    else:
        out.append("κ ≤ 0.3 everywhere; without draws the delta method is not cross-checked.")
    return out


def format_summary(res: MarginsResult) -> str:
    frame = res.to_frame()
    info = res.inference()
    pct = f"{100 * res.level:g}%"
    ci_kind = {"sup-t": "simultaneous", "bonferroni": "bonferroni", "sidak": "sidak"}.get(
        str(info["adjust"]), "pointwise"
    )
    normal_p = info["interval"] in ("wald", "normal") and info["adjust"] == "none"
    stat = "t" if res.attrs.get("df_method") and res.method == "delta" else "z"
    header = ["", "estimate", "std err", stat, f"P>|{stat}|" if normal_p else "p",
              f"[{pct} {_CI_NAMES[ci_kind]}]"]  # fmt: skip
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
            _interval_cell(cols["ci_lower"][i], cols["ci_upper"][i]),
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
    out += _what_was_computed(res, info)
    out.append(
        f"κ: {_fmt(float(kappa[0]), 3)}"
        if len(kappa) == 1
        else f"κ: max={_fmt(float(np.max(kappa)), 3)}"
    )
    if res.n_draws == 0:
        out += _delta_only_verdict(res)
        return "\n".join(out)
    worst = float(np.nanmax(dis)) if np.any(np.isfinite(dis)) else float("nan")
    times = TRUST_NOISE_MULTIPLE
    within = "within" if np.isfinite(worst) and worst <= times * noise else "beyond"
    label = "Delta-vs-sim" if draws_kind == "simulation" else "Delta-vs-bootstrap"
    qual = "" if len(dis) == 1 else "max "
    out.append(
        f"{label} disagreement: {qual}{100 * worst:.3f}% "
        f"(Monte-Carlo noise {100 * noise:.3f}%; {within} {times:g}× noise)"
    )
    if not res.delta_trustworthy():
        out.append(
            "The delta method is not trustworthy here (κ above 0.3 or disagreement beyond "
            "3× Monte-Carlo noise for " + ", ".join(res.untrustworthy_labels()) + "): "
            "report the draws."
        )
    elif draws_kind == "simulation" and np.all(kappa == 0):
        out.append(
            "The delta method is exact here (the quantities are linear in β); any "
            "disagreement is Monte-Carlo noise."
        )
    else:
        out.append("The delta method agrees with the draws: both routes can be trusted here.")
    return "\n".join(out)
