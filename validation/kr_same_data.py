"""Kenward–Roger on the coverage study's data sets, beside lme4/pbkrtest on the same ones.

The 1,000 replications of ``lmm_ri_10x10`` (:mod:`validation.coverage_lmm`'s seeds: the
same responses as its Kenward–Roger test) are fitted twice by statsmodels — its default
fit (Powell where that raises: the study's former fit), and the better of the default and
a Powell fit (the study's fit now) — and once by lme4 (``validation/r_kr_same_data.R``:
``lmer`` REML, lmerTest's ``contest1D`` with ``ddf = "Kenward-Roger"``, which calls
pbkrtest). For the margin at ``treated = 0`` it prints the coverage of the three routes'
95% intervals, how far each statsmodels fit is below lme4's REML log-likelihood, and how
far our df and SEs are from pbkrtest's.

Run ``python -m validation.kr_same_data`` (Rscript with lme4, lmerTest and pbkrtest on
the PATH; about 10 minutes); ``--out DIR`` keeps the data sets and per-replication rows.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from simmargins import Margins
from validation.coverage import designs
from validation.coverage_lmm import study_stream

KEY = "lmm_ri_10x10"


def _ours(fit) -> dict[str, float]:
    res = Margins(fit, method="delta", df="kenward-roger").predict(atexog={"treated": [0, 1]})
    row = res.to_frame().iloc[0]
    lo, hi = res.conf_int()[0]
    return {"est": row["estimate"], "se": row["std_err"], "df": row["df"], "lo": lo, "hi": hi,
            "llf": fit.llf, "converged": bool(fit.converged)}  # fmt: skip


def python_side(reps: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The data sets (stacked, with ``rep``), our intervals per fit kind, and the truth."""
    d = designs()[KEY]
    base, stream = study_stream(KEY)
    truth = d.quantities[0].truth(base)
    frames, rows = [], []
    for rep, (y, _u, _u_new) in zip(range(reps), stream, strict=False):  # the stream is endless
        data = base.assign(y=y)
        frames.append(data.assign(rep=rep))
        model = smf.mixedlm("y ~ age + female + treated + C(school)", data, groups="student")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:  # the study's former fit: Powell only when the default raises
                default = model.fit()
            except np.linalg.LinAlgError:
                default = model.fit(method=["powell"])
            rows.append({"rep": rep, "fit": "default", **_ours(default)})
            rows.append({"rep": rep, "fit": "best", **_ours(d.fit(data))})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(rows), truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--out", type=Path, help="keep data.csv, ours.csv and r.csv here")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="kr_same_data_"))
    out.mkdir(parents=True, exist_ok=True)
    data, ours, truth = python_side(args.reps)
    data.to_csv(out / "data.csv", index=False)
    ours.to_csv(out / "ours.csv", index=False)
    script = Path(__file__).with_name("r_kr_same_data.R")
    subprocess.run(["Rscript", str(script), str(out / "data.csv"), str(out / "r.csv")],
                   check=True, capture_output=True)  # fmt: skip
    r = pd.read_csv(out / "r.csv")
    half = stats.t.ppf(0.975, r["df"]) * r["se"]
    r["lo"], r["hi"] = r["est"] - half, r["est"] + half
    cover = {"lme4/pbkrtest": float(((r["lo"] <= truth) & (truth <= r["hi"])).mean())}
    for kind, sub in ours.groupby("fit", sort=False):
        m = sub.merge(r, on="rep", suffixes=("", "_r"))
        cover[f"statsmodels {kind} fit"] = float(((m.lo <= truth) & (truth <= m.hi)).mean())
        gap = m["llf_r"] - m["llf"]
        rel = pd.concat([(m["se"] / m["se_r"] - 1).abs(), (m["df"] / m["df_r"] - 1).abs()])
        print(f"statsmodels {kind} fit: REML log-likelihood more than 0.001 below lme4's in "
              f"{(gap > 1e-3).mean():.1%} of the fits ({(gap[m.converged] > 1e-3).mean():.1%} "
              f"of those reported converged), by up to {gap.max():.3g}; KR df and SE vs "
              f"pbkrtest: median {rel.median():.2g}, max {rel.max():.2g} relative")  # fmt: skip
    mc = np.sqrt(0.95 * 0.05 / args.reps)
    for route, p in cover.items():
        print(f"coverage of the margin at treated = 0, {route}: {p:.1%} "
              f"({(p - 0.95) / mc:+.1f} MC SE)")  # fmt: skip


if __name__ == "__main__":
    main()
