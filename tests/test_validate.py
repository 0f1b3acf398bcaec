"""Bad input gets our error type, at the public boundary, naming the argument."""

from __future__ import annotations

import re

import numpy as np
import pytest

from simmargins import Margins, MarginsTypeError, MarginsValueError, SimMarginsError, pairwise


@pytest.fixture(scope="module")
def m(lmm_ri):
    return Margins.linear_scale(lmm_ri, seed=0, n_sims=20)


BAD_SESSION = [
    ({"level": 1.0}, MarginsValueError, "level: must lie strictly between 0 and 1"),
    ({"level": 0}, MarginsValueError, "level: must lie strictly between 0 and 1"),
    ({"level": "95%"}, MarginsTypeError, "level: expected a float"),
    ({"n_sims": 1}, MarginsValueError, "n_sims: must be at least 2, got 1"),
    ({"n_sims": 10.5}, MarginsTypeError, "n_sims: expected an integer"),
    (
        {"method": "delt"},
        MarginsValueError,
        "method: got 'delt'; accepted values are 'simulation', 'delta', 'bootstrap'; "
        "did you mean 'delta'?",
    ),
    ({"scale": "logit"}, MarginsValueError, "scale: got 'logit'"),
    ({"at": "modal"}, MarginsValueError, "at: got 'modal'"),
    (
        {"at": {"agee": 30}},
        MarginsValueError,
        "at: 'agee' is not a variable of the model's data; did you mean 'age'?",
    ),
    ({"at": {"age": [30, 40]}}, MarginsValueError, "at: 'age' must be a single value"),
    (
        {"at": {"school": "E"}},
        MarginsValueError,
        "at: 'E' is not a level of 'school'; its levels are 'A', 'B', 'C', 'D'",
    ),
    ({"at": 3}, MarginsTypeError, "at: expected 'overall', 'mean' or a dict"),
    ({"seed": -1}, MarginsValueError, "seed: must be non-negative"),
    ({"seed": "abc"}, MarginsTypeError, "seed: expected an int"),
    ({"weights": "wt"}, MarginsValueError, "weights: 'wt' is not a variable"),
    ({"weights": np.ones(3)}, MarginsValueError, "weights: expected 400 values"),
    ({"adapter": object()}, MarginsTypeError, "adapter: expected a simmargins adapter"),
]


@pytest.mark.parametrize(("kwargs", "err", "msg"), BAD_SESSION)
def test_bad_session_arguments(lmm_ri, kwargs, err, msg):
    with pytest.raises(err, match=re.escape(msg)):
        Margins(lmm_ri, **kwargs)


BAD_CALLS = [
    (
        lambda m: m.dydx("agee"),
        MarginsValueError,
        "dydx: 'agee' is not a variable of the model's data; did you mean 'age'?",
    ),
    (lambda m: m.dydx([]), MarginsValueError, "variables: give at least one variable name"),
    (lambda m: m.dydx(3), MarginsTypeError, "dydx: variable names must be strings"),
    (
        lambda m: m.predict(atexog={"treatd": [0, 1]}),
        MarginsValueError,
        "atexog: 'treatd' is not a variable of the model's data; did you mean 'treated'?",
    ),
    (
        lambda m: m.predict(atexog={"school": ["A", "Z"]}),
        MarginsValueError,
        "atexog: 'Z' is not a level of 'school'",
    ),
    (
        lambda m: m.predict(atexog={"age": ["old"]}),
        MarginsTypeError,
        "atexog: 'age' is numeric, so its values must be numbers",
    ),
    (
        lambda m: m.predict(atexog={"age": [np.inf]}),
        MarginsValueError,
        "atexog: value for 'age' must be finite",
    ),
    (
        lambda m: m.predict(atexog={"age": []}),
        MarginsValueError,
        "atexog: no values given for 'age'",
    ),
    (lambda m: m.predict(atexog=[1, 2]), MarginsTypeError, "atexog: expected a dict"),
    (
        lambda m: m.contrasts(scenarios=[{"treated": 1}, {"treated": 0}], contrasts=[[1, -1, 0]]),
        MarginsValueError,
        "contrasts: the weight matrix has shape (1, 3); it needs one column per scenario (2)",
    ),
    (
        lambda m: m.contrasts(scenarios={"treated": 1}, contrasts=[1]),
        MarginsTypeError,
        "scenarios: expected a non-empty list",
    ),
    (
        lambda m: m.contrasts(scenarios=[{"treated": 1}], contrasts=[["a"]]),
        MarginsTypeError,
        "contrasts: expected a numeric weight matrix",
    ),
    (
        lambda m: m.contrasts(scenarios=[{"school": "Q"}], contrasts=[1]),
        MarginsValueError,
        "scenarios: 'Q' is not a level of 'school'",
    ),
    (
        lambda m: m.dydx("age").with_level(2),
        MarginsValueError,
        "level: must lie strictly between 0 and 1",
    ),
    (lambda m: m.dydx("age").conf_int(method="boot"), MarginsValueError, "method: got 'boot'"),
]


@pytest.mark.parametrize(("call", "err", "msg"), BAD_CALLS)
def test_bad_verb_arguments(m, call, err, msg):
    with pytest.raises(err, match=re.escape(msg)) as info:
        call(m)
    assert isinstance(info.value, SimMarginsError)


def test_helper_arguments():
    with pytest.raises(MarginsValueError, match="pairwise compares exactly two levels"):
        pairwise("x", [1, 2, 3])
    with pytest.raises(MarginsTypeError, match="levels: expected a list of levels"):
        pairwise("x", "ab")
