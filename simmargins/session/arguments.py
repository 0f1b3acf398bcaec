"""Checks of a session's arguments against its fit: ``at``, ``weights``, ``cluster``, the
variables of ``dydx`` and the subgroups of ``by``, each failing with a message that names
the argument and says what would be valid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import check_choice, check_count, check_variable
from ..adapters import ModelAdapter, StatsmodelsBLUPAdapter, adapter_for
from ..adapters.new_cluster import StatsmodelsNewClusterAdapter
from ..engine.design import CounterfactualData
from ..engine.scenarios import format_value, scenario_label
from .checks import fit_weight_kinds
from .population import at_medians, resolve_at
from .random_effects import bayes_random_effects, is_bayes_mixed

AT_KINDS = ("overall", "mean", "median", "balanced")
RANDOM_EFFECTS = ("zero", "blup", "new", "integrate")
_RANDOM_EFFECTS_REFUSED = {
    "model": "random_effects: {name!r} is for mixed models (MixedLM, BinomialBayesMixedGLM, "
    "PoissonBayesMixedGLM); this is a {model}, which has no random effects, so use 'zero'",
    "integrate": "random_effects: 'integrate' is for nonlinear mixed models "
    "(BinomialBayesMixedGLM, PoissonBayesMixedGLM); for a linear MixedLM 'zero' already is "
    "the population average",
    "bootstrap": "random_effects: {name!r} takes its uncertainty from the fitted variance "
    "parameters (delta or simulation); a bootstrap refit's random effects belong to "
    "resampled clusters, so use method='simulation' or 'delta'",
    "df": "random_effects: df={df!r} adjusts the fixed effects' covariance and has no df "
    "for predictions that include random effects; with {name!r} use df='satterthwaite' (the "
    "Satterthwaite df of the whole variance) or 'asymptotic'",
    "median": "random_effects: at='median' would set the group to its modal cluster for "
    "every row; with 'blup' fix the variables you mean with an at= dict instead",
}


def check_n_jobs(n_jobs: Any) -> int | None:
    """``n_jobs``: a non-zero integer (-1 for all cores) or None."""
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0
    ):
        raise MarginsValueError(
            f"n_jobs: expected a non-zero integer (-1 for all cores) or None, got {n_jobs!r}"
        )
    return None if n_jobs is None else int(n_jobs)


def check_adapter(fit: Any, adapter: Any, training_data: pd.DataFrame | None) -> ModelAdapter:
    """The adapter given (checked), or the one for the fit's model class."""
    if adapter is not None and not isinstance(adapter, ModelAdapter):
        raise MarginsTypeError(
            f"adapter: expected a simmargins adapter (e.g. StatsmodelsMixedLMAdapter), "
            f"got {type(adapter).__name__}"
        )
    if adapter is not None and training_data is not None:
        raise MarginsValueError(
            "training_data: give it to the adapter or to Margins, not both (the adapter "
            "already holds its rows)"
        )
    return adapter if adapter is not None else adapter_for(fit, training_data)


def check_n_sims(n_sims: Any, method: str) -> int:
    """``n_sims``: at least 2 draws, or 0 with ``method="delta"`` (the delta method alone:
    no coefficient draws are made, so nothing is pushed through the kernels). None is the
    default: 0 for ``method="delta"``, 1000 otherwise."""
    if n_sims is None:
        return 0 if method == "delta" else 1000
    if isinstance(n_sims, (int, np.integer)) and not isinstance(n_sims, bool) and n_sims == 0:
        if method == "delta":
            return 0
        raise MarginsValueError(
            f"n_sims: 0 (no draws) is only for method='delta', whose headline needs none; "
            f"method={method!r} needs at least 2 draws"
        )
    return check_count("n_sims", n_sims, 2)


def check_fraction(arg: str, frac: Any) -> float:
    """A fraction in [0, 1] (the bootstrap's failure thresholds)."""
    if not isinstance(frac, (int, float)) or not 0.0 <= float(frac) <= 1.0:
        raise MarginsValueError(f"{arg}: expected a fraction in [0, 1], got {frac!r}")
    return float(frac)


def check_at(cf: CounterfactualData, at: Any, weights: np.ndarray) -> tuple[str, dict[str, Any]]:
    """``at``: "overall", "mean", "median", "balanced", or a dict of single values fixed for
    all rows (summary strings "mean", "median", "mode" computed from the fit's rows)."""
    if isinstance(at, str):
        kind = check_choice("at", at, AT_KINDS)
        return kind, at_medians(cf, weights) if kind == "median" else {}
    if isinstance(at, Mapping):
        for k, v in at.items():
            if not (isinstance(v, (str, bytes)) or np.ndim(v) == 0):
                raise MarginsValueError(
                    f"at: {k!r} must be a single value (fixed for all rows), got {v!r}; "
                    "use predict(atexog=...) for a grid"
                )
        resolved = resolve_at(cf, weights, at)
        cf.check_values("at", resolved)
        return "dict", resolved
    raise MarginsTypeError(
        "at: expected 'overall', 'mean' or a dict of {variable: value} (or 'median', "
        f"'balanced'), got {at!r}"
    )


def check_varies(adapter: ModelAdapter, cf: CounterfactualData, name: str) -> None:
    """A variable with one value in every row carries no information about its effect."""
    col = adapter.data[name]
    var = cf.variables[name]
    if var.categorical:
        varies = len(var.levels or ()) >= 2
    else:  # (nunique would hash a million rows to learn whether two values differ)
        seen = col.dropna().to_numpy()
        varies = seen.size > 0 and bool(np.any(seen != seen[0]))
    if not varies:
        raise MarginsValueError(
            f"dydx: {name!r} takes a single value ({format_value(col.iloc[0])}) in every row "
            "the fit used, so the data carry no information about its effect"
        )

def check_cluster(adapter: ModelAdapter, cluster: Any) -> str | None:
    """``cluster=``: a column of the data, for the row-resampling models only."""
    if cluster is None:
        return None
    if not isinstance(cluster, str):
        raise MarginsTypeError(f"cluster: expected a column name, got {cluster!r}")
    check_variable("cluster", cluster, list(adapter.data.columns))
    if adapter.model_class == "MixedLM":
        raise MarginsValueError(
            "cluster: MixedLM bootstraps resample the model's own groups; cluster= is for "
            "OLS, WLS, GLM and discrete models"
        )
    return cluster

def check_weights(adapter: ModelAdapter, weights: Any) -> tuple[np.ndarray, str]:
    """The row weights of every average, and a provenance note saying where they came from.

    By default a fit's frequency weights are honoured, as Stata's ``margins`` does with
    fweights: a row standing for k observations counts k times. Precision weights
    (WLS ``weights``, GLM ``var_weights``) shape β̂ and V̂ but do not say how many
    people a row stands for, so they are not used for averaging, and the note says so.
    """
    n = len(adapter.data)
    fit_weights = fit_weight_kinds(adapter)
    ignored = [k for k in fit_weights if k != "freq_weights"]
    if weights is None:
        if "freq_weights" in fit_weights:
            w = np.asarray(fit_weights["freq_weights"], dtype=float)
            source = "the fit's freq_weights"
            if ignored:
                source += f" (the fit's {', '.join(ignored)} not used for averaging)"
            return w, source
        source = "equal"
        if ignored:
            source += f" (the fit's {', '.join(ignored)} not used for averaging)"
        return np.ones(n), source
    source = f"weights={weights!r}" if isinstance(weights, str) else "weights= (array)"
    if fit_weights:
        source += f" (the fit's {', '.join(fit_weights)} not used for averaging)"
    if isinstance(weights, str):
        check_variable("weights", weights, list(adapter.data.columns))
        w = pd.to_numeric(adapter.data[weights], errors="coerce").to_numpy(dtype=float)
    else:
        w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise MarginsValueError(
            f"weights: expected {n} values (one per row used by the fit), got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise MarginsValueError("weights: must be finite, non-negative and not all zero")
    return w, source


def row_groups(
    data: pd.DataFrame, weights: np.ndarray, by: str | Sequence[str] | None
) -> tuple[list[np.ndarray], dict[str, list[Any]]]:
    """Row weights per subgroup of ``by`` (one group of all rows when None)."""
    if by is None:
        return [weights], {}
    cols = [by] if isinstance(by, str) else list(by)
    if not cols:
        raise MarginsValueError("by: give at least one column name")
    for c in cols:
        check_variable("by", c, list(data.columns))
        n_missing = int(data[c].isna().sum())
        if n_missing:
            raise MarginsValueError(
                f"by: column {c!r} has {n_missing} missing values among the rows the fit "
                "used; those rows would belong to no subgroup"
            )
    keys = data[cols].drop_duplicates().sort_values(cols).itertuples(index=False, name=None)
    groups: list[np.ndarray] = []
    values: dict[str, list[Any]] = {c: [] for c in cols}
    for key in keys:
        mask = np.ones(len(data), dtype=bool)
        for c, v in zip(cols, key, strict=True):
            mask &= (data[c] == v).to_numpy()
        w = weights * mask
        if w.sum() <= 0:
            continue  # a subgroup with zero analysis weight has no average
        groups.append(w)
        for c, v in zip(cols, key, strict=True):
            values[c].append(v)
    return groups, values


def check_contrasts(
    cf: CounterfactualData,
    scenarios: Any,
    contrasts: Any,
) -> tuple[np.ndarray, list[str]]:
    """``scenarios`` (single values per variable) and a weight matrix with one column per
    scenario; returns the matrix and its row labels (the DataFrame's index, or built from
    the weights and the scenarios)."""
    if isinstance(scenarios, Mapping) or not isinstance(scenarios, Sequence) or not scenarios:
        raise MarginsTypeError(
            "scenarios: expected a non-empty list of {variable: value} dicts, "
            f"got {scenarios!r}"
        )
    for s in scenarios:
        cf.check_values("scenarios", s)
        for k, v in s.items():
            if not (isinstance(v, (str, bytes)) or np.ndim(v) == 0):
                raise MarginsValueError(f"scenarios: {k!r} must be a single value, got {v!r}")
    if isinstance(contrasts, pd.DataFrame):
        W = contrasts.to_numpy(dtype=float)
        labels = [str(i) for i in contrasts.index]
    else:
        try:
            W = np.atleast_2d(np.asarray(contrasts, dtype=float))
        except (TypeError, ValueError) as exc:
            raise MarginsTypeError(
                f"contrasts: expected a numeric weight matrix ({exc})"
            ) from exc
        labels = []
    if W.ndim != 2 or W.shape[1] != len(scenarios):
        raise MarginsValueError(
            f"contrasts: the weight matrix has shape {W.shape}; it needs one column per "
            f"scenario ({len(scenarios)})"
        )
    if not labels:
        names = [scenario_label(s) for s in scenarios]
        labels = [
            " ".join(f"{w:+g}·[{n}]" for w, n in zip(row, names, strict=True) if w != 0)
            for row in W
        ]
    if not np.all(np.isfinite(W)):
        raise MarginsValueError("contrasts: weights must be finite numbers")
    return W, labels


def check_df(
    adapter: ModelAdapter, df: Any, method: str
) -> tuple[str, np.ndarray | None]:
    """``df=``: the small-sample method, and the covariance it implies (None: the adapter's).

    Only linear mixed models have small-sample df here; Kenward–Roger needs a REML fit.
    """
    name = check_choice("df", df, ("asymptotic", "satterthwaite", "kenward-roger"))
    if name == "asymptotic":  # no import of the df machinery (and numba) for the default
        return name, None
    from ..adapters.lmm_df import small_sample_df

    if adapter.model_class != "MixedLM":
        raise MarginsValueError(
            f"df: {name!r} degrees of freedom are for linear mixed models (MixedLM); this is "
            f"a {adapter.model_class}, so use df='asymptotic'"
        )
    if method == "bootstrap":
        raise MarginsValueError(
            f"df: {name!r} applies to the delta and simulation routes; a bootstrap's "
            "intervals come from its refits, so use df='asymptotic' with method='bootstrap'"
        )
    probe = np.eye(1, len(adapter.coef_names))  # the covariance does not depend on G
    return name, small_sample_df(adapter, probe, name)[1]


def check_random_effects(
    adapter: ModelAdapter, kind: Any, method: str, df: Any, at: Any
) -> tuple[str, ModelAdapter]:
    """``random_effects=``: the kind, and the adapter it implies.

    ``"zero"`` (random effects at zero: for a linear mixed model the population average)
    keeps the adapter; ``"blup"`` wraps a MixedLM adapter so that each row's prediction
    includes its cluster's predicted random effects (:class:`StatsmodelsBLUPAdapter`);
    ``"new"`` wraps it so that the rows belong to one new cluster whose random effects are
    drawn from their fitted distribution (:class:`StatsmodelsNewClusterAdapter`).
    """
    if is_bayes_mixed(adapter):  # "integrate" by default
        return bayes_random_effects(adapter, kind, method, at)
    name = check_choice("random_effects", "zero" if kind is None else kind, RANDOM_EFFECTS)
    wrappers: dict[type, str] = {
        StatsmodelsBLUPAdapter: "blup", StatsmodelsNewClusterAdapter: "new"}  # fmt: skip
    given = wrappers.get(type(adapter))
    if given is not None and name != given:
        raise MarginsValueError(
            f"random_effects: the adapter given includes the random effects ({given!r}); "
            f"pass random_effects={given!r} with it, or give the MixedLM adapter itself"
        )
    if name == "zero":
        return name, adapter
    refusals = {
        "model": adapter.model_class != "MixedLM",
        "integrate": name == "integrate",
        "bootstrap": method == "bootstrap",
        "df": df == "kenward-roger",
        "median": name == "blup" and isinstance(at, str) and at == "median",
    }
    reason = next((k for k, hit in refusals.items() if hit), None)
    if reason is not None:
        raise MarginsValueError(_RANDOM_EFFECTS_REFUSED[reason].format(
            name=name, model=adapter.model_class, df=df))  # fmt: skip
    if given is not None:
        return name, adapter
    if name == "new":
        return name, StatsmodelsNewClusterAdapter(adapter)
    return name, StatsmodelsBLUPAdapter(adapter)
