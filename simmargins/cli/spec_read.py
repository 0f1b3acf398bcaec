"""The spec's structure pass: a TOML text checked key by key into :class:`RunSpec`.

No data is read here: keys, types, choices, which keys each kind of model and quantity
takes, and formulas that do not parse. Every problem is a :class:`SpecError` naming the
key. The schema is documented in ``docs/cli.md``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..results.criteria import ADJUST_METHODS as ADJUST
from ..results.criteria import INTERVALS
from .spec import (
    CONTRAST_TYPES,
    COV_TYPES,
    DATA_FORMATS,
    FAMILIES,
    LINKS,
    METHODS,
    MODEL_KINDS,
    QUANTITY_KINDS,
    SCALES,
    SLOPES,
    AnalysisSpec,
    DataSpec,
    InferenceSpec,
    ModelSpec,
    OutputSpec,
    QuantitySpec,
    RunSpec,
    SpecError,
    data_format,
    describe_value,
    did_you_mean,
    formula_names,
    listing,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

# Which model kinds use which keys (the rest are common to all kinds).
_MODEL_ONLY = {
    "groups": ("mixedlm",),
    "re_formula": ("mixedlm",),
    "weights": ("wls",),
    "family": ("glm",),
    "link": ("glm",),
    "freq_weights": ("glm",),
    "var_weights": ("glm",),
    "offset": ("glm", "logit", "probit", "poisson", "negativebinomial"),
    "exposure": ("glm", "poisson", "negativebinomial"),
}
_MODEL_COMMON = ("kind", "formula", "fit")
_FIT_KEYS: dict[str, tuple[str, ...]] = {
    "mixedlm": ("reml", "method", "maxiter"),
    "ols": ("cov_type",),
    "wls": ("cov_type",),
    "glm": ("method", "maxiter", "tol", "cov_type"),
    "logit": ("method", "maxiter", "cov_type"),
    "probit": ("method", "maxiter", "cov_type"),
    "poisson": ("method", "maxiter", "cov_type"),
    "negativebinomial": ("method", "maxiter", "cov_type"),
}
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
_TOP_KEYS = ("name", "data", "model", "inference", "quantity", "analysis", "output")
_ANALYSIS_KEYS = ("name", "data", "model", "inference", "quantity")
_DATA_KEYS = ("path", "format", "categorical")
_INFERENCE_KEYS = tuple(
    "method n_sims n_boot level seed scale at weights cluster interval n_jobs".split()
)
_OUTPUT_KEYS = ("plots", "dpi")


# -- value checks ----------------------------------------------------------------------------
def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


Checker = Callable[[Any, str], Any]


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise SpecError(key, f"expected a string, got {describe_value(value)}")
    if not value.strip():
        raise SpecError(key, "expected a non-empty string")
    return value


def _name(value: Any, key: str) -> str:
    value = _string(value, key)
    if not _NAME.match(value):
        raise SpecError(
            key,
            f"{value!r} cannot name an output folder; use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit",
        )
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    if isinstance(value, str):
        return (_string(value, key),)
    if not isinstance(value, list) or not value:
        raise SpecError(
            key, f"expected a string or a non-empty list of strings, got {describe_value(value)}"
        )
    return tuple(_string(v, f"{key}[{i}]") for i, v in enumerate(value))


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(key, f"expected true or false, got {describe_value(value)}")
    return value


def _integer(minimum: int, nonzero: bool = False) -> Checker:
    def check(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(key, f"expected an integer, got {describe_value(value)}")
        if value < minimum or (nonzero and value == 0):
            extra = " and not 0 (-1 means all cores)" if nonzero else ""
            raise SpecError(key, f"must be at least {minimum}{extra}, got {value}")
        return value

    return check


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpecError(key, f"expected a positive number, got {describe_value(value)}")
    return float(value)


def _level(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(
            key, f"expected a number in (0, 1) such as 0.95, got {describe_value(value)}"
        )
    if not 0.0 < float(value) < 1.0:
        raise SpecError(key, f"must lie strictly between 0 and 1 (e.g. 0.95), got {value!r}")
    return float(value)


def _choice(accepted: Sequence[str]) -> Checker:
    def check(value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise SpecError(
                key, f"expected one of {listing(accepted)}, got {describe_value(value)}"
            )
        if value not in accepted:
            lowered = {a.lower(): a for a in accepted}
            if value.lower() in lowered:
                return lowered[value.lower()]
            raise SpecError(
                key,
                f"got {value!r}; accepted values are {listing(accepted)}"
                + did_you_mean(value, accepted),
            )
        return value

    return check


def _scalar(value: Any, key: str) -> Any:
    if not _is_scalar(value):
        raise SpecError(
            key, f"expected a single value (string, number or boolean), got {describe_value(value)}"
        )
    return value


def _scalar_table(value: Any, key: str) -> dict[str, Any]:
    """A table {column = value} of single values (``at``, a scenario)."""
    if not isinstance(value, dict) or not value:
        raise SpecError(
            key, f"expected a non-empty table of column = value, got {describe_value(value)}"
        )
    return {k: _scalar(v, f"{key}.{k}") for k, v in value.items()}


def _grid_table(value: Any, key: str) -> dict[str, Any]:
    """A table {column = value or [values]} (``atexog``)."""
    if not isinstance(value, dict) or not value:
        raise SpecError(
            key,
            "expected a non-empty table of column = value or [values], got "
            + describe_value(value),
        )
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, list):
            if not v:
                raise SpecError(f"{key}.{k}", "expected at least one value, got an empty list")
            out[k] = [_scalar(x, f"{key}.{k}[{i}]") for i, x in enumerate(v)]
        else:
            out[k] = _scalar(v, f"{key}.{k}")
    return out


class _Table:
    """One TOML table being read: every key must be consumed or known."""

    def __init__(self, raw: Any, key: str, what: str = "a table") -> None:
        if not isinstance(raw, dict):
            raise SpecError(key, f"expected {what}, got {describe_value(raw)}")
        self.raw: dict[str, Any] = raw
        self.key = key

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def has(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str, check: Checker, default: Any = None, required: bool = False) -> Any:
        if name not in self.raw:
            if required:
                raise SpecError(self.path(name), "required key is missing")
            return default
        return check(self.raw[name], self.path(name))

    def only(self, allowed: Sequence[str], elsewhere: Mapping[str, str] | None = None) -> None:
        """Refuse keys outside ``allowed``; ``elsewhere`` explains keys of another kind."""
        for name in self.raw:
            if name in allowed:
                continue
            if elsewhere and name in elsewhere:
                raise SpecError(self.path(name), elsewhere[name])
            raise SpecError(
                self.path(name),
                f"unknown key{did_you_mean(name, allowed)} (accepted here: {', '.join(allowed)})",
            )


# -- the structure pass -----------------------------------------------------------------------
def read_spec(path: Path) -> RunSpec:
    """Read and structurally check a spec file (no data is read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("", f"{str(path)!r}: spec file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("", f"{str(path)!r}: cannot read the spec file ({exc})") from None
    return parse_spec(text, path)


def parse_spec(text: str, path: Path) -> RunSpec:
    """Check a spec's structure; relative data paths are resolved against ``path``'s folder."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("", f"{str(path)!r} is not valid TOML: {exc}") from None
    top = _Table(raw, "")
    top.only(_TOP_KEYS)
    base = path.parent
    output = _output(top.get("output", lambda v, k: _Table(v, k)))
    defaults: dict[str, Any] = {
        k: raw[k] for k in ("data", "model", "inference", "quantity") if k in raw
    }
    if "analysis" in raw:
        if "name" in raw:
            raise SpecError("name", "with [[analysis]] tables, give each analysis its own name")
        tables = raw["analysis"]
        if not isinstance(tables, list) or not tables:
            raise SpecError("analysis", "expected one or more [[analysis]] tables")
        analyses = []
        for i, table in enumerate(tables):
            t = _Table(table, f"analysis[{i}]")
            t.only(_ANALYSIS_KEYS)
            name = t.get("name", _name, required=True)
            merged = {**defaults, **{k: v for k, v in table.items() if k != "name"}}
            try:
                analyses.append(_analysis(name, merged, base))
            except SpecError as exc:
                raise exc.within(f"analysis {name!r}") from None
        seen: set[str] = set()
        for a in analyses:
            if a.name in seen:
                raise SpecError(f"analysis {a.name!r}", "the name is used by two analyses")
            seen.add(a.name)
    else:
        name = top.get("name", _name, default="main")
        try:
            analyses = [_analysis(name, defaults, base)]
        except SpecError as exc:
            raise exc.within(f"analysis {name!r}") from None
    return RunSpec(path=path, text=text, analyses=tuple(analyses), output=output)


def _output(t: _Table | None) -> OutputSpec:
    if t is None:
        return OutputSpec()
    t.only(_OUTPUT_KEYS)
    return OutputSpec(
        plots=t.get("plots", _boolean, default=True),
        dpi=t.get("dpi", _integer(20), default=100),
    )


def _analysis(name: str, raw: dict[str, Any], base: Path) -> AnalysisSpec:
    if "data" not in raw:
        raise SpecError("data", "required key is missing (a data file path, or a [data] table)")
    if "model" not in raw:
        raise SpecError("model", "required table is missing ([model] with kind and formula)")
    if "quantity" not in raw:
        raise SpecError("quantity", "required: at least one [[quantity]] table")
    data = _data(raw["data"], base)
    model = _model(_Table(raw["model"], "model"))
    inference = _inference(_Table(raw.get("inference", {}), "inference"), model)
    qs = raw["quantity"]
    if not isinstance(qs, list) or not qs:
        raise SpecError("quantity", "expected one or more [[quantity]] tables")
    quantities = [_quantity(_Table(q, f"quantity[{i}]"), i) for i, q in enumerate(qs)]
    return AnalysisSpec(name, data, model, inference, tuple(_unique_names(quantities)))


def _unique_names(quantities: list[QuantitySpec]) -> list[QuantitySpec]:
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


def _data(raw: Any, base: Path) -> DataSpec:
    if isinstance(raw, str):
        raw = {"path": raw}
    t = _Table(raw, "data", "a file path or a [data] table")
    t.only(_DATA_KEYS)
    path = Path(t.get("path", _string, required=True))
    full = path if path.is_absolute() else base / path
    fmt = t.get("format", _choice(DATA_FORMATS)) or data_format(full, "data.path")
    categorical = t.get("categorical", _strings, default=())
    return DataSpec(full, fmt, categorical)


def _model(t: _Table) -> ModelSpec:
    kind = t.get("kind", _choice(MODEL_KINDS), required=True)
    allowed = [*_MODEL_COMMON, *(k for k, kinds in _MODEL_ONLY.items() if kind in kinds)]
    elsewhere = {
        k: f"only used by model kind {' or '.join(map(repr, kinds))} (this model is {kind!r})"
        for k, kinds in _MODEL_ONLY.items()
        if kind not in kinds
    }
    t.only(allowed, elsewhere)
    formula = t.get("formula", _string, required=True)
    formula_names(formula, t.path("formula"))
    columns = {
        k: t.get(k, _string)
        for k in _MODEL_ONLY
        if k in allowed and k not in ("family", "link", "re_formula")
    }
    if kind == "mixedlm" and columns.get("groups") is None:
        raise SpecError(t.path("groups"), "required key is missing (the grouping column)")
    if kind == "wls" and columns.get("weights") is None:
        raise SpecError(t.path("weights"), "required key is missing (the column of WLS weights)")
    re_formula = t.get("re_formula", _string)
    if re_formula is not None:
        formula_names(re_formula, t.path("re_formula"), one_sided=True)
    family = t.get("family", _choice(FAMILIES), default="gaussian")
    link = t.get("link", _choice(LINKS))
    fit = _fit_options(t.get("fit", lambda v, k: _Table(v, k)), kind)
    return ModelSpec(
        kind=kind,
        formula=formula,
        re_formula=re_formula,
        family=family,
        link=link,
        fit=fit,
        **{k: v for k, v in columns.items() if v is not None},
    )


def _fit_options(t: _Table | None, kind: str) -> dict[str, Any]:
    if t is None:
        return {}
    allowed = _FIT_KEYS[kind]
    t.only(allowed)

    def method(value: Any, key: str) -> Any:
        if kind == "mixedlm" and isinstance(value, list):
            return list(_strings(value, key))
        return _string(value, key)

    checks: dict[str, Checker] = {
        "reml": _boolean,
        "method": method,
        "maxiter": _integer(1),
        "tol": _positive_number,
        "cov_type": _choice(COV_TYPES),
    }
    return {k: t.get(k, checks[k]) for k in allowed if t.has(k)}


def _inference(t: _Table, model: ModelSpec) -> InferenceSpec:
    t.only(_INFERENCE_KEYS)

    def at(value: Any, key: str) -> str | dict[str, Any]:
        if isinstance(value, str):
            return _choice(("overall", "mean"))(value, key)
        if isinstance(value, dict):
            return _scalar_table(value, key)
        raise SpecError(
            key,
            f"expected 'overall', 'mean' or a table of column = value, got {describe_value(value)}",
        )

    cluster = t.get("cluster", _string)
    if cluster is not None and model.kind == "mixedlm":
        raise SpecError(
            t.path("cluster"),
            "a mixedlm bootstrap resamples the model's own groups; cluster is for the other kinds",
        )
    d = InferenceSpec()
    return InferenceSpec(
        method=t.get("method", _choice(METHODS), d.method),
        n_sims=t.get("n_sims", _integer(2), d.n_sims),
        n_boot=t.get("n_boot", _integer(2), d.n_boot),
        level=t.get("level", _level, d.level),
        seed=t.get("seed", _integer(0), d.seed),
        scale=t.get("scale", _choice(SCALES), d.scale),
        at=t.get("at", at, d.at),
        weights=t.get("weights", _string),
        cluster=cluster,
        interval=t.get("interval", _choice(INTERVALS), d.interval),
        n_jobs=t.get("n_jobs", _integer(-1, nonzero=True)),
    )


def _quantity(t: _Table, index: int) -> QuantitySpec:
    kind = t.get("kind", _choice(QUANTITY_KINDS), required=True)
    allowed = [*_QUANTITY_COMMON, *(k for k, kinds in _QUANTITY_ONLY.items() if kind in kinds)]
    elsewhere = {
        k: f"only used by quantity kind {' or '.join(map(repr, kinds))} (this one is {kind!r})"
        for k, kinds in _QUANTITY_ONLY.items()
        if kind not in kinds
    }
    t.only(allowed, elsewhere)
    common: dict[str, Any] = {
        "kind": kind,
        "index": index,
        "name": t.get("name", _name, default=""),
        "by": t.get("by", _strings, default=()),
        "adjust": t.get("adjust", _choice(ADJUST), default="none"),
    }
    if kind == "predict":
        return QuantitySpec(atexog=t.get("atexog", _grid_table), **common)
    if kind == "dydx":
        return QuantitySpec(
            variables=t.get("variables", _strings, required=True),
            slope=t.get("slope", _choice(SLOPES), default="dydx"),
            **common,
        )
    ctype = t.get("type", _choice(CONTRAST_TYPES), required=True)
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
    var = t.get("var", _string, required=True)
    levels = t.get("levels", _levels, required=True)
    if ctype == "pairwise" and len(levels) != 2:
        raise SpecError(
            t.path("levels"),
            f"type 'pairwise' compares exactly two levels, got {len(levels)}; use 'all_pairwise'",
        )
    ref_level = t.get("ref_level", _scalar)
    if ref_level is not None and str(ref_level) not in {str(v) for v in levels}:
        raise SpecError(
            t.path("ref_level"), f"{ref_level!r} is not one of the levels {list(levels)!r}"
        )
    return QuantitySpec(type=ctype, var=var, levels=levels, ref_level=ref_level, **common)


def _levels(value: Any, key: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise SpecError(key, f"expected a list of at least two levels, got {describe_value(value)}")
    levels = tuple(_scalar(v, f"{key}[{i}]") for i, v in enumerate(value))
    if len({str(v) for v in levels}) != len(levels):
        raise SpecError(key, f"levels must be distinct, got {list(levels)!r}")
    return levels


def _custom_contrast(t: _Table, common: dict[str, Any]) -> QuantitySpec:
    def scenarios(value: Any, key: str) -> tuple[dict[str, Any], ...]:
        if not isinstance(value, list) or not value:
            raise SpecError(
                key, f"expected a list of tables of column = value, got {describe_value(value)}"
            )
        return tuple(_scalar_table(s, f"{key}[{i}]") for i, s in enumerate(value))

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
        out = _strings(value, key)
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
