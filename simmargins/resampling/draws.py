"""Coefficient draws β⁽ᵈ⁾ = β̂ + L zᵈ from N(β̂, V̂), labelled with xarray."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from .._errors import CovarianceWarning


def cov_factor(cov: np.ndarray, *, warn: bool = True) -> np.ndarray:
    """A factor L with L Lᵀ = V̂: Cholesky, or the eigen square root when V̂ is not PD.

    The eigen route clips negative eigenvalues (rounding noise or a rank-deficient
    covariance) to zero, so draws stay on the subspace where V̂ has variance.
    """
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(cov)
        if warn:
            warnings.warn(
                "the coefficient covariance is not positive definite (smallest eigenvalue "
                f"{vals.min():.3g}); drawing through its eigen-decomposition with negative "
                "eigenvalues set to zero",
                CovarianceWarning,
                stacklevel=3,
            )
        return vecs * np.sqrt(np.clip(vals, 0.0, None))


def simulate_coefficients(
    params: np.ndarray,
    factor: np.ndarray,
    n_sims: int,
    rng: np.random.Generator,
    coef_names: Sequence[str],
) -> xr.DataArray:
    """``n_sims`` draws of the coefficients as a ``(draw, coef)`` DataArray."""
    z = rng.standard_normal((n_sims, params.shape[0]))
    draws = params[None, :] + z @ factor.T
    return xr.DataArray(
        draws,
        dims=("draw", "coef"),
        coords={"draw": np.arange(n_sims), "coef": list(coef_names)},
        name="coefficients",
    )
