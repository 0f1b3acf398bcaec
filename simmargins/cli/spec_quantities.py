"""The spec's structure pass for ``[[quantity]]`` tables: one :class:`QuantitySpec` per table.

Which keys each kind of quantity (and each type of contrast) takes, their values, and
the default names of quantities left unnamed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..results.criteria import ADJUST_METHODS as ADJUST
from .spec import (
    COMPARISONS,
    CONTRAST_TYPES,
    QUANTITY_KINDS,
    SLOPES,
    NewDataSpec,
    QuantitySpec,
    SpecError,
    describe_value,
)
from .spec_checks import (
    Table,
    choice,
    grid_table,
    output_name,
    read_data,
    read_kind,
    scalar,
    scalar_table,
    string,
    strings,
)

_QUANTITY_ONLY = {
    "atexog": ("predict", "dydx"),
    "variables": ("dydx",),
    "slope": ("dydx",),
    "comparison": ("dydx", "contrasts"),
    "shift": ("contrasts",),
    "scale": ("contrasts",),
    "type": ("contrasts",),
    "var": ("contrasts",),
    "levels": ("contrasts",),
    "ref_level": ("contrasts",),
    "scenarios": ("contrasts",),
    "weights": ("contrasts",),
    "labels": ("contrasts",),
}
_QUANTITY_COMMON = ("kind", "name", "by", "adjust", "newdata")
_NEWDATA_KEYS = ("path", "format", "categorical", "weights")
_BY_TYPE = {  # contrast keys that only some types take
    "var": ("pairwise", "reference", "consecutive", "all_pairwise"),
    "levels": ("pairwise", "reference", "consecutive", "all_pairwise"),
    "ref_level": ("reference",),
    "scenarios": ("custom",),
    "weights": ("custom",),
    "labels": ("custom",),
    "shift": ("shift",),
    "scale": ("shift",),
}
_TYPE_HINT = {
    "custom": "give scenarios and weights",
    "shift": "give shift and/or scale",
}


def unique_names(quantities: list[QuantitySpec]) -> list[QuantitySpec]:
    """Refuse a name given twice; name the unnamed after their kind (``dydx``, ``dydx-2``)."""
    taken: set[str] = set()
    for q in quantities:
        if q.name in taken:
            raise SpecError(f"{q.key}.name", f"{q.name!r} names two quantities of this analysis")
        if q.name:
            taken.add(q.name)
    out = []
    for q in quantities:
        if not q.name:
            candidate, n = q.kind, 1
            while candidate in taken:
                n += 1
                candidate = f"{q.kind}-{n}"
            taken.add(candidate)
            q = replace(q, name=candidate)
        out.append(q)
    return out


def read_quantity(t: Table, index: int, base: Path) -> QuantitySpec:
    """One ``[[quantity]]`` table, the ``index``-th of its analysis (``base``: the spec's
    folder, for a relative ``newdata`` path)."""
    kind = t.raw.get("kind")
    if kind in ("predict", "dydx") and t.has("weights"):
        raise SpecError(
            t.path("weights"),
            "the weights of a newdata population go in its table: newdata = { path = "
            "'population.csv', weights = 'column' }",
        )
    kind, _ = read_kind(t, QUANTITY_KINDS, _QUANTITY_COMMON, _QUANTITY_ONLY, "quantity", "this one")
    common: dict[str, Any] = {
        "kind": kind,
        "index": index,
        "name": t.get("name", output_name, default=""),
        "by": t.get("by", strings, default=()),
        "adjust": t.get("adjust", choice(ADJUST), default="none"),
        "newdata": t.get("newdata", lambda v, k: _newdata(v, k, base)),
    }
    if kind == "predict":
        return QuantitySpec(atexog=t.get("atexog", grid_table), **common)
    comparison = t.get("comparison", choice(COMPARISONS), default="difference")
    if kind == "dydx":
        slope = t.get("slope", choice(SLOPES), default="dydx")
        for k, bad in (("atexog", t.has("atexog")), ("comparison", comparison != "difference")):
            if bad and slope != "dydx":
                raise SpecError(t.path(k), f"not available with slope {slope!r}; use 'dydx'")
        return QuantitySpec(
            variables=t.get("variables", strings, required=True),
            slope=slope,
            atexog=t.get("atexog", grid_table),
            comparison=comparison,
            **common,
        )
    ctype = t.get("type", choice(CONTRAST_TYPES), required=True)
    common["comparison"] = comparison
    for k, types in _BY_TYPE.items():
        if t.has(k) and ctype not in types:
            hint = _TYPE_HINT.get(ctype, "give var and levels")
            users = " or ".join(map(repr, types))
            raise SpecError(t.path(k), f"only used by type {users} (this one is {ctype!r}; {hint})")
    if ctype == "custom":
        return _custom_contrast(t, common)
    if ctype == "shift":
        return _shift_contrast(t, common)
    var = t.get("var", string, required=True)
    levels = t.get("levels", _levels, required=True)
    if ctype == "pairwise" and len(levels) != 2:
        raise SpecError(
            t.path("levels"),
            f"type 'pairwise' compares exactly two levels, got {len(levels)}; use 'all_pairwise'",
        )
    ref_level = t.get("ref_level", scalar)
    if ref_level is not None and str(ref_level) not in {str(v) for v in levels}:
        raise SpecError(
            t.path("ref_level"), f"{ref_level!r} is not one of the levels {list(levels)!r}"
        )
    return QuantitySpec(type=ctype, var=var, levels=levels, ref_level=ref_level, **common)


def _newdata(value: Any, key: str, base: Path) -> NewDataSpec:
    """``newdata``: a file path, or a table with its ``path`` and the ``weights`` column."""
    if isinstance(value, str):
        value = {"path": value}
    t = Table(value, key, "a file path or a table with path and weights")
    t.only(_NEWDATA_KEYS)
    return NewDataSpec(read_data(t, base), t.get("weights", string))


def _shift_contrast(t: Table, common: dict[str, Any]) -> QuantitySpec:
    """``type = "shift"``: the data with x + c (``shift``) or c·x (``scale``) against the
    data as observed."""

    def amounts(words: tuple[str, ...]) -> Any:
        def check(value: Any, key: str) -> dict[str, Any]:
            table = scalar_table(value, key)
            for col, v in table.items():
                number = not isinstance(v, (bool, str)) and np.isfinite(v)
                if not (number or v in words):
                    extra = "".join(f" or {w!r}" for w in words)
                    raise SpecError(
                        f"{key}.{col}", f"expected a finite number{extra}, got {describe_value(v)}"
                    )
            return table

        return check

    shift = t.get("shift", amounts(("sd",)))
    scale = t.get("scale", amounts(()))
    if shift is None and scale is None:
        raise SpecError(
            t.path("shift"),
            "type 'shift' needs shift = { x = 1 } (or 'sd') and/or scale = { x = 1.1 }",
        )
    return QuantitySpec(type="shift", shift=shift, scale=scale, **common)


def _levels(value: Any, key: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise SpecError(key, f"expected a list of at least two levels, got {describe_value(value)}")
    levels = tuple(scalar(v, f"{key}[{i}]") for i, v in enumerate(value))
    if len({str(v) for v in levels}) != len(levels):
        raise SpecError(key, f"levels must be distinct, got {list(levels)!r}")
    return levels


def _custom_contrast(t: Table, common: dict[str, Any]) -> QuantitySpec:
    def scenarios(value: Any, key: str) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list) or not value:
            raise SpecError(
                key, f"expected a list of tables of column = value, got {describe_value(value)}"
            )
        return tuple(scalar_table(s, f"{key}[{i}]") for i, s in enumerate(value))

    scen = t.get("scenarios", scenarios, required=True)

    def weights(value: Any, key: str) -> tuple[tuple[float, ...], ...]:
        if isinstance(value, list) and value and not isinstance(value[0], list):
            value = [value]  # one contrast
        if not isinstance(value, list) or not value:
            raise SpecError(key, f"expected a list of weight rows, got {describe_value(value)}")
        rows = []
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != len(scen):
                raise SpecError(
                    f"{key}[{i}]",
                    f"expected {len(scen)} numbers (one per scenario), got {describe_value(row)}",
                )
            for w in row:
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w):
                    raise SpecError(
                        f"{key}[{i}]", f"weights must be finite numbers, got {describe_value(w)}"
                    )
            rows.append(tuple(float(w) for w in row))
        return tuple(rows)

    w = t.get("weights", weights, required=True)

    def labels(value: Any, key: str) -> tuple[str, ...]:
        out = strings(value, key)
        if len(out) != len(w):
            raise SpecError(key, f"expected {len(w)} labels (one per weight row), got {len(out)}")
        if len(set(out)) != len(out):
            raise SpecError(key, "labels must be distinct")
        return out

    return QuantitySpec(
        type="custom",
        scenarios=scen,
        weights=w,
        labels=t.get("labels", labels, default=()),
        **common,
    )
