"""Linear mixed effects: the seed page, end to end, with simulation and delta side by side.

Run ``python examples/linear_mixed_effects.py [OUTDIR]``; it prints the summaries and
saves PNG files in OUTDIR (default: ``lme_output``): the seed page's two hand-made plots
(``age_by_sex.png``, ``school_contrasts.png``) and the same pictures from simmargins'
plot functions (``curve_age_by_sex.png`` with pointwise and sup-t bands,
``forest_school_contrasts.png`` with both routes' intervals), plus
``dist_school_contrasts.png``: each contrast's draws with the delta method's normal curve.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import statsmodels.api as sm
import statsmodels.formula.api as smf

from simmargins import (
    Margins,
    classroom_data,
    pairwise,
    plot_curve,
    plot_dist,
    plot_forest,
    reference,
)
from simmargins.adapters import StatsmodelsMixedLMAdapter


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    df = classroom_data(seed=42)  # the page's data: 40 students × 10 rows

    # Random intercept per student
    fit = smf.mixedlm("score ~ age + female + treated + C(school)", groups="student", data=df).fit()
    m = Margins.linear_scale(fit, at="overall", seed=2024)

    print("AME of age")
    print(m.dydx("age").summary(), "\n")

    print("Predicted score by treatment arm")
    print(m.predict(atexog={"treated": [0, 1]}).summary(), "\n")

    print("Treatment contrast")
    scen, w = pairwise("treated", [1, 0])
    print(m.contrasts(scenarios=scen, contrasts=w).summary(), "\n")

    # Plot: predicted score over age by sex
    ages = list(range(20, 76, 2))
    by_age = m.predict(atexog={"age": ages, "female": [0, 1]})
    df_plot = by_age.to_frame()
    fig, ax = plt.subplots(figsize=(6, 4))
    for level, sub in df_plot.groupby("female"):
        ax.plot(sub["age"], sub["estimate"], label="Female" if level == 1 else "Male")
        ax.fill_between(sub["age"], sub["ci_lower"], sub["ci_upper"], alpha=0.15)
    ax.set(xlabel="Age", ylabel="Predicted score")
    ax.legend(title="Sex")
    fig.tight_layout()
    fig.savefig(outdir / "age_by_sex.png", dpi=100)
    plt.close(fig)

    # Plot: forest plot of school contrasts
    scen, W = reference("school", ["A", "B", "C", "D"], ref_level="A")
    res = m.contrasts(scenarios=scen, contrasts=W)
    print("School contrasts against school A")
    print(res.summary(), "\n")
    df_forest = res.to_frame()
    fig, ax = plt.subplots(figsize=(5, 3))
    y = list(range(len(df_forest)))
    ax.errorbar(
        df_forest["estimate"],
        y,
        xerr=[
            df_forest["estimate"] - df_forest["ci_lower"],
            df_forest["ci_upper"] - df_forest["estimate"],
        ],
        fmt="o",
        capsize=3,
    )
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_yticks(y)
    ax.set_yticklabels(df_forest["label"])
    ax.set_xlabel("Score difference vs School A")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(outdir / "school_contrasts.png", dpi=100)
    plt.close(fig)

    # The same pictures from simmargins' plot functions, each returning what it drew
    drawn = plot_curve(by_age, x="age", by="female")  # pointwise and sup-t bands
    drawn.figure.savefig(outdir / "curve_age_by_sex.png", dpi=100)
    plt.close(drawn.figure)
    drawn = plot_forest(res)  # simulation percentile and delta Wald intervals per row
    drawn.figure.savefig(outdir / "forest_school_contrasts.png", dpi=100)
    plt.close(drawn.figure)
    drawn = plot_dist(res)  # draws' density, percentile interval, delta normal curve
    drawn.figure.savefig(outdir / "dist_school_contrasts.png", dpi=100)
    plt.close(drawn.figure)

    # Array interface: the same model through sm.MixedLM(y, X, groups)
    X = sm.add_constant(df[["age", "female", "treated"]])
    fit_array = sm.MixedLM(df["score"], X, groups=df["student"]).fit()
    adapter = StatsmodelsMixedLMAdapter(fit_array, training_data=df)
    m_arr = Margins.linear_scale(fit_array, adapter=adapter, at="overall", seed=2024)
    print("Array interface: treatment contrast")
    print(
        m_arr.contrasts(
            scenarios=pairwise("treated", [1, 0])[0], contrasts=pairwise("treated", [1, 0])[1]
        ).summary()
    )
    print(f"\nplots written to {outdir}/")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("lme_output"))
