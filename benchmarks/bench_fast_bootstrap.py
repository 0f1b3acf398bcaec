"""Cluster bootstrap of linear mixed models: refits from group statistics vs statsmodels.

Run on demand (not collected by pytest)::

    python benchmarks/bench_fast_bootstrap.py [--n-boot 1000] [--slow 10] [--repeat 3]

Two models: the seed page's random-intercept model scaled to 100,000 rows in 10,000
groups, and a 10,000-row random-slope model (1,000 groups of 10). For each, ``n_boot``
replicates go through ``Margins(..., method="bootstrap", refit="fast")`` serially and with
``n_jobs=2`` (the route decides in-process or joblib itself; both are also forced), and the
first ``--slow`` replicates are refitted by statsmodels (the bootstrap's own ``refit_once``,
same seeds, serial, one BLAS thread). The statsmodels total for ``n_boot`` replicates, and
every ratio against it, is *extrapolated* from those ``--slow`` timed refits (mean time per
refit × ``n_boot``), and labelled so; pass ``--slow`` equal to ``--n-boot`` to time them
all. The fast and statsmodels fixed effects and criteria of the timed replicates are
compared. Timings are the best of ``--repeat`` runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from joblib.externals.loky import get_reusable_executor
from threadpoolctl import threadpool_limits

from simmargins import Margins, classroom_data
from simmargins.adapters import StatsmodelsMixedLMAdapter
from simmargins.resampling import bootstrap as boot
from simmargins.resampling.lmm_fast import fast_problem


def random_slope_data(n_groups: int = 1000, per_group: int = 10, seed: int = 3) -> pd.DataFrame:
    """y = 250 + 10·x + b0 + b1·x + e, with sd(b0) = 25, sd(b1) = 6, corr 0.1, sd(e) = 25."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    x = np.tile(np.arange(per_group, dtype=float), n_groups)
    cov = np.array([[625.0, 15.0], [15.0, 36.0]])
    b = rng.multivariate_normal([0.0, 0.0], cov, n_groups)
    y = 250 + 10 * x + b[g, 0] + b[g, 1] * x + rng.normal(0, 25, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def fit_models() -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big = classroom_data(seed=1, n_students=10_000, per_student=10)
        ri = smf.mixedlm("score ~ age + female + treated + C(school)", big, groups="student").fit()
        rs = smf.mixedlm("y ~ x", random_slope_data(), groups="g", re_formula="~x").fit(
            method=["lbfgs", "powell"]
        )
    return {"random intercept, 100,000 rows / 10,000 groups": ri,
            "random slope, 10,000 rows / 1,000 groups": rs}  # fmt: skip


def fast_draws(fit, n_boot: int, n_jobs: int) -> tuple[float, np.ndarray, str, int]:
    m = Margins.linear_scale(
        fit, method="bootstrap", n_boot=n_boot, seed=7, n_jobs=n_jobs, refit="fast",
        progress=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    draws = m.coefficient_draws
    elapsed = time.perf_counter() - t0
    assert m._boot is not None
    return elapsed, draws.to_numpy(), m._boot.parallel, m._boot.n_failed


def best_of(repeat: int, fn, *args):
    runs = [fn(*args) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def forced(threshold: float, fit, n_boot: int, n_jobs: int, repeat: int):
    saved = boot._FAST_PARALLEL_MIN_SECONDS
    boot._FAST_PARALLEL_MIN_SECONDS = threshold
    try:
        return best_of(repeat, fast_draws, fit, n_boot, n_jobs)
    finally:
        boot._FAST_PARALLEL_MIN_SECONDS = saved


def slow_subset(fit, n_boot: int, n_slow: int) -> tuple[float, np.ndarray, np.ndarray, int]:
    ad = StatsmodelsMixedLMAdapter(fit)
    problem = ad.refit_problem(ad.group_codes(), warm=True)
    children = boot.seed_sequence(7).spawn(n_boot)
    out = []
    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        for b in range(n_slow):
            out.append(boot.refit_once(problem, b, children[b]))
    elapsed = time.perf_counter() - t0
    failed = sum(r.params is None for r in out)
    params = np.vstack([r.params if r.params is not None else np.nan for r in out])
    llf = np.array([r.llf for r in out])
    return elapsed / n_slow, params, llf, failed


def fast_subset(fit, n_boot: int, n_slow: int) -> np.ndarray:
    """The fast route's criteria of the first ``n_slow`` replicates."""
    ad = StatsmodelsMixedLMAdapter(fit)
    fproblem = fast_problem(ad.refit_problem(ad.group_codes(), warm=True))
    children = boot.seed_sequence(7).spawn(n_boot)
    return np.array([boot.fast_refit_once(fproblem, b, children[b]).llf for b in range(n_slow)])


def bench(name: str, fit, n_boot: int, n_slow: int, repeat: int) -> None:
    model = fit.model
    print(f"\n## {name}: {model.n_totobs} rows, {model.n_groups} groups, q = {model.k_re}, "
          f"p = {model.k_fe}, {n_boot} replicates")  # fmt: skip
    fast_draws(fit, 20, 1)  # load the compiled kernel in this process
    # a cold joblib run pays for starting the workers (imports, kernel load in each)
    get_reusable_executor().shutdown(wait=True)
    t_cold, d_cold, _, _ = forced(0.0, fit, n_boot, 2, 1)
    t1, d1, where1, fail1 = best_of(repeat, fast_draws, fit, n_boot, 1)
    tj, dj, _, _ = forced(0.0, fit, n_boot, 2, repeat)
    ta, da, where_auto, _ = best_of(repeat, fast_draws, fit, n_boot, 2)
    same = all(np.array_equal(d1, d) for d in (d_cold, dj, da))
    per_slow, slow, slow_llf, slow_failed = slow_subset(fit, n_boot, n_slow)
    llf_gap = float(np.nanmin(fast_subset(fit, n_boot, n_slow) - slow_llf))
    ok = np.isfinite(slow).all(axis=1)
    scale = np.abs(slow[ok]).max(axis=1, keepdims=True)
    rel = float(np.max(np.abs(d1[:n_slow][ok] - slow[ok]) / scale)) if ok.any() else math.nan
    slow_total = per_slow * n_boot  # extrapolated unless n_slow == n_boot
    note = " (all timed)" if n_slow == n_boot else f" (extrapolated from {n_slow} timed)"
    rows = [
        (f"fast, n_jobs=1 ({where1.split(';')[0]})", t1, fail1),
        ("fast, n_jobs=2 through joblib, cold worker pool (first run)", t_cold, 0),
        ("fast, n_jobs=2 through joblib, warm worker pool", tj, 0),
        (f"fast, n_jobs=2, route's own choice ({where_auto.split(';')[0]})", ta, 0),
    ]
    for what, t, failed in rows:
        print(f"{what:66s}: {t:7.2f} s  ({1000 * t / n_boot:.2f} ms/replicate, {failed} failed)")
    label = f"statsmodels refits, {n_boot} serial{note}"
    print(f"{label:66s}: {slow_total:7.1f} s  ({1000 * per_slow:.0f} ms/replicate, "
          f"{slow_failed} of {n_slow} failed)")  # fmt: skip
    print(f"ratio statsmodels serial / fast serial{note}: {slow_total / t1:.0f}x")
    print(f"ratio statsmodels ideal 2 cores / fast auto{note}: {slow_total / 2 / ta:.0f}x")
    print(f"draws identical in-process and through joblib: {same}")
    print(f"max |fast - statsmodels| / max|beta| over the {n_slow} timed replicates: {rel:.1e}")
    print(f"min (fast llf - statsmodels llf) over the {n_slow} timed replicates: {llf_gap:.2g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--slow", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"# bench_fast_bootstrap on {platform.node()}: {os.cpu_count()} cores, "
          f"{platform.python_version()}")  # fmt: skip
    t0 = time.perf_counter()
    fits = fit_models()
    print(f"(fitting the two models with statsmodels: {time.perf_counter() - t0:.1f} s)")
    for name, fit in fits.items():
        bench(name, fit, args.n_boot, args.slow, args.repeat)


if __name__ == "__main__":
    main()
