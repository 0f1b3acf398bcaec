"""Bootstrap refits: resample, refit the same specification, collect the fixed effects.

Everything a replicate needs travels in a :class:`RefitProblem` of plain arrays and
constructor settings (no fitted statsmodels object), so that workers receive the data
once per chunk and joblib can memory-map large arrays. Replicate b draws its resample
from ``SeedSequence(seed).spawn(n_boot)[b]`` and runs with one BLAS thread, so the draws
are bit-identical for any ``n_jobs`` and any joblib backend (loky, threads, Dask).
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import BootstrapError, MarginsValueError
from .problem import (
    ROUTE_FAST,
    ROUTE_STATSMODELS,
    BootstrapDraws,
    RefitProblem,
    Replicate,
    fit_chain,
    is_numerical_failure,
)

if TYPE_CHECKING:
    from .lmm_fast import FastProblem
    from .parametric import SimulationModel

# refit= routes: "fast" refits Gaussian MixedLMs from group statistics (see lmm_fast)
REFIT_ROUTES = ("auto", "fast", "statsmodels")
# the fast route runs in-process unless the replicates would take longer than this serially:
# a fresh joblib pool costs about 2.5 s on 2 cores (imports and the compiled kernel loaded
# in each worker), so with two workers it pays off only beyond about twice that
_FAST_PARALLEL_MIN_SECONDS = 5.0
_FAST_PROBE = 8  # replicates timed in-process before choosing

def seed_sequence(seed: Any) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        seq = seed.bit_generator.seed_seq
        if isinstance(seq, np.random.SeedSequence):
            return seq
        return np.random.SeedSequence(int(seed.integers(2**63)))
    return np.random.SeedSequence(seed)


def resample(
    problem: RefitProblem, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Row indices of a replicate, the new cluster labels, and which cluster each came from.

    Clusters are drawn whole, with replacement, and each draw gets its own label: two
    copies of student 7 are two students.
    """
    if problem.clusters is None:
        n = problem.n_rows
        return rng.integers(0, n, n), None, None
    codes = problem.clusters
    n_clusters = int(codes.max()) + 1
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_clusters + 1))
    picked = draw_clusters(n_clusters, rng)
    rows = [order[starts[c] : starts[c + 1]] for c in picked]
    labels = np.repeat(np.arange(n_clusters), [len(r) for r in rows])
    return np.concatenate(rows), labels, picked


def draw_clusters(n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """The clusters of one replicate, with replacement: the only random draw of a cluster
    bootstrap, shared by :func:`resample` and the fast route so both see the same resamples."""
    return rng.integers(0, n_clusters, n_clusters)


def _vc_subset(vc: Any, picked: np.ndarray) -> Any:
    from statsmodels.regression.mixed_linear_model import VCSpec

    colnames = [[cn[c] for c in picked] for cn in vc.colnames]
    mats = [[m[c] for c in picked] for m in vc.mats]
    return VCSpec(vc.names, colnames, mats)


def refit_once(problem: RefitProblem, b: int, child: np.random.SeedSequence) -> Replicate:
    """Resample and refit replicate ``b``; failures are returned, never raised."""
    rng = np.random.default_rng(child)
    seed_value = int(child.generate_state(1)[0])
    try:
        if problem.fail_hook is not None:
            problem.fail_hook(b)
        rows, labels, picked = resample(problem, rng)
        kwargs = dict(problem.init_kwargs)
        kwargs.update({k: v[rows] for k, v in problem.row_arrays.items()})
        for key in problem.fresh:
            kwargs[key] = copy.deepcopy(kwargs[key])
        if problem.relabel is not None and labels is not None:
            kwargs[problem.relabel] = labels
        if problem.mixed:
            kwargs["groups"] = labels
            if problem.vc is not None and picked is not None:
                kwargs["exog_vc"] = _vc_subset(problem.vc, picked)
        model = problem.model_cls(problem.endog[rows], problem.exog[rows], **kwargs)
        return fit_chain(problem, model, b, seed_value)
    except Exception as exc:
        return _failed(b, seed_value, exc)


def fast_refit_once(problem: FastProblem, b: int, child: np.random.SeedSequence) -> Replicate:
    """Replicate ``b`` refitted from group statistics: the same draw as :func:`refit_once`
    (``draw_clusters`` from the same child seed), then multiplicities instead of rows."""
    rng = np.random.default_rng(child)
    seed_value = int(child.generate_state(1)[0])
    try:
        if problem.fail_hook is not None:
            problem.fail_hook(b)
        n_clusters = problem.stats.n_groups
        m = np.bincount(draw_clusters(n_clusters, rng), minlength=n_clusters)
        fit = problem.fit(m)
        if fit.converged and np.all(np.isfinite(fit.fe_params)):
            name = f"{ROUTE_FAST}:{fit.optimizer}"
            return Replicate(b, fit.fe_params, True, name, seed_value, llf=fit.llf)
        return Replicate(b, None, False, "", seed_value, fit.message or "did not converge")
    except Exception as exc:
        return _failed(b, seed_value, exc)


def _failed(b: int, seed_value: int, exc: Exception) -> Replicate:
    """A replicate that raised: counted when the trouble is numerical, re-raised (naming
    the replicate) when it is a bug."""
    if not is_numerical_failure(exc):
        exc.add_note(f"raised in bootstrap replicate {b} (seed {seed_value}); a programming "
                     "error is not counted as a failed replicate")  # fmt: skip
        raise exc
    return Replicate(b, None, False, "", seed_value, f"{type(exc).__name__}: {exc}")


Worker = Callable[[Any, int, np.random.SeedSequence], Replicate]


def _run_chunk(
    problem: Any, jobs: Sequence[tuple[int, np.random.SeedSequence]], worker: Worker = refit_once
) -> list[Replicate]:
    from threadpoolctl import threadpool_limits

    # one BLAS thread per worker: no oversubscription, and bit-identical sums for any n_jobs
    with threadpool_limits(limits=1):
        return [worker(problem, b, child) for b, child in jobs]


def choose_route(problem: RefitProblem, refit: str) -> tuple[str, str]:
    """Which refit route runs (``ROUTE_FAST`` or ``ROUTE_STATSMODELS``) and why."""
    from .lmm_fast import why_not_fast

    if refit == "statsmodels":
        return ROUTE_STATSMODELS, "refit='statsmodels' was requested"
    reason = why_not_fast(problem)
    if reason:
        if refit == "fast":
            raise MarginsValueError(
                f"refit: 'fast' refits Gaussian MixedLMs with one grouping factor and no "
                f"variance components from group statistics, but {reason}; use "
                "refit='auto' (falls back to statsmodels) or refit='statsmodels'"
            )
        return ROUTE_STATSMODELS, f"not eligible for the fast engine: {reason}"
    return ROUTE_FAST, (
        "Gaussian MixedLM with one grouping factor and no variance components: exact refits "
        "from per-group sufficient statistics"
    )


def run_bootstrap(
    problem: RefitProblem,
    n_boot: int,
    seed: Any,
    n_jobs: int | None,
    progress: bool | None,
    warn_fraction: float,
    max_fraction: float,
    refit: str = "auto",
    sim: SimulationModel | None = None,
) -> BootstrapDraws:
    """Run ``n_boot`` replicates and keep the converged ones, in order.

    ``refit`` picks the route (see :func:`choose_route`): statsmodels refits run through
    joblib; the fast route runs in-process unless its replicates would take more than
    ``_FAST_PARALLEL_MIN_SECONDS`` serially, then the rest go through the same joblib path.
    With ``sim`` (a fitted Gaussian MixedLM's :class:`~.parametric.SimulationModel`) the
    replicates are parametric: responses simulated from the fit instead of resampled
    clusters (:mod:`.parametric`), each recording its fixed-effects covariance.
    """
    children = seed_sequence(seed).spawn(n_boot)
    route, reason = choose_route(problem, refit)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = _progress(n_boot, show)
    cov_hat = None
    if sim is not None:
        from .parametric import parametric_problem, parametric_refit_once

        pproblem = parametric_problem(problem, sim, route)
        cov_hat = pproblem.cov_hat
        if route == ROUTE_FAST:
            results, parallel = _run_fast(pproblem, children, n_jobs, bar, parametric_refit_once)
        else:
            jobs = [(b, children[b]) for b in range(n_boot)]
            results, parallel = _run_parallel(pproblem, jobs, n_jobs, parametric_refit_once, bar)
    elif route == ROUTE_FAST:
        from .lmm_fast import fast_problem

        results, parallel = _run_fast(fast_problem(problem), children, n_jobs, bar)
    else:
        jobs = [(b, children[b]) for b in range(n_boot)]
        results, parallel = _run_parallel(problem, jobs, n_jobs, refit_once, bar)
    if bar is not None:
        bar.close()
    results.sort(key=lambda r: r.index)
    ok = [r for r in results if r.params is not None]
    failed = n_boot - len(ok)
    frac = failed / n_boot
    if frac > max_fraction:
        reasons = sorted({r.error for r in results if r.params is None})[:3]
        raise MarginsValueError(
            f"n_boot: {failed} of {n_boot} bootstrap replicates failed ({100 * frac:.1f}%, "
            f"above the {100 * max_fraction:g}% limit set by boot_max_fail); first reasons: "
            + "; ".join(reasons)
        )
    if frac > warn_fraction:
        warnings.warn(
            f"{failed} of {n_boot} bootstrap replicates failed ({100 * frac:.1f}%) and were "
            "excluded; the bootstrap distribution may be biased towards easy resamples",
            RuntimeWarning,
            stacklevel=3,
        )
    if len(ok) < 2:
        raise MarginsValueError(f"n_boot: only {len(ok)} replicates succeeded; need at least 2")
    return BootstrapDraws(
        np.vstack([r.params for r in ok if r.params is not None]), results, route, reason,
        parallel, "cluster" if sim is None else "parametric", cov_hat,
    )  # fmt: skip


def _run_fast(
    fproblem: Any,
    children: list[np.random.SeedSequence],
    n_jobs: int | None,
    bar: Any,
    worker: Worker = fast_refit_once,
) -> tuple[list[Replicate], str]:
    """Fast refits (``fproblem`` a :class:`FastProblem` or a parametric problem on the fast
    route, ``worker`` its replicate): time a few in-process, then finish in-process or
    through joblib."""
    import time

    fproblem.warm_up()  # load the compiled kernel before timing anything
    jobs = [(b, child) for b, child in enumerate(children)]
    probe = jobs[:_FAST_PROBE]
    t0 = time.perf_counter()
    results = _run_chunk(fproblem, probe, worker)
    per_replicate = (time.perf_counter() - t0) / max(1, len(probe))
    if bar is not None:
        bar.update(len(probe))
    rest = jobs[len(probe) :]
    n_workers = _effective_jobs(n_jobs)
    if rest and n_workers > 1 and per_replicate * len(rest) > _FAST_PARALLEL_MIN_SECONDS:
        more, where = _run_parallel(fproblem, rest, n_jobs, worker, bar)
        results += more
    else:
        for lo in range(0, len(rest), 64):
            chunk = rest[lo : lo + 64]
            results += _run_chunk(fproblem, chunk, worker)
            if bar is not None:
                bar.update(len(chunk))
        where = "in-process"
    return results, f"{where}; {1000 * per_replicate:.2g} ms per replicate serially"


def _run_parallel(
    problem: Any,
    jobs: list[tuple[int, np.random.SeedSequence]],
    n_jobs: int | None,
    worker: Worker,
    bar: Any,
) -> tuple[list[Replicate], str]:
    """The replicates ``jobs`` through joblib, and where they ran: ``"joblib <backend>
    (n_jobs=k)"``, or ``"in-process (joblib sequential)"`` when joblib ran them here."""
    from joblib import Parallel, delayed

    n_workers = _effective_jobs(n_jobs)
    # a few chunks per worker balance uneven refit times while sending the data only a
    # few times per worker instead of with every replicate
    n_chunks = min(len(jobs), max(1, 4 * n_workers)) if n_workers > 1 else 1
    chunks = [c for c in np.array_split(np.arange(len(jobs)), n_chunks) if len(c)]
    tasks = (delayed(_run_chunk)(problem, [jobs[i] for i in c], worker) for c in chunks)
    results: list[Replicate] = []
    runner = Parallel(n_jobs=n_jobs if n_jobs is not None else -1, return_as="generator_unordered")
    try:
        gen = runner(tasks)
        for chunk in gen:
            results.extend(chunk)
            if bar is not None:
                bar.update(len(chunk))
    except Exception as exc:
        name = type(exc).__name__
        if "Terminated" in name or "BrokenProcessPool" in name:
            raise BootstrapError(
                f"bootstrap: a worker process died during the refits ({name}: {exc}); no "
                "draws were returned. Rerun with n_jobs=1 to see the replicate that kills it."
            ) from exc
        raise
    return results, _where(runner)


def _where(runner: Any) -> str:
    """The joblib backend that ran the replicates, and with how many workers."""
    backend = getattr(runner, "_backend", None)  # the backend joblib actually used
    name = type(backend).__name__.removesuffix("Backend").lower() or "unknown"
    if name == "sequential":
        return "in-process (joblib sequential)"
    try:
        jobs = int(runner._effective_n_jobs())
    except (AttributeError, TypeError, ValueError):  # a private joblib method
        jobs = getattr(runner, "n_jobs", -1)
    return f"joblib {name} (n_jobs={jobs})"


def _effective_jobs(n_jobs: int | None) -> int:
    import os

    if n_jobs is None or n_jobs < 0:
        return os.cpu_count() or 1
    return max(1, int(n_jobs))


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="bootstrap refits", unit="refit", file=sys.stderr)
