"""Integrated (population-averaged) margins: the numba kernel against its numpy twin, the
quadrature against closed forms (probit with a normal random intercept, the log link) and
the stage function's value, gradient and Hessian against independent routes."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest
from scipy import special

from simmargins.engine.design import CounterfactualData, Setting
from simmargins.engine.evaluate_integrated import IntegrationSpec, evaluate_integrated
from simmargins.engine.formula import Variable
from simmargins.engine.integrated import integrated_draws, integrated_draws_numpy
from simmargins.engine.links import (
    CLOGLOG_LINK,
    IDENTITY_LINK,
    LOG_LINK,
    LOGIT_LINK,
    PROBIT_LINK,
    power_link,
)
from simmargins.engine.quadrature import gauss_hermite, row_expectations, sobol_normal


def _problem(n=517, k=4, s=21, c=2, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    Z2 = np.column_stack([np.ones(n), rng.uniform(0, 2, size=(n, c - 1))])
    off = 0.1 * rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    B = 0.4 * rng.normal(size=(s, k))
    sig2 = np.exp(2 * (0.3 * rng.normal(size=(s, c)) - 0.2))
    return X, Z2, off, w, B, sig2


@pytest.mark.parametrize("link", [LOGIT_LINK, PROBIT_LINK, LOG_LINK, CLOGLOG_LINK])
def test_kernel_matches_numpy_twin(link):
    X, Z2, off, w, B, sig2 = _problem()
    t, om = gauss_hermite(12)
    got = integrated_draws(X, Z2, off, w, B, sig2, t, om, link.code, link.power)
    want = integrated_draws_numpy(X, Z2, off, w, B, sig2, t, om, link.h)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_kernel_lognormal_and_power_links():
    X, Z2, off, w, B, sig2 = _problem()
    t, om = gauss_hermite(8)
    got = integrated_draws(X, Z2, off, w, B, sig2, t, om, LOG_LINK.code, lognormal=True)
    want = integrated_draws_numpy(X, Z2, off, w, B, sig2, t, om, np.exp, lognormal=True)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    sq = power_link(0.5)  # h(η) = η², defined everywhere
    got = integrated_draws(X, Z2, off, w, B, sig2, t, om, sq.code, sq.power)
    want = integrated_draws_numpy(X, Z2, off, w, B, sig2, t, om, sq.h)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_kernel_bits_do_not_depend_on_threads():
    X, Z2, off, w, B, sig2 = _problem(n=20_000, s=9)
    t, om = gauss_hermite(10)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = integrated_draws(X, Z2, off, w, B, sig2, t, om, LOGIT_LINK.code)
        numba.set_num_threads(max(before, 1))
        many = integrated_draws(X, Z2, off, w, B, sig2, t, om, LOGIT_LINK.code)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, many)


def test_probit_quadrature_matches_closed_form():
    """E[Φ(η + sε)] = Φ(η/√(1+s²)): a normal random intercept under a probit link."""
    X, Z2, off, w, B, sig2 = _problem(c=1)
    var = sig2 @ Z2.T
    eta = B @ X.T + off
    closed = (special.ndtr(eta / np.sqrt(1 + var)) @ w) / w.sum()
    t, om = gauss_hermite(40)
    got = integrated_draws(X, Z2, off, w, B, sig2, t, om, PROBIT_LINK.code)
    np.testing.assert_allclose(got, closed, rtol=0, atol=1e-12)


def test_log_link_quadrature_matches_closed_form():
    """E[exp(η + sε)] = exp(η + s²/2): Gauss–Hermite (no closed form inside) agrees."""
    X, Z2, off, w, B, sig2 = _problem()
    t, om = gauss_hermite(30)
    quad = integrated_draws(X, Z2, off, w, B, sig2, t, om, LOG_LINK.code, lognormal=False)
    closed = (np.exp(B @ X.T + off + 0.5 * sig2 @ Z2.T) @ w) / w.sum()
    np.testing.assert_allclose(quad, closed, rtol=1e-12)


def test_quasi_monte_carlo_rule_agrees_with_gauss_hermite():
    eta = np.linspace(-3, 3, 50)
    var = np.full(50, 1.7)
    (gh,) = row_expectations(eta, var, LOGIT_LINK, *gauss_hermite(64), derivatives=False)
    t, om = sobol_normal(1 << 14)
    (qmc,) = row_expectations(eta, var, LOGIT_LINK, t, om, derivatives=False)
    # scrambled Sobol with 2^14 points: error of order 1/n, far below this bound
    assert np.max(np.abs(qmc - gh)) < 1e-4


def test_row_expectation_derivatives_match_probit_closed_form():
    """a, b, c, d, e = derivatives of g(η, s) = Φ(η/√(1+s²)), by finite differences."""
    eta, s = np.array([-1.2, 0.3, 2.0]), np.array([0.4, 1.1, 2.5])
    rule = gauss_hermite(100)
    g, a, b, c, d, e = row_expectations(eta, s**2, PROBIT_LINK, *rule)

    def closed(x, y):
        return special.ndtr(x / np.sqrt(1 + y**2))

    r = np.sqrt(1 + s**2)
    phi = np.exp(-0.5 * (eta / r) ** 2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(g, closed(eta, s), atol=1e-12)
    np.testing.assert_allclose(a, phi / r, atol=1e-10)  # ∂g/∂η
    np.testing.assert_allclose(b, -phi * eta * s / r**3, atol=1e-10)  # ∂g/∂s
    h = 1e-4
    dd = (closed(eta + h, s) - 2 * closed(eta, s) + closed(eta - h, s)) / h**2
    np.testing.assert_allclose(c, dd, atol=1e-6)
    ds2 = (closed(eta, s + h) - 2 * closed(eta, s) + closed(eta, s - h)) / h**2
    np.testing.assert_allclose(e, ds2, atol=1e-6)
    cross = (
        closed(eta + h, s + h) - closed(eta + h, s - h) - closed(eta - h, s + h)
        + closed(eta - h, s - h)
    ) / (4 * h**2)
    np.testing.assert_allclose(d, cross, atol=1e-6)


def _cf(n=300, seed=1):
    """Rows with a numeric x, a random intercept (Z2 = 1) and a random slope of x (x²)."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"x": rng.normal(size=n)})

    def design(frame):
        x = frame["x"].to_numpy(dtype=float)
        return np.column_stack([np.ones(len(x)), x, np.ones(len(x)), x**2])

    cf = CounterfactualData(data, {"x": Variable("x", False, None)}, design, lambda f: None)
    return cf, data


def _probit_margin(theta, x):
    eta = theta[0] + theta[1] * x
    var = np.exp(2 * theta[2]) + x**2 * np.exp(2 * theta[3])
    return float(np.mean(special.ndtr(eta / np.sqrt(1 + var))))


def test_stage_function_probit_value_gradient_draws():
    """Probit with a random intercept and slope: the margin, its gradient in (β, v) and
    every draw's margin against Φ(η/√(1+s²)) with each draw's own σ."""
    cf, data = _cf()
    x = data["x"].to_numpy()
    theta = np.array([0.2, 0.7, np.log(0.8), np.log(0.5)])
    rng = np.random.default_rng(2)
    B = theta + 0.2 * rng.normal(size=(40, 4))
    L = 0.05 * np.eye(4)
    spec = IntegrationSpec(2, 2, rel_tol=1e-8)  # a rule well below the FD's error
    ev, rep = evaluate_integrated(
        cf, [Setting()], np.eye(1), [np.ones(len(x))], PROBIT_LINK, theta, B, L, False, spec
    )
    assert rep.method == "gauss-hermite" and rep.met
    # the reported error |θ_n − θ_2n| is the actual one (θ_2n is far more accurate)
    actual = abs(ev.estimate[0] - _probit_margin(theta, x))
    assert abs(actual - rep.error[0]) <= 0.01 * rep.error[0] and rep.error[0] <= rep.tolerance[0]
    h = 1e-6
    fd = [
        (_probit_margin(theta + h * e, x) - _probit_margin(theta - h * e, x)) / (2 * h)
        for e in np.eye(4)
    ]
    np.testing.assert_allclose(ev.grad[0], fd, atol=1e-8)
    want = [_probit_margin(b, x) for b in B]
    np.testing.assert_allclose(ev.draws[:, 0], want, atol=rep.tolerance[0])
    # with the variances held at θ̂ the draws would differ: each draw uses its own σ
    held = [_probit_margin(np.r_[b[:2], theta[2:]], x) for b in B]
    assert np.max(np.abs(np.asarray(held) - want)) > 1e-3


def test_stage_function_hessian_matches_finite_differences():
    cf, data = _cf()
    x = data["x"].to_numpy()
    theta = np.array([0.2, 0.7, np.log(0.8), np.log(0.5)])
    L = np.eye(4)
    spec = IntegrationSpec(2, 2, rel_tol=1e-7)
    ev, _ = evaluate_integrated(
        cf, [Setting()], np.eye(1), [np.ones(len(x))], PROBIT_LINK, theta, np.zeros((0, 4)),
        L, False, spec,
    )
    h = 1e-4
    H = np.empty((4, 4))
    for i, ei in enumerate(np.eye(4)):
        for j, ej in enumerate(np.eye(4)):
            H[i, j] = (
                _probit_margin(theta + h * ei + h * ej, x)
                - _probit_margin(theta + h * ei - h * ej, x)
                - _probit_margin(theta - h * ei + h * ej, x)
                + _probit_margin(theta - h * ei - h * ej, x)
            ) / (4 * h * h)
    np.testing.assert_allclose(ev.hess_factor[0], H, atol=1e-6)


def test_identity_link_is_the_linear_predictor():
    cf, data = _cf()
    theta = np.array([0.2, 0.7, 0.1, -0.3])
    B = theta + np.random.default_rng(0).normal(size=(5, 4))
    ev, rep = evaluate_integrated(
        cf, [Setting()], np.eye(1), [np.ones(len(data))], IDENTITY_LINK, theta, B,
        np.eye(4), False, IntegrationSpec(2, 2),
    )
    xbar = data["x"].mean()
    assert rep.method == "closed form" and ev.hess_factor == [None]
    np.testing.assert_allclose(ev.estimate, theta[0] + theta[1] * xbar, rtol=1e-13)
    np.testing.assert_allclose(ev.draws[:, 0], B[:, 0] + B[:, 1] * xbar, rtol=1e-12)
