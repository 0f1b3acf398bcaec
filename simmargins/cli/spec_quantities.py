"""The spec's structure pass for ``[[quantity]]`` tables: one :class:`QuantitySpec` per table.

Which keys each kind of quantity (and each type of contrast) takes, their values, and
the default names of quantities left unnamed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..results.criteria import ADJUST_METHODS as ADJUST
from .spec import (
    CONTRAST_TYPES,
    QUANTITY_KINDS,
    SLOPES,
    QuantitySpec,
    SpecError,
    describe_value,
)
from .spec_checks import (
    Table,
    choice,
    grid_table,
    output_name,
    read_kind,
    scalar,
    scalar_table,
    string,
    strings,
)

_QUANTITY_ONLY = {
    "atexog": ("predict",),
    "variables": ("dydx",),
    "slope": ("dydx",),
    "type": ("contrasts",),
    "var": ("contrasts",),
    "levels": ("contrasts",),
    "ref_level": ("contrasts",),
    "scenarios": ("contrasts",),
    "weights": ("contrasts",),
    "labels": ("contrasts",),
}
_QUANTITY_COMMON = ("kind", "name", "by", "adjust")


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


def read_quantity(t: Table, index: int) -> QuantitySpec:
    """One ``[[quantity]]`` table, the ``index``-th of its analysis."""
    kind, _ = read_kind(t, QUANTITY_KINDS, _QUANTITY_COMMON, _QUANTITY_ONLY, "quantity", "this one")
    common: dict[str, Any] = {
        "kind": kind,
        "index": index,
        "name": t.get("name", output_name, default=""),
        "by": t.get("by", strings, default=()),
        "adjust": t.get("adjust", choice(ADJUST), default="none"),
    }
    if kind == "predict":
        return QuantitySpec(atexog=t.get("atexog", grid_table), **common)
    if kind == "dydx":
        return QuantitySpec(
            variables=t.get("variables", strings, required=True),
            slope=t.get("slope", choice(SLOPES), default="dydx"),
            **common,
        )
    ctype = t.get("type", choice(CONTRAST_TYPES), required=True)
    if ctype == "custom":
        for k in ("var", "levels", "ref_level"):
            if t.has(k):
                raise SpecError(t.path(k), "not used by type 'custom' (give scenarios and weights)")
        return _custom_contrast(t, common)
    for k in ("scenarios", "weights", "labels"):
        if t.has(k):
            raise SpecError(t.path(k), f"only used by type 'custom' (this contrast is {ctype!r})")
    if t.has("ref_level") and ctype != "reference":
        raise SpecError(
            t.path("ref_level"), f"only used by type 'reference' (this one is {ctype!r})"
        )
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
