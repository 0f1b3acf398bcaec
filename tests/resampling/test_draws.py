"""Coefficient draws: Cholesky when V̂ is PD, eigen square root (with a warning) when not."""

from __future__ import annotations

import numpy as np
import pytest

from simmargins import CovarianceWarning
from simmargins.resampling.draws import cov_factor, simulate_coefficients


def test_cholesky_factor_reproduces_cov():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    V = A @ A.T + 0.1 * np.eye(5)
    L = cov_factor(V)
    np.testing.assert_allclose(L @ L.T, V, rtol=1e-12)
    assert np.allclose(L, np.tril(L))


def test_non_pd_covariance_warns_and_keeps_its_psd_part():
    v = np.array([1.0, 2.0, -1e-9])
    Q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    V = (Q * v) @ Q.T
    with pytest.warns(CovarianceWarning, match="not positive definite"):
        L = cov_factor(V)
    np.testing.assert_allclose(L @ L.T, (Q * np.clip(v, 0, None)) @ Q.T, atol=1e-12)


def test_draws_are_labelled_and_seeded():
    L = np.diag([1.0, 2.0])
    a = simulate_coefficients(np.zeros(2), L, 100, np.random.default_rng(3), ["a", "b"])
    b = simulate_coefficients(np.zeros(2), L, 100, np.random.default_rng(3), ["a", "b"])
    assert a.dims == ("draw", "coef") and list(a.coef.values) == ["a", "b"]
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float64
