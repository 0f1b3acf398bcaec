"""Outcome probabilities of multi-outcome models: moments against numerical derivatives,
the draws' kernel against its numpy twin, and thread-independent bits."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from simmargins.engine.links import CLOGLOG_LINK, LOGIT_LINK, PROBIT_LINK
from simmargins.engine.multinomial import (
    MULTINOMIAL,
    ORDINAL,
    OutcomeModel,
    outcome_margins_numpy,
    outcome_moments,
    probabilities,
)
from simmargins.engine.multinomial_kernels import outcome_margins

_ORD = np.array([0.3, -0.2, 0.5, -0.5, -0.3, 0.1])
MODELS = {
    "mnlogit": (OutcomeModel(MULTINOMIAL, 3, 4), np.array([0.2, -0.4, 0.3, -1.0, 0.5, 0.2,
                                                           0.4, 0.1, -0.6])),
    "probit": (OutcomeModel(ORDINAL, 3, 4, PROBIT_LINK), _ORD),
    "logit": (OutcomeModel(ORDINAL, 3, 4, LOGIT_LINK), _ORD),
    "cloglog": (OutcomeModel(ORDINAL, 3, 4, CLOGLOG_LINK), _ORD + np.r_[0, 0, 0, 0, 0.5, 0]),
}  # fmt: skip


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=150), rng.normal(size=150), rng.integers(0, 2, 150)])
    return X, rng.uniform(0.5, 2.0, 150)


def _closed_form(model: OutcomeModel, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Probabilities written out row by row, the textbook way."""
    out = np.empty((X.shape[0], model.n_outcomes))
    for i, x in enumerate(X):
        if model.kind == MULTINOMIAL:
            e = np.exp(np.r_[0.0, model.equations(theta) @ x])
            out[i] = e / e.sum()
        else:
            assert model.cdf is not None
            c = np.cumsum(np.r_[theta[3], np.exp(theta[4:])])
            F = np.r_[0.0, model.cdf.h(c - x @ theta[:3]), 1.0]
            out[i] = np.diff(F)
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_probabilities_and_moments_against_numerical_derivatives(rows, name):
    """μ against the row-by-row formula; ∇μ and the Hessian against central differences
    of μ and of ∇μ (step 1e-5: truncation ~1e-10, rounding ~1e-11)."""
    model, theta = MODELS[name]
    X, w = rows
    wn = w / w.sum()
    p = probabilities(model, X, None, theta)
    np.testing.assert_allclose(p, _closed_form(model, X, theta), rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    value, grad, hess = outcome_moments(model, X, None, wn, theta)
    np.testing.assert_allclose(value, wn @ p, rtol=0, atol=1e-15)
    h = 1e-5
    eye = np.eye(theta.size)
    num_g = np.empty_like(grad)
    num_h = np.empty_like(hess)
    for q in range(theta.size):
        up = outcome_moments(model, X, None, wn, theta + h * eye[q])
        dn = outcome_moments(model, X, None, wn, theta - h * eye[q])
        num_g[:, q] = (up[0] - dn[0]) / (2 * h)
        num_h[:, :, q] = (up[1] - dn[1]) / (2 * h)
    np.testing.assert_allclose(grad, num_g, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hess, num_h, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hess, hess.transpose(0, 2, 1), rtol=0, atol=1e-15)
    # probabilities sum to one: the outcomes' gradients and Hessians sum to zero
    np.testing.assert_allclose(grad.sum(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(hess.sum(axis=0), 0.0, atol=1e-14)


@pytest.mark.parametrize("name", list(MODELS))
def test_kernel_equals_its_numpy_twin(rows, name):
    model, theta = MODELS[name]
    X, w = rows
    B = theta + 0.3 * np.random.default_rng(1).normal(size=(37, theta.size))
    got = outcome_margins(model, X, None, w, B)
    np.testing.assert_allclose(got, outcome_margins_numpy(model, X, None, w, B), rtol=0, atol=1e-14)
    assert outcome_margins(model, X, None, w, B[:0]).shape == (0, model.n_outcomes)


def test_kernel_bits_do_not_depend_on_threads():
    model, theta = MODELS["logit"]
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3001, 3))
    w = rng.uniform(size=3001)
    B = theta + 0.2 * rng.normal(size=(16, theta.size))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = outcome_margins(model, X, None, w, B)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = outcome_margins(model, X, None, w, B)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
