"""Contrast helpers: weight matrices checked entry by entry."""

from __future__ import annotations

import numpy as np
import pytest

from simmargins import MarginsValueError, all_pairwise, consecutive, pairwise, reference
from simmargins.engine.scenarios import grid, scenario_label


def test_pairwise():
    scen, w = pairwise("treated", [1, 0])
    assert scen == [{"treated": 1}, {"treated": 0}]
    np.testing.assert_array_equal(w.to_numpy(), [[1.0, -1.0]])
    assert list(w.columns) == ["treated=1", "treated=0"]


def test_reference_with_middle_reference():
    _, W = reference("g", ["a", "b", "c"], ref_level="b")
    np.testing.assert_array_equal(W.to_numpy(), [[1, -1, 0], [0, -1, 1]])
    assert list(W.index) == ["g=a - g=b", "g=c - g=b"]
    with pytest.raises(MarginsValueError, match="ref_level: 'z' is not one of the levels"):
        reference("g", ["a", "b"], ref_level="z")


def test_consecutive_and_all_pairwise():
    _, C = consecutive("d", [0, 1, 2, 3])
    np.testing.assert_array_equal(C.to_numpy(), [[-1, 1, 0, 0], [0, -1, 1, 0], [0, 0, -1, 1]])
    _, A = all_pairwise("d", [0, 1, 2])
    np.testing.assert_array_equal(A.to_numpy(), [[1, -1, 0], [1, 0, -1], [0, 1, -1]])
    # every row of a contrast matrix sums to zero
    assert np.all(A.to_numpy().sum(axis=1) == 0) and np.all(C.to_numpy().sum(axis=1) == 0)


def test_grid_is_cartesian_in_order():
    g = grid({"a": [1, 2], "b": ["x", "y", "z"], "c": 5})
    assert len(g) == 6
    assert g[0] == {"a": 1, "b": "x", "c": 5} and g[-1] == {"a": 2, "b": "z", "c": 5}
    assert scenario_label(g[1]) == "a=1, b=y, c=5"
    assert scenario_label({"x": 0.5}) == "x=0.5" and scenario_label({}) == "overall"


def test_duplicate_levels_rejected():
    with pytest.raises(MarginsValueError, match="levels must be distinct"):
        all_pairwise("g", ["a", "a"])
