"""The thread fight: the delta method's moments right after a parallel numba kernel.

numba's OpenMP workers (libgomp, the default ``omp`` threading layer) spin for a while after
a parallel region before they sleep; OpenBLAS's pthreads spin too. On a machine whose cores
are all busy (another job, a bootstrap worker) the BLAS product that the delta method runs
right after a kernel, ``X.T @ diag(w h'') X`` (``engine.delta.scenario_moments``), then
waits for cores held by spinning threads.

Each configuration runs in a fresh interpreter (the threading layer and libgomp's wait
policy are read when numba and libgomp load):

* ``before``: the library as it was: libgomp's default wait policy (the script removes the
  ``OMP_WAIT_POLICY=PASSIVE`` that ``simmargins.engine.kernels`` now sets on import, before
  libgomp loads at the first launch) and the moments through numpy/BLAS
  (``delta.scenario_moments(..., on_numba=False)``, the code the library ran before).
* ``after``: the library as it is: passive wait, the moments on numba's pool
  (``delta.scenario_moments``); ``policy`` and ``moments`` take one of the two measures.

and each with and without a competing load: one process busy on one core. Per configuration
the script times, REPEAT times: one logit kernel pass (N rows, K columns, S draws), then the
scenario moments of the same X (value, gradient, Hessian), and reports the median moment
time and kernel time.

    python benchmarks/bench_threads.py [--n 100000] [--k 20] [--s 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
import numpy as np
from simmargins.engine.delta import scenario_moments
from simmargins.engine.kernels import margin_draws
if os.environ.get("BENCH_SPIN"):  # libgomp has not loaded yet: it sees no policy
    del os.environ["OMP_WAIT_POLICY"]
if os.environ.get("BENCH_BLAS"):
    def scenario_moments(*args, _route=scenario_moments):
        return _route(*args, on_numba=False)
from simmargins.engine.links import LOGIT, LOGIT_LINK as link
import numba
n, k, s, repeat = (int(a) for a in sys.argv[1:5])
rng = np.random.default_rng(1)
X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
beta = rng.normal(0, 0.1, k)
B = beta + rng.normal(0, 0.01, (s, k))
off, w = np.zeros(n), np.ones(n)
margin_draws(X[:1000], off[:1000], w[:1000], B, LOGIT)  # compile / load the caches
scenario_moments(X[:5000], off[:5000], w[:5000], beta, link)
kern, mom = [], []
for _ in range(repeat):
    t0 = time.perf_counter()
    margin_draws(X, off, w, B, LOGIT)
    t1 = time.perf_counter()
    scenario_moments(X, off, w, beta, link)
    t2 = time.perf_counter()
    kern.append(t1 - t0)
    mom.append(t2 - t1)
print(json.dumps({"layer": numba.threading_layer(), "threads": numba.get_num_threads(),
                  "wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                  "kernel": sorted(kern)[len(kern) // 2], "moments": sorted(mom)[len(mom) // 2],
                  "moments_max": max(mom)}))
"""


def _busy(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


CONFIGS = {  # name: (libgomp's default spin, moments through BLAS)
    "before": (True, True),
    "policy": (False, True),
    "moments": (True, False),
    "after": (False, False),
}


def run(config: str, load: bool, args: argparse.Namespace) -> dict[str, float | str]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    spin, blas = CONFIGS[config]
    if spin:
        env["BENCH_SPIN"] = "1"
    if blas:
        env["BENCH_BLAS"] = "1"
    hog = None
    if load:
        hog = mp.Process(target=_busy, args=(time.time() + 600,), daemon=True)
        hog.start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.n), str(args.k), str(args.s), str(args.repeat)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if hog is not None:
            hog.terminate()
            hog.join()
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--s", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}")
    print(f"N={args.n} K={args.k} S={args.s}, median of {args.repeat} (kernel, then moments)")
    print("before: default spin, moments via BLAS; policy: only the passive wait;")
    print("moments: only the moments on numba's pool; after: both (the library now)")
    print(f"{'config':8} {'load':9} {'layer':9} {'policy':8} {'kernel s':>9} {'moments s':>10}")
    for load in (False, True):
        for config in CONFIGS:
            r = run(config, load, args)
            print(
                f"{config:8} {'1 busy' if load else 'none':9} "
                f"{r['layer']!s:9} {r['wait_policy']!s:8} {float(r['kernel']):9.3f} "
                f"{float(r['moments']):10.4f}  (max {float(r['moments_max']):.4f})"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
