"""What the command line runs for one analysis: read the data, fit the model, ask the session.

Each step maps a checked spec (``_spec``) onto the public API: statsmodels for the fit,
:class:`~simmargins.Margins` and its verbs for the quantities. Nothing here prints or
writes files; ``_cli`` orchestrates and ``_report`` presents.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
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


def load_data(spec: DataSpec) -> pd.DataFrame:
    """Read the data file; columns named in ``categorical`` become strings."""
    path = spec.path
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise SpecError("data.path", f"file {os.path.abspath(path)!r} {what}")
    try:
        if spec.format == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if spec.format == "tsv" else ",")
    except ImportError as exc:
        raise SpecError(
            "data.path", f"reading {path.name!r} needs pyarrow (pip install pyarrow): {exc}"
        ) from None
    except Exception as exc:  # the readers raise many types for unreadable files
        raise SpecError(
            "data.path",
            f"could not read {path.name!r} as {spec.format.upper()} ({type(exc).__name__}: {exc})",
        ) from None
    if frame.empty:
        raise SpecError("data.path", f"{path.name!r} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    for i, col in enumerate(spec.categorical):
        if col not in frame.columns:
            raise SpecError(f"data.categorical[{i}]", f"{col!r} is not a column of the data")
        frame[col] = frame[col].map(str, na_action="ignore").astype(object)
    return frame


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
    make = {
        "logit": smf.logit,
        "probit": smf.probit,
        "poisson": smf.poisson,
        "negativebinomial": smf.negativebinomial,
    }[kind]
    return make(model.formula, frame, eval_env=env, **extra).fit(disp=0, **opts)


def converged(fit: Any) -> bool:
    """Whether the optimiser reported convergence (True when the model does not say)."""
    flag = getattr(fit, "converged", None)
    if flag is None:
        flag = (getattr(fit, "mle_retvals", None) or {}).get("converged", True)
    return bool(flag)


def make_session(fit: Any, inference: InferenceSpec, progress: bool | None) -> Margins:
    """The session for an analysis; a bad setting for this model is the spec's fault."""
    try:
        return Margins(
            fit,
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
        )
    except SimMarginsError as exc:
        raise SpecError("inference", str(exc)) from None


def draw_coefficients(m: Margins) -> None:
    """Make the session's draws now (the bootstrap's refits), so failures are placed."""
    try:
        m.coefficient_draws  # noqa: B018  (a lazy property: touching it draws)
    except MarginsTypeError as exc:
        raise SpecError("inference.method", str(exc)) from None
    except Exception as exc:
        raise RunFailure(f"drawing the coefficients failed: {type(exc).__name__}: {exc}") from exc


def compute_quantity(m: Margins, q: QuantitySpec) -> MarginsResult:
    """Ask the session for one quantity; errors that name an argument are the spec's."""
    try:
        res = _ask(m, q)
        return res.adjust(q.adjust) if q.adjust != "none" else res
    except SimMarginsError as exc:
        raise SpecError(f"{q.key} ({q.name})", str(exc)) from None
    except Exception as exc:
        raise RunFailure(f"{q.key} ({q.name}): {type(exc).__name__}: {exc}") from exc


def _ask(m: Margins, q: QuantitySpec) -> MarginsResult:
    by = list(q.by) or None
    if q.kind == "predict":
        return m.predict(atexog=q.atexog, by=by)
    if q.kind == "dydx":
        return m.dydx(list(q.variables), by=by, slope=q.slope)
    if q.type == "custom":
        scen = [dict(s) for s in q.scenarios]
        W = np.asarray(q.weights, dtype=float)
        if q.labels:
            return m.contrasts(
                scenarios=scen,
                contrasts=pd.DataFrame(W, index=list(q.labels)),
                by=by,
            )
        return m.contrasts(scenarios=scen, contrasts=W, by=by)
    assert q.var is not None
    if q.type == "reference":
        scen_w = reference(q.var, list(q.levels), ref_level=q.ref_level)
    else:
        scen_w = _CONTRASTS[q.type](q.var, list(q.levels))
    return m.contrasts(scenarios=scen_w[0], contrasts=scen_w[1], by=by)


def describe_quantity(q: QuantitySpec) -> str:
    """One line saying what the quantity is, for reports."""
    by = f", by {' × '.join(q.by)}" if q.by else ""
    if q.kind == "predict":
        grid = (
            " over " + ", ".join(f"{k} = {v}" for k, v in q.atexog.items())
            if q.atexog
            else " (the average prediction)"
        )
        return f"Predictive margins{grid}{by}"
    if q.kind == "dydx":
        what = {"dydx": "Average marginal effect", "eyex": "Average elasticity"}.get(
            q.slope, f"Average {q.slope} semi-elasticity"
        )
        return f"{what} of {', '.join(q.variables)}{by}"
    if q.type == "custom":
        return f"Contrasts between {len(q.scenarios)} scenarios{by}"
    ref = f" (reference {q.ref_level!r})" if q.ref_level is not None else ""
    kind = q.type.replace("_", " ").capitalize()
    return f"{kind} contrasts of {q.var} over {list(q.levels)}{ref}{by}"
