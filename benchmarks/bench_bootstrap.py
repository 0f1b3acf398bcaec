"""Cluster-bootstrap refits of MixedLM through statsmodels: serial vs n_jobs=2, warm vs cold.

(``refit="statsmodels"`` throughout: the sufficient-statistics route has its own benchmark,
``bench_fast_bootstrap.py``.)

Run on demand (not collected by pytest)::

    python benchmarks/bench_bootstrap.py [--n-boot 200] [--big-groups 1000]

Every comparison is measured in the same run on the same machine, and reported as a
ratio; the draws of the serial and parallel runs are checked to be bit-identical.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from simmargins import Margins, classroom_data


def big_classroom(n_groups: int, per_group: int, seed: int = 1) -> pd.DataFrame:
    """The classroom design scaled up: same coefficients, more students."""
    return classroom_data(seed=seed, n_students=n_groups, per_student=per_group)


def fit(df: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.mixedlm(
            "score ~ age + female + treated + C(school)", groups="student", data=df
        ).fit()


def timed_draws(fit_, n_boot: int, n_jobs: int, warm: bool) -> tuple[float, np.ndarray, int]:
    m = Margins.linear_scale(
        fit_, method="bootstrap", n_boot=n_boot, seed=7, n_jobs=n_jobs, warm_start=warm,
        progress=False, boot_max_fail=1.0, boot_warn_fail=1.0, refit="statsmodels",
    )  # fmt: skip
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draws = m.coefficient_draws
    elapsed = time.perf_counter() - t0
    return elapsed, draws.to_numpy(), m._boot.n_failed if m._boot else 0


def bench(name: str, df: pd.DataFrame, n_boot: int) -> None:
    f = fit(df)
    print(f"\n## {name}: {len(df)} rows, {df['student'].nunique()} groups, {n_boot} replicates")
    # warm up the worker pool and imports so the parallel timing measures refits, not start-up
    timed_draws(f, 4, 2, True)
    t1, d1, fail1 = timed_draws(f, n_boot, 1, True)
    t2, d2, fail2 = timed_draws(f, n_boot, 2, True)
    tc, _, failc = timed_draws(f, n_boot, 1, False)
    same = d1.shape == d2.shape and bool(np.array_equal(d1, d2))
    rows = [("serial, warm start", t1, fail1), ("n_jobs=2, warm start", t2, fail2),
            ("serial, cold start", tc, failc)]  # fmt: skip
    for what, t, failed in rows:
        print(f"{what:24s}: {t:8.2f} s  ({1000 * t / n_boot:.1f} ms/refit, {failed} failed)")
    print(f"speed-up n_jobs=2/serial: {t1 / t2:8.2f}x   draws bit-identical: {same}")
    print(f"warm vs cold (serial)   : {tc / t1:8.2f}x faster warm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--big-groups", type=int, default=1000)
    args = ap.parse_args()
    print(f"# bench_bootstrap on {platform.node()}: {os.cpu_count()} cores, "
          f"{platform.python_version()}")  # fmt: skip
    bench("classroom (seed page)", classroom_data(), args.n_boot)
    bench("classroom x25", big_classroom(args.big_groups, 10), args.n_boot)


if __name__ == "__main__":
    main()
