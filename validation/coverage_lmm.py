"""Coverage of the mixed-model routes of issue 14 on the random-intercept designs.

The designs (classroom covariates, 10 or 40 clusters × 10, σ_u = 1, σ = 5) and estimands are
those of :mod:`validation.coverage`. Per replication the model is refitted once and every
route's 95% interval is checked:

- ``delta``, ``satterthwaite``, ``kenward-roger``: Wald intervals, normal or t with the
  small-sample df (Kenward–Roger also with its adjusted covariance);
- ``parametric percentile`` and ``parametric studentized``: one parametric bootstrap
  (responses simulated from the fit, exact sufficient-statistics refits), two interval kinds;
- ``cluster percentile``: the cluster (case) bootstrap, for comparison in the same
  replications;
- ``new cluster``: the prediction interval of ``random_effects="new"`` for the margins,
  against the mean of a new cluster drawn from the true model (truth + u_new, u_new ~ N(0,
  σ_u²) drawn afresh in each replication); ``new cluster satterthwaite``: the same with
  ``df="satterthwaite"`` (t on the Satterthwaite df of the whole variance);
- ``blup``: each cluster's own mean, ``random_effects="blup"`` and ``predict(by=cluster)``
  (the cluster's rows at their covariates, with its predicted intercept), against the true
  fixed part averaged over those rows plus the cluster's drawn intercept u_g. Coverage is
  over clusters and replications; its MC SE comes from the spread of the replications'
  coverage (the clusters of one fit share its β̂ and variance estimates); ``blup
  satterthwaite``: the same with ``df="satterthwaite"`` (t on the Satterthwaite df of each
  cluster mean's prediction error variance).

Coverage is reported with its binomial Monte-Carlo SE √(p(1−p)/R). Run
``python -m validation.coverage_lmm --reps 1000 --boot-reps 300``; ``--table CSV`` prints the
table of an existing run.
"""

from __future__ import annotations

import argparse
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simmargins import DeltaMethodWarning, Margins, MarginsResult
from validation.coverage import LMM_BETA, designs, lmm_outcome_parts

SIGMA_U = 1.0  # the designs' random-intercept SD (validation.coverage._lmm_outcome)
DF_ROUTES = ("delta", "satterthwaite", "kenward-roger")
BOOT_ROUTES = ("parametric percentile", "parametric studentized", "cluster percentile")
NEW_ROUTES = ("new cluster", "new cluster satterthwaite")
BLUP_ROUTES = ("blup", "blup satterthwaite")
ROUTES = (*DF_ROUTES, *BOOT_ROUTES, *NEW_ROUTES, *BLUP_ROUTES)
BLUP_QUANTITY = "cluster mean"


def _ask(m: Margins, quantities: list[Any]) -> list[MarginsResult]:
    cache: dict[int, MarginsResult] = {}
    out = []
    for q in quantities:
        if id(q.ask) not in cache:
            cache[id(q.ask)] = q.ask(m)
        out.append(cache[id(q.ask)])
    return out


def _intervals(
    fit: Any, d: Any, rep: int, boot: bool, n_boot: int, routes: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Route → (quantity, 2) intervals of one replication (the routes asked for)."""
    out: dict[str, np.ndarray] = {}
    qs = d.quantities

    def rows(results: list[MarginsResult], kind: str | None = None) -> np.ndarray:
        return np.array(
            [r.conf_int(interval=kind)[q.row] for r, q in zip(results, qs, strict=True)]
        )

    for df in (r for r in DF_ROUTES if r in routes):
        name = "asymptotic" if df == "delta" else df
        out[df] = rows(_ask(Margins(fit, scale=d.scale, method="delta", df=name), qs))
    for route in (r for r in NEW_ROUTES if r in routes):
        df = "satterthwaite" if route.endswith("satterthwaite") else "asymptotic"
        new = Margins(fit, scale=d.scale, method="delta", random_effects="new", df=df)
        out[route] = rows(_ask(new, qs))
    for route in (r for r in BLUP_ROUTES if r in routes):  # one interval per cluster
        df = "satterthwaite" if route.endswith("satterthwaite") else "asymptotic"
        res = Margins(fit, method="delta", random_effects="blup", df=df).predict(by="student")
        order = np.argsort(res.to_frame()["student"].to_numpy())
        out[route] = np.asarray(res.conf_int())[order]
    if boot:
        common = dict(scale=d.scale, method="bootstrap", n_boot=n_boot, seed=rep,
                      progress=False, n_jobs=1, boot_max_fail=0.5)  # fmt: skip
        if any(r.startswith("parametric") for r in routes):
            par = _ask(Margins(fit, bootstrap="parametric", **common), qs)
            out["parametric percentile"] = rows(par, "percentile")
            out["parametric studentized"] = rows(par, "studentized")
        if "cluster percentile" in routes:
            out["cluster percentile"] = rows(_ask(Margins(fit, **common), qs), "percentile")
    return out


SEED = 20261126


def study_stream(
    key: str, seed: int = SEED
) -> tuple[pd.DataFrame, Iterator[tuple[np.ndarray, np.ndarray, float]]]:
    """Design ``key``'s fixed covariates and its replications' draws, in the study's order:
    each replication's responses y, the clusters' intercepts u and a new cluster's u_new.

    One generator per design (seeded by ``seed`` and the design's name) draws the
    covariates first, then per replication y and u (``lmm_outcome_parts``) and u_new, so
    that anything replaying replication r (:mod:`validation.kr_same_data`, a test of one
    data set) sees the study's data.
    """
    rng = np.random.default_rng([seed, zlib.crc32(key.encode()), 14])
    covariates = designs()[key].make(rng)

    def draws() -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        while True:
            y, u = lmm_outcome_parts(covariates, rng)
            yield y, u, float(rng.normal(0.0, SIGMA_U))

    return covariates, draws()


def run_design(
    key: str, reps: int, boot_reps: int, n_boot: int = 199, seed: int = SEED,
    routes: tuple[str, ...] = ROUTES,
) -> pd.DataFrame:  # fmt: skip
    """Coverage and width per (quantity, route) of design ``key`` (an LMM design of
    :func:`validation.coverage.designs`); the bootstrap routes in the first ``boot_reps``
    replications."""
    d = designs()[key]
    df, stream = study_stream(key, seed)
    truths = np.array([q.truth(df) for q in d.quantities])
    # a new cluster's mean moves the margins by u_new, not the contrast or the AME
    is_margin = np.array([q.name.startswith("margin") for q in d.quantities])
    hits: dict[str, list[np.ndarray]] = {r: [] for r in routes if r not in BLUP_ROUTES}
    widths: dict[str, list[np.ndarray]] = {r: [] for r in routes if r not in BLUP_ROUTES}
    failures = 0
    fixed = sum(LMM_BETA[c] * df[c].to_numpy() for c in ("age", "female", "treated"))
    cluster = df["student"].to_numpy()
    fixed_mean = LMM_BETA["Intercept"] + np.bincount(cluster, fixed) / np.bincount(cluster)
    blup_hits: dict[str, list[np.ndarray]] = {r: [] for r in BLUP_ROUTES}
    blup_widths: dict[str, list[np.ndarray]] = {r: [] for r in BLUP_ROUTES}
    for rep, (y, u, u_new) in zip(range(reps), stream, strict=False):  # the stream is endless
        data = df.assign(y=y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = d.fit(data)
                ci = _intervals(fit, d, rep, rep < boot_reps, n_boot, routes)
            except (ValueError, np.linalg.LinAlgError, DeltaMethodWarning):
                failures += 1
                continue
        for route, iv in ci.items():
            if route in BLUP_ROUTES:
                truth = fixed_mean + u
                blup_hits[route].append((iv[:, 0] <= truth) & (truth <= iv[:, 1]))
                blup_widths[route].append(iv[:, 1] - iv[:, 0])
                continue
            if route not in hits:
                continue
            truth = truths + (u_new * is_margin if route in NEW_ROUTES else 0.0)
            hits[route].append((iv[:, 0] <= truth) & (truth <= iv[:, 1]))
            widths[route].append(iv[:, 1] - iv[:, 0])
    rows = []
    for route in routes:
        if route in BLUP_ROUTES and blup_hits[route]:
            per_rep = np.array(blup_hits[route], dtype=float).mean(axis=1)
            rows.append({
                "design": d.name, "quantity": BLUP_QUANTITY, "route": route,
                "reps": len(per_rep), "coverage": float(per_rep.mean()),
                "mc_se": float(per_rep.std(ddof=1) / np.sqrt(len(per_rep))),
                "width": float(np.mean(blup_widths[route])),
                "median_width": float(np.median(blup_widths[route])), "failures": failures,
            })  # fmt: skip
        if not hits.get(route):
            continue
        h = np.array(hits[route], dtype=float)
        w = np.array(widths[route])
        for j, q in enumerate(d.quantities):
            if route in NEW_ROUTES and not is_margin[j]:
                continue  # same interval as "zero" there: nothing new to check
            p = float(h[:, j].mean())
            rows.append({
                "design": d.name, "quantity": q.name, "route": route, "reps": h.shape[0],
                "coverage": p, "mc_se": float(np.sqrt(max(p * (1 - p), 1e-12) / h.shape[0])),
                "width": float(w[:, j].mean()), "median_width": float(np.median(w[:, j])),
                "failures": failures,
            })  # fmt: skip
    return pd.DataFrame(rows)


def table_markdown(results: pd.DataFrame) -> str:
    """Rows: design × route; columns: coverage ± MC SE per quantity (median width, R).

    The median, not the mean: with few df a t interval can be enormous in a few
    replications (a Satterthwaite df below 1), and the mean width would be theirs."""
    quantities = list(dict.fromkeys(results["quantity"]))
    lines = ["| design | route | " + " | ".join(quantities) + " |",
             "|---|---|" + "---|" * len(quantities)]  # fmt: skip
    for (design, route), sub in results.groupby(["design", "route"], sort=False):
        cells = []
        for q in quantities:
            row = sub[sub["quantity"] == q]
            if row.empty:
                cells.append("—")
                continue
            x = row.iloc[0]
            cells.append(
                f"{100 * x.coverage:.1f} ± {100 * x.mc_se:.1f} "
                f"(w {x.get('median_width', x.width):.3g}, R={int(x.reps)})"
            )
        lines.append(f"| {design} | {route} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--boot-reps", type=int, default=300)
    ap.add_argument("--n-boot", type=int, default=199)
    ap.add_argument("--designs", nargs="*", default=["lmm_ri_10x10", "lmm_ri_40x10"])
    ap.add_argument("--routes", nargs="*", default=list(ROUTES), choices=ROUTES)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "coverage_lmm.csv")
    ap.add_argument("--table", type=Path, help="only print the table of an existing CSV")
    args = ap.parse_args()
    if args.table is not None:
        print(table_markdown(pd.read_csv(args.table)))
        return
    frames = []
    for key in args.designs:
        t0 = time.perf_counter()
        frames.append(
            run_design(key, args.reps, args.boot_reps, args.n_boot, args.seed, tuple(args.routes))
        )
        print(f"{key}: {time.perf_counter() - t0:.0f} s", flush=True)
        out = pd.concat(frames, ignore_index=True)
        out.to_csv(args.out, index=False)
        print(table_markdown(out), flush=True)


if __name__ == "__main__":
    main()
