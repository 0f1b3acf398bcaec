"""The names and thresholds results are judged by: headline routes, interval kinds,
adjustments and when the delta method counts as trustworthy (DESIGN.md)."""

from __future__ import annotations

HEADLINES = ("simulation", "delta", "bootstrap")
INTERVALS = ("percentile", "normal", "basic", "studentized")
TRUST_KAPPA = 0.3  # above this relative curvature the delta method is suspect (DESIGN.md)
TRUST_NOISE_MULTIPLE = 3.0  # disagreement beyond this many MC noise levels is real
ADJUST_METHODS = (
    "none",
    "bonferroni",
    "sidak",
    "holm-sidak",
    "holm",
    "simes-hochberg",
    "hommel",
    "fdr_bh",
    "fdr_by",
    "fdr_tsbh",
    "fdr_tsbky",
    "sup-t",
)
# conf_int(kind=...): "adjusted" is whatever the result's adjustment calls for
CI_KINDS = ("pointwise", "simultaneous", "bonferroni", "sidak", "adjusted")
# the interval that goes with each adjustment; the others (Holm, FDR, ...) have none
_ADJUST_CI = {
    "none": "pointwise",
    "sup-t": "simultaneous",
    "bonferroni": "bonferroni",
    "sidak": "sidak",
}
