"""Population frames out of core: ``newdata=`` as a Dask DataFrame or a Parquet dataset
(issue 16, item 1).

Every quantity of a verb is a weighted average over rows, θ_g = Σᵢ wᵢ f_i / Σᵢ wᵢ per
``by=`` group g, and so are its delta gradient, its Hessian (times the covariance factor)
and each of its draws. A partition p therefore reduces to (Σ_{i∈p,g} wᵢ, θ_{g,p}, ∇θ_{g,p},
HL_{g,p}, draws_{g,p}), evaluated by the same engine as an in-memory frame, and the frame's
result is the weight-sum-weighted mean over partitions: exactly the in-memory answer, up to
the order of the additions. Only the session's pieces (the fit with its adapter, the
coefficient draws, the covariance factor) go to the workers, once per computation; each
partition is read, checked against the fit's formula and evaluated where it lives. The
computation runs on Dask's current scheduler: a ``dask.distributed.Client`` if one is
active (a ``LocalCluster`` or a cluster by address), Dask's threads otherwise.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from ..engine.design import CounterfactualData, Setting
from ..engine.evaluate import Evaluated, evaluate_linear
from ..engine.links import InverseLink
from .arguments import row_groups
from .population import Population, population_from_frame

if TYPE_CHECKING:
    from .margins import Margins

# rows of the first partition checked when the session is made (the rest are checked on
# the workers, each partition as it is evaluated)
_HEAD_ROWS = 1000


@contextmanager
def _quiet_dask() -> Iterator[None]:
    """pandas' deprecation notices about dask's own internals (e.g. set_index(inplace=)) are
    not the user's to act on; anything else still warns."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"dask(\.|$)")
        warnings.filterwarnings("ignore", message=".*inplace keyword.*", category=Warning)
        yield


def is_partitioned(newdata: Any) -> bool:
    """Whether ``newdata`` is a Dask DataFrame or a path to a Parquet dataset."""
    return type(newdata).__module__.split(".")[0] == "dask" or isinstance(
        newdata, (str, os.PathLike)
    )


@dataclass
class PartitionedPopulation(Population):
    """A population frame held as partitions; ``cf``/``data``/``weights`` describe its
    first rows (for the verbs' checks), ``frame`` is the whole Dask DataFrame."""

    frame: Any = None
    weights_arg: Any = None
    n_partitions: int = 0


def partitioned_population(
    cf: CounterfactualData, newdata: Any, weights: Any, at_kind: str
) -> PartitionedPopulation:
    """Open ``newdata`` (a Dask DataFrame, or a Parquet file or dataset folder) and check its
    first rows against the fit's formula; every partition is checked again where it is
    evaluated."""
    import dask.dataframe as dd

    if isinstance(newdata, (str, os.PathLike)):
        path = Path(newdata)
        if not path.exists():
            raise MarginsValueError(
                f"newdata: {str(path)!r} does not exist; give a pandas or Dask DataFrame, or "
                "the path of a Parquet file or dataset folder"
            )
        try:
            with _quiet_dask():
                frame = dd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise MarginsValueError(
                f"newdata: {str(path)!r} cannot be read as Parquet ({exc})"
            ) from None
    else:
        frame = newdata
    if weights is not None and not isinstance(weights, str):
        raise MarginsTypeError(
            "weights: with a partitioned newdata, give the name of its weights column (an "
            f"array cannot follow the partitions); got {type(weights).__name__}"
        )
    if at_kind == "mean":
        raise MarginsValueError(
            "newdata: at='mean' needs the column means of the whole frame, which a "
            "partitioned newdata does not hold in memory; use at='overall' or fix the "
            "values with an at= dict"
        )
    with _quiet_dask():
        head = frame.head(_HEAD_ROWS, npartitions=-1)
    first = population_from_frame(cf, head, weights, at_kind)
    n_part = int(frame.npartitions)
    text = first.source.split("(", 1)[1].split(", ", 1)[1] if first.source else ""
    return PartitionedPopulation(
        first.cf, first.data, first.weights,
        f"newdata (partitioned: {n_part} partitions, {text}",
        frame=frame, weights_arg=weights, n_partitions=n_part,
    )  # fmt: skip


@dataclass(frozen=True)
class _Pieces:
    """What a partition needs of the session: sent to the workers once."""

    cf: CounterfactualData
    link: InverseLink
    params: np.ndarray
    draws: np.ndarray
    factor: np.ndarray
    at_kind: str


@dataclass
class _Partial:
    keys: list[tuple[Any, ...]]  # the by= groups present in the partition, in its order
    sums: np.ndarray  # their analysis-weight totals
    ev: Evaluated


def _one_partition(
    frame: pd.DataFrame,
    pieces: _Pieces,
    weights_arg: Any,
    settings: list[Setting],
    W: np.ndarray,
    cols: list[str],
) -> _Partial | None:
    """One partition's weighted averages, per by= group it holds (None: no rows)."""
    if len(frame) == 0:
        return None
    pop = population_from_frame(pieces.cf, frame, weights_arg, pieces.at_kind)
    groups, coords = row_groups(pop.data, pop.weights, cols or None)
    if not groups:
        return None
    keys = list(zip(*(coords[c] for c in cols), strict=True)) if cols else [()]
    ev = evaluate_linear(
        pop.cf, settings, W, groups, pieces.link, pieces.params, pieces.draws,
        pieces.factor, False,
    )  # fmt: skip
    return _Partial(keys, np.array([float(g.sum()) for g in groups]), ev)


def evaluate_partitioned(
    session: Margins,
    pop: PartitionedPopulation,
    settings: list[Setting],
    W: np.ndarray,
    by: str | list[str] | tuple[str, ...] | None,
    draws: np.ndarray,
) -> tuple[Evaluated, dict[str, list[Any]]]:
    """θ = W μ per by= group over every partition of ``pop``, reduced by weight totals."""
    import dask

    cols = [] if by is None else ([by] if isinstance(by, str) else list(by))
    pieces = _Pieces(
        session._cf, session.link, np.asarray(session.adapter.params), draws,
        session.cov_factor, session.at_kind,
    )  # fmt: skip
    shared = _shared(session, pieces)
    tasks = [
        dask.delayed(_one_partition, pure=True)(part, shared, pop.weights_arg, settings, W, cols)
        for part in pop.frame.to_delayed()
    ]
    with _quiet_dask():
        partials = [p for p in dask.compute(*tasks) if p is not None]
    if not partials:
        raise MarginsValueError("newdata: the frame has no rows with positive weight")
    keys = sorted({k for p in partials for k in p.keys}, key=_sort_key)
    return _reduce(partials, keys, W.shape[0]), {
        c: [k[i] for k in keys] for i, c in enumerate(cols)
    }


def _shared(session: Margins, pieces: _Pieces) -> Any:
    """The session's pieces as the partitions' tasks take them: on a dask.distributed
    client, scattered to every worker once per session and client (the fit with its data
    is the bulk; sending it inside each graph cost seconds and a large-graph warning);
    otherwise one delayed object in the graph (Dask's threads share it)."""
    import dask

    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):  # no distributed, or no client active
        return dask.delayed(pieces, pure=True)
    cache: dict[str, Any] = session.__dict__.setdefault("_scattered", {})
    key = str(client.id)
    draws_id = id(session.coefficient_draws)  # the session's draws, drawn once
    held = cache.get(key)
    if held is None or held[0] != draws_id:
        future = client.scatter(pieces, broadcast=True, hash=False)
        cache.clear()
        cache[key] = held = (draws_id, future)
    return held[1]


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # as row_groups sorts the keys of one frame (pandas' sort of the by columns)
    return tuple((0, v) if isinstance(v, (int, float, np.number)) else (1, str(v)) for v in key)


def _reduce(partials: list[_Partial], keys: list[tuple[Any, ...]], n_q: int) -> Evaluated:
    """The weight-total-weighted mean of the partitions' quantities, per group."""
    n_grp = len(keys)
    where = {k: g for g, k in enumerate(keys)}
    first = partials[0].ev
    k_dim = first.grad.shape[1]
    s = first.draws.shape[0]
    total = np.zeros(n_grp)
    for p in partials:
        for key, w in zip(p.keys, p.sums, strict=True):
            total[where[key]] += w
    est = np.zeros(n_q * n_grp)
    grad = np.zeros((n_q * n_grp, k_dim))
    draws = np.zeros((s, n_q * n_grp))
    hess: list[np.ndarray | None] = [None] * (n_q * n_grp)
    for p in partials:
        n_p = len(p.keys)
        for gp, key in enumerate(p.keys):
            g = where[key]
            share = p.sums[gp] / total[g]
            for r in range(n_q):
                i, ip = r * n_grp + g, r * n_p + gp
                est[i] += share * p.ev.estimate[ip]
                grad[i] += share * p.ev.grad[ip]
                draws[:, i] += share * p.ev.draws[:, ip]
                h = p.ev.hess_factor[ip]
                if h is not None:
                    prev = hess[i]
                    hess[i] = share * h if prev is None else prev + share * h
    return Evaluated(est, grad, hess, draws)
