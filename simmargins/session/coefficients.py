"""Where a session's coefficient draws come from when they are bootstrap refits: the
resampling units, the few-clusters warning, the parallel refits and the labelled draws."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._errors import FewClustersWarning, MarginsTypeError, MarginsValueError, warn_user
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
    if problem.clusters is not None:
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
