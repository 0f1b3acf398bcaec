"""Counterfactual design matrices: the data with a scenario's columns set, through the spec.

Settings from ``at`` apply first, then the scenario's, then any finite-difference
perturbation, so with ``at={"x": 1}`` the AME of ``x`` is the slope at x = 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import check_variable
from .formula import Variable
from .scenarios import format_value

# Reserved setting keys for a model's offset and exposure, which are not data columns. The
# adapter keeps each row's value in a hidden column of its data (so any subset of rows
# carries its own), a setting such as ``atexog={"exposure": 1.0}`` overwrites that column,
# and the adapter's ``offset(frame)`` reads it. A model variable of the same name wins.
OFFSET_SETTINGS: dict[str, str] = {
    "offset": "__simmargins_offset__",
    "exposure": "__simmargins_exposure__",
}


@dataclass(frozen=True)
class Setting:
    """One counterfactual: column values to set, then an optional perturbation ``var += step``.

    With ``clip`` the perturbed values stay inside the variable's observed range (splines
    such as ``bs()`` refuse to extrapolate), and each row's difference quotient uses its own
    step; the row weights returned with the design carry that correction.
    """

    values: tuple[tuple[str, Any], ...] = ()
    perturb: tuple[str, float] | None = None
    clip: bool = False


@dataclass
class CounterfactualData:
    """The fit's rows plus everything needed to rebuild their design under a setting."""

    data: pd.DataFrame
    variables: dict[str, Variable]
    design_fn: Any  # Callable[[pd.DataFrame], np.ndarray]
    offset_fn: Any  # Callable[[pd.DataFrame], np.ndarray | None]
    base_values: dict[str, Any] = field(default_factory=dict)
    # keys of OFFSET_SETTINGS this model accepts; by default the adapter owning offset_fn
    # says (its ``offset_keys``), so every CounterfactualData built from it agrees
    offset_keys: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.offset_keys is None:
            owner = getattr(self.offset_fn, "__self__", None)
            self.offset_keys = tuple(getattr(owner, "offset_keys", ()))

    @property
    def known(self) -> list[str]:
        return list(self.variables)

    def _check_offset_setting(self, arg: str, name: str, value: Any) -> None:
        """An ``offset`` (any finite number) or ``exposure`` (positive) setting."""
        if name not in (self.offset_keys or ()):
            other = [k for k in (self.offset_keys or ()) if k != name]
            hint = f"; it has {other[0]}=, so set {other[0]!r} instead" if other else ""
            raise MarginsValueError(
                f"{arg}: {name!r} sets a model's {name}, but this model was fitted without "
                f"{name}= and has no variable named {name!r}{hint}"
            )
        vals = [value] if isinstance(value, (str, bytes)) or np.ndim(value) == 0 else list(value)
        for v in vals:
            if isinstance(v, (bool, np.bool_)) or not isinstance(
                v, (int, float, np.integer, np.floating)
            ):
                raise MarginsTypeError(f"{arg}: {name!r} must be a number, got {v!r}")
            if not np.isfinite(v) or (name == "exposure" and v <= 0):
                kind = "positive and finite" if name == "exposure" else "finite"
                raise MarginsValueError(f"{arg}: {name!r} must be {kind}, got {v!r}")

    def check_values(self, arg: str, values: Mapping[str, Any]) -> None:
        """Validate ``{variable: value}`` for a scenario, ``atexog`` or ``at`` dict."""
        if not isinstance(values, Mapping):
            raise MarginsTypeError(f"{arg}: expected a dict of {{variable: value}}, got {values!r}")
        for name, value in values.items():
            if name in OFFSET_SETTINGS and name not in self.variables:
                self._check_offset_setting(arg, name, value)
                continue
            check_variable(arg, name, [*self.known, *(self.offset_keys or ())])
            vals = (
                [value] if isinstance(value, (str, bytes)) or np.ndim(value) == 0 else list(value)
            )
            var = self.variables[name]
            for v in vals:
                if var.categorical:
                    assert var.levels is not None
                    known = {format_value(lv) for lv in var.levels}
                    if format_value(v) not in known:
                        raise MarginsValueError(
                            f"{arg}: {v!r} is not a level of {name!r}; its levels are "
                            + ", ".join(repr(lv) for lv in var.levels)
                        )
                else:
                    bool_col = pd.api.types.is_bool_dtype(self.data[name])
                    if (isinstance(v, (bool, np.bool_)) and not bool_col) or not isinstance(
                        v, (int, float, np.integer, np.floating, np.bool_)
                    ):
                        raise MarginsTypeError(
                            f"{arg}: {name!r} is numeric, so its values must be numbers; got {v!r}"
                        )
                    if not np.isfinite(v):
                        raise MarginsValueError(
                            f"{arg}: value for {name!r} must be finite, got {v!r}"
                        )

    def _level(self, name: str, value: Any) -> Any:
        """Map a user's value onto the fit-time level object (``'1'`` vs ``1`` stays exact)."""
        var = self.variables[name]
        if var.categorical and var.levels is not None:
            for lv in var.levels:
                if format_value(lv) == format_value(value):
                    return lv
        return value

    def _perturbed(self, x: np.ndarray, name: str, step: float, clip: bool) -> np.ndarray:
        if not clip:
            return x + step
        col = self.data[name].to_numpy(dtype=np.float64)
        return np.clip(x + step, col.min(), col.max())

    def frame(self, setting: Setting) -> pd.DataFrame:
        df = self.data.copy(deep=False)
        n = len(df)
        for name, value in [*self.base_values.items(), *setting.values]:
            if name in OFFSET_SETTINGS and name not in self.variables:
                df[OFFSET_SETTINGS[name]] = np.full(n, float(value))
                continue
            col = df[name]
            value = self._level(name, value)
            if isinstance(col.dtype, pd.CategoricalDtype):
                df[name] = pd.Categorical([value] * n, categories=col.cat.categories)
            elif self.variables[name].categorical:
                df[name] = pd.Series([value] * n, dtype=col.dtype if col.dtype == bool else object)
            else:
                df[name] = np.full(n, float(value))
        if setting.perturb is not None:
            name, step = setting.perturb
            # integer columns are cast to float first, or the step would be truncated away
            x = df[name].to_numpy(dtype=np.float64)
            df[name] = self._perturbed(x, name, step, setting.clip)
        return df

    def row_scale(self, setting: Setting) -> np.ndarray | None:
        """Per-row 2ε / (x⁺ − x⁻) for clipped differences; None when every row steps ±ε."""
        if setting.perturb is None or not setting.clip:
            return None
        name, step = setting.perturb
        x = self.frame(Setting(setting.values))[name].to_numpy(dtype=np.float64)
        eps = abs(step)
        width = self._perturbed(x, name, eps, True) - self._perturbed(x, name, -eps, True)
        return np.asarray(2.0 * eps / width)

    def needs_clip(self, name: str, step: float) -> bool:
        """Whether the spec refuses ``name`` stepped by ±step at its extremes (bs() knots).

        Only the two extreme rows are built, so the check costs nothing on large data.
        """
        x = self.data[name].to_numpy(dtype=np.float64)
        rows = self.data.iloc[[int(np.argmin(x)), int(np.argmax(x))]].reset_index(drop=True)
        probe = CounterfactualData(rows, self.variables, self.design_fn, self.offset_fn)
        probe.base_values = self.base_values
        try:
            for s in (step, -step):
                probe.design(Setting(perturb=(name, s)))
        except MarginsValueError:
            return True
        return False

    def design(self, setting: Setting) -> tuple[np.ndarray, np.ndarray | None]:
        frame = self.frame(setting)
        return self.design_fn(frame), self.offset_fn(frame)

    def fd_step(self, name: str) -> float:
        """Central-difference step from the spread of the variable in the fitted rows.

        The truncation error of a central difference is O(ε²) and its rounding error
        O(u/ε) with u ≈ 2.2e-16; ε ≈ 1e-5·scale keeps both near 1e-10 relative, well
        inside the ~1e-7 agreement with the analytic derivative that DESIGN.md asks for.
        The scale is always the data's, never the counterfactual column's: with
        ``at={"x": 2.3}`` that column is constant, its spread rounding noise (~1e-16),
        and a step of that size would difference away to zero or garbage.
        """
        x = self.data[name].to_numpy(dtype=np.float64)
        scale = float(np.std(x)) if x.size else 0.0
        magnitude = max(float(np.max(np.abs(x), initial=0.0)), 1.0)
        if not np.isfinite(scale) or scale <= 1e-8 * magnitude:  # constant in the data
            scale = magnitude
        return 1e-5 * scale
