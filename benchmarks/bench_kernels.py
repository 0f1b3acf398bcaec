"""Kernel benchmark: the numba margin/AME kernels against a naive numpy version.

Run on demand (not part of the test suite)::

    python benchmarks/bench_kernels.py                # N = 10^5 and 10^6, S = 1000, K = 20
    python benchmarks/bench_kernels.py --n 100000     # one size only

Every measurement runs in a fresh subprocess, so that its peak memory can be read from
``/proc/self/status``: the child builds the data, warms up (numba compiles or loads its
cache, BLAS and the thread pool start), records VmRSS, resets the high-water mark through
``/proc/self/clear_refs`` and then times the call; "extra memory" is VmHWM minus that
baseline, i.e. what the computation needs beyond the data it is given. The naive numpy
version also reports the peak of ``tracemalloc`` (numpy's own allocations).

The same run measures this machine's limits: the GEMM rate of a large ``np.dot`` (OpenBLAS,
all cores) and the throughput of ``np.exp`` on all cores (one thread per core; numpy
releases the GIL), over a large array and in L2-sized blocks, and states the kernel's
multiply-add and inverse-link rates as fractions of them.

On a shared machine every measurement, the limits included, is repeated in ``--rounds``
interleaved rounds, each started after a second in which the CPUs were at least 90% idle
(``--max-wait``); the best is reported and every round is listed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any

import numpy as np

S_DRAWS = 1000
K_COLS = 20
EPS = 1e-4  # the AME's finite-difference step on column 1
MiB = 2**20


# ----------------------------------------------------------------- memory probes


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current VmRSS (Linux ≥ 4.0)


# ----------------------------------------------------------------- problem


def make_problem(n: int, seed: int = 0) -> dict[str, Any]:
    """Logit design with an intercept and K−1 standard-normal columns; η spread ~ 1."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, K_COLS))
    X[:, 0] = 1.0
    for j in range(1, K_COLS):  # column by column: no N×K temporary inflates the peak
        X[:, j] = rng.standard_normal(n)
    beta = rng.normal(scale=1.0 / np.sqrt(K_COLS), size=K_COLS)
    B = beta + rng.normal(scale=0.02, size=(S_DRAWS, K_COLS))
    return {"X": X, "off": np.zeros(n), "w": np.ones(n), "B": B}


def perturbed(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Xp = X.copy()
    Xm = X.copy()
    Xp[:, 1] += EPS
    Xm[:, 1] -= EPS
    return Xp, Xm


# ----------------------------------------------------------------- the two versions


def naive_margin(X, off, w, B, chunk):
    """What one writes first: η = B Xᵀ (+o) as a draws × rows matrix, expit, average.

    In-place where numpy allows it; ``chunk`` draws at a time when S×N would not fit.
    """
    from scipy.special import expit

    out = np.empty(B.shape[0])
    wsum = w.sum()
    for d0 in range(0, B.shape[0], chunk):
        E = B[d0 : d0 + chunk] @ X.T
        E += off
        expit(E, out=E)
        out[d0 : d0 + chunk] = E @ w / wsum
        del E  # else the next chunk's matrix is allocated while this one is alive
    return out


def naive_ame(Xp, Xm, off, w, B, chunk):
    from scipy.special import expit

    out = np.empty(B.shape[0])
    wsum = w.sum()
    for d0 in range(0, B.shape[0], chunk):
        Ep = B[d0 : d0 + chunk] @ Xp.T
        Ep += off
        expit(Ep, out=Ep)
        Em = B[d0 : d0 + chunk] @ Xm.T
        Em += off
        expit(Em, out=Em)
        Ep -= Em
        del Em
        out[d0 : d0 + chunk] = Ep @ w / wsum / (2 * EPS)
        del Ep
    return out


# ----------------------------------------------------------------- one measurement


def _time_it(fn, repeats: int) -> tuple[float, float, float, Any]:
    """Best wall time of ``repeats`` calls, the CPU time (all threads) of that call, and the
    extra resident memory at the peak."""
    base = _status_kib("VmRSS")
    _reset_peak()
    best, cpu = np.inf, np.inf
    result = None
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = fn()
        t = time.perf_counter() - t0
        if t < best:
            best, cpu = t, time.process_time() - c0
    extra = (_status_kib("VmHWM") - base) * 1024 / MiB
    return best, cpu, extra, result


def run_child(what: str, n: int, repeats: int, chunk: int, trace: bool) -> dict[str, Any]:
    from simmargins.engine.kernels import margin_draws
    from simmargins.engine.links import LOGIT

    p = make_problem(n)
    X, off, w, B = p["X"], p["off"], p["w"], p["B"]
    rec: dict[str, Any] = {"what": what, "n": n}
    if what.endswith("ame"):
        Xp, Xm = perturbed(X)
        del X, p
        data_bytes = Xp.nbytes + Xm.nbytes + off.nbytes + w.nbytes + B.nbytes
    else:
        data_bytes = X.nbytes + off.nbytes + w.nbytes + B.nbytes
    rec["data_MiB"] = data_bytes / MiB

    if what == "kernel-margin":
        margin_draws(X[:1000], off[:1000], w[:1000], B[:8], LOGIT, 1.0)  # compile / load
        t, cpu, extra, res = _time_it(lambda: margin_draws(X, off, w, B, LOGIT, 1.0), repeats)
    elif what == "kernel-ame":
        # the production AME route: two margin passes (x + ε, x − ε), differenced
        margin_draws(Xp[:1000], off[:1000], w[:1000], B[:8], LOGIT, 1.0)

        def ame() -> Any:
            plus = margin_draws(Xp, off, w, B, LOGIT, 1.0)
            return (plus - margin_draws(Xm, off, w, B, LOGIT, 1.0)) / (2 * EPS)

        t, cpu, extra, res = _time_it(ame, repeats)
    elif what == "naive-margin":
        naive_margin(X[:1000], off[:1000], w[:1000], B[:8], chunk)  # BLAS threads start
        t, cpu, extra, res = _time_it(lambda: naive_margin(X, off, w, B, chunk), repeats)
        if trace:
            tracemalloc.start()
            naive_margin(X, off, w, B, chunk)
            rec["tracemalloc_MiB"] = tracemalloc.get_traced_memory()[1] / MiB
            tracemalloc.stop()
    elif what == "naive-ame":
        naive_ame(Xp[:1000], Xm[:1000], off[:1000], w[:1000], B[:8], chunk)
        t, cpu, extra, res = _time_it(lambda: naive_ame(Xp, Xm, off, w, B, chunk), repeats)
        if trace:
            tracemalloc.start()
            naive_ame(Xp, Xm, off, w, B, chunk)
            rec["tracemalloc_MiB"] = tracemalloc.get_traced_memory()[1] / MiB
            tracemalloc.stop()
    else:
        raise ValueError(f"unknown measurement {what!r}")
    rec.update(
        seconds=t,
        cpu_seconds=cpu,
        extra_MiB=extra,
        chunk=chunk,
        result_head=[float(v) for v in res[:3]],
    )
    if what.startswith("kernel"):
        import numba

        rec["threads"] = numba.get_num_threads()
        rec["threading_layer"] = numba.threading_layer()
    return rec


def machine_limits(n_threads: int) -> dict[str, float]:
    """GEMM GFLOP/s of a large np.dot, and np.exp / scipy expit evaluations per second
    over a large array split across ``n_threads`` threads (numpy releases the GIL)."""
    from scipy.special import expit

    rng = np.random.default_rng(1)
    size = 2**24  # 128 MiB in, 128 MiB out: far larger than any cache
    x = rng.uniform(-5.0, 5.0, size)
    y = np.empty_like(x)
    parts = np.array_split(np.arange(size), n_threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

    def par(fn):
        def run():
            ts = [threading.Thread(target=fn, args=(x[a:b], y[a:b])) for a, b in bounds]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        return run

    def np_exp(a, out):
        np.exp(a, out=out)

    def sp_expit(a, out):
        expit(a, out=out)

    def np_exp_in_cache(a, out):
        # the same number of evaluations, 2^15 at a time on one L2-resident block: the
        # compute ceiling of numpy's SIMD exp without the memory traffic
        blk = 2**15
        for _ in range(a.shape[0] // blk):
            np.exp(a[:blk], out=out[:blk])

    par(np_exp)()
    t_exp = min(_wall(par(np_exp)) for _ in range(5))
    t_exp1 = min(_wall(lambda: np.exp(x, out=y)) for _ in range(3))
    t_exp_cache = min(_wall(par(np_exp_in_cache)) for _ in range(5))
    t_expit = min(_wall(par(sp_expit)) for _ in range(3))
    return {
        "gemm_gflops": _gemm_gflops(rng),
        "exp_per_s": size / t_exp,
        "exp_per_s_1thread": size / t_exp1,
        "exp_in_cache_per_s": size / t_exp_cache,
        "expit_per_s": size / t_expit,
    }


def _gemm_gflops(rng: np.random.Generator, m: int = 3000) -> float:
    A = rng.standard_normal((m, m))
    C = rng.standard_normal((m, m))
    A @ C
    return 2 * m**3 / min(_wall(lambda: A @ C) for _ in range(3)) / 1e9


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ----------------------------------------------------------------- driver


def _idle_fraction(seconds: float = 1.0) -> float:
    def snap() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:9]]
        return vals[3], sum(vals)

    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return (i1 - i0) / max(t1 - t0, 1)


def wait_until_idle(max_wait: float, threshold: float = 0.9) -> float:
    """On a shared machine, wait (at most ``max_wait`` s) for a second in which the CPUs are
    at least 90% idle, so that the measurement does not start in someone else's busy spell.
    Returns the idle fraction last seen."""
    deadline = time.monotonic() + max_wait
    idle = _idle_fraction()
    while idle < threshold and time.monotonic() < deadline:
        idle = _idle_fraction()
    return idle


def _child(what: str, n: int, repeats: int, chunk: int, trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", what, "--n", str(n)]
    cmd += ["--repeats", str(repeats), "--chunk", str(chunk)] + (["--trace"] if trace else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="*", default=[10**5, 10**6], help="row counts")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per kernel (best kept)")
    ap.add_argument(
        "--naive-max-gib",
        type=float,
        default=1.0,
        help="the naive version takes draws in chunks when S×N×8 bytes exceeds this",
    )
    ap.add_argument("--chunk", type=int, default=100, help="draws per chunk when chunking")
    ap.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="fresh processes per measurement, interleaved; the best time is reported",
    )
    ap.add_argument(
        "--max-wait",
        type=float,
        default=60.0,
        help="seconds to wait for an idle second before each measurement (0: never wait)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        rec = run_child(args.child, args.n[0], args.repeats, args.chunk, args.trace)
        print(json.dumps(rec))
        return

    import numba
    import scipy

    cores = os.cpu_count() or 1
    print(f"# simmargins kernel benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}")
    print(f"machine: {_cpu_model()}, {cores} cores, load average {os.getloadavg()[0]:.2f}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__},"
        f" numba {numba.__version__}; S = {S_DRAWS} draws, K = {K_COLS}, logit link"
    )
    # every measurement, the machine's limits included, is the best of ``rounds`` tries
    # spread over the whole run: on a shared machine a busy spell then hits each of them
    gate = (lambda: wait_until_idle(args.max_wait)) if args.max_wait > 0 else (lambda: 1.0)
    tries: list[dict[str, float]] = []
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    chunks = {
        n: S_DRAWS if S_DRAWS * n * 8 <= args.naive_max_gib * 2**30 else args.chunk for n in args.n
    }
    for rnd in range(args.rounds):
        for n in args.n:
            gate()
            tries.append(machine_limits(cores))
            for what in ("kernel-margin", "naive-margin", "kernel-ame", "naive-ame"):
                reps = args.repeats if what.startswith("kernel") else 1
                idle = gate()
                rec = _child(what, n, reps, chunks[n], trace=rnd == 0)
                rec["idle_before"] = idle
                runs.setdefault((n, what), []).append(rec)
    lim = {key: max(t[key] for t in tries) for key in tries[0]}
    print(
        f"limits: GEMM {lim['gemm_gflops']:.1f} GFLOP/s (np.dot 3000², all cores); "
        f"np.exp {lim['exp_per_s'] / 1e9:.2f} G/s on {cores} threads "
        f"({lim['exp_per_s_1thread'] / 1e9:.2f} G/s on one; "
        f"{lim['exp_in_cache_per_s'] / 1e9:.2f} G/s on {cores} threads in L2-sized blocks); "
        f"scipy expit {lim['expit_per_s'] / 1e9:.2f} G/s on {cores} threads"
    )
    for n in args.n:
        chunk = chunks[n]
        print(f"\n## N = {n:,}  (naive: {'all' if chunk == S_DRAWS else chunk} draws per matrix)")
        rows = {}
        for what in ("kernel-margin", "naive-margin", "kernel-ame", "naive-ame"):
            recs = runs[(n, what)]
            best = dict(min(recs, key=lambda r: r["seconds"]))
            best["all_seconds"] = [r["seconds"] for r in recs]
            best["extra_MiB"] = max(r["extra_MiB"] for r in recs)
            best["tracemalloc_MiB"] = recs[0].get("tracemalloc_MiB")
            rows[what] = best
        for kind in ("margin", "ame"):
            k, v = rows[f"kernel-{kind}"], rows[f"naive-{kind}"]
            agree = np.max(np.abs(np.subtract(k["result_head"], v["result_head"])))
            runs_k = ", ".join(f"{t:.3f}" for t in k["all_seconds"])
            runs_v = ", ".join(f"{t:.2f}" for t in v["all_seconds"])
            print(
                f"{kind:>6}  kernel {k['seconds']:7.3f} s  +{k['extra_MiB']:6.1f} MiB"
                f"  CPU {k['cpu_seconds']:6.2f} s  (runs: {runs_k})"
            )
            print(
                f"{'':>6}  naive  {v['seconds']:7.3f} s  +{v['extra_MiB']:6.0f} MiB"
                f"  CPU {v['cpu_seconds']:6.2f} s  (runs: {runs_v});"
                f" tracemalloc peak {v['tracemalloc_MiB']:.0f} MiB"
            )
            print(
                f"{'':>6}  kernel {v['seconds'] / k['seconds']:.1f}x faster;"
                f" data {k['data_MiB']:.0f} MiB; results agree to {agree:.1e}"
            )
        k = rows["kernel-margin"]
        evals = S_DRAWS * n
        flops = 2.0 * K_COLS * evals  # one multiply-add per element of η
        gf = flops / k["seconds"] / 1e9
        ex = evals / k["seconds"]
        exp_best = max(lim["exp_per_s"], lim["exp_in_cache_per_s"])
        ideal = flops / (lim["gemm_gflops"] * 1e9) + evals / exp_best
        print(
            f"margin kernel rates ({k['threads']} threads, {k['threading_layer']}):"
            f" η {gf:.1f} GFLOP/s = {gf / lim['gemm_gflops']:.0%} of GEMM;"
            f" expit {ex / 1e9:.2f} G/s = {ex / lim['exp_per_s']:.0%} of np.exp"
            f" ({ex / lim['exp_in_cache_per_s']:.0%} of in-cache np.exp);"
            f" GEMM + in-cache exp for the same work would take {ideal:.3f} s"
            f" = {ideal / k['seconds']:.0%} of the kernel's time"
        )
        a = rows["kernel-ame"]
        print(
            f"   ame kernel: {2 * evals / a['seconds'] / 1e9:.2f} G inverse-link evaluations/s,"
            f" {a['seconds'] / k['seconds']:.2f}x the margin kernel's time"
        )
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
