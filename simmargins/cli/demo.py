"""``simmargins demo``: the embedded example as a spec, its data, and lme4's published fit.

The demo writes its data and this spec into the output folder and runs them through the
same path as ``simmargins run``, so the folder it leaves can be rerun or edited:
``simmargins run simmargins_demo/spec.toml --out again``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO_SPEC = """\
# The simmargins demo: two linear mixed models, analysed end to end.
# Rerun it with:  simmargins run spec.toml --out rerun
# The schema is documented in docs/cli.md.

[output]
plots = true
dpi = 100

# -- The classroom data of docs/linear-mixed-effects.md: 40 students x 10 scores,
#    a random intercept per student.
[[analysis]]
name = "classroom"
data = "data/classroom.csv"

[analysis.model]
kind = "mixedlm"
formula = "score ~ age + female + treated + C(school)"
groups = "student"

[analysis.inference]
method = "simulation"   # or "delta", or "bootstrap" (refits; set n_boot)
n_sims = 2000
level = 0.95
seed = 2024
scale = "linear"

[[analysis.quantity]]
name = "age_effect"
kind = "dydx"
variables = "age"

[[analysis.quantity]]
name = "treatment_arms"
kind = "predict"
atexog = { treated = [0, 1] }

[[analysis.quantity]]
name = "treatment_effect"
kind = "contrasts"
type = "pairwise"
var = "treated"
levels = [1, 0]

[[analysis.quantity]]
name = "school_contrasts"
kind = "contrasts"
type = "reference"
var = "school"
levels = ["A", "B", "C", "D"]
ref_level = "A"

[[analysis.quantity]]
name = "age_by_sex"
kind = "predict"
atexog = { age = [20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75], female = [0, 1] }

# -- lme4's sleepstudy (Belenky et al. 2003): reaction times of 18 subjects over 10 days
#    of sleep deprivation, a random intercept and slope per subject, fitted by REML.
[[analysis]]
name = "sleepstudy"
data = "data/sleepstudy.csv"

[analysis.model]
kind = "mixedlm"
formula = "Reaction ~ Days"
groups = "Subject"
re_formula = "~Days"
fit = { reml = true }

[analysis.inference]
method = "simulation"
n_sims = 2000
seed = 2024

[[analysis.quantity]]
name = "days_slope"
kind = "dydx"
variables = "Days"

[[analysis.quantity]]
name = "reaction_over_days"
kind = "predict"
atexog = { Days = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }

[[analysis.quantity]]
name = "day9_vs_day0"
kind = "contrasts"
type = "pairwise"
var = "Days"
levels = [9, 0]
"""

# lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy), REML: the fixed effects
# and standard errors printed by summary() (Bates et al. 2015, J. Stat. Softw. 67(1)).
LME4_SLEEPSTUDY = {"Intercept": (251.405, 6.825), "Days": (10.467, 1.546)}


def write_inputs(folder: Path) -> Path:
    """Write the demo's data files and spec into ``folder``; return the spec's path."""
    from .._datasets import classroom_data, sleepstudy_data

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    classroom_data(seed=42).to_csv(data / "classroom.csv", index=False)
    sleepstudy_data().to_csv(data / "sleepstudy.csv", index=False)
    spec = folder / "spec.toml"
    spec.write_text(DEMO_SPEC, encoding="utf-8")
    return spec


def lme4_comparison(fit: Any, slope: Any = None) -> str:
    """The sleepstudy fixed effects beside lme4's published REML fit, as a text table."""
    fe, se = fit.fe_params, fit.bse_fe
    head = f"{'':<12}{'statsmodels':>22}{'lme4 (published)':>24}"
    sub = f"{'':<12}{'estimate':>11}{'std err':>11}{'estimate':>13}{'std err':>11}"
    rows = []
    for name, (est, err) in LME4_SLEEPSTUDY.items():
        label = "(Intercept)" if name == "Intercept" else name
        rows.append(f"{label:<12}{fe[name]:>11.3f}{se[name]:>11.3f}{est:>13.3f}{err:>11.3f}")
    lines = [
        "sleepstudy: fixed effects (REML) beside lme4's published fit of",
        "lmer(Reaction ~ Days + (Days | Subject), sleepstudy)",
        head,
        sub,
        *rows,
    ]
    if slope is not None:
        lines.append(
            f"simmargins AME of Days: {slope.estimate[0]:.3f} (delta SE "
            f"{slope.delta_std_err[0]:.3f}, simulation SE {slope.draws_std_err[0]:.3f})"
        )
    return "\n".join(lines)
