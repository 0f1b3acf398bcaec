"""The rows a verb averages over: the fit's data by default, or a frame the user gives
(``newdata=``, post-stratification) checked against the fit's formula."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import check_variable
from ..engine.design import OFFSET_SETTINGS, CounterfactualData
from ..engine.scenarios import format_value


@dataclass
class Population:
    """Rows to average over, their analysis weights and where both came from."""

    cf: CounterfactualData
    data: pd.DataFrame
    weights: np.ndarray
    source: str | None = None  # None: the fit's own rows


# -- where the covariates sit: summaries for at="median", at={"z": "mean"}, at="balanced" -----
NUMERIC_SUMMARIES = ("mean", "median", "mode")


def weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    """The value where the cumulative weight crosses one half (the two middle values'
    midpoint on a tie, so equal weights give numpy's median)."""
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order]) / w.sum()
    i = int(np.searchsorted(cw, 0.5 - 1e-12))
    if abs(cw[i] - 0.5) <= 1e-12 and i + 1 < xs.size:
        return float(0.5 * (xs[i] + xs[i + 1]))
    return float(xs[i])


def weighted_mode(values: pd.Series, w: np.ndarray, order: Sequence[Any] | None = None) -> Any:
    """The value carrying the most weight; ties go to the first in ``order`` (the levels)."""
    totals = pd.Series(w, index=values.index).groupby(values.to_numpy(), sort=True).sum()
    best = totals.max()
    candidates = [v for v, t in totals.items() if t == best]
    if order is not None:
        keys = {format_value(c) for c in candidates}
        for lv in order:
            if format_value(lv) in keys:
                return lv
    return candidates[0]


def summary_value(
    cf: CounterfactualData, weights: np.ndarray, name: str, how: str, arg: str = "at"
) -> Any:
    """``how`` ("mean", "median" or "mode") of ``name`` over the fit's rows."""
    var = cf.variables[name]
    col = cf.data[name]
    if var.categorical:
        if how != "mode":
            raise MarginsValueError(
                f"{arg}: {how!r} summarises numeric variables and {name!r} is categorical; "
                "use 'mode' or one of its levels"
            )
        return weighted_mode(col, weights, var.levels)
    x = col.to_numpy(dtype=np.float64)
    if how == "mean":
        return float(np.average(x, weights=weights))
    if how == "median":
        return weighted_median(x, weights)
    return float(weighted_mode(pd.Series(x), weights))


def resolve_at(
    cf: CounterfactualData, weights: np.ndarray, at: Mapping[str, Any]
) -> dict[str, Any]:
    """An ``at`` dict with its summary strings ("mean", "median", "mode") replaced by
    values computed from the fit's rows; a categorical variable's levels stay levels."""
    out: dict[str, Any] = {}
    for name, value in at.items():
        var = cf.variables.get(name) if isinstance(name, str) else None
        is_level = (
            var is not None
            and var.categorical
            and format_value(value) in {format_value(lv) for lv in var.levels or ()}
        )
        if var is not None and isinstance(value, str) and not is_level:
            if value in NUMERIC_SUMMARIES:
                value = summary_value(cf, weights, name, value)
            elif not var.categorical:  # a factor's unknown level is reported by check_values
                raise MarginsValueError(
                    f"at: {value!r} for {name!r} is neither a number nor one of the "
                    "summaries " + ", ".join(repr(s) for s in NUMERIC_SUMMARIES)
                )
        out[name] = value
    return out


def at_medians(cf: CounterfactualData, weights: np.ndarray) -> dict[str, Any]:
    """Every model variable at its median (factors at their mode), the offset and
    exposure too, as Stata's ``margins, at((median) _all)``."""
    out = {
        name: summary_value(cf, weights, name, "mode" if var.categorical else "median")
        for name, var in cf.variables.items()
    }
    for key in cf.offset_keys or ():
        out[key] = weighted_median(cf.data[OFFSET_SETTINGS[key]].to_numpy(np.float64), weights)
    return out


def balanced_grid(cf: CounterfactualData, weights: np.ndarray) -> CounterfactualData:
    """emmeans' reference grid: every combination of the factors' levels, each once, with
    the numeric covariates (and the offset, the exposure) at their means."""
    factors = [n for n, v in cf.variables.items() if v.categorical]
    levels = [list(cf.variables[n].levels or ()) for n in factors]
    cells = list(itertools.product(*levels)) if factors else [()]
    grid = pd.DataFrame(index=pd.RangeIndex(len(cells)))
    for i, name in enumerate(factors):
        col = cf.data[name]
        values = [c[i] for c in cells]
        if isinstance(col.dtype, pd.CategoricalDtype):
            grid[name] = pd.Categorical(values, categories=col.cat.categories)
        else:
            grid[name] = pd.Series(values, dtype=col.dtype if col.dtype == bool else object)
    for name, var in cf.variables.items():
        if not var.categorical:
            grid[name] = summary_value(cf, weights, name, "mean")
    for key in cf.offset_keys or ():
        column = OFFSET_SETTINGS[key]
        grid[column] = float(np.average(cf.data[column].to_numpy(np.float64), weights=weights))
    return CounterfactualData(
        grid, cf.variables, cf.design_fn, cf.offset_fn, offset_keys=cf.offset_keys
    )


# -- newdata: a population frame other than the fit's rows ----------------------------------
def _frame_weights(frame: pd.DataFrame, weights: Any) -> tuple[np.ndarray, str]:
    n = len(frame)
    if weights is None:
        return np.ones(n), "equal"
    if isinstance(weights, str):
        check_variable("weights", weights, list(frame.columns))
        col = frame[weights]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise MarginsTypeError(
                f"weights: column {weights!r} of newdata must be numeric, got {col.dtype}"
            )
        w = col.to_numpy(dtype=np.float64)
        text = f"weights={weights!r}"
    else:
        try:
            w = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MarginsTypeError(f"weights: expected a column name or numbers ({exc})") from exc
        text = "weights= (array)"
        if w.shape != (n,):
            raise MarginsValueError(
                f"weights: expected {n} values (one per row of newdata), got shape {w.shape}"
            )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise MarginsValueError("weights: must be finite, non-negative and not all zero")
    return w, text


def _model_column(fit_col: pd.Series, col: pd.Series, name: str, var: Any) -> pd.Series:
    """``col`` of newdata checked against the fit's column and cast to its kind."""
    n_missing = int(col.isna().sum())
    if n_missing:
        raise MarginsValueError(
            f"newdata: column {name!r} has {n_missing} missing values; every row of a "
            "population frame needs a value for each variable of the model"
        )
    if var.categorical:
        levels = list(var.levels or ())
        by_text = {format_value(lv): lv for lv in levels}
        # each distinct value formatted once (not once per row: a million rows took 0.8 s)
        codes, distinct = pd.factorize(col)
        texts = [format_value(v) for v in distinct]
        unseen = sorted(set(texts) - set(by_text))
        if unseen:
            raise MarginsValueError(
                f"newdata: column {name!r} has levels the fit never saw: "
                + ", ".join(repr(u) for u in unseen)
                + "; its levels are "
                + ", ".join(repr(lv) for lv in levels)
            )
        mapped = np.empty(len(texts), dtype=object)
        mapped[:] = [by_text[t] for t in texts]
        values = mapped[codes]
        if isinstance(fit_col.dtype, pd.CategoricalDtype):
            return pd.Series(pd.Categorical(values, categories=fit_col.cat.categories))
        return pd.Series(values, dtype=bool if fit_col.dtype == bool else object)
    if pd.api.types.is_bool_dtype(col) and not pd.api.types.is_bool_dtype(fit_col):
        raise MarginsTypeError(f"newdata: column {name!r} is numeric in the fit, got booleans")
    if not pd.api.types.is_numeric_dtype(col):
        raise MarginsTypeError(
            f"newdata: column {name!r} is numeric in the fit, got {col.dtype} values "
            f"such as {col.iloc[0]!r}"
        )
    return pd.Series(col.to_numpy(dtype=np.float64))


def population_from_frame(
    cf: CounterfactualData, newdata: Any, weights: Any, at_kind: str
) -> Population:
    """The rows of ``newdata`` (checked against the fit's formula) and their weights.

    Every model variable needs a column unless ``at`` fixes it. A model fitted with
    ``offset=`` or ``exposure=`` needs a column of that name (each row's offset, resp.
    exposure) unless ``at`` fixes it; the caller's frame is never modified.
    """
    if not isinstance(newdata, pd.DataFrame):
        kind = type(newdata).__name__
        raise MarginsTypeError(f"newdata: expected a pandas DataFrame, got {kind}")
    if len(newdata) == 0:
        raise MarginsValueError("newdata: the frame has no rows")
    if at_kind == "balanced":
        raise MarginsValueError(
            "newdata: at='balanced' averages over its own grid of factor levels; give "
            "newdata or at='balanced', not both"
        )
    fixed = set(cf.base_values)
    missing = [v for v in cf.variables if v not in newdata.columns and v not in fixed]
    if missing:
        raise MarginsValueError(
            "newdata: missing column(s) the model uses: " + ", ".join(repr(m) for m in missing)
        )
    frame = newdata.reset_index(drop=True).copy()
    for name, var in cf.variables.items():
        if name in frame.columns:
            frame[name] = _model_column(cf.data[name], frame[name], name, var)
        else:  # fixed by at= for every row
            frame[name] = cf.data[name].iloc[:1].repeat(len(frame)).reset_index(drop=True)
    for key in cf.offset_keys or ():
        hidden = OFFSET_SETTINGS[key]
        if key in frame.columns:
            vals = pd.to_numeric(frame[key], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(vals) | ((vals <= 0) if key == "exposure" else False)
            if bad.any():
                kind = "positive and finite" if key == "exposure" else "finite numbers"
                raise MarginsValueError(
                    f"newdata: column {key!r} must be {kind}; {int(bad.sum())} rows are not"
                )
            frame[hidden] = vals
        elif key in fixed:
            frame[hidden] = float(cf.base_values[key])
        else:
            raise MarginsValueError(
                f"newdata: this model was fitted with {key}=, so the frame needs a {key!r} "
                f"column holding each row's {key} (or fix it for every row with "
                f"at={{{key!r}: value}})"
            )
    w, text = _frame_weights(frame, weights)
    pop_cf = CounterfactualData(
        frame, cf.variables, cf.design_fn, cf.offset_fn, offset_keys=cf.offset_keys
    )
    pop_cf.base_values = dict(cf.base_values)
    return Population(pop_cf, frame, w, f"newdata ({len(frame)} rows, {text})")
