"""How an evaluation becomes a result: labels expanded over ``by`` groups, the delta
method's SEs and κ beside the draws, and a Dataset with the session's provenance."""

from __future__ import annotations

import hashlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from .._errors import DeltaMethodWarning, warn_user
from .._validate import seed_attr
from ..engine.delta import delta_std_err, relative_curvature
from ..engine.evaluate import Evaluated
from ..engine.scenarios import format_value
from ..results.result import MarginsResult
from .checks import delta_warning_text

if TYPE_CHECKING:
    from .margins import Margins


def _versions() -> str:
    out = []
    for pkg in ("simmargins", "statsmodels", "numpy", "xarray", "numba"):
        try:
            out.append(f"{pkg}={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{pkg}=unknown")
    return " ".join(out)


def _fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the rows the fit used (values and column names), for provenance."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _at_text(values: dict[str, Any]) -> str:
    """The values ``at`` fixes, numpy scalars shown as plain numbers."""
    return repr({k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()})


def finish(
    session: Margins,
    ev: Evaluated,
    labels: list[str],
    coords: dict[str, list[Any]],
    group_coords: dict[str, list[Any]],
    quantity: str,
    *,
    comparison: str = "difference",
    population: str | None = None,
) -> MarginsResult:
    """The result of one request: labels expanded over ``by`` groups, delta SEs and κ
    beside the draws, and the delta-method warning when the two routes disagree.

    ``comparison`` (how two margins compare) and ``population`` (the rows averaged over,
    when not the fit's own) are recorded in the result's attributes."""
    n_grp = len(next(iter(group_coords.values()))) if group_coords else 1
    if group_coords:
        group_labels = [
            ", ".join(f"{c}={format_value(v[g])}" for c, v in group_coords.items())
            for g in range(n_grp)
        ]
        labels = [f"{lab} | {gl}" for lab in labels for gl in group_labels]
        coords = {c: [v for v in vals for _ in range(n_grp)] for c, vals in coords.items()}
        for c, vals in group_coords.items():
            coords[c] = [vals[g] for _ in range(len(labels) // n_grp) for g in range(n_grp)]
    se_delta = delta_std_err(ev.grad, session.coef_cov)
    kappa = relative_curvature(ev.grad, ev.hess_factor, session.cov_factor)
    draws, dfs = ev.draws, None
    if session.df_method != "asymptotic":
        dfs, draws = _small_sample(session, ev)
    ds = result_dataset(
        session, labels, coords, ev.estimate, se_delta, kappa, draws, ev.grad, quantity
    )
    if dfs is not None:
        ds["df"] = ("label", dfs)
        ds.attrs["df_method"] = session.df_method
    ds.attrs["comparison"] = comparison
    if population is not None:
        ds.attrs["population"] = population
    res = MarginsResult(ds)
    if not res.delta_trustworthy():
        warn_user(delta_warning_text(res, quantity), DeltaMethodWarning)
    return res

def _small_sample(session: Margins, ev: Evaluated) -> tuple[np.ndarray, np.ndarray]:
    """Per-quantity df and the draws scaled to the matching t.

    The quantities of a linear mixed model are linear in β, so their simulation draws
    θ̂ + G(β⁽ᵈ⁾ − β̂) are normal; each is rescaled by √(ν/χ²_ν) with one χ² uniform per
    draw shared by every quantity of every call (the same child of the session seed), so
    results of one session stay jointly distributed.
    """
    from ..adapters.lmm_df import small_sample_df, t_scaled_draws

    dfs = small_sample_df(session.adapter, ev.grad, session.df_method)[0]
    rng = np.random.default_rng(np.random.SeedSequence(_seed_entropy(session.seed), spawn_key=(7,)))
    centred = ev.draws - ev.estimate[None, :]
    return dfs, ev.estimate[None, :] + t_scaled_draws(centred, dfs, rng)


def _seed_entropy(seed: Any) -> int:
    """An integer from the session seed (0 for None: the t scaling then follows the draws'
    own randomness only through β, and stays the same across calls of the session)."""
    if isinstance(seed, (int, np.integer)):
        return int(seed)
    return 0


def result_dataset(
    session: Margins,
    labels: list[str],
    coords: dict[str, list[Any]],
    estimate: np.ndarray,
    se_delta: np.ndarray,
    kappa: np.ndarray,
    theta: np.ndarray,
    G: np.ndarray,
    quantity: str,
) -> xr.Dataset:
    """The result Dataset: estimates, delta SEs, κ, draws, gradient, V̂ and provenance."""
    ad = session.adapter
    label_coords: dict[str, Any] = {"label": labels}
    grid_cols: list[str] = []
    for c, vals in coords.items():
        label_coords[c] = (
            "label",
            np.asarray([v.item() if isinstance(v, np.generic) else v for v in vals]),
        )
        grid_cols.append(c)
    draw_coords: dict[str, Any] = {"draw": np.arange(theta.shape[0])}
    boot_attrs: dict[str, Any] = {}
    if session.method == "bootstrap":
        cd = session.coefficient_draws
        for c in ("replicate", "converged", "optimizer", "seed", "llf"):
            draw_coords[f"boot_{c}"] = ("draw", cd[c].to_numpy())
        assert session.bootstrap_record is not None
        boot_attrs = {
            "n_boot": session.n_boot,
            "n_failed": session.bootstrap_record.n_failed,
            # MixedLM and GEE resample their own groups unless cluster= names others
            "cluster": session.cluster
            or ("groups" if ad.model_class in ("MixedLM", "GEE") else "rows"),
            "warm_start": int(session.warm_start),
            "refit_route": session.bootstrap_record.route,
            "refit_route_reason": session.bootstrap_record.route_reason,
            "refit_parallel": session.bootstrap_record.parallel,
            "bootstrap": session.bootstrap_record.kind,
        }
        if session.bootstrap_record.kind == "parametric":
            boot_attrs["cluster"] = "none (responses simulated from the fitted model)"
    ds = xr.Dataset(
        {
            "estimate": ("label", estimate),
            "delta_std_err": ("label", se_delta),
            "kappa": ("label", kappa),
            "draws": (("draw", "label"), theta),
            "gradient": (("label", "coef"), G),
            "coef_cov": (("coef", "coef_col"), session.coef_cov),
        },
        coords={
            **label_coords,
            **draw_coords,
            "coef": list(ad.coef_names),
            "coef_col": list(ad.coef_names),
        },
        attrs={
            "method": session.method,
            "draws_kind": "bootstrap" if session.method == "bootstrap" else "simulation",
            "interval": session.interval,
            **boot_attrs,
            "level": session.level,
            "seed": seed_attr(session.seed),
            "n_sims": session.n_sims if session.method != "bootstrap" else 0,
            "scale": session.scale,
            "at": session.at if isinstance(session.at, str) else _at_text(session.at_values),
            "weights": session.weights_source,
            "quantity": quantity,
            "nobs": len(ad.data),
            "model_class": ad.model_class,
            "formula": ad.formula or "",
            "data_fingerprint": _fingerprint(ad.data),
            "link": ad.link.name,
            "versions": _versions(),
            "grid_columns": grid_cols,
            "random_effects": session.random_effects,
        },
    )
    if session.method == "bootstrap":
        _replicate_std_err(ds, session, G)
    if hasattr(ad, "residual_variance"):  # random_effects="new": σ̂², not in the SEs
        ds.attrs["residual_variance"] = float(ad.residual_variance)
    return ds


def _replicate_std_err(ds: xr.Dataset, session: Margins, G: np.ndarray) -> None:
    """Each replicate's SE of each quantity, √(g·V̂*·g), and the original fit's by the same
    estimator, for the studentized interval (when the bootstrap recorded covariances; g is
    the delta gradient at β̂, exact for quantities linear in β)."""
    record = session.bootstrap_record
    cov = None if record is None else record.cov
    if cov is None or record is None or record.cov_hat is None:
        return
    se_b = np.sqrt(np.clip(np.einsum("lk,bkm,lm->bl", G, cov, G), 0.0, None))
    se_hat = np.sqrt(np.clip(np.einsum("lk,km,lm->l", G, record.cov_hat, G), 0.0, None))
    ds["boot_std_err"] = (("draw", "label"), se_b)
    ds["boot_std_err_hat"] = ("label", se_hat)
