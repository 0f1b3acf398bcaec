"""Population-averaged against conditional margins at 100,000 rows (issue 15, item 3).

Run on demand (not part of the test suite)::

    python benchmarks/bench_integrated.py               # N = 100,000, K = 10, S = 1000
    python benchmarks/bench_integrated.py --n 20000 --rounds 5

Times, in interleaved rounds (best and all listed), with the same rows, draws and logit
link:

* ``conditional``: ``kernels.margin_draws`` — Σᵢ h(xᵢβ_d) / N for every draw (u = 0);
* ``integrated, Q nodes``: ``integrated.integrated_draws`` — Σᵢ Σ_q ω_q h(xᵢβ_d + σ_d t_q) / N
  with each draw's own σ, for the Gauss–Hermite sizes the session picks (8, 16, 32);
* ``lognormal``: the log link's closed form exp(η + s²/2) through the same kernel;
* ``session``: a whole ``evaluate_integrated`` request (node choice by n vs 2n, value,
  gradient, Hessian and draws) for one margin, beside ``evaluate_linear``'s conditional one.

Warm-up calls (numba compiles or loads its cache) are excluded.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from simmargins.engine.design import CounterfactualData, Setting
from simmargins.engine.evaluate import evaluate_linear
from simmargins.engine.evaluate_integrated import IntegrationSpec, evaluate_integrated
from simmargins.engine.formula import Variable
from simmargins.engine.integrated import integrated_draws
from simmargins.engine.kernels import margin_draws
from simmargins.engine.links import LOG, LOGIT, LOGIT_LINK
from simmargins.engine.quadrature import gauss_hermite


def _best(fn, rounds: int) -> tuple[float, list[float]]:
    fn()  # warm-up: compile or load the cache
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--s", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, k, s = args.n, args.k, args.s
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    Z2, off, w = np.ones((n, 1)), np.zeros(n), np.ones(n)
    beta = 0.2 * rng.normal(size=k)
    B = beta + 0.02 * rng.normal(size=(s, k))
    sig2 = np.exp(2 * (np.log(1.5) + 0.05 * rng.normal(size=(s, 1))))
    print(f"N = {n:,}, K = {k}, S = {s}, logit link, one random intercept; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    rows: list[tuple[str, float, list[float]]] = []
    cond, times = _best(lambda: margin_draws(X, off, w, B, LOGIT), args.rounds)
    rows.append(("conditional (margin_draws)", cond, times))
    for q in (8, 16, 32):
        t, om = gauss_hermite(q)
        best, times = _best(
            lambda t=t, om=om: integrated_draws(X, Z2, off, w, B, sig2, t, om, LOGIT),
            args.rounds,
        )
        rows.append((f"integrated, {q} GH nodes", best, times))
    t, om = gauss_hermite(1)
    best, times = _best(
        lambda: integrated_draws(X, Z2, off, w, B, sig2, t, om, LOG, lognormal=True), args.rounds
    )
    rows.append(("integrated, log link closed form", best, times))

    data = pd.DataFrame({f"x{j}": X[:, j] for j in range(1, k)})
    names = list(data.columns)

    def design_int(frame):
        return np.column_stack([np.ones(len(frame)), frame[names].to_numpy(), np.ones(len(frame))])

    def design_cond(frame):
        return design_int(frame)[:, :k]

    variables = {c: Variable(c, False, None) for c in names}
    cf_int = CounterfactualData(data, variables, design_int, lambda f: None)
    cf_cond = CounterfactualData(data, variables, design_cond, lambda f: None)
    theta = np.r_[beta, np.log(1.5)]
    Bt = np.column_stack([B, 0.5 * np.log(sig2)])
    spec = IntegrationSpec(k, 1)
    one = [np.ones(n)]
    best, times = _best(
        lambda: evaluate_linear(cf_cond, [Setting()], np.eye(1), one, LOGIT_LINK, beta, B,
                                0.02 * np.eye(k), False),
        args.rounds,
    )
    rows.append(("session step, conditional (evaluate_linear)", best, times))
    report = []
    best, times = _best(
        lambda: report.append(
            evaluate_integrated(cf_int, [Setting()], np.eye(1), one, LOGIT_LINK, theta, Bt,
                                0.02 * np.eye(k + 1), False, spec)[1]
        ),
        args.rounds,
    )
    rows.append((f"session step, integrated ({report[-1].nodes} nodes chosen)", best, times))
    print(f"{'':46s} {'best s':>8s} {'x cond.':>8s}   rounds")
    for name, best, times in rows:
        ratio = best / cond if "session" not in name else best / rows[-2][1]
        print(f"{name:46s} {best:8.3f} {ratio:8.1f}   " + " ".join(f"{x:.3f}" for x in times))


if __name__ == "__main__":
    main()
