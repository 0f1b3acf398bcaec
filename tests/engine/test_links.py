"""Inverse links stay finite and accurate far into the tails (|η| up to 700)."""

from __future__ import annotations

import numpy as np
import pytest

from simmargins.engine import links
from simmargins.engine.kernels import margin_draws

BOUNDED = [links.LOGIT_LINK, links.PROBIT_LINK, links.CLOGLOG_LINK, links.LOGLOG_LINK,
           links.CAUCHY_LINK]  # fmt: skip
ETA = np.r_[-700.0, -500.0, -40.0, -1.0, 0.0, 1.0, 40.0, 500.0, 700.0]


@pytest.mark.parametrize(
    "link", [*BOUNDED, links.LOG_LINK, links.IDENTITY_LINK], ids=lambda k: k.name
)
def test_h_and_derivatives_are_finite_for_eta_up_to_700(link):
    with np.errstate(
        over="raise", invalid="raise", divide="raise", under="ignore"
    ):  # no overflow, no invalid operation anywhere
        for f in (link.h, link.dh, link.d2h):
            vals = f(ETA)
            assert np.all(np.isfinite(vals)), (link.name, f, vals)


@pytest.mark.parametrize("link", BOUNDED, ids=lambda k: k.name)
def test_bounded_links_saturate_to_exactly_0_and_1(link):
    lo, hi = link.h(np.array([-700.0, 700.0]))
    assert 0.0 <= lo < 1e-300 or link is links.CAUCHY_LINK
    assert hi == 1.0 or (link is links.CAUCHY_LINK and hi > 1 - 1e-3)
    assert np.all(link.dh(np.array([-700.0, 700.0])) >= 0)


def test_logit_tails_are_accurate():
    # expit(-700) = 1/(1+e^700) ≈ e^-700, representable; a naive e^η/(1+e^η) would give nan
    eta = np.array([-700.0, -30.0, 30.0])
    np.testing.assert_allclose(links.LOGIT_LINK.h(eta)[:2], np.exp(eta[:2]), rtol=1e-12)
    assert links.LOGIT_LINK.h(eta)[2] == pytest.approx(1 - np.exp(-30.0), rel=1e-15)
    np.testing.assert_allclose(links.LOGIT_LINK.dh(eta[:1]), np.exp(-700.0), rtol=1e-14)


@pytest.mark.parametrize("link", [*BOUNDED, links.LOG_LINK], ids=lambda k: k.name)
def test_kernel_is_finite_in_the_tails(link):
    X = ETA[:, None] if link is not links.LOG_LINK else np.r_[-700.0, 0.0, 700.0][:, None]
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        want = link.h(X[:, 0]).mean()
    got = margin_draws(X, np.zeros(len(X)), np.ones(len(X)), np.ones((1, 1)), link.code)
    assert np.isfinite(got[0])
    assert got[0] == pytest.approx(want, rel=1e-14, abs=0)


@pytest.mark.parametrize("link", [links.LOGIT_LINK, links.LOG_LINK, links.PROBIT_LINK])
def test_all_three_equal_the_three_functions(link):
    eta = np.linspace(-30.0, 30.0, 101)
    three = (link.h(eta), link.dh(eta), link.d2h(eta))
    for got, want in zip(link.all_three(eta), three, strict=True):
        np.testing.assert_array_equal(got, want)
