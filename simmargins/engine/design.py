"""Counterfactual design matrices: the data with a scenario's columns set, through the spec.

Settings from ``at`` apply first, then the scenario's, then any finite-difference
perturbation, so with ``at={"x": 1}`` the AME of ``x`` is the slope at x = 1.

Only what a scenario changes is rebuilt. The base design (the data with the ``at``
settings) is built once through the fit's formula spec; a scenario rebuilds just the terms
whose factors read a variable it sets or steps, through the same spec restricted to those
terms (``formula.term_columns``: fit-time levels, codings and stateful-transform state
kept), and splices them into a copy of the base. Terms made only of categorical factors
whose variables are all set to one value are built on one row and broadcast. Categorical
string and bool columns read only as ``x`` or ``C(x, ...)`` are handed to patsy as pandas
categoricals with the fit-time levels, which patsy encodes from their integer codes instead
of element by element. Whatever the spec does not let us read this way is rebuilt in full.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from .._validate import check_variable
from .formula import (
    TermColumns,
    Variable,
    patsy_categoricals,
    spec_column_names,
    spec_terms,
    term_columns,
)
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


@dataclass(frozen=True)
class ScenarioUpdate:
    """A scenario as new values of some columns of the base design, by kind of change.

    Each column appears under one kind. Applied to a block of base rows starting at row
    ``r0``: constant columns are set, shifted columns moved by their step, varying columns
    copied from ``vary_vals`` (rows × ``vary_cols``).
    """

    const_cols: np.ndarray  # intp
    const_vals: np.ndarray  # one value per constant column
    shift_cols: np.ndarray  # intp
    shift_vals: np.ndarray  # one step per shifted column
    vary_cols: np.ndarray  # intp
    vary_vals: np.ndarray  # (rows, vary_cols)
    offset: np.ndarray | None

    @property
    def columns(self) -> np.ndarray:
        return np.concatenate([self.vary_cols, self.const_cols, self.shift_cols])

    def apply(self, X: np.ndarray, r0: int, cols: np.ndarray | None = None) -> None:
        """Turn ``X`` (base rows r0:r0+len(X)) into the scenario's rows, in place. With
        ``cols``, X holds only those columns of the design, in that order."""
        rows = slice(r0, r0 + X.shape[0])

        def where(c: np.ndarray) -> np.ndarray:
            if cols is None:
                return c
            return np.asarray([int(np.flatnonzero(cols == j)[0]) for j in c], dtype=np.intp)

        if self.vary_cols.size:
            X[:, where(self.vary_cols)] = self.vary_vals[rows]
        if self.const_cols.size:
            X[:, where(self.const_cols)] = self.const_vals
        if self.shift_cols.size:
            X[:, where(self.shift_cols)] += self.shift_vals


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
    # the fit's formula spec, through which design_fn builds; by default the spec of the
    # adapter owning design_fn. None (an array fit) → every scenario is built in full
    spec: Any = None
    _terms: list[TermColumns] | None = field(default=None, init=False, repr=False)
    _coded: pd.DataFrame | None = field(default=None, init=False, repr=False)
    _base: tuple[np.ndarray, Any] | None = field(default=None, init=False, repr=False)
    _subspecs: dict[tuple[int, ...], Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.offset_keys is None:
            owner = getattr(self.offset_fn, "__self__", None)
            self.offset_keys = tuple(getattr(owner, "offset_keys", ()))
        if self.spec is None:
            self.spec = getattr(getattr(self.design_fn, "__self__", None), "_spec", None)
        if self.spec is not None:
            self._terms = spec_terms(self.spec, list(self.data.columns))
        self._coded = self.data
        if self._terms is not None:
            self._coded = patsy_categoricals(self.spec, self.data)

    def __getstate__(self) -> dict[str, Any]:
        # the spec and its terms are patsy objects, which refuse pickling: rebuilt from the
        # adapter owning design_fn (itself restored from its fit) when unpickled
        state = dict(self.__dict__)
        state["_spec_from_owner"] = self.spec is not None and self.spec is getattr(
            getattr(self.design_fn, "__self__", None), "_spec", None
        )
        if state["_spec_from_owner"]:
            state.update(spec=None, _terms=None, _subspecs={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from_owner = state.pop("_spec_from_owner", False)
        self.__dict__.update(state)
        if from_owner:
            spec = getattr(self.design_fn, "__self__", None)._spec  # type: ignore[union-attr]
            object.__setattr__(self, "spec", spec)
            terms = spec_terms(spec, list(self.data.columns)) if spec is not None else None
            object.__setattr__(self, "_terms", terms)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("base_values", "data"):
            object.__setattr__(self, "_base", None)  # the base design follows the settings
        if name == "data":
            object.__setattr__(self, "_coded", value)
        object.__setattr__(self, name, value)

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
        return self._frame(self.data, setting)

    def _frame(self, data: pd.DataFrame, setting: Setting) -> pd.DataFrame:
        df = data.copy(deep=False)
        n = len(df)
        for name, value in [*self.base_values.items(), *setting.values]:
            if name in OFFSET_SETTINGS and name not in self.variables:
                df[OFFSET_SETTINGS[name]] = np.full(n, float(value))
                continue
            col = df[name]
            value = self._level(name, value)
            if isinstance(col.dtype, pd.CategoricalDtype):
                cats = list(col.cat.categories)
                if value in cats:
                    codes = np.full(n, cats.index(value), dtype=np.int64)
                    df[name] = pd.Categorical.from_codes(codes, dtype=col.dtype)
                else:
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
        probe = CounterfactualData(
            rows, self.variables, self.design_fn, self.offset_fn, spec=self.spec
        )
        probe.base_values = self.base_values
        try:
            for s in (step, -step):
                probe.design(Setting(perturb=(name, s)))
        except MarginsValueError:
            return True
        return False

    def design(self, setting: Setting) -> tuple[np.ndarray, np.ndarray | None]:
        """The design and offset of every row under ``setting``.

        Equal to ``design_fn(frame(setting))`` (a full rebuild through the fit's spec): the
        base design with the columns of the terms ``setting`` touches rebuilt.
        """
        update = self.scenario_update(setting)
        if update is None:
            frame = self._frame(self._coded_data(), setting)
            return self.design_fn(frame), self.offset_fn(frame)
        X = self.base_design()[0].copy()
        update.apply(X, 0)
        return X, update.offset

    def full_design(self, setting: Setting) -> tuple[np.ndarray, np.ndarray | None]:
        """The straightforward route: the whole design rebuilt through ``design_fn``."""
        frame = self.frame(setting)
        return self.design_fn(frame), self.offset_fn(frame)

    def _coded_data(self) -> pd.DataFrame:
        return self.data if self._coded is None else self._coded

    def base_design(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Design and offset of the rows with the ``at`` settings only; built once."""
        if self._base is None:
            frame = self._frame(self._coded_data(), Setting())
            owner = getattr(self.design_fn, "__self__", None)
            fitted = getattr(owner, "fitted_design", lambda: None)()
            same_rows = owner is not None and self.data is getattr(owner, "data", None)
            if fitted is not None and not self.base_values and same_rows:
                X = fitted.view()  # the fit's exog is exactly these rows' design: no copy
                X.flags.writeable = False  # (and nothing here may write into the fit)
            else:
                X = self.design_fn(frame)
            if self._terms is not None and X.shape[1] != len(spec_column_names(self.spec)):
                object.__setattr__(self, "_terms", None)  # design_fn is not the spec's
            object.__setattr__(self, "_base", (X, self.offset_fn(frame)))
        assert self._base is not None
        return self._base

    def design_update(
        self, setting: Setting
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """The scenario as a low-rank change of ``base_design()``: (column indices, their
        new values (rows × columns), the offset); None when only a full rebuild will do."""
        update = self.scenario_update(setting)
        if update is None:
            return None
        cols = update.columns
        X0 = self.base_design()[0]
        values = np.empty((X0.shape[0], cols.size))
        values[:] = X0[:, cols]
        update.apply(values, 0, cols)
        return cols, values, update.offset

    def scenario_update(self, setting: Setting) -> ScenarioUpdate | None:
        """The scenario as a change of some columns of ``base_design()``, by kind of change
        (so that the kernels never hold rows × columns for the first two kinds):

        * columns set to one value in every row: the terms all of whose variables the
          settings fix to one value (built on one row through the spec);
        * columns moved by the same step in every row: a term that is a numeric variable
          itself (``x``, not ``I(x**2)`` or ``x:z``) when the setting steps that variable;
        * the rest of the terms the setting touches, rebuilt on every row.

        None when only a full rebuild will do (no spec, or a spec we cannot read by term).
        """
        terms = self._terms
        if terms is None:
            return None
        base_X = self.base_design()[0]
        if self._terms is None:
            return None
        n = base_X.shape[0]
        changed = {n_ for n_, _ in setting.values if n_ in self.variables}
        set_once = {*self.base_values, *(n_ for n_, _ in setting.values)}
        step: tuple[str, float] | None = None
        if setting.perturb is not None:
            name = setting.perturb[0]
            changed.add(name)
            if name not in set_once and not setting.clip:
                step = setting.perturb  # (a stepped constant stays one value: set_once)
        hit = [t for t in terms if t.variables is None or t.variables & changed]
        frame = self._frame(self._coded_data(), setting)
        offset = self.offset_fn(frame)
        shifted = [t for t in hit if step is not None and t.bare == step[0]]
        constant = [
            t for t in hit
            if t.variables is not None and t.variables <= set_once and t not in shifted
        ]  # fmt: skip
        varying = [t for t in hit if t not in constant and t not in shifted]
        empty = np.zeros(0, dtype=np.intp)

        def columns_of(group: list[TermColumns]) -> np.ndarray:
            return np.asarray([i for t in group for i in t.columns], dtype=np.intp)

        const_vals = np.zeros(0)
        if constant and n:
            const_vals = term_columns(self.spec, constant, frame.iloc[:1])[0].astype(np.float64)
        vary_vals = np.zeros((n, 0))
        if varying and n:
            vary_vals = np.ascontiguousarray(term_columns(self.spec, varying, frame), np.float64)
        return ScenarioUpdate(
            const_cols=columns_of(constant) if n else empty,
            const_vals=const_vals,
            shift_cols=columns_of(shifted),
            shift_vals=np.full(len(shifted), step[1] if step is not None else 0.0),
            vary_cols=columns_of(varying) if n else empty,
            vary_vals=vary_vals,
            offset=offset,
        )

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
