"""What each verb asks for, as settings and a weight matrix W over their margins.

``dydx`` of a numeric variable is a pair of perturbed settings with weights ±1/2ε, of a
factor each level against the reference; ``contrasts(shift=..., scale=...)`` compares the
data with a column moved (x + c) or stretched (c·x) to the data as observed. A comparison
other than the difference splits each row of W into the margin it puts weight on (a, the
positive weights) and the one it compares against (b, the negative weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import check_variable
from ..engine.design import CounterfactualData, Setting
from ..engine.evaluate import Designs, Rescaled
from ..engine.scenarios import Scenario, format_value, scenario_label


@dataclass
class Request:
    """Settings (with optional rows of their own), W and the labels of W's rows."""

    settings: list[Setting] = field(default_factory=list)
    sources: list[Designs | None] = field(default_factory=list)
    rows: list[dict[int, float]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # a short name per setting
    suffixes: list[str] = field(default_factory=list)  # per row: the grid point, if any
    coords: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, setting: Setting, name: str, source: Designs | None = None) -> int:
        self.settings.append(setting)
        self.sources.append(source)
        self.names.append(name)
        return len(self.settings) - 1

    def matrix(self) -> np.ndarray:
        W = np.zeros((len(self.rows), len(self.settings)))
        for r, entries in enumerate(self.rows):
            for j, v in entries.items():
                W[r, j] = v
        return W


def dydx_request(
    cf: CounterfactualData, names: list[str], points: list[Scenario], steps: CounterfactualData
) -> Request:
    """AMEs of ``names`` at each grid point (``[{}]`` for none): numeric variables by
    central differences (step from the fit's data, ``steps``), factors level − reference."""
    req = Request()
    terms: list[str] = []
    point_coords: dict[str, list[Any]] = {c: [] for c in points[0]}
    for name in names:
        var = cf.variables[name]
        for point in points:
            fixed = tuple(point.items())
            suffix = f" | {scenario_label(point)}" if point else ""
            if var.categorical:
                assert var.levels is not None
                ref = var.levels[0]
                start = len(req.settings)
                for lv in var.levels:
                    req.add(Setting((*fixed, (name, lv))), f"{name}={format_value(lv)}")
                for i, lv in enumerate(var.levels[1:], start=1):
                    req.rows.append({start + i: 1.0, start: -1.0})
                    req.labels.append(
                        f"{name}={format_value(lv)} - {name}={format_value(ref)}{suffix}"
                    )
                    req.suffixes.append(suffix)
                    terms.append(name)
                    for c in point_coords:
                        point_coords[c].append(point[c])
            else:
                eps = steps.fd_step(name)
                clip = cf.needs_clip(name, eps)
                j = req.add(Setting(fixed, perturb=(name, eps), clip=clip), f"{name}+ε")
                req.add(Setting(fixed, perturb=(name, -eps), clip=clip), f"{name}-ε")
                req.rows.append({j: 0.5 / eps, j + 1: -0.5 / eps})
                req.labels.append(name + suffix)
                req.suffixes.append(suffix)
                terms.append(name)
                for c in point_coords:
                    point_coords[c].append(point[c])
    req.coords = {"term": terms, **point_coords}
    return req


SHIFT_SUMMARIES = ("sd",)


def _numeric(cf: CounterfactualData, arg: str, name: Any) -> str:
    if not isinstance(name, str):
        raise MarginsTypeError(f"{arg}: variable names must be strings, got {name!r}")
    check_variable(arg, name, cf.known)
    if cf.variables[name].categorical:
        raise MarginsValueError(
            f"{arg}: {name!r} is categorical; shift and scale move numeric variables "
            "(compare levels with dydx or contrasts(scenarios=...))"
        )
    return name


def _number(arg: str, name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise MarginsTypeError(f"{arg}: the value for {name!r} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise MarginsValueError(f"{arg}: the value for {name!r} must be finite, got {value!r}")
    return float(value)


def shift_request(
    cf: CounterfactualData, steps: CounterfactualData, shift: Any, scale: Any
) -> Request:
    """One contrast per entry: the data with x + c (``shift``) or c·x (``scale``) minus
    the data as observed. ``"sd"`` shifts by the sample SD (ddof=1) of the fit's x."""
    req = Request()
    observed = req.add(Setting(), "observed")
    terms: list[str] = []
    for arg, spec in (("shift", shift), ("scale", scale)):
        if spec is None:
            continue
        if not isinstance(spec, Mapping) or not spec:
            raise MarginsTypeError(
                f"{arg}: expected a non-empty dict of {{variable: amount}}, got {spec!r}"
            )
        for name, value in spec.items():
            name = _numeric(cf, arg, name)
            if arg == "shift":
                if isinstance(value, str):
                    if value not in SHIFT_SUMMARIES:
                        raise MarginsValueError(
                            f"shift: the value for {name!r} must be a number or 'sd', got "
                            f"{value!r}"
                        )
                    step = float(np.std(steps.data[name].to_numpy(dtype=np.float64), ddof=1))
                    text = f"{name} + sd ({step:.4g})"
                else:
                    step = _number(arg, name, value)
                    text = f"{name} + {step:g}"
                j = req.add(Setting(perturb=(name, step)), text)
            else:
                c = _number(arg, name, value)
                text = f"{name} × {c:g}"
                j = req.add(Setting(), text, Rescaled(cf, [(name, c)]))
            req.rows.append({j: 1.0, observed: -1.0})
            req.labels.append(f"{text} - observed")
            req.suffixes.append("")
            terms.append(name)
    if not req.rows:
        raise MarginsValueError("shift, scale: give at least one of them")
    req.coords = {"term": terms}
    return req


def split_comparison(kind: str, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W⁺ and W⁻ (W = W⁺ − W⁻): the margins compared (a) and compared against (b)."""
    pos, neg = np.clip(W, 0.0, None), np.clip(-W, 0.0, None)
    for r in range(W.shape[0]):
        if not pos[r].any() or not neg[r].any():
            raise MarginsValueError(
                f"comparison: {kind!r} compares the margins a row of the contrast matrix puts "
                f"positive weight on with those it puts negative weight on, but row {r} has "
                "weights of one sign only"
            )
    return pos, neg


def _side(weights: np.ndarray, names: list[str]) -> str:
    nz = np.flatnonzero(weights)
    if len(nz) == 1 and weights[nz[0]] == 1.0:
        return names[int(nz[0])]
    return "(" + " + ".join(f"{weights[j]:g}·[{names[j]}]" for j in nz) + ")"


def comparison_labels(
    kind: str, pos: np.ndarray, neg: np.ndarray, names: list[str], suffixes: list[str]
) -> list[str]:
    """``a / b``, ``ln(a / b)``, ``ln OR(a vs b)``, ``lift(a vs b)`` per row."""
    out = []
    for r in range(pos.shape[0]):
        a, b = _side(pos[r], names), _side(neg[r], names)
        text = {
            "ratio": f"{a} / {b}",
            "lnratio": f"ln({a} / {b})",
            "lnor": f"ln OR({a} vs {b})",
            "lift": f"lift({a} vs {b})",
        }[kind]
        out.append(text + suffixes[r])
    return out
