"""The spec's data pass: every column an analysis names exists and suits its use.

Run after :func:`simmargins.cli.spec_read.read_spec` and before anything is fitted, on the data
each analysis will run on, so that a misspelt column or a level that the data does not
have fails with one line naming the key (exit status 2), not deep inside a fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .spec import (
    AT_SUMMARIES,
    FORMULA_NAMESPACE,
    AnalysisSpec,
    QuantitySpec,
    SpecError,
    describe_value,
    did_you_mean,
    formula_names,
)

EVALUATE_ROWS = 1000  # a formula is tried on this many rows before anything is fitted


def _columns_hint(columns: Sequence[str]) -> str:
    shown = list(columns[:20])
    more = f", … ({len(columns)} columns)" if len(columns) > 20 else ""
    return ", ".join(shown) + more


def _need_column(name: str, key: str, columns: Sequence[str], what: str = "") -> None:
    if name not in columns:
        raise SpecError(
            key,
            f"{name!r} is not a column of the data{did_you_mean(name, columns)} "
            f"(columns: {_columns_hint(columns)}){what}",
        )


def check_against_data(analysis: AnalysisSpec, frame: Any, context: str | None = None) -> None:
    """Every column the analysis names exists and every value fits its column's type.

    ``frame`` is the pandas DataFrame the analysis will run on. Raises
    :class:`SpecError` placed in ``context`` (default: the analysis).
    """
    try:
        _check_against_data(analysis, frame)
    except SpecError as exc:
        raise exc.within(context or analysis.context) from None


def _check_against_data(a: AnalysisSpec, frame: Any) -> None:
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    for i, c in enumerate(a.data.categorical):
        _need_column(c, f"data.categorical[{i}]", columns)
    names, categorical = formula_names(a.model.formula, "model.formula")
    for n in sorted(names):
        if n not in columns and n not in FORMULA_NAMESPACE:
            raise SpecError(
                "model.formula",
                f"{n!r} is not a column of the data{did_you_mean(n, columns)} "
                f"(columns: {_columns_hint(columns)})",
            )
    model_vars = names & set(columns)
    _evaluate(a.model.formula, "model.formula", frame)
    if a.model.re_formula:
        re_names, _ = formula_names(a.model.re_formula, "model.re_formula", one_sided=True)
        for n in sorted(re_names):
            if n not in columns and n not in FORMULA_NAMESPACE:
                _need_column(n, "model.re_formula", columns)
        _evaluate(a.model.re_formula, "model.re_formula", frame)
    for key, col in a.model.columns().items():
        _need_column(col, f"model.{key}", columns)
        if key != "groups" and not pd.api.types.is_numeric_dtype(frame[col]):
            raise SpecError(f"model.{key}", f"column {col!r} must be numeric")
        if key == "exposure" and not (frame[col].dropna() > 0).all():
            raise SpecError("model.exposure", f"column {col!r} must be positive in every row")
    reserved = {k for k in ("offset", "exposure") if getattr(a.model, k) is not None}
    inf = a.inference
    for key in ("weights", "cluster"):
        col = getattr(inf, key)
        if col is not None:
            _need_column(col, f"inference.{key}", columns)
    if isinstance(inf.at, dict):
        for col, value in inf.at.items():
            key = f"inference.at.{col}"
            if value in AT_SUMMARIES and isinstance(value, str):
                _check_summary(frame, col, value, key, columns, model_vars, categorical)
                continue
            _check_value(frame, col, value, key, columns, model_vars, categorical, reserved)
    for q in a.quantities:
        _check_quantity(q, frame, columns, model_vars, categorical, reserved)


def _check_quantity(
    q: QuantitySpec,
    frame: Any,
    columns: list[str],
    model_vars: set[str],
    categorical: set[str],
    reserved: set[str],
) -> None:
    for i, col in enumerate(q.by if q.newdata is None else ()):  # else: see check_newdata
        _need_column(col, f"{q.key}.by" + (f"[{i}]" if len(q.by) > 1 else ""), columns)
    if q.atexog:
        for col, value in q.atexog.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                _check_value(
                    frame,
                    col,
                    v,
                    f"{q.key}.atexog.{col}",
                    columns,
                    model_vars,
                    categorical,
                    reserved,
                )
    for i, var in enumerate(q.variables):
        key = f"{q.key}.variables" + (f"[{i}]" if len(q.variables) > 1 else "")
        _need_column(var, key, columns)
        if var not in model_vars:
            raise SpecError(key, f"column {var!r} is not in the model's formula")
        if q.comparison != "difference" and not _is_factor(frame, var, categorical):
            raise SpecError(
                f"{q.key}.comparison",
                f"{q.comparison!r} compares two averaged predictions, so dydx applies it to "
                f"factors only, and {var!r} is numeric; use kind 'contrasts' with type 'shift' "
                f"for the prediction with {var!r} moved against the data as observed",
            )
    for arg in ("shift", "scale"):
        for col in getattr(q, arg) or {}:
            key = f"{q.key}.{arg}.{col}"
            _need_column(col, key, columns)
            if col not in model_vars:
                raise SpecError(key, f"column {col!r} is not in the model's formula")
            if _is_factor(frame, col, categorical):
                raise SpecError(key, f"{arg} moves a numeric column, and {col!r} is categorical")
    if q.var is not None:
        _need_column(q.var, f"{q.key}.var", columns)
        for i, v in enumerate(q.levels):
            _check_value(
                frame, q.var, v, f"{q.key}.levels[{i}]", columns, model_vars, categorical, reserved
            )
    for i, scen in enumerate(q.scenarios):
        for col, v in scen.items():
            key = f"{q.key}.scenarios[{i}].{col}"
            _check_value(frame, col, v, key, columns, model_vars, categorical, reserved)


def _check_value(
    frame: Any,
    col: str,
    value: Any,
    key: str,
    columns: list[str],
    model_vars: set[str],
    categorical: set[str],
    reserved: set[str],
) -> None:
    """A counterfactual value must suit its column: numbers for numbers, known levels."""
    import pandas as pd

    if col in reserved and col not in columns:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(key, f"the model's {col} takes a number, got {describe_value(value)}")
        return
    _need_column(col, key, columns)
    if col not in model_vars:
        raise SpecError(
            key, f"column {col!r} is not in the model's formula, so setting it has no effect"
        )
    series = frame[col]
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if pd.api.types.is_bool_dtype(series):
        if not isinstance(value, bool):
            raise SpecError(key, f"column {col!r} holds true/false, got {describe_value(value)}")
        return
    if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SpecError(key, f"column {col!r} is numeric, got {describe_value(value)}")
    if numeric and col not in categorical:
        return  # any number is a valid counterfactual value
    observed = pd.unique(series.dropna())
    if not any(_same(value, o) for o in observed):
        shown = ", ".join(repr(_plain(o)) for o in list(observed)[:12])
        raise SpecError(key, f"{value!r} is not a value of column {col!r} (values: {shown})")


def _is_factor(frame: Any, col: str, categorical: set[str]) -> bool:
    """Whether the model treats the column as categorical (text, bool, or inside ``C()``)."""
    import pandas as pd

    series = frame[col]
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return not numeric or col in categorical


def _check_summary(
    frame: Any,
    col: str,
    how: str,
    key: str,
    columns: list[str],
    model_vars: set[str],
    categorical: set[str],
) -> None:
    """``at = { x = "mean" }``: a summary of a model column (a factor's: its mode or a level)."""
    _need_column(col, key, columns)
    if col not in model_vars:
        raise SpecError(
            key, f"column {col!r} is not in the model's formula, so setting it has no effect"
        )
    if how == "mode" or not _is_factor(frame, col, categorical):
        return
    if any(_same(how, o) for o in _observed(frame[col])):
        return  # a level that happens to be called "mean"
    raise SpecError(
        key, f"{how!r} summarises numeric columns and {col!r} is categorical; use 'mode' or a level"
    )


def check_newdata(q: QuantitySpec, frame: Any, key: str) -> None:
    """A quantity's ``newdata`` frame holds its ``weights`` (numbers) and ``by`` columns."""
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    w = q.newdata.weights if q.newdata is not None else None
    if w is not None:
        _need_column(w, f"{key}.weights", columns)
        if not pd.api.types.is_numeric_dtype(frame[w]) or (frame[w].dropna() < 0).any():
            raise SpecError(f"{key}.weights", f"column {w!r} of newdata must hold numbers ≥ 0")
    for i, col in enumerate(q.by):
        _need_column(col, f"{q.key}.by" + (f"[{i}]" if len(q.by) > 1 else ""), columns)


def _observed(series: Any) -> list[Any]:
    import pandas as pd

    return list(pd.unique(series.dropna()))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _same(value: Any, observed: Any) -> bool:
    observed = _plain(observed)
    if isinstance(value, str) or isinstance(observed, str):
        return str(value) == str(observed)
    return bool(value == observed)


def _evaluate(formula: str, key: str, frame: Any) -> None:
    """Evaluate the formula on the first rows: catches functions that do not exist or fail."""
    import patsy

    env = patsy.EvalEnvironment([{"np": np, "numpy": np}])
    head = frame.head(EVALUATE_ROWS)
    try:
        if "~" in formula and formula.split("~", 1)[0].strip():
            patsy.dmatrices(formula, head, eval_env=env, NA_action="drop")
        else:
            patsy.dmatrix(formula, head, eval_env=env, NA_action="drop")
    except Exception as exc:  # patsy wraps evaluation errors, but not every one
        text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise SpecError(key, f"{formula!r} cannot be evaluated on the data: {text}") from None
