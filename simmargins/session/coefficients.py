"""Where a session's coefficient draws come from when they are bootstrap refits: the kind
of bootstrap (resampled clusters or responses simulated from the fit), the resampling
units, the few-clusters and singular-covariance warnings, the parallel refits and the
labelled draws."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._errors import (
    FewClustersWarning,
    MarginsTypeError,
    MarginsValueError,
    SingularCovarianceWarning,
    warn_user,
)
from .._validate import check_choice
from ..adapters import ModelAdapter
from ..resampling.bootstrap import run_bootstrap
from ..resampling.problem import BootstrapDraws, few_clusters_message


@dataclass(frozen=True)
class BootstrapSettings:
    """The session's bootstrap arguments, as ``Margins`` checked them."""

    n_boot: int
    seed: Any
    n_jobs: int | None
    progress: bool | None
    warm_start: bool
    warn_fail: float
    max_fail: float
    refit: str
    cluster: str | None
    kind: str = "cluster"  # "cluster" (resampled clusters or rows) or "parametric"


BOOTSTRAP_KINDS = ("cluster", "parametric")


def check_bootstrap(adapter: ModelAdapter, kind: Any, method: str, interval: str) -> str:
    """``bootstrap=``: ``"cluster"`` (resample clusters, or rows; the default) or
    ``"parametric"`` (simulate responses from a fitted Gaussian MixedLM and refit), and
    ``interval="studentized"``, which only the parametric bootstrap supports."""
    name = check_choice("bootstrap", kind, BOOTSTRAP_KINDS)
    if name == "parametric":
        if method != "bootstrap":
            raise MarginsValueError(
                f"bootstrap: 'parametric' is a kind of bootstrap, and method={method!r}; "
                "use method='bootstrap' with it"
            )
        if adapter.model_class != "MixedLM" or not hasattr(adapter, "simulation_model"):
            raise MarginsValueError(
                "bootstrap: 'parametric' simulates responses from a Gaussian linear mixed "
                f"model (statsmodels MixedLM); this is a {adapter.model_class}, so use "
                "bootstrap='cluster'"
            )
    elif interval == "studentized":
        raise MarginsValueError(
            "interval: 'studentized' needs each replicate's standard error, which only "
            "Margins(method='bootstrap', bootstrap='parametric') records; use 'percentile', "
            "'basic' or 'normal'"
        )
    return name


def _cluster_codes(adapter: ModelAdapter, cluster: str | None) -> np.ndarray | None:
    if cluster is None:
        return None
    codes, uniques = pd.factorize(adapter.data[cluster])
    if len(uniques) < 2:
        raise MarginsValueError(
            f"cluster: {cluster!r} has {len(uniques)} cluster; a cluster bootstrap needs at "
            "least 2"
        )
    return codes.astype(np.intp)


def bootstrap_coefficients(
    adapter: ModelAdapter, settings: BootstrapSettings
) -> tuple[xr.DataArray, BootstrapDraws]:
    """Refit the model on ``n_boot`` resamples; the converged fixed effects as ``(draw, coef)``.

    The draws carry per-replicate coordinates: ``replicate``, ``converged``,
    ``optimizer``, ``seed`` and ``llf`` (the refit's final (RE)ML log-likelihood, whichever
    route refitted it, so fits can be compared replicate by replicate).
    """
    refit_problem = getattr(adapter, "refit_problem", None)
    if refit_problem is None:
        raise MarginsTypeError(
            f"method: this adapter ({type(adapter).__name__}) cannot refit the model, "
            "so method='bootstrap' is not available; use 'simulation' or 'delta'"
        )
    problem = refit_problem(_cluster_codes(adapter, settings.cluster), warm=settings.warm_start)
    sim = None
    if settings.kind == "parametric":
        sim = adapter.simulation_model()  # type: ignore[attr-defined]
        from ..resampling.parametric import singular_message

        singular = singular_message(sim)
        if singular is not None:
            warn_user(singular, SingularCovarianceWarning)
    elif problem.clusters is not None:
        n_clusters = int(problem.clusters.max()) + 1
        if n_clusters < 2:
            raise MarginsValueError(
                "cluster: the model has only one group; a cluster bootstrap needs at least 2"
            )
        few = few_clusters_message(n_clusters)
        if few is not None:
            warn_user(few, FewClustersWarning)
    boot = run_bootstrap(
        problem,
        settings.n_boot,
        settings.seed,
        settings.n_jobs,
        settings.progress,
        settings.warn_fail,
        settings.max_fail,
        refit=settings.refit,
        sim=sim,
    )
    ok = [r for r in boot.replicates if r.params is not None]
    draws = xr.DataArray(
        boot.params,
        dims=("draw", "coef"),
        coords={
            "draw": np.arange(len(ok)),
            "coef": list(adapter.coef_names),
            "replicate": ("draw", [r.index for r in ok]),
            "converged": ("draw", [r.converged for r in ok]),
            "optimizer": ("draw", [r.optimizer for r in ok]),
            "seed": ("draw", [r.seed for r in ok]),
            "llf": ("draw", boot.llf),
        },
        name="coefficients",
    )
    return draws, boot
