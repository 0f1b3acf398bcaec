"""numba kernels against their plain-numpy twins and a brute-force loop over draws."""

from __future__ import annotations

import math
import re

import numba
import numpy as np
import pytest

from simmargins.engine import links
from simmargins.engine.kernels import _exp, margin_draws, margin_draws_numpy

LINKS = [
    links.IDENTITY_LINK,
    links.LOGIT_LINK,
    links.PROBIT_LINK,
    links.LOG_LINK,
    links.CLOGLOG_LINK,
    links.LOGLOG_LINK,
    links.CAUCHY_LINK,
]


def _make_problem(n: int, k: int, s: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    B = rng.normal(scale=0.3, size=(s, k))
    off = rng.normal(scale=0.1, size=n)
    w = rng.uniform(0.5, 2.0, n)
    return X, off, w, B


@pytest.fixture(scope="module")
def problem():
    # odd sizes exercise the edges: a partial row tile, an odd draw count (a lone last
    # draw in the η pairs), a partial draw block, and K not a multiple of the unroll of 4
    return _make_problem(n=1037, k=7, s=17)


@pytest.mark.parametrize("link", LINKS, ids=lambda lk: lk.name)
def test_numba_matches_numpy_twin(problem, link):
    X, off, w, B = problem
    got = margin_draws(X, off, w, B, link.code, link.power)
    want = margin_draws_numpy(X, off, w, B, link.h)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_matches_a_brute_force_loop(problem):
    X, off, w, B = problem
    got = margin_draws(X, off, w, B, links.LOGIT_LINK.code)
    for d in range(B.shape[0]):
        eta = X @ B[d] + off
        want = sum(wi / (1 + np.exp(-e)) for wi, e in zip(w, eta, strict=True)) / w.sum()
        assert got[d] == pytest.approx(want, rel=1e-14, abs=0)


def _fd_ame(X, off, w, B, code, col, eps):
    """The AME over draws as _evaluate forms it: two margins, differenced, over 2ε."""
    Xp, Xm = X.copy(), X.copy()
    Xp[:, col] += eps
    Xm[:, col] -= eps
    return (margin_draws(Xp, off, w, B, code) - margin_draws(Xm, off, w, B, code)) / (2 * eps)


def test_fd_ame_matches_a_brute_force_loop(problem):
    X, off, w, B = problem
    eps = 1e-5
    got = _fd_ame(X, off, w, B, links.LOGIT, 1, eps)
    for d in range(B.shape[0]):
        terms = []
        for i in range(X.shape[0]):
            xp, xm = X[i].copy(), X[i].copy()
            xp[1] += eps
            xm[1] -= eps
            hp = 1.0 / (1.0 + math.exp(-(math.fsum(xp * B[d]) + off[i])))
            hm = 1.0 / (1.0 + math.exp(-(math.fsum(xm * B[d]) + off[i])))
            terms.append(w[i] * (hp - hm))
        want = math.fsum(terms) / math.fsum(w) / (2 * eps)
        # each margin is good to a few ulps of ~0.5; the difference over 2ε = 2e-5 turns
        # that into ~1e-11 absolute (measured 5.4e-12), whatever the AME's own size
        assert got[d] == pytest.approx(want, rel=0, abs=1e-10)


def test_fd_ame_of_a_linear_term_is_its_coefficient(problem):
    X, off, w, B = problem
    got = _fd_ame(X, off, w, B, links.IDENTITY, 1, 1e-3)
    np.testing.assert_allclose(got, B[:, 1], rtol=0, atol=1e-12)  # measured 5e-14


def test_power_link(problem):
    X, _, w, B = problem
    eta_pos = np.abs(X) + 0.5
    link = links.power_link(-1.0)
    got = margin_draws(eta_pos, np.zeros(len(w)), w, np.abs(B), link.code, link.power)
    want = margin_draws_numpy(eta_pos, np.zeros(len(w)), w, np.abs(B), link.h)
    np.testing.assert_allclose(got, want, rtol=1e-14)


@pytest.mark.parametrize(("n", "s"), [(1, 1), (7, 2), (128, 8), (129, 9), (40_000, 3)])
def test_sizes_at_the_tile_and_block_edges(n, s):
    X, off, w, B = _make_problem(n=n, k=5, s=s, seed=n)
    got = margin_draws(X, off, w, B, links.LOGIT)
    want = margin_draws_numpy(X, off, w, B, links.LOGIT_LINK.h)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_the_result_does_not_depend_on_the_thread_count(problem):
    X, off, w, B = _make_problem(n=20_000, k=6, s=9)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = margin_draws(X, off, w, B, links.LOGIT)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = margin_draws(X, off, w, B, links.LOGIT)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("n", [1_000_000, 10_000_000])
def test_summation_is_compensated(n):
    # millions of terms of mixed size: a plain running sum drifts by ~1e-14 relative; the
    # kernel (blocked partial sums into a Neumaier accumulator) stays within a few ulps
    rng = np.random.default_rng(1)
    v = rng.uniform(0.0, 1.0, n) * 10.0 ** rng.integers(-3, 3, n)
    w = rng.uniform(0.5, 2.0, n)
    exact = math.fsum(w * v) / math.fsum(w)
    got = margin_draws(v[:, None], np.zeros(n), w, np.ones((1, 1)), links.IDENTITY)[0]
    naive = float(np.cumsum(w * v)[-1] / np.cumsum(w)[-1])  # cumsum adds left to right
    assert abs(got - exact) <= 4 * np.spacing(exact)
    assert abs(naive - exact) > 30 * np.spacing(exact)  # the test can tell the difference


def test_exp_helper_is_accurate_across_the_range():
    x = np.concatenate(
        [np.linspace(-745.0, 709.7, 4001), np.linspace(-1.0, 1.0, 2001), [0.0, -0.0]]
    )
    got = np.array([_exp(v) for v in x])
    want = np.exp(x)
    normal = want > np.finfo(float).tiny
    np.testing.assert_array_less(
        np.abs(got - want)[normal], 2.5 * np.spacing(want[normal]) + 1e-300
    )
    np.testing.assert_allclose(got[~normal], want[~normal], rtol=1e-3, atol=1e-320)
    assert _exp(-800.0) == 0.0
    assert _exp(710.0) == math.inf
    assert _exp(math.inf) == math.inf
    assert _exp(-math.inf) == 0.0
    assert math.isnan(_exp(math.nan))


def test_logit_kernel_is_finite_in_the_tails():
    X = np.array([[700.0], [-700.0], [0.0]])
    got = margin_draws(X, np.zeros(3), np.ones(3), np.array([[1.0]]), links.LOGIT_LINK.code)
    assert got[0] == pytest.approx(0.5)
    got = margin_draws(X, np.zeros(3), np.ones(3), np.array([[1e307]]), links.LOGIT)  # η = ±inf
    assert got[0] == pytest.approx(0.5)


def test_nan_in_a_row_reaches_the_result():
    X, off, w, B = _make_problem(n=300, k=3, s=4)
    X[17, 1] = np.nan
    assert np.isnan(margin_draws(X, off, w, B, links.LOGIT)).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((5, 3)), np.zeros(5), np.ones(5), np.ones((2, 4))), "B must be (draws, 3)"),
        ((np.ones((5, 3)), np.zeros(4), np.ones(5), np.ones((2, 3))), "one value per row (5)"),
    ],
)
def test_shape_mismatches_are_named(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        margin_draws(*args, links.LOGIT)


@pytest.mark.parametrize("link", LINKS[1:], ids=lambda lk: lk.name)
def test_link_derivatives_against_central_differences(link):
    eta = np.linspace(-3, 2, 41)
    h = 1e-6
    # the differences carry rounding of about u·|f|/h ≈ 1e-10·|f| (truncation h² ≈ 1e-12):
    # measured 2.4e-9 relative where |f′| > 0.01 and 4.4e-11 absolute below that
    np.testing.assert_allclose(
        link.dh(eta), (link.h(eta + h) - link.h(eta - h)) / (2 * h), rtol=3e-8, atol=1e-9
    )
    np.testing.assert_allclose(
        link.d2h(eta), (link.dh(eta + h) - link.dh(eta - h)) / (2 * h), rtol=3e-8, atol=1e-9
    )


# -- several scenarios in one pass (issue 12, item 3) -----------------------------------------
def _updates(X: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    n, k = X.shape
    return [
        (np.zeros(0, dtype=np.int64), np.zeros((n, 0))),  # the base design itself
        (np.array([1]), X[:, [1]] + 1e-3),  # a finite-difference step
        (np.array([1]), X[:, [1]] - 1e-3),
        (np.array([k - 1, 2]), np.column_stack([np.ones(n), rng.normal(size=n)])),
        (np.array([2]), np.full((n, 1), 0.5)),  # a grid point
    ]


@pytest.mark.parametrize("link", LINKS, ids=lambda lk: lk.name)
@pytest.mark.parametrize(("n", "s"), [(1037, 17), (128, 8), (1, 1)])
def test_scenario_draws_equal_one_margin_per_scenario(link, n, s):
    """The one-pass route equals the straightforward one: each scenario's full design."""
    from simmargins.engine.scenario_kernels import scenario_draws

    X, off, w, B = _make_problem(n=n, k=7, s=s, seed=n + s)
    rng = np.random.default_rng(n)
    updates = _updates(X, rng)
    got = scenario_draws(X, off, w, B, updates, link.code, link.power)
    for j, (cols, vals) in enumerate(updates):
        Xj = X.copy()
        Xj[:, cols] = vals
        want = margin_draws(Xj, off, w, B, link.code, link.power)
        np.testing.assert_allclose(got[j], want, rtol=1e-13, atol=1e-15)


def test_scenario_draws_do_not_depend_on_the_thread_count():
    from simmargins.engine.scenario_kernels import scenario_draws

    X, off, w, B = _make_problem(n=20_000, k=6, s=9)
    updates = _updates(X, np.random.default_rng(2))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = scenario_draws(X, off, w, B, updates, links.LOGIT)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = scenario_draws(X, off, w, B, updates, links.LOGIT)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


def test_scenario_draws_refuse_bad_updates():
    from simmargins.engine.scenario_kernels import scenario_draws

    X, off, w, B = _make_problem(n=10, k=3, s=2)
    with pytest.raises(ValueError, match=r"column indices in 0\.\.2"):
        scenario_draws(X, off, w, B, [(np.array([3]), np.ones((10, 1)))], links.LOGIT)
    with pytest.raises(ValueError, match="column indices"):
        scenario_draws(X, off, w, B, [(np.array([0, 1]), np.ones((10, 1)))], links.LOGIT)


@pytest.mark.parametrize("link", LINKS, ids=lambda lk: lk.name)
def test_scenario_draws_of_constant_and_shifted_columns(link):
    """Columns set to one value (a factor's levels, grid points, sharing η minus those
    columns) and moved by one step (an AME of a bare variable), alone and mixed with
    row-varying columns: each scenario equals margin_draws on its full design."""
    from simmargins.engine.scenario_kernels import _Change, scenario_draws

    X, off, w, B = _make_problem(n=1037, k=7, s=17, seed=11)
    n = X.shape[0]
    rng = np.random.default_rng(4)
    none, no_vals = np.zeros(0, dtype=np.int64), np.zeros(0)
    levels = [np.array(v, dtype=float) for v in ([0, 0], [1, 0], [0, 1])]
    changes = [
        *(_Change(np.array([5, 6]), lv, none, no_vals, none, np.zeros((n, 0))) for lv in levels),
        _Change(none, no_vals, np.array([1]), np.array([1e-3]), none, np.zeros((n, 0))),
        _Change(none, no_vals, np.array([1]), np.array([-1e-3]), none, np.zeros((n, 0))),
        _Change(
            np.array([5]),
            np.array([1.0]),
            np.array([2]),
            np.array([0.25]),
            np.array([3]),
            rng.normal(size=(n, 1)),
        ),
    ]
    got = scenario_draws(X, off, w, B, changes, link.code, link.power)
    for j, ch in enumerate(changes):
        Xj = X.copy()
        Xj[:, ch.const_cols] = ch.const_vals
        Xj[:, ch.shift_cols] += ch.shift_vals
        Xj[:, ch.vary_cols] = ch.vary_vals
        want = margin_draws(Xj, off, w, B, link.code, link.power)
        np.testing.assert_allclose(got[j], want, rtol=1e-13, atol=1e-15)


def test_fortran_ordered_designs_give_the_same_bits():
    """A fit's exog is often Fortran-ordered and is used as the base design without a copy:
    every kernel reads it as it is and returns the same bits as for a C-ordered copy."""
    from simmargins.engine.moments import linear_predictor, weighted_moments
    from simmargins.engine.scenario_kernels import scenario_draws

    X, off, w, B = _make_problem(n=1037, k=7, s=17, seed=3)
    F = np.asfortranarray(X)
    assert F.flags.f_contiguous and not F.flags.c_contiguous
    np.testing.assert_array_equal(
        margin_draws(F, off, w, B, links.LOGIT), margin_draws(X, off, w, B, links.LOGIT)
    )
    updates = _updates(X, np.random.default_rng(1))
    np.testing.assert_array_equal(
        scenario_draws(F, off, w, B, updates, links.LOGIT),
        scenario_draws(X, off, w, B, updates, links.LOGIT),
    )
    np.testing.assert_array_equal(linear_predictor(F, B[0], off), linear_predictor(X, B[0], off))
    for a, b in zip(weighted_moments(F, w, off), weighted_moments(X, w, off), strict=True):
        np.testing.assert_array_equal(a, b)
