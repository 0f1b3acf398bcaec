"""numba kernels against their plain-numpy twins and a brute-force loop over draws."""

from __future__ import annotations

import numpy as np
import pytest

from simmargins import _links as links
from simmargins._kernels import margin_draws, margin_draws_numpy

LINKS = [
    links.IDENTITY_LINK,
    links.LOGIT_LINK,
    links.PROBIT_LINK,
    links.LOG_LINK,
    links.CLOGLOG_LINK,
    links.LOGLOG_LINK,
    links.CAUCHY_LINK,
]


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    n, k, s = 1037, 6, 17  # odd sizes exercise the block edges
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    B = rng.normal(scale=0.3, size=(s, k))
    off = rng.normal(scale=0.1, size=n)
    w = rng.uniform(0.5, 2.0, n)
    return X, off, w, B


@pytest.mark.parametrize("link", LINKS, ids=lambda lk: lk.name)
def test_numba_matches_numpy_twin(problem, link):
    X, off, w, B = problem
    got = margin_draws(X, off, w, B, link.code, link.power)
    want = margin_draws_numpy(X, off, w, B, link.h)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_matches_a_brute_force_loop(problem):
    X, off, w, B = problem
    got = margin_draws(X, off, w, B, links.LOGIT_LINK.code)
    for d in range(B.shape[0]):
        eta = X @ B[d] + off
        want = sum(wi / (1 + np.exp(-e)) for wi, e in zip(w, eta, strict=True)) / w.sum()
        assert got[d] == pytest.approx(want, rel=1e-12)


def test_power_link(problem):
    X, _, w, B = problem
    eta_pos = np.abs(X) + 0.5
    link = links.power_link(-1.0)
    got = margin_draws(eta_pos, np.zeros(len(w)), w, np.abs(B), link.code, link.power)
    want = margin_draws_numpy(eta_pos, np.zeros(len(w)), w, np.abs(B), link.h)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("link", LINKS[1:], ids=lambda lk: lk.name)
def test_link_derivatives_against_central_differences(link):
    eta = np.linspace(-3, 2, 41)
    h = 1e-6
    np.testing.assert_allclose(
        link.dh(eta), (link.h(eta + h) - link.h(eta - h)) / (2 * h), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        link.d2h(eta), (link.dh(eta + h) - link.dh(eta - h)) / (2 * h), rtol=1e-5, atol=1e-8
    )


def test_logit_kernel_is_finite_in_the_tails():
    X = np.array([[700.0], [-700.0], [0.0]])
    got = margin_draws(X, np.zeros(3), np.ones(3), np.array([[1.0]]), links.LOGIT_LINK.code)
    assert got[0] == pytest.approx(0.5)
