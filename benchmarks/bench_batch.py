"""A 100-file batch reanalysis: serial against a 2-worker Dask LocalCluster.

The script writes FILES small CSV files (ROWS rows each, a logit outcome, a numeric, a
binary and a three-level covariate) into a temporary folder, half under ``north/`` and
half under ``south/`` with the same names (``site000.csv`` ...), and one spec: a logit
fit, the AMEs of all three covariates and the predictive margins of the binary one
(N_SIMS draws, plots as the spec says). It then runs

* ``serial``: ``run_batch(spec, ['*/site*.csv'])``, the jobs one after another in this
  process (what ``simmargins run`` does without ``--scheduler``);
* ``cluster``: the same with ``scheduler=Client`` of a ``LocalCluster(n_workers=2,
  processes=True, threads_per_worker=1)``, timed from submission (the cluster is started
  and warmed by one small task first; its start-up is reported apart), once with numba's
  default threads in each worker (all cores) and once with ``NUMBA_NUM_THREADS=1``;

checks that every ``margins.csv`` of the two runs is equal (to 1e-12) and that the
combined tables match, and prints the wall times and the head of ``combined.csv``.

    python benchmarks/bench_batch.py [--files 100] [--rows 2000] [--sims 1000] [--plots]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SPEC = """\
data = "north/site000.csv"
[output]
plots = {plots}
[model]
kind = "logit"
formula = "y ~ age + t + C(g)"
[inference]
n_sims = {sims}
seed = 1
[[quantity]]
name = "effects"
kind = "dydx"
variables = ["age", "t", "g"]
[[quantity]]
name = "arms"
kind = "predict"
atexog = {{ t = [0, 1] }}
"""


# numba's kernels use every core in each process unless told otherwise
CONFIGS = {
    "cluster, numba threads default": None,
    "cluster, 1 numba thread/worker": {"NUMBA_NUM_THREADS": "1"},
}


def write_inputs(root: Path, files: int, rows: int, sims: int, plots: bool) -> None:
    for i in range(files):
        rng = np.random.default_rng(i)
        df = pd.DataFrame(
            {
                "age": rng.integers(20, 70, rows),
                "t": rng.integers(0, 2, rows),
                "g": rng.choice(list("abc"), rows),
            }
        )
        eta = -2 + 0.04 * df["age"] + 0.5 * df["t"] + 0.4 * (df["g"] == "b")
        df["y"] = (rng.random(rows) < 1 / (1 + np.exp(-eta))).astype(int)
        folder = root / ("north" if i % 2 == 0 else "south")
        folder.mkdir(exist_ok=True)
        df.to_csv(folder / f"site{i // 2:03d}.csv", index=False)
    (root / "spec.toml").write_text(SPEC.format(sims=sims, plots=str(plots).lower()))


def margins(root: Path) -> dict[str, pd.DataFrame]:
    return {p.relative_to(root).as_posix(): pd.read_csv(p) for p in root.rglob("margins.csv")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--plots", action="store_true", help="draw the PNG plots too")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from simmargins.cli.cluster import run_batch

    with tempfile.TemporaryDirectory(prefix="bench_batch-") as tmp:
        root = Path(tmp)
        write_inputs(root, args.files, args.rows, args.sims, args.plots)
        os.chdir(root)
        spec, data = root / "spec.toml", ["*/site*.csv"]
        print(f"{args.files} files x {args.rows} rows, logit, 2 quantities, {args.sims} draws, "
              f"plots {args.plots}; load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip

        start = time.perf_counter()
        serial = run_batch(spec, data, out="serial")
        t_serial = time.perf_counter() - start

        timings, outs = {}, []
        for i, (name, env) in enumerate(CONFIGS.items()):
            start = time.perf_counter()
            with (
                LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                             dashboard_address=":0", env=env) as cluster,
                Client(cluster, set_as_default=False) as client,
            ):  # fmt: skip
                client.run(lambda: __import__("simmargins.cli.jobs"))  # workers import once
                t_start = time.perf_counter() - start
                start = time.perf_counter()
                dask = run_batch(spec, data, out=f"cluster{i}", scheduler=client)
                timings[name] = (time.perf_counter() - start, t_start)
                assert not dask.failures
                outs.append(dask.out)
        load = os.getloadavg()[0]

        a = margins(serial.out)
        worst = 0.0
        for out in outs:
            b = margins(out)
            assert sorted(a) == sorted(b) and len(a) == 2 * args.files
            for k in a:
                gap = a[k].select_dtypes("number") - b[k].select_dtypes("number")
                worst = max(worst, float(np.nanmax(np.abs(gap.to_numpy()), initial=0.0)))
            combined = pd.read_csv(out / "combined.csv")
            pd.testing.assert_frame_equal(combined, pd.read_csv(serial.out / "combined.csv"))

        print(f"{'serial:':<32}{t_serial:7.1f} s")
        for name, (t_cluster, t_start) in timings.items():
            print(f"{name + ':':<32}{t_cluster:7.1f} s  ({t_serial / t_cluster:.2f}x)"
                  f" + {t_start:.1f} s to start the cluster and warm up")  # fmt: skip
        print(f"largest |serial - cluster| over all margins.csv numbers: {worst:.1e}")
        print(f"load average after: {load:.2f}; cores: {os.cpu_count()}")
        print(f"combined.csv: {combined.shape[0]} rows x {combined.shape[1]} columns; head:")
        with pd.option_context("display.width", 120, "display.max_columns", 8):
            print(combined[["file", "analysis", "quantity", "label", "estimate", "std_err"]]
                  .head(6).to_string(index=False))  # fmt: skip


if __name__ == "__main__":
    main()
