"""κ (relative curvature) against an independent computation, and the delta-method warning.

κ = ‖LᵀHL‖₂ / ‖Lᵀ∇‖₂ with V̂ = LLᵀ. Here ∇ and H are not the analytic ones simmargins
uses: they are central finite differences of the quantity itself, written with patsy
designs and statsmodels' own ``model.predict`` / link, in the whitened coordinates
φ(z) = f(β̂ + Lz), where Lᵀ∇ = ∇φ(0) and LᵀHL = ∇²φ(0). κ does not depend on which
square root L of V̂ is taken, so this L is numpy's Cholesky factor, not simmargins'.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from simmargins import DeltaMethodWarning, Margins, pairwise
from simmargins.engine import links

LEVELS = "levels=['a', 'b', 'c']"
LOGIT_RHS = f"x1 * C(g, {LEVELS}) + x2"
POISSON_RHS = f"x1 + x2 + C(g, {LEVELS})"


def _exog(rhs: str, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(patsy.dmatrix(rhs, frame), dtype=np.float64)


def _kappa_fd(phi: Callable[[np.ndarray], float], k: int, h: float) -> float:
    """‖∇²φ(0)‖₂ / ‖∇φ(0)‖ by central differences of step h (error O(h²))."""
    e = np.eye(k)
    f0 = phi(np.zeros(k))
    fp = np.array([phi(h * e[i]) for i in range(k)])
    fm = np.array([phi(-h * e[i]) for i in range(k)])
    grad = (fp - fm) / (2.0 * h)
    hess = np.empty((k, k))
    for i in range(k):
        hess[i, i] = (fp[i] - 2.0 * f0 + fm[i]) / h**2
        for j in range(i):
            hess[i, j] = hess[j, i] = (
                phi(h * (e[i] + e[j]))
                - phi(h * (e[i] - e[j]))
                - phi(h * (e[j] - e[i]))
                + phi(-h * (e[i] + e[j]))
            ) / (4.0 * h * h)
    return float(np.linalg.norm(hess, 2) / np.linalg.norm(grad))


def _check_kappa(fit, f: Callable[[np.ndarray], float], kappa: float) -> None:
    beta = fit.params.to_numpy()
    L = np.linalg.cholesky(fit.cov_params().to_numpy())

    def phi(z: np.ndarray) -> float:
        return f(beta + L @ z)

    # steps in units of one standard error along each whitened direction
    k1, k2 = _kappa_fd(phi, beta.size, 0.1), _kappa_fd(phi, beta.size, 0.05)
    # measured (glm_frame, n = 2000): at h = 0.1 the differences are off by 4.6e-7 to
    # 2.4e-5 relative, at h = 0.05 by a quarter of that (ratio 3.995 to 4.000: pure O(h²)
    # truncation, no disagreement in the definition); the Richardson value
    # (4κ(h/2) − κ(h)) / 3 cancels the h² term and agrees with simmargins' analytic κ to
    # 4e-11, 4e-11 and 2.1e-10 relative, near the rounding floor u·|f| / (h²·|LᵀHL|) of
    # the second differences. Asserted: about 10× that.
    assert (k1 - kappa) / (k2 - kappa) == pytest.approx(4.0, rel=0.02)
    richardson = (4.0 * k2 - k1) / 3.0
    assert kappa == pytest.approx(richardson, rel=3e-9, abs=0)
    assert abs(k2 - kappa) > 100 * abs(richardson - kappa)  # the step does matter


def test_kappa_of_a_logit_predictive_margin(logit_glm, glm_frame):
    Xs = _exog(LOGIT_RHS, glm_frame.assign(g="b", x2=1.0))
    res = Margins.response_scale(logit_glm, seed=0).predict(atexog={"g": "b", "x2": 1.0})

    def margin(b: np.ndarray) -> float:
        return float(np.mean(logit_glm.model.predict(b, exog=Xs)))

    _check_kappa(logit_glm, margin, res.kappa[0])


def test_kappa_of_a_logit_ame(logit_glm, glm_frame):
    # η is linear in x1, so ∂η/∂x1 = (X(x1 + 1) − X(x1))·β exactly and the AME is
    # mean(h′(η)·∂η/∂x1): analytic in x1, unlike simmargins' central difference
    X0 = _exog(LOGIT_RHS, glm_frame)
    dX = _exog(LOGIT_RHS, glm_frame.assign(x1=glm_frame["x1"] + 1.0)) - X0
    link = logit_glm.model.family.link
    res = Margins.response_scale(logit_glm, seed=0).dydx("x1")

    def ame(b: np.ndarray) -> float:
        return float(np.mean(link.inverse_deriv(X0 @ b) * (dX @ b)))

    _check_kappa(logit_glm, ame, res.kappa[0])


def test_kappa_of_a_poisson_contrast(poisson_glm, glm_frame):
    off = np.log(glm_frame["t"].to_numpy())
    Xc = _exog(POISSON_RHS, glm_frame.assign(g="c"))
    Xa = _exog(POISSON_RHS, glm_frame.assign(g="a"))
    res = Margins.response_scale(poisson_glm, seed=0).contrasts(*pairwise("g", ["c", "a"]))

    def contrast(b: np.ndarray) -> float:
        hi = poisson_glm.model.predict(b, exog=Xc, offset=off)
        lo = poisson_glm.model.predict(b, exog=Xa, offset=off)
        return float(np.mean(hi) - np.mean(lo))

    _check_kappa(poisson_glm, contrast, res.kappa[0])


# -- the warning, on a real fit where the delta method fails --------------------------------
@pytest.fixture(scope="module")
def small_poisson():
    """25 rows with x in [0, 1]; predicted at x = 3, far outside the data."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.uniform(0.0, 1.0, 25)})
    df["y"] = rng.poisson(np.exp(0.2 + 1.5 * df["x"]))
    return smf.glm("y ~ x", df, family=sm.families.Poisson()).fit()


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [("simulation", {"n_sims": 2000}), ("bootstrap", {"n_boot": 200, "n_jobs": 1})],
)
def test_delta_method_warning_on_a_curved_poisson_prediction(small_poisson, method, kwargs):
    m = Margins(small_poisson, method=method, at={"x": 3.0}, seed=1, **kwargs)
    with pytest.warns(DeltaMethodWarning) as caught:
        res = m.predict()
    found = [str(w.message) for w in caught if issubclass(w.category, DeltaMethodWarning)]
    assert len(found) == 1, found
    assert "κ" in found[0] or "disagree" in found[0]
    # at one point of a log link, μ = exp(η): LᵀHL = μ·(Lᵀx)(Lᵀx)ᵀ and Lᵀ∇ = μ·Lᵀx, so
    # κ = ‖Lᵀx‖ = the SE of η, here about 1: the lognormal's skew is far from negligible
    x = np.array([1.0, 3.0])
    se_eta = float(np.sqrt(x @ small_poisson.cov_params().to_numpy() @ x))
    assert res.kappa[0] == pytest.approx(se_eta, rel=1e-12)
    assert res.kappa[0] > 0.3
    assert not res.delta_trustworthy()


# -- the delta moments on numba's pool (issue 12, item 2) --------------------------------------
@pytest.mark.parametrize(
    "link",
    [links.LOGIT_LINK, links.PROBIT_LINK, links.LOG_LINK, links.CLOGLOG_LINK, links.CAUCHY_LINK],
    ids=lambda lk: lk.name,
)
@pytest.mark.parametrize(("n", "k"), [(4096, 1), (5003, 7), (20_000, 20)])
def test_numba_moments_match_the_numpy_twin(link, n, k):
    """η, ∇ and H through numba (no BLAS) equal the straightforward numpy route."""
    from simmargins.engine.delta import scenario_moments

    rng = np.random.default_rng(n + k)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    beta = rng.normal(0, 0.3, k)
    off = rng.normal(0, 0.1, n)
    w = rng.uniform(0.5, 2.0, n)
    got = scenario_moments(X, off, w, beta, link, on_numba=True)
    want = scenario_moments(X, off, w, beta, link, on_numba=False)
    assert got.value == pytest.approx(want.value, rel=1e-13)
    assert want.hess is not None and got.hess is not None
    np.testing.assert_allclose(got.grad, want.grad, rtol=0, atol=1e-13 * np.abs(want.grad).max())
    np.testing.assert_allclose(got.hess, want.hess, rtol=0, atol=1e-13 * np.abs(want.hess).max())
    np.testing.assert_array_equal(got.hess, got.hess.T)


def test_weighted_moments_do_not_depend_on_the_thread_count():
    import numba

    from simmargins.engine.moments import weighted_moments

    rng = np.random.default_rng(3)
    X = rng.normal(size=(30_001, 5))
    a, b = rng.uniform(size=30_001), rng.normal(size=30_001)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = weighted_moments(X, a, b)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = weighted_moments(X, a, b)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(one[1], many[1])


def test_one_blas_thread_limits_blas_inside_and_restores_it():
    from threadpoolctl import threadpool_info

    from simmargins.engine.delta import one_blas_thread

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with one_blas_thread():
        assert all(n == 1 for n in blas_threads())
        with one_blas_thread():
            assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before
