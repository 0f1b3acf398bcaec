"""The spec's structure pass: a TOML text checked key by key into :class:`RunSpec`.

No data is read here: keys, types, choices, which keys each kind of model and quantity
takes, and formulas that do not parse. Every problem is a :class:`SpecError` naming the
key. The schema is documented in ``docs/cli.md``. This module reads the top level, the
analyses and their data, model and inference tables; the ``[[quantity]]`` tables are read
in :mod:`.spec_quantities`, with the value checks of :mod:`.spec_checks`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..results.criteria import INTERVALS
from .spec import (
    AT_KINDS,
    AT_SUMMARIES,
    BOOTSTRAP_KINDS,
    COV_TYPES,
    DF_METHODS,
    FAMILIES,
    LINKS,
    METHODS,
    MODEL_KINDS,
    ORDERED_DISTRS,
    RANDOM_EFFECTS_KINDS,
    SCALES,
    AnalysisSpec,
    DataSpec,
    InferenceSpec,
    ModelSpec,
    OutputSpec,
    RunSpec,
    SpecError,
    describe_value,
    formula_names,
    listing,
)
from .spec_checks import (
    Checker,
    Table,
    boolean,
    choice,
    integer,
    level,
    output_name,
    positive_number,
    read_data,
    read_kind,
    scalar_table,
    string,
    strings,
)
from .spec_quantities import read_quantity, unique_names

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
    "distr": ("ordered",),
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
    "mnlogit": ("method", "maxiter", "cov_type"),
    "ordered": ("method", "maxiter"),
}
_TOP_KEYS = ("name", "data", "model", "inference", "quantity", "analysis", "output")
_ANALYSIS_KEYS = ("name", "data", "model", "inference", "quantity")
_DATA_KEYS = ("path", "format", "categorical")
_INFERENCE_KEYS = tuple(
    "method n_sims n_boot level seed scale at weights cluster interval n_jobs df bootstrap "
    "random_effects".split()
)
_OUTPUT_KEYS = ("plots", "dpi")


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
    top = Table(raw, "")
    top.only(_TOP_KEYS)
    base = path.parent
    output = _output(top.get("output", lambda v, k: Table(v, k)))
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
            t = Table(table, f"analysis[{i}]")
            t.only(_ANALYSIS_KEYS)
            name = t.get("name", output_name, required=True)
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
        name = top.get("name", output_name, default="main")
        try:
            analyses = [_analysis(name, defaults, base)]
        except SpecError as exc:
            raise exc.within(f"analysis {name!r}") from None
    return RunSpec(path=path, text=text, analyses=tuple(analyses), output=output)


def _output(t: Table | None) -> OutputSpec:
    if t is None:
        return OutputSpec()
    t.only(_OUTPUT_KEYS)
    return OutputSpec(
        plots=t.get("plots", boolean, default=True),
        dpi=t.get("dpi", integer(20), default=100),
    )


def _analysis(name: str, raw: dict[str, Any], base: Path) -> AnalysisSpec:
    if "data" not in raw:
        raise SpecError("data", "required key is missing (a data file path, or a [data] table)")
    if "model" not in raw:
        raise SpecError("model", "required table is missing ([model] with kind and formula)")
    if "quantity" not in raw:
        raise SpecError("quantity", "required: at least one [[quantity]] table")
    data = _data(raw["data"], base)
    model = _model(Table(raw["model"], "model"))
    inference = _inference(Table(raw.get("inference", {}), "inference"), model)
    qs = raw["quantity"]
    if not isinstance(qs, list) or not qs:
        raise SpecError("quantity", "expected one or more [[quantity]] tables")
    quantities = [read_quantity(Table(q, f"quantity[{i}]"), i, base) for i, q in enumerate(qs)]
    return AnalysisSpec(name, data, model, inference, tuple(unique_names(quantities)))


def _data(raw: Any, base: Path) -> DataSpec:
    if isinstance(raw, str):
        raw = {"path": raw}
    t = Table(raw, "data", "a file path or a [data] table")
    t.only(_DATA_KEYS)
    return read_data(t, base)


def _model(t: Table) -> ModelSpec:
    kind, allowed = read_kind(t, MODEL_KINDS, _MODEL_COMMON, _MODEL_ONLY, "model", "this model")
    formula = t.get("formula", string, required=True)
    formula_names(formula, t.path("formula"))
    columns = {
        k: t.get(k, string)
        for k in _MODEL_ONLY
        if k in allowed and k not in ("family", "link", "re_formula", "distr")
    }
    if kind == "mixedlm" and columns.get("groups") is None:
        raise SpecError(t.path("groups"), "required key is missing (the grouping column)")
    if kind == "wls" and columns.get("weights") is None:
        raise SpecError(t.path("weights"), "required key is missing (the column of WLS weights)")
    re_formula = t.get("re_formula", string)
    if re_formula is not None:
        formula_names(re_formula, t.path("re_formula"), one_sided=True)
    family = t.get("family", choice(FAMILIES), default="gaussian")
    link = t.get("link", choice(LINKS))
    distr = t.get("distr", choice(ORDERED_DISTRS), default="probit")
    fit = _fit_options(t.get("fit", lambda v, k: Table(v, k)), kind)
    return ModelSpec(
        kind=kind,
        formula=formula,
        re_formula=re_formula,
        family=family,
        link=link,
        distr=distr,
        fit=fit,
        **{k: v for k, v in columns.items() if v is not None},
    )


def _fit_options(t: Table | None, kind: str) -> dict[str, Any]:
    if t is None:
        return {}
    allowed = _FIT_KEYS[kind]
    t.only(allowed)

    def method(value: Any, key: str) -> Any:
        if kind == "mixedlm" and isinstance(value, list):
            return list(strings(value, key))
        return string(value, key)

    checks: dict[str, Checker] = {
        "reml": boolean,
        "method": method,
        "maxiter": integer(1),
        "tol": positive_number,
        "cov_type": choice(COV_TYPES),
    }
    return {k: t.get(k, checks[k]) for k in allowed if t.has(k)}


def _inference(t: Table, model: ModelSpec) -> InferenceSpec:
    t.only(_INFERENCE_KEYS)

    def at(value: Any, key: str) -> str | dict[str, Any]:
        if isinstance(value, str):
            return choice(AT_KINDS)(value, key)
        if isinstance(value, dict):
            return scalar_table(value, key)
        raise SpecError(
            key,
            f"expected one of {listing(AT_KINDS)} or a table of column = value (a value may "
            f"be {listing(AT_SUMMARIES)}), got {describe_value(value)}",
        )

    cluster = t.get("cluster", string)
    if cluster is not None and model.kind == "mixedlm":
        raise SpecError(
            t.path("cluster"),
            "a mixedlm bootstrap resamples the model's own groups; cluster is for the other kinds",
        )
    d = InferenceSpec()
    method = t.get("method", choice(METHODS), d.method)
    df = t.get("df", choice(DF_METHODS), d.df)
    if df != "asymptotic":
        why = ""
        if model.kind != "mixedlm":
            why = f"is for linear mixed models (model kind 'mixedlm'), not {model.kind!r}"
        elif method == "bootstrap":
            why = "applies to the simulation and delta routes; a bootstrap's intervals come "
            why += "from its refits"
        elif df == "kenward-roger" and model.fit.get("reml") is False:
            why = "needs a REML fit (model.fit.reml = true); use 'satterthwaite' for ML"
        if why:
            raise SpecError(t.path("df"), f"{df!r} {why}; leave df out (or 'asymptotic')")
    bootstrap = t.get("bootstrap", choice(BOOTSTRAP_KINDS), d.bootstrap)
    if bootstrap == "parametric" and (model.kind != "mixedlm" or method != "bootstrap"):
        raise SpecError(
            t.path("bootstrap"),
            "'parametric' simulates responses from a linear mixed model: it needs model kind "
            "'mixedlm' and method = 'bootstrap'",
        )
    effects = t.get("random_effects", choice(RANDOM_EFFECTS_KINDS), d.random_effects)
    if effects != "zero" and model.kind != "mixedlm":
        raise SpecError(t.path("random_effects"), f"{effects!r} is for model kind 'mixedlm'")
    return InferenceSpec(
        bootstrap=bootstrap,
        random_effects=effects,
        df=df,
        method=method,
        n_sims=t.get("n_sims", integer(2), d.n_sims),
        n_boot=t.get("n_boot", integer(2), d.n_boot),
        level=t.get("level", level, d.level),
        seed=t.get("seed", integer(0), d.seed),
        scale=t.get("scale", choice(SCALES), d.scale),
        at=t.get("at", at, d.at),
        weights=t.get("weights", string),
        cluster=cluster,
        interval=t.get("interval", choice(INTERVALS), d.interval),
        n_jobs=t.get("n_jobs", integer(-1, nonzero=True)),
    )
