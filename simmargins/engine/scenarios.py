"""Scenarios (counterfactual settings) and contrast weight matrices.

A scenario is a mapping ``{column: value}`` applied to every row of the data. Helpers
return the scenarios and a weight matrix W as a labelled DataFrame (rows: contrasts,
columns: scenario labels), so ``m.contrasts(scenarios=scen, contrasts=W)`` gives θ = W μ.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError

Scenario = dict[str, Any]


def format_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, (np.integer, np.bool_)):
        return str(value.item())
    return str(value)


def scenario_label(scenario: Mapping[str, Any]) -> str:
    """``{"treated": 1, "female": 0}`` → ``"treated=1, female=0"``; ``{}`` → ``"overall"``."""
    if not scenario:
        return "overall"
    return ", ".join(f"{k}={format_value(v)}" for k, v in scenario.items())


def _check_levels(arg: str, levels: Sequence[Any], minimum: int) -> list[Any]:
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence | np.ndarray | pd.Index):
        raise MarginsTypeError(f"{arg}: expected a list of levels, got {levels!r}")
    out = list(levels)
    if len(out) < minimum:
        raise MarginsValueError(f"{arg}: need at least {minimum} levels, got {len(out)}")
    if len({format_value(v) for v in out}) != len(out):
        raise MarginsValueError(f"{arg}: levels must be distinct, got {out!r}")
    return out


def _weights(
    var: str, levels: list[Any], pairs: list[tuple[int, int]]
) -> tuple[list[Scenario], pd.DataFrame]:
    scen = [{var: v} for v in levels]
    cols = [scenario_label(s) for s in scen]
    w = np.zeros((len(pairs), len(levels)))
    rows = []
    for r, (i, j) in enumerate(pairs):
        w[r, i], w[r, j] = 1.0, -1.0
        rows.append(f"{cols[i]} - {cols[j]}")
    return scen, pd.DataFrame(w, index=pd.Index(rows, name="contrast"), columns=cols)


def pairwise(var: str, levels: Sequence[Any]) -> tuple[list[Scenario], pd.DataFrame]:
    """The difference between two settings of ``var``: ``levels[0] − levels[1]``.

    Examples
    --------
    >>> scen, w = pairwise("treated", [1, 0])
    >>> scen
    [{'treated': 1}, {'treated': 0}]
    >>> w.to_numpy().tolist(), list(w.index)
    ([[1.0, -1.0]], ['treated=1 - treated=0'])
    """
    lv = _check_levels("levels", levels, 2)
    if len(lv) != 2:
        raise MarginsValueError(
            f"levels: pairwise compares exactly two levels, got {len(lv)}; use all_pairwise"
        )
    return _weights(var, lv, [(0, 1)])


def reference(
    var: str, levels: Sequence[Any], ref_level: Any | None = None
) -> tuple[list[Scenario], pd.DataFrame]:
    """Each level of ``var`` minus ``ref_level`` (default: the first level).

    Examples
    --------
    >>> scen, W = reference("school", ["A", "B", "C"], ref_level="A")
    >>> list(W.index)
    ['school=B - school=A', 'school=C - school=A']
    """
    lv = _check_levels("levels", levels, 2)
    ref = lv[0] if ref_level is None else ref_level
    matches = [i for i, v in enumerate(lv) if format_value(v) == format_value(ref)]
    if not matches:
        raise MarginsValueError(f"ref_level: {ref!r} is not one of the levels {lv!r}")
    r = matches[0]
    return _weights(var, lv, [(i, r) for i in range(len(lv)) if i != r])


def consecutive(var: str, levels: Sequence[Any]) -> tuple[list[Scenario], pd.DataFrame]:
    """Each level minus the one before it (``levels[i+1] − levels[i]``).

    Examples
    --------
    >>> list(consecutive("dose", [0, 1, 2])[1].index)
    ['dose=1 - dose=0', 'dose=2 - dose=1']
    """
    lv = _check_levels("levels", levels, 2)
    return _weights(var, lv, [(i + 1, i) for i in range(len(lv) - 1)])


def all_pairwise(var: str, levels: Sequence[Any]) -> tuple[list[Scenario], pd.DataFrame]:
    """Every pair of levels, ``levels[i] − levels[j]`` for i < j.

    Examples
    --------
    >>> list(all_pairwise("g", ["a", "b", "c"])[1].index)
    ['g=a - g=b', 'g=a - g=c', 'g=b - g=c']
    """
    lv = _check_levels("levels", levels, 2)
    return _weights(var, lv, list(itertools.combinations(range(len(lv)), 2)))


def grid(atexog: Mapping[str, Any]) -> list[Scenario]:
    """Cartesian product of the values in ``atexog``, one scenario per combination."""
    keys = list(atexog)
    values = []
    for k in keys:
        v = atexog[k]
        if isinstance(v, (str, bytes)) or np.ndim(v) == 0:
            values.append([v])
        else:
            vals = list(v)
            if not vals:
                raise MarginsValueError(f"atexog: no values given for {k!r}")
            values.append(vals)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
