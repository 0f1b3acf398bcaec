"""The diagnostics that say whether the delta method can be trusted beside the draws:
the SE disagreement (against a t's SD when the result has small-sample df), the trust
rule (κ and disagreement against Monte-Carlo noise), and the Monte-Carlo error of the
interval endpoints."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

from .._errors import MarginsValueError
from .criteria import TRUST_KAPPA, TRUST_NOISE_MULTIPLE
from .inference import _quantile_mcse


def no_draws(what: str) -> MarginsValueError:
    """The error for a use of the draws on a result that has none (delta only)."""
    return MarginsValueError(
        f"{what} needs the draws, and this result has none: it was computed with "
        "Margins(method='delta', n_sims=0), the delta method alone. Use its delta route "
        "(method='delta'), or a session with n_sims >= 2 for draws"
    )


def disagreement(ds: xr.Dataset, se_delta: np.ndarray, se_draws: np.ndarray) -> np.ndarray:
    """|SE_draws − SE_delta| / SE_delta, never divided by the estimate.

    With small-sample df the draws are t with ν df, whose SD is the scale times
    √(ν/(ν−2)); that is what the draws are compared with.
    """
    d = se_delta
    if "df" in ds:
        nu = ds["df"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(np.isfinite(nu) & (nu > 2), d * np.sqrt(nu / (nu - 2)), d)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, np.abs(se_draws - d) / d, np.nan)


def untrustworthy(
    ds: xr.Dataset, kappa: np.ndarray, dis: np.ndarray, noise: float
) -> np.ndarray:
    """Per label: κ above 0.3, or an SE disagreement beyond 3× Monte-Carlo noise.

    With simulation draws a quantity that is linear in β (κ exactly zero) has an exact
    delta SE, so its disagreement is Monte-Carlo noise by construction and is not held
    against the delta method; bootstrap draws are compared whatever κ is.
    """
    beyond = np.nan_to_num(dis) > TRUST_NOISE_MULTIPLE * noise
    if ds.attrs.get("draws_kind", "simulation") == "simulation":
        beyond &= kappa != 0  # NaN (κ not available) counts as curved
    return np.asarray((kappa > TRUST_KAPPA) | beyond)


def endpoint_mcse(
    interval: str, draws: np.ndarray, se_draws: np.ndarray, level: float
) -> np.ndarray:
    """Monte-Carlo standard error of each interval endpoint of the draws, shape (label, 2).

    Distribution-free for quantile intervals, from order statistics: the p-quantile of S
    draws has rank S·p ± √(S·p(1−p)) at one binomial SD, so half the spread between those
    order statistics estimates its SE. The ``normal`` kind's endpoints est ± z·SD move
    with the SD, whose relative MC error is 1/√(2(S−1)).
    """
    if interval == "normal":
        z = float(special.ndtri(0.5 + level / 2.0))
        err = z * se_draws / np.sqrt(2.0 * (draws.shape[0] - 1))
        return np.column_stack([err, err])
    return _quantile_mcse(draws, level)


def studentized_draws(ds: xr.Dataset, estimate: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """θ̂ − SE·t*, t* = (θ* − θ̂)/SE*: draws whose percentile interval is the studentized
    (bootstrap-t) one, [θ̂ − SE·t*₁₋ₐ, θ̂ − SE·t*ₐ].

    SE* is each replicate's own SE (``boot_std_err``, draw × label) and SE the original
    fit's by the same estimator (``boot_std_err_hat``); both are recorded by the parametric
    bootstrap. A result without them raises, naming ``interval``.
    """
    if "boot_std_err" not in ds or "boot_std_err_hat" not in ds:
        raise MarginsValueError(
            "interval: 'studentized' needs each replicate's standard error, which only "
            "Margins(method='bootstrap', bootstrap='parametric') records; use 'percentile', "
            "'basic' or 'normal' for these draws"
        )
    se_b = ds["boot_std_err"].transpose("draw", "label").to_numpy()
    se = ds["boot_std_err_hat"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (draws - estimate[None, :]) / se_b
    return np.asarray(estimate[None, :] - se[None, :] * t)
