"""What the command line runs for one analysis: read the data, fit the model, ask the session.

Each step maps a checked spec (``_spec``) onto the public API: statsmodels for the fit,
:class:`~simmargins.Margins` and its verbs for the quantities. Nothing here prints or
writes files; ``_cli`` orchestrates and ``_report`` presents.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from .. import (
    Margins,
    MarginsTypeError,
    SimMarginsError,
    all_pairwise,
    consecutive,
    pairwise,
    reference,
)
from ..results.result import MarginsResult
from .spec import DataSpec, InferenceSpec, ModelSpec, QuantitySpec, SpecError

_FAMILIES = {
    "binomial": "Binomial",
    "gamma": "Gamma",
    "gaussian": "Gaussian",
    "inverse_gaussian": "InverseGaussian",
    "negativebinomial": "NegativeBinomial",
    "poisson": "Poisson",
    "tweedie": "Tweedie",
}
_LINKS = {
    "cauchy": "Cauchy",
    "cloglog": "CLogLog",
    "identity": "Identity",
    "inverse_power": "InversePower",
    "inverse_squared": "InverseSquared",
    "log": "Log",
    "logit": "Logit",
    "loglog": "LogLog",
    "probit": "Probit",
    "sqrt": "Sqrt",
}
_CONTRASTS = {
    "pairwise": pairwise,
    "consecutive": consecutive,
    "all_pairwise": all_pairwise,
}
_QUIET = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class RunFailure(Exception):
    """The spec was fine but running it failed (a fit that raises, a bootstrap that dies)."""


@contextmanager
def collect_warnings(sink: list[str], where: str) -> Iterator[None]:
    """Record the warnings raised inside (once each) as ``"where: Category: message"``.

    Deprecation chatter from third-party code is dropped: it is not for the user of the
    command line.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, _QUIET):
            continue
        text = f"{where}: {w.category.__name__}: {' '.join(str(w.message).split())}"
        if text not in sink:
            sink.append(text)


def load_data(spec: DataSpec, key: str = "data", inherit: Sequence[str] = ()) -> pd.DataFrame:
    """Read the data file; columns named in ``categorical`` become strings, and so do the
    columns of ``inherit`` the file has (a newdata frame: the main data's categorical)."""
    path = spec.path
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise SpecError(f"{key}.path", f"file {os.path.abspath(path)!r} {what}")
    try:
        if spec.format == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if spec.format == "tsv" else ",")
    except ImportError as exc:
        raise SpecError(
            f"{key}.path", f"reading {path.name!r} needs pyarrow (pip install pyarrow): {exc}"
        ) from None
    except Exception as exc:  # the readers raise many types for unreadable files
        raise SpecError(
            f"{key}.path",
            f"could not read {path.name!r} as {spec.format.upper()} ({type(exc).__name__}: {exc})",
        ) from None
    if frame.empty:
        raise SpecError(f"{key}.path", f"{path.name!r} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    for i, col in enumerate(spec.categorical):
        if col not in frame.columns:
            raise SpecError(f"{key}.categorical[{i}]", f"{col!r} is not a column of the data")
    for col in {*spec.categorical, *(c for c in inherit if c in frame.columns)}:
        frame[col] = frame[col].map(str, na_action="ignore").astype(object)
    return frame


def load_newdata(q: QuantitySpec, data: DataSpec) -> pd.DataFrame | None:
    """A quantity's ``newdata`` frame (None without one), read like the main data."""
    if q.newdata is None:
        return None
    return load_data(q.newdata.data, f"{q.key}.newdata", inherit=data.categorical)


def _eval_env() -> Any:
    """Names a formula may use besides columns and patsy's functions: ``np``."""
    try:
        from statsmodels.formula._manager import FormulaManager  # noqa: F401  (0.15+)
    except ImportError:  # statsmodels 0.14 hands eval_env straight to patsy
        import patsy

        return patsy.EvalEnvironment([{"np": np, "numpy": np}])
    return {"np": np, "numpy": np}


def fit_model(model: ModelSpec, frame: pd.DataFrame) -> Any:
    """Fit the model the spec describes with statsmodels' formula interface."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    env = _eval_env()
    opts = dict(model.fit)

    def column(name: str | None) -> np.ndarray | None:
        return None if name is None else frame[name].to_numpy(dtype=np.float64)

    kind = model.kind
    if kind == "mixedlm":
        mod = smf.mixedlm(  # MixedLM alone refuses missing values unless told to drop them
            model.formula,
            frame,
            groups=model.groups,
            re_formula=model.re_formula,
            missing="drop",
            eval_env=env,
        )
        return mod.fit(**opts)
    if kind == "ols":
        return smf.ols(model.formula, frame, eval_env=env).fit(**opts)
    if kind == "wls":
        return smf.wls(model.formula, frame, weights=column(model.weights), eval_env=env).fit(
            **opts
        )
    extra: dict[str, Any] = {
        k: column(getattr(model, k))
        for k in ("offset", "exposure", "freq_weights", "var_weights")
        if getattr(model, k) is not None
    }
    if kind == "glm":
        links = sm.families.links
        family_cls = getattr(sm.families, _FAMILIES[model.family])
        family = (
            family_cls(link=getattr(links, _LINKS[model.link])())
            if model.link is not None
            else family_cls()
        )
        return smf.glm(model.formula, frame, family=family, eval_env=env, **extra).fit(**opts)
    if kind == "ordered":
        from statsmodels.miscmodels.ordinal_model import OrderedModel

        ordered = OrderedModel.from_formula(model.formula, frame, distr=model.distr, eval_env=env)
        return ordered.fit(disp=0, **{"method": "bfgs", **opts})
    make = {
        "mnlogit": smf.mnlogit,
        "logit": smf.logit,
        "probit": smf.probit,
        "poisson": smf.poisson,
        "negativebinomial": smf.negativebinomial,
    }[kind]
    return make(model.formula, frame, eval_env=env, **extra).fit(disp=0, **opts)


def fit_rows(fit: Any, frame: pd.DataFrame) -> pd.DataFrame | None:
    """The loaded rows the fit used, every column (None: the fit's own frame has them all).

    MixedLM's formula route with ``missing="drop"`` keeps only the formula's columns in
    ``model.data.frame``, which would hide the group column from ``random_effects="blup"``
    and any ``by=``/``at=`` column outside the formula; the index of the rows it kept is the
    loaded frame's.
    """
    kept = getattr(getattr(fit.model, "data", None), "frame", None)
    if kept is None or set(frame.columns) <= set(kept.columns):
        return None
    return frame.loc[kept.index]


def make_session(
    fit: Any, inference: InferenceSpec, progress: bool | None, frame: pd.DataFrame | None = None
) -> Margins:
    """The session for an analysis; a bad setting for this model is the spec's fault.

    ``frame`` is the loaded data the model was fitted on (see :func:`fit_rows`)."""
    try:
        return Margins(
            fit,
            training_data=None if frame is None else fit_rows(fit, frame),
            scale=inference.scale,
            at=inference.at,
            method=inference.method,
            n_sims=inference.n_sims,
            level=inference.level,
            seed=inference.seed,
            weights=inference.weights,
            n_boot=inference.n_boot,
            n_jobs=inference.n_jobs,
            cluster=inference.cluster,
            interval=inference.interval,
            progress=progress,
            df=inference.df,
            bootstrap=inference.bootstrap,
            random_effects=inference.random_effects,
        )
    except SimMarginsError as exc:
        keys = {k: k for k in ("at", "df", "weights", "cluster", "scale", "interval",
                               "bootstrap", "random_effects")}  # fmt: skip
        raise _placed(exc, "inference", keys) from None


def draw_coefficients(m: Margins) -> None:
    """Make the session's draws now (the bootstrap's refits), so failures are placed."""
    try:
        m.coefficient_draws  # noqa: B018  (a lazy property: touching it draws)
    except MarginsTypeError as exc:
        raise SpecError("inference.method", str(exc)) from None
    except Exception as exc:
        raise RunFailure(f"drawing the coefficients failed: {type(exc).__name__}: {exc}") from exc


def _placed(
    exc: SimMarginsError, table: str, keys: dict[str, str], where: str | None = None
) -> SpecError:
    """The library's ``"argument: what is wrong"`` as the spec error of the key behind it
    (``table.key``), else of ``where`` (default: the table)."""
    text = str(exc)
    arg, sep, rest = text.partition(": ")
    if sep and arg in keys:
        return SpecError(f"{table}.{keys[arg]}", rest)
    return SpecError(where or table, text)


def compute_quantity(
    m: Margins, q: QuantitySpec, newdata: pd.DataFrame | None = None
) -> MarginsResult:
    """Ask the session for one quantity (averaged over ``newdata`` if given); errors that
    name an argument are the spec's."""
    try:
        res = _ask(m, q, newdata)
        return res.adjust(q.adjust) if q.adjust != "none" else res
    except SimMarginsError as exc:
        keys = {k: k for k in ("atexog", "comparison", "shift", "scale", "by", "newdata")}
        keys["weights"] = "newdata.weights" if q.newdata is not None else "weights"
        raise _placed(exc, q.key, keys, f"{q.key} ({q.name})") from None
    except Exception as exc:
        raise RunFailure(f"{q.key} ({q.name}): {type(exc).__name__}: {exc}") from exc


def _ask(m: Margins, q: QuantitySpec, newdata: pd.DataFrame | None) -> MarginsResult:
    by = list(q.by) or None
    pop: dict[str, Any] = {}
    if newdata is not None and q.newdata is not None:
        pop = {"newdata": newdata, "weights": q.newdata.weights}
    if q.kind == "predict":
        return m.predict(atexog=q.atexog, by=by, **pop)
    if q.kind == "dydx":
        return m.dydx(
            list(q.variables),
            by=by,
            slope=q.slope,
            atexog=q.atexog,
            comparison=q.comparison,
            **pop,
        )
    compare: dict[str, Any] = {"by": by, "comparison": q.comparison, **pop}
    if q.type == "shift":
        return m.contrasts(shift=q.shift, scale=q.scale, **compare)
    if q.type == "custom":
        scen = [dict(s) for s in q.scenarios]
        W = np.asarray(q.weights, dtype=float)
        if q.labels:
            return m.contrasts(scen, pd.DataFrame(W, index=list(q.labels)), **compare)
        return m.contrasts(scen, W, **compare)
    assert q.var is not None
    if q.type == "reference":
        scen_w = reference(q.var, list(q.levels), ref_level=q.ref_level)
    else:
        scen_w = _CONTRASTS[q.type](q.var, list(q.levels))
    return m.contrasts(scen_w[0], scen_w[1], **compare)


def describe_quantity(q: QuantitySpec) -> str:
    """One line saying what the quantity is, for reports."""
    by = f", by {' × '.join(q.by)}" if q.by else ""
    if q.newdata is not None:
        w = f", weighted by {q.newdata.weights}" if q.newdata.weights else ""
        by += f", averaged over {q.newdata.data.path.name}{w}"
    how = f" ({q.comparison})" if q.comparison != "difference" else ""
    if q.kind == "predict":
        return f"Predictive margins{_over(q.atexog) or ' (the average prediction)'}{by}"
    if q.kind == "dydx":
        what = {"dydx": "Average marginal effect", "eyex": "Average elasticity"}.get(
            q.slope, f"Average {q.slope} semi-elasticity"
        )
        return f"{what}{how} of {', '.join(q.variables)}{_over(q.atexog, ' at ')}{by}"
    if q.type == "custom":
        return f"Contrasts{how} between {len(q.scenarios)} scenarios{by}"
    if q.type == "shift":
        moves = [f"{k} + {v}" for k, v in (q.shift or {}).items()]
        moves += [f"{k} × {v}" for k, v in (q.scale or {}).items()]
        return f"Contrasts{how} of the data with {', '.join(moves)} against the data{by}"
    ref = f" (reference {q.ref_level!r})" if q.ref_level is not None else ""
    kind = q.type.replace("_", " ").capitalize()
    return f"{kind} contrasts{how} of {q.var} over {list(q.levels)}{ref}{by}"


def _over(grid: dict[str, Any] | None, word: str = " over ") -> str:
    return word + ", ".join(f"{k} = {v}" for k, v in grid.items()) if grid else ""
