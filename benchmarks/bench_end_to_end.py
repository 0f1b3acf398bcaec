"""Whole analyses as users run them, against the link-evaluation bound (issue 12, item 4).

Each task is timed from ``Margins(fit, ...)`` to the finished result: a fresh session per
task, so the time includes everything the user waits for (checks, the base design, the
draws, every scenario, the result). The fit and the data are made before the clock starts.

**The link-evaluation bound** of a task is the number of inverse-link evaluations its
definition requires, (2 per numeric variable's AME + 1 per factor level + 1 per grid
point) × N × S, divided by the machine's ``np.exp`` throughput on all cores: one thread per
core, each over its own 10⁷ values (numpy releases the GIL), measured right before and
right after the task so that both see the same load; the bound uses their mean, and both
are printed. A ratio of 1 means the task cost what its exponentials alone cost.

**Peak memory**: the process's resident high-water mark is reset (``/proc/self/clear_refs``)
before each task; the figure is VmHWM at the end minus the resident size at the start, so
it is what the task adds on top of the data and the fit.

**Warm-up**: each group of tasks first runs once on a small copy of its data (200 rows for
the seed model, 2,000 for the logit; the peer likewise), so that one-off costs per process
(lazy imports, loading compiled kernels, JIT compilation) are printed but not in the
figures; a script that runs one analysis pays them once on top.

**The peer**: with ``--peer PYTHON`` (an interpreter with pymargins 0.3 and statsmodels
0.14, in its own environment), the seed tasks are also run there on the same rows (written
to a CSV file), in the same run, with simulation inference and the same number of draws.

    python benchmarks/bench_end_to_end.py [--tasks seed,logit200k] [--peer PYTHON]
    python benchmarks/bench_end_to_end.py --tasks logit1m   # the 1,000,000-row logit
    python benchmarks/bench_end_to_end.py --one-blas-thread  # BLAS on one thread per task
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

EXP_VALUES = 10_000_000
N_SIMS = 1000
AGES = list(range(20, 76, 2))  # 28 ages × female 0/1: the seed's 56-point grid


def exp_throughput() -> float:
    """np.exp evaluations per second on all cores (one thread per core, 10⁷ values each)."""
    cores = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-5, 5, EXP_VALUES) for _ in range(cores)]
    outs = [np.empty(EXP_VALUES) for _ in range(cores)]
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda i: np.exp(xs[i], out=outs[i]), range(cores)))  # warm
        t0 = time.perf_counter()
        list(pool.map(lambda i: np.exp(xs[i], out=outs[i]), range(cores)))
        wall = time.perf_counter() - t0
    return cores * EXP_VALUES / wall


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class Row:
    task: str
    seconds: float
    evals: float
    rate_before: float
    rate_after: float
    peak_mib: float

    @property
    def bound(self) -> float:
        return self.evals / (0.5 * (self.rate_before + self.rate_after))


ONE_BLAS = False  # --one-blas-thread: each task inside engine.delta.one_blas_thread()


def timed(task: str, evals: float, run: Callable[[], object]) -> Row:
    rate0 = exp_throughput()
    _reset_peak()
    rss0 = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    if ONE_BLAS:
        from simmargins.engine.delta import one_blas_thread

        with one_blas_thread():
            run()
    else:
        run()
    seconds = time.perf_counter() - t0
    peak = max(_rss_kib("VmHWM") - rss0, 0) / 1024
    rate1 = exp_throughput()
    row = Row(task, seconds, evals, rate0, rate1, peak)
    print(
        f"{task:34} {seconds:8.3f} s  bound {row.bound:7.3f} s  ratio {seconds / row.bound:7.1f}"
        f"  peak +{peak:7.1f} MiB  exp/s {rate0 / 1e9:.2f}e9 → {rate1 / 1e9:.2f}e9"
        f"  load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    return row


# -- the seed model ------------------------------------------------------------------------
def seed_data(rows: int) -> pd.DataFrame:
    from simmargins import classroom_data

    return classroom_data(seed=42, n_students=rows // 10, per_student=10)


PEER = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import pandas as pd, statsmodels, statsmodels.formula.api as smf
from pymargins import Margins
df = pd.read_csv(sys.argv[1])
ages = json.loads(sys.argv[2]); n_sim = int(sys.argv[3])
out = {"statsmodels": statsmodels.__version__}
formula = "score ~ age + female + treated + C(school)"
t = time.perf_counter()
small = smf.mixedlm(formula, df.iloc[:200], groups="student").fit()
Margins(small, method="simulation", n_sim=n_sim, rng_seed=1).dydx("age")
Margins(small, method="simulation", n_sim=n_sim, rng_seed=1).predict(
    atexog={"age": ages, "female": [0, 1]})
out["warmup"] = time.perf_counter() - t
fit = smf.mixedlm(formula, df, groups="student").fit()
t = time.perf_counter()
Margins(fit, method="simulation", n_sim=n_sim, rng_seed=1).dydx("age")
out["dydx"] = time.perf_counter() - t
t = time.perf_counter()
Margins(fit, method="simulation", n_sim=n_sim, rng_seed=1).predict(
    atexog={"age": ages, "female": [0, 1]})
out["grid"] = time.perf_counter() - t
print(json.dumps(out))
"""


def seed_tasks(rows: int, peer: str | None) -> list[tuple[Row, float | None]]:
    import statsmodels.formula.api as smf

    from simmargins import Margins

    df = seed_data(rows)
    formula = "score ~ age + female + treated + C(school)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = smf.mixedlm(formula, df.iloc[:200], groups="student").fit()
        t0 = time.perf_counter()
        Margins(small, n_sims=N_SIMS, seed=1).dydx("age")
        Margins(small, n_sims=N_SIMS, seed=1).predict(atexog={"age": AGES, "female": [0, 1]})
        print(f"  warm-up (imports, first calls): {time.perf_counter() - t0:.2f} s", flush=True)
        fit = smf.mixedlm(formula, df, groups="student").fit()
    n = len(df)
    out = [
        timed(
            f"seed {n:,} dydx(age)",
            2 * n * N_SIMS,
            lambda: Margins(fit, n_sims=N_SIMS, seed=1).dydx("age"),
        ),
        timed(
            f"seed {n:,} grid age×female (56)",
            56 * n * N_SIMS,
            lambda: Margins(fit, n_sims=N_SIMS, seed=1).predict(
                atexog={"age": AGES, "female": [0, 1]}
            ),
        ),
    ]
    peer_times: list[float | None] = [None, None]
    if peer:
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
            df.to_csv(fh, index=False)
        try:
            res = subprocess.run(
                [peer, "-c", PEER, fh.name, json.dumps(AGES), str(N_SIMS)],
                capture_output=True,
                text=True,
                check=True,
                timeout=1800,
            )
            got = json.loads(res.stdout.strip().splitlines()[-1])
            peer_times = [got["dydx"], got["grid"]]
            print(
                f"  pymargins 0.3 (statsmodels {got['statsmodels']}): dydx {got['dydx']:.3f} s, "
                f"grid {got['grid']:.3f} s  (warm-up {got['warmup']:.1f} s)  "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
            print(f"  pymargins peer failed: {exc}", flush=True)
        finally:
            os.unlink(fh.name)
    return list(zip(out, peer_times, strict=True))


# -- the big logit ---------------------------------------------------------------------------
def logit_data(rows: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{j}": rng.normal(size=rows) for j in range(1, 11)})
    levels = [f"L{j:02d}" for j in range(20)]
    df["g"] = rng.choice(levels, rows)
    eta = -0.3 + sum(0.1 * ((-1) ** j) * df[f"x{j}"] for j in range(1, 11))
    eta = eta + (df["g"].str[1:].astype(int) - 10) * 0.03
    df["y"] = (rng.uniform(size=rows) < 1 / (1 + np.exp(-eta))).astype(float)
    return df


def logit_tasks(rows: int, grid_points: int) -> list[tuple[Row, float | None]]:
    import statsmodels.formula.api as smf

    from simmargins import Margins

    df = logit_data(rows)
    formula = "y ~ " + " + ".join(f"x{j}" for j in range(1, 11)) + " + C(g)"
    names = [*(f"x{j}" for j in range(1, 11)), "g"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = smf.logit(formula, logit_data(2000, seed=4)).fit(disp=0)
        t0 = time.perf_counter()
        Margins(small, n_sims=N_SIMS, seed=1).dydx(names)
        Margins(small, method="delta", seed=1).dydx(names)
        print(f"  warm-up (imports, first calls): {time.perf_counter() - t0:.2f} s", flush=True)
        fit = smf.logit(formula, df).fit(disp=0)
    n = len(df)
    ame_evals = (2 * 10 + 20) * n * N_SIMS
    grid = list(np.quantile(df["x1"], np.linspace(0.02, 0.98, grid_points)))
    rows_out = [
        timed(
            f"logit {n:,} AMEs of all 11",
            ame_evals,
            lambda: Margins(fit, n_sims=N_SIMS, seed=1).dydx(names),
        ),
        timed(
            f"logit {n:,} grid x1 ({grid_points})",
            grid_points * n * N_SIMS,
            lambda: Margins(fit, n_sims=N_SIMS, seed=1).predict(atexog={"x1": grid}),
        ),
        timed(
            f"logit {n:,} AMEs, method=delta",
            ame_evals,  # the draws' bound, for scale: the delta route needs no draws
            lambda: Margins(fit, method="delta", seed=1).dydx(names),
        ),
    ]
    return [(r, None) for r in rows_out]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="seed,logit200k", help="seed, logit200k, logit1m")
    ap.add_argument("--seed-rows", type=int, default=20_000)
    ap.add_argument("--peer", default=None, help="python with pymargins 0.3 (optional)")
    ap.add_argument(
        "--one-blas-thread",
        action="store_true",
        help="run each task inside engine.delta.one_blas_thread() (BLAS on one thread)",
    )
    args = ap.parse_args()
    global ONE_BLAS
    ONE_BLAS = args.one_blas_thread
    import numba
    import statsmodels

    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()} {os.cpu_count()} cores  "
        f"Python {platform.python_version()}  numpy {np.__version__}  numba {numba.__version__}"
        f"  statsmodels {statsmodels.__version__}  load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(f"S = {N_SIMS} draws; bound = link evaluations / np.exp throughput (mean of the two)")
    if ONE_BLAS:
        print("each task inside one_blas_thread()")
    results: list[tuple[Row, float | None]] = []
    tasks = args.tasks.split(",")
    if "seed" in tasks:
        results += seed_tasks(args.seed_rows, args.peer)
    if "logit200k" in tasks:
        results += logit_tasks(200_000, 20)
    if "logit1m" in tasks:
        results += logit_tasks(1_000_000, 50)
    print("\n| task | time | bound | time / bound | peer (pymargins 0.3) | peer / time | peak |")
    print("|---|---|---|---|---|---|---|")
    for row, peer in results:
        peer_s = f"{peer:.2f} s" if peer is not None else "—"
        peer_r = f"{peer / row.seconds:.1f}×" if peer is not None else "—"
        print(
            f"| {row.task} | {row.seconds:.3f} s | {row.bound:.3f} s | "
            f"{row.seconds / row.bound:.1f}× | {peer_s} | {peer_r} | +{row.peak_mib:.0f} MiB |"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
