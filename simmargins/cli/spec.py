"""The ``simmargins run`` spec: its schema as plain dataclasses, and :class:`SpecError`.

A spec is checked in two passes so that a bad one fails before anything is fitted:
``_spec_read`` checks the structure (keys, types, choices, formulas that do not parse)
without touching the data; ``_spec_data`` then checks every column an analysis names
against the data it will run on. Both raise :class:`SpecError`, whose text is one line
naming the analysis and the key. The schema is documented in ``docs/cli.md``.
"""

from __future__ import annotations

import ast
import builtins
import difflib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_KINDS = tuple(
    "mixedlm ols wls glm logit probit poisson negativebinomial mnlogit ordered".split()
)
# OrderedModel's latent distributions the spec offers (the margins read them by value)
ORDERED_DISTRS = ("probit", "logit")
FAMILIES = tuple(
    "binomial gamma gaussian inverse_gaussian negativebinomial poisson tweedie".split()
)
LINKS = tuple(
    "cauchy cloglog identity inverse_power inverse_squared log logit loglog probit sqrt".split()
)
COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")
QUANTITY_KINDS = ("predict", "dydx", "contrasts")
CONTRAST_TYPES = ("pairwise", "reference", "consecutive", "all_pairwise", "custom", "shift")
COMPARISONS = ("difference", "ratio", "lnratio", "lnor", "lift")
AT_KINDS = ("overall", "mean", "median", "balanced")
AT_SUMMARIES = ("mean", "median", "mode")  # in an ``at`` table: that summary of the column
DF_METHODS = ("asymptotic", "satterthwaite", "kenward-roger")
BOOTSTRAP_KINDS = ("cluster", "parametric")
RANDOM_EFFECTS_KINDS = ("zero", "blup", "new")
SLOPES = ("dydx", "eyex", "eydx", "dyex")
METHODS = ("simulation", "delta", "bootstrap")
SCALES = ("linear", "response")
DATA_FORMATS = ("csv", "tsv", "parquet")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# names a formula may use besides data columns: numpy and patsy's built-in functions
_PATSY_BUILTINS = tuple(
    "I Q C ContrastMatrix Treatment Poly Sum Helmert Diff".split()
    + "center standardize scale bs cr cc te".split()
)
FORMULA_NAMESPACE = frozenset({"np", "numpy", *_PATSY_BUILTINS, *dir(builtins)})


class SpecError(Exception):
    """A spec that cannot run, as one line: ``analysis 'a' → key.path: what is wrong``."""

    def __init__(self, key: str, message: str, context: str | None = None) -> None:
        super().__init__(key, message, context)
        self.key, self.message, self.context = key, message, context

    def within(self, context: str) -> SpecError:
        """The same error placed in an analysis (kept if it already has a place)."""
        return self if self.context else SpecError(self.key, self.message, context)

    def __str__(self) -> str:
        where = " → ".join(p for p in (self.context, self.key) if p)
        text = f"{where}: {self.message}" if where else self.message
        return " ".join(text.split())  # one line, whatever the message held


# -- the parsed spec ------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    path: Path
    format: str
    categorical: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewDataSpec:
    """A quantity's ``newdata``: a population frame to average over, and its weights."""

    data: DataSpec
    weights: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    formula: str
    groups: str | None = None
    re_formula: str | None = None
    family: str = "gaussian"
    link: str | None = None
    offset: str | None = None
    exposure: str | None = None
    weights: str | None = None
    freq_weights: str | None = None
    var_weights: str | None = None
    distr: str = "probit"  # kind = "ordered" only
    fit: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, str]:
        """The data columns named outside the formula, by key."""
        keys = ("groups", "offset", "exposure", "weights", "freq_weights", "var_weights")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class InferenceSpec:
    method: str = "simulation"
    n_sims: int | None = None  # the library's default: 1000, or none with method="delta"
    n_boot: int = 200
    level: float = 0.95
    seed: int | None = 0
    scale: str = "response"
    at: str | dict[str, Any] = "overall"
    weights: str | None = None
    cluster: str | None = None
    interval: str = "percentile"
    n_jobs: int | None = None
    df: str = "asymptotic"
    bootstrap: str = "cluster"  # or "parametric" (mixedlm, method = "bootstrap")
    random_effects: str = "zero"  # mixedlm: "zero", "blup" or "new"


@dataclass(frozen=True)
class QuantitySpec:
    kind: str
    name: str
    index: int
    by: tuple[str, ...] = ()
    adjust: str = "none"
    atexog: dict[str, Any] | None = None
    variables: tuple[str, ...] = ()
    slope: str = "dydx"
    type: str = ""
    var: str | None = None
    levels: tuple[Any, ...] = ()
    ref_level: Any = None
    scenarios: tuple[dict[str, Any], ...] = ()
    weights: tuple[tuple[float, ...], ...] = ()
    labels: tuple[str, ...] = ()
    comparison: str = "difference"
    shift: dict[str, Any] | None = None
    scale: dict[str, Any] | None = None
    newdata: NewDataSpec | None = None

    @property
    def key(self) -> str:
        return f"quantity[{self.index}]"


@dataclass(frozen=True)
class AnalysisSpec:
    name: str
    data: DataSpec
    model: ModelSpec
    inference: InferenceSpec
    quantities: tuple[QuantitySpec, ...]

    @property
    def context(self) -> str:
        return f"analysis {self.name!r}"


@dataclass(frozen=True)
class OutputSpec:
    plots: bool = True
    dpi: int = 100


@dataclass(frozen=True)
class RunSpec:
    path: Path
    text: str
    analyses: tuple[AnalysisSpec, ...]
    output: OutputSpec = OutputSpec()


# -- shared helpers ----------------------------------------------------------------------
def describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def listing(items: Collection[Any]) -> str:
    return ", ".join(repr(i) for i in items)


def did_you_mean(name: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- formulas -----------------------------------------------------------------------------------
def formula_names(formula: str, key: str, one_sided: bool = False) -> tuple[set[str], set[str]]:
    """Parse ``formula`` with patsy: the names it uses and the names inside ``C(...)``.

    ``Q("a col")`` contributes the quoted column. Raises :class:`SpecError` when the
    formula does not parse, lacks a response (two-sided) or has one (``one_sided``).
    """
    import patsy

    try:
        desc = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as exc:
        where = f" at character {exc.origin.start}" if exc.origin is not None else ""
        raise SpecError(key, f"{formula!r} does not parse: {exc.message}{where}") from None
    if one_sided and desc.lhs_termlist:
        raise SpecError(key, f"{formula!r} must be one-sided, like '~ x' (no response)")
    if not one_sided and not desc.lhs_termlist:
        raise SpecError(key, f"{formula!r} has no response; write it as 'y ~ x1 + x2'")
    names: set[str] = set()
    categorical: set[str] = set()
    for term in [*desc.lhs_termlist, *desc.rhs_termlist]:
        for factor in term.factors:
            code = str(getattr(factor, "code", factor))
            try:
                tree = ast.parse(code.strip(), mode="eval")
            except SyntaxError:
                raise SpecError(key, f"{formula!r} does not parse: bad term {code!r}") from None
            for node in ast.walk(tree):
                if isinstance(node, ast.Name):
                    names.add(node.id)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    arg = node.args[0] if node.args else None
                    if node.func.id == "Q" and isinstance(arg, ast.Constant):
                        names.add(str(arg.value))
                    if node.func.id == "C" and isinstance(arg, ast.Name):
                        categorical.add(arg.id)
    return names, categorical


def data_format(path: Path, key: str) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for s in reversed(suffixes):  # data.csv.gz → csv (pandas reads the compression)
        if s in _SUFFIX_FORMATS:
            return _SUFFIX_FORMATS[s]
    raise SpecError(
        key,
        f"cannot tell the format of {path.name!r} from its suffix; set data.format to one "
        f"of {listing(DATA_FORMATS)}",
    )
