"""The fit's own formula spec: rebuild design matrices and learn each variable's kind.

statsmodels 0.15 keeps the spec in ``model.data.model_spec`` (a patsy ``DesignInfo`` or a
formulaic ``ModelSpec``, whichever engine fitted the model); 0.14 kept a patsy
``DesignInfo`` in ``model.data.design_info``. Reusing that spec, rather than re-parsing the
formula, is what makes ``C()``, ``I()``, splines and stateful transforms such as
``center()`` produce the same columns as at fit time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsValueError


def formula_spec(model: Any) -> Any | None:
    """The right-hand-side spec of a formula-fitted statsmodels model, or None."""
    data = getattr(model, "data", None)
    for attr in ("model_spec", "design_info"):
        spec = getattr(data, attr, None)
        if spec is not None:
            return spec
    # Some 0.14 models only kept it on the original exog frame.
    orig = getattr(data, "orig_exog", None)
    return getattr(orig, "design_info", None)


def _is_patsy(spec: Any) -> bool:
    return type(spec).__module__.startswith("patsy")


def spec_column_names(spec: Any) -> list[str]:
    return [str(c) for c in spec.column_names]


def _direct_categorical(code: str, name: str) -> bool:
    """Whether a factor's expression is the bare column or ``C(column, ...)``."""
    text = code.strip()
    if text == name:
        return True
    if not (text.startswith("C(") and text.endswith(")")):
        return False
    return text[2:].lstrip().split(",", 1)[0].rstrip(" )") == name


def _categorical_plan(spec: Any, columns: list[str]) -> dict[str, tuple[Any, ...]]:
    """{column: the fit's levels} for columns every factor of ``spec`` reads as ``x`` or
    ``C(x, ...)`` with the same levels (patsy only; empty for anything else)."""
    if not _is_patsy(spec):
        return {}
    plan: dict[str, tuple[Any, ...]] = {}
    refused: set[str] = set()
    cols = set(columns)
    for factor, info in spec.factor_infos.items():
        code = getattr(factor, "code", None)
        if code is None:
            return {}
        for name in _columns_in(code, cols):
            direct = info.type == "categorical" and _direct_categorical(code, name)
            levels = tuple(info.categories) if direct else None
            if levels is None or plan.get(name, levels) != levels:
                refused.add(name)
            else:
                plan[name] = levels
    return {k: v for k, v in plan.items() if k not in refused}


def _level_codes(col: pd.Series, levels: tuple[Any, ...]) -> np.ndarray | None:
    """Each value's position among the fit-time levels; None if any value is not a level."""
    try:
        codes = pd.Index(list(levels), dtype=object).get_indexer(col.astype(object))
    except (TypeError, ValueError):
        return None
    if codes.size and codes.min() < 0:
        return None
    return np.asarray(codes, dtype=np.int64)


def patsy_categoricals(spec: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with categorical string/bool columns as pandas categoricals in the fit's levels.

    patsy encodes a pandas categorical from its integer codes when its categories equal
    the factor's levels, and anything else element by element (90% of a grid's time in
    issue 12). Only columns that every factor reads as ``x`` or ``C(x, ...)`` with the same
    levels are converted, and only when every value is one of those levels, so each factor
    sees exactly the codes it saw before. Other columns and other engines: unchanged.
    """
    out = frame
    for name, levels in _categorical_plan(spec, list(frame.columns)).items():
        col = frame[name]
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype) or (
            pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        ):
            continue
        codes = _level_codes(col, levels)
        if codes is None:
            continue
        cat = pd.Categorical.from_codes(codes, categories=pd.Index(list(levels), dtype=object))
        if tuple(cat.categories) != levels:
            continue
        if out is frame:
            out = frame.copy(deep=False)
        out[name] = cat
    return out


# rows from which a patsy build takes its categorical-only terms from their level combinations
_SPLIT_ROWS = 256
_FULL_GRID = 4096  # level combinations up to which every combination is built


def _level_rows(
    frame: pd.DataFrame, names: list[str], plan: dict[str, tuple[Any, ...]]
) -> tuple[pd.DataFrame, np.ndarray] | None:
    """(one row per level combination, each row's combination) for columns read only as
    categorical factors; None when a value is not a fit-time level (the plain build then
    raises patsy's own error for it)."""
    codes = []
    for name in names:
        c = _level_codes(frame[name], plan[name])
        if c is None:
            return None
        codes.append(c)
    sizes = [len(plan[n]) for n in names]
    key = np.zeros(len(frame), dtype=np.int64)
    for c, size in zip(codes, sizes, strict=True):
        key = key * size + c
    total = int(np.prod(sizes))
    if total <= _FULL_GRID:
        combos, inverse = np.arange(total), key
    else:
        combos, inverse = np.unique(key, return_inverse=True)
    small: dict[str, np.ndarray] = {}
    rest = combos.copy()
    for name, size in reversed(list(zip(names, sizes, strict=True))):
        levels = np.empty(size, dtype=object)
        levels[:] = list(plan[name])
        small[name] = levels[rest % size]
        rest //= size
    return pd.DataFrame({n: small[n] for n in names}), inverse


def _build_patsy(spec: Any, frame: pd.DataFrame, split: bool) -> np.ndarray:
    """patsy's build, except that terms made only of categorical factors are built on one
    row per level combination and gathered: patsy encodes ``C(x)`` of a string column
    element by element in Python, but a term's row depends only on that row's levels."""
    import patsy

    frame = patsy_categoricals(spec, frame)
    terms = spec_terms(spec, list(frame.columns)) if split and len(frame) > _SPLIT_ROWS else None
    if terms is not None:
        plan = _categorical_plan(spec, list(frame.columns))
        by_level = [
            t for t in terms if t.categorical and t.variables and t.variables <= plan.keys()
        ]
        names = sorted({n for t in by_level for n in t.variables or ()})
        rows = _level_rows(frame, names, plan) if by_level else None
        if rows is not None:
            small, inverse = rows
            out = np.empty((len(frame), len(spec_column_names(spec))))
            cols = [i for t in by_level for i in t.columns]
            out[:, cols] = term_columns(spec, by_level, small, split=False)[inverse]
            rest = [t for t in terms if t not in by_level]
            if rest:
                cols = [i for t in rest for i in t.columns]
                out[:, cols] = term_columns(spec, rest, frame, split=False)
            return out
    (mat,) = patsy.build_design_matrices([spec], frame, NA_action="raise")
    return np.asarray(mat, dtype=np.float64)


def build_design(spec: Any, frame: pd.DataFrame, split: bool = True) -> np.ndarray:
    """Design matrix of ``frame`` through ``spec``, float64, C-contiguous, no rows dropped.

    With patsy, categorical-only terms come from their level combinations (``split``):
    the same numbers, without patsy's element-by-element encoding of every row.
    """
    try:
        if _is_patsy(spec):
            out = _build_patsy(spec, frame, split)
        else:
            mm = spec.get_model_matrix(frame, na_action="raise", output="numpy")
            out = np.asarray(mm, dtype=np.float64)
    except Exception as exc:  # the engines raise their own error types
        raise MarginsValueError(
            f"could not build the design matrix from the model's formula spec: {exc}"
        ) from exc
    if out.shape[0] != len(frame):
        raise MarginsValueError(
            f"the formula spec returned {out.shape[0]} rows for {len(frame)} rows of data; "
            "check the data for missing values in the model's variables"
        )
    return np.ascontiguousarray(out)


def _names_in(code: str) -> set[str]:
    """Bare names referenced by a factor's expression, e.g. ``C(school)`` → {C, school}."""
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError:
        # formulaic allows back-quoted names such as `my col`
        return {code.strip().strip("`")}
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _columns_in(code: str, columns: set[str]) -> set[str]:
    """Data columns a factor's expression reads: bare names, and string literals that name a
    column (patsy's ``Q("my col")``)."""
    names = _names_in(code)
    try:
        tree = ast.parse(code.strip(), mode="eval")
        names |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    except SyntaxError:
        pass
    return names & columns


@dataclass(frozen=True)
class TermColumns:
    """One term of the spec: the data columns it reads and the design columns it fills.

    ``variables`` is None when the term reads something no expression names (it is then
    rebuilt for every scenario); ``categorical`` when every factor is categorical, so that
    the term's value in a row depends only on that row's levels.
    """

    key: Any  # the spec's own term object
    variables: frozenset[str] | None
    columns: tuple[int, ...]
    categorical: bool
    # the variable whose value the term's one column is, untransformed (``x``), else None:
    # stepping that variable by δ moves the column by exactly δ
    bare: str | None = None


def spec_terms(spec: Any, columns: list[str]) -> list[TermColumns] | None:
    """The spec's terms with the columns they read and fill; None when the spec cannot be
    read this way (an unknown engine or factor type), so that callers rebuild in full."""
    cols = set(columns)
    out: list[TermColumns] = []
    try:
        if _is_patsy(spec):
            for term in spec.terms:
                used: set[str] = set()
                unknown, categorical = False, bool(term.factors)
                for factor in term.factors:
                    found = _columns_in(factor.code, cols)
                    unknown |= not found
                    used |= found
                    categorical &= spec.factor_infos[factor].type == "categorical"
                sl = spec.term_slices[term]
                only = term.factors[0] if len(term.factors) == 1 else None
                bare = None
                if (
                    only is not None
                    and sl.stop - sl.start == 1
                    and spec.factor_infos[only].type == "numerical"
                    and only.code.strip() in cols
                ):
                    bare = only.code.strip()
                out.append(
                    TermColumns(
                        term,
                        None if unknown else frozenset(used),
                        tuple(range(sl.start, sl.stop)),
                        categorical,
                        bare,
                    )
                )
        elif type(spec).__module__.startswith("formulaic"):
            states = {str(e): s for e, s in spec.encoder_state.items()}
            for term in spec.terms:
                used, unknown, categorical = set(), False, bool(term.factors)
                exprs = [str(f.expr) for f in term.factors]
                for factor in term.factors:
                    expr = str(factor.expr)
                    if expr == "1":  # the intercept
                        categorical = False
                        continue
                    found = _columns_in(expr, cols)
                    unknown |= not found
                    used |= found
                    kind = states.get(expr, (None, None))[0]
                    categorical &= str(getattr(kind, "value", kind)) == "categorical"
                idx = tuple(int(i) for i in spec.term_indices[term])
                bare = (
                    exprs[0]
                    if len(exprs) == 1 and len(idx) == 1 and exprs[0] in cols and not categorical
                    else None
                )
                out.append(
                    TermColumns(
                        term,
                        None if unknown else frozenset(used),
                        idx,
                        categorical,
                        bare,
                    )
                )
        else:
            return None
    except (AttributeError, KeyError, TypeError):
        return None
    filled = sorted(i for t in out for i in t.columns)
    if filled != list(range(len(spec_column_names(spec)))):
        return None  # the terms do not tile the design: rebuild in full
    return out


def term_columns(
    spec: Any, terms: list[TermColumns], frame: pd.DataFrame, split: bool = True
) -> np.ndarray:
    """The design columns of ``terms`` on ``frame`` through the fit's spec, restricted to
    those terms (fit-time state, codings and levels kept), in the order of their columns
    concatenated. Equal to the same columns of a full rebuild."""
    keys = [t.key for t in terms]
    sub = spec.subset(keys)
    mat = build_design(sub, frame, split)
    where = sub.term_slices if _is_patsy(sub) else sub.term_indices
    picks: list[int] = []
    for t in terms:
        sub_cols = where[t.key]
        idx = range(sub_cols.start, sub_cols.stop) if isinstance(sub_cols, slice) else sub_cols
        picks.extend(int(i) for i in idx)
    return mat[:, picks]


def _factors(spec: Any) -> list[tuple[str, bool, tuple[Any, ...] | None]]:
    """(expression, is_categorical, categories) for every factor of the spec."""
    out: list[tuple[str, bool, tuple[Any, ...] | None]] = []
    if _is_patsy(spec):
        for factor, info in spec.factor_infos.items():
            cats = tuple(info.categories) if info.type == "categorical" else None
            out.append((factor.code, info.type == "categorical", cats))
    else:
        for expr, (kind, state) in spec.encoder_state.items():
            is_cat = str(getattr(kind, "value", kind)) == "categorical"
            cats = tuple(state.get("categories", ())) if is_cat else None
            out.append((str(expr), is_cat, cats))
    return out


@dataclass(frozen=True)
class Variable:
    """A data column the model uses, as the margins see it."""

    name: str
    categorical: bool
    levels: tuple[Any, ...] | None  # fit-time levels, reference first, for categorical variables


def spec_variables(spec: Any, columns: list[str], frame: pd.DataFrame) -> dict[str, Variable]:
    """Every data column referenced by the spec, with its kind and (if categorical) levels.

    A column is categorical when the only factor that uses it is categorical itself
    (``C(school)``, a string or bool column); ``x`` in ``x:C(g)`` stays numeric.
    """
    seen: dict[str, list[tuple[bool, tuple[Any, ...] | None, bool]]] = {}
    for code, is_cat, cats in _factors(spec):
        names = [n for n in _names_in(code) if n in columns]
        for n in names:
            direct = code.strip() == n or len(names) == 1
            seen.setdefault(n, []).append((is_cat, cats if direct else None, direct))
    variables: dict[str, Variable] = {}
    for name, uses in seen.items():
        categorical = all(u[0] for u in uses)
        levels: tuple[Any, ...] | None = None
        if categorical:
            levels = next((u[1] for u in uses if u[1] is not None), None)
            if levels is None:
                levels = tuple(pd.unique(frame[name].dropna()))
        variables[name] = Variable(name, categorical, levels)
    return variables


def frame_variables(frame: pd.DataFrame, columns: list[str]) -> dict[str, Variable]:
    """Variables of an array-interface model: numeric unless the column is not numeric."""
    out: dict[str, Variable] = {}
    for name in columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            levels = (
                tuple(col.cat.categories)
                if isinstance(col.dtype, pd.CategoricalDtype)
                else tuple(sorted(pd.unique(col.dropna()), key=str))
            )
            out[name] = Variable(name, True, levels)
        else:
            out[name] = Variable(name, False, None)
    return out
