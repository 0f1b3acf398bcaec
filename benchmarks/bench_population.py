"""A population frame out of core: newdata= as a Parquet dataset on a LocalCluster (issue 16).

Generates a Parquet dataset of ``--rows`` rows (default 20,000,000) in files of
``--file-rows`` rows (written chunk by chunk; not committed, deleted afterwards unless
``--keep``), fits a logit on a 200,000-row sample of the same population, and averages
over the whole frame on a ``LocalCluster`` of two single-threaded worker processes:

* ``predict()`` (the averaged probability) and ``dydx("x1")`` with S = 1000 draws;
* each worker's peak resident memory (``ru_maxrss``) after the run;
* the same two results on a 1,000,000-row slice (the first files) in memory and
  partitioned, which must agree to 1e-12 (a numeric AME compared as μ⁺ − μ⁻).

Usage::

    python benchmarks/bench_population.py [--rows 20000000] [--file-rows 500000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

N_SIMS = 1000
LEVELS = [f"L{j:02d}" for j in range(20)]


def population_chunk(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{j}": rng.normal(size=rows) for j in range(1, 11)})
    df["g"] = rng.choice(LEVELS, rows)
    eta = -0.3 + sum(0.1 * ((-1) ** j) * df[f"x{j}"] for j in range(1, 11))
    eta = eta + (df["g"].str[1:].astype(int) - 10) * 0.03
    df["y"] = (rng.uniform(size=rows) < 1 / (1 + np.exp(-eta))).astype(float)
    df["w"] = rng.uniform(0.5, 2.0, rows)
    return df


def write_dataset(folder: Path, rows: int, file_rows: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, start in enumerate(range(0, rows, file_rows)):
        path = folder / f"part-{i:04d}.parquet"
        population_chunk(min(file_rows, rows - start), seed=1000 + i).to_parquet(path)
        files.append(path)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--file-rows", type=int, default=500_000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    import statsmodels.formula.api as smf
    from distributed import Client, LocalCluster

    from simmargins import Margins

    tmp = Path(tempfile.mkdtemp(prefix="simmargins_population_"))
    try:
        t0 = time.perf_counter()
        files = write_dataset(tmp / "population", args.rows, args.file_rows)
        size = sum(f.stat().st_size for f in files) / 2**20
        print(f"wrote {args.rows:,} rows in {len(files)} files ({size:.0f} MiB) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
        sample = population_chunk(200_000, seed=7)
        formula = "y ~ " + " + ".join(f"x{j}" for j in range(1, 11)) + " + C(g)"
        fit = smf.logit(formula, sample).fit(disp=0)
        m = Margins(fit, n_sims=N_SIMS, seed=1)
        m.coefficient_draws  # noqa: B018  (draw once, before timing)
        one = pd.read_parquet(files[0])  # warm-up of the kernels in this process
        m.predict(newdata=one.head(2000), weights="w")
        # one numba thread per worker process: two processes on two cores
        env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                env=env, memory_limit=0,
            )  # fmt: skip
            client = Client(cluster)
        try:
            path = str(tmp / "population")
            m.predict(newdata=str(files[0]), weights="w")  # warm-up on the workers
            for label, call in (
                ("predict()", lambda nd: m.predict(newdata=nd, weights="w")),
                ('dydx("x1")', lambda nd: m.dydx("x1", newdata=nd, weights="w")),
            ):
                t = time.perf_counter()
                res = call(path)
                dt = time.perf_counter() - t
                peaks = client.run(
                    lambda: __import__("resource").getrusage(
                        __import__("resource").RUSAGE_SELF
                    ).ru_maxrss
                )
                peak = max(peaks.values()) / 1024
                print(f"{args.rows:,} rows, {label}: {dt:.1f} s  estimate "
                      f"{res.estimate[0]:.6f}  SE {res.std_err[0]:.6f}  worker peak RSS "
                      f"{peak:.0f} MiB", flush=True)  # fmt: skip
            # a 1,000,000-row slice: partitioned on the cluster against pandas in memory
            n_slice = max(1, 1_000_000 // args.file_rows)
            slice_files = [str(f) for f in files[:n_slice]]
            frame = pd.concat([pd.read_parquet(f) for f in slice_files], ignore_index=True)
            slice_dir = tmp / "slice"
            slice_dir.mkdir()
            for f in slice_files:
                shutil.copy(f, slice_dir)
            for label, call in (
                ("predict()", lambda nd: m.predict(newdata=nd, weights="w")),
                ('dydx("x1")', lambda nd: m.dydx("x1", newdata=nd, weights="w")),
            ):
                a, b = call(frame), call(str(slice_dir))
                scale = 2.0 * m._cf.fd_step("x1") if "dydx" in label else 1.0
                diff = np.max(np.abs(a.estimate - b.estimate)) * scale
                ddraw = np.max(np.abs(a.draws.to_numpy() - b.draws.to_numpy())) * scale
                print(f"{len(frame):,}-row slice, {label}: |in-memory − partitioned| "
                      f"estimate {diff:.1e}, draws {ddraw:.1e} (scaled to μ)", flush=True)
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                client.close()
                cluster.close()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
