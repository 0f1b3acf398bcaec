"""The adapter protocol and the machinery shared by every statsmodels adapter.

An adapter turns a fitted model into what the margins need and nothing more: coefficient
names, β̂ and V̂ aligned by name, the data rows the fit used, ``design(frame)`` built
through the fit's own formula spec (or, for the array interface, by column name), the
inverse link, and the offset.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from ..engine.formula import (
    Variable,
    build_design,
    formula_spec,
    frame_variables,
    spec_column_names,
    spec_variables,
)
from ..engine.links import IDENTITY_LINK, InverseLink
from ..resampling.problem import RefitProblem

_CONSTANT_NAMES = ("const", "Intercept", "intercept")


# rows per block of the rebuild check: a block of a 30-column design is 15 MiB
_CHECK_ROWS = 1 << 16


@runtime_checkable
class ModelAdapter(Protocol):
    """What :class:`simmargins.Margins` needs from a fitted model."""

    coef_names: tuple[str, ...]
    params: np.ndarray
    cov: np.ndarray
    data: pd.DataFrame
    variables: dict[str, Variable]
    link: InverseLink
    model_class: str
    formula: str | None

    def design(self, frame: pd.DataFrame) -> np.ndarray: ...

    def offset(self, frame: pd.DataFrame) -> np.ndarray | None: ...


def _fe_names_and_values(params: Any, names: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    if isinstance(params, pd.Series):
        return tuple(str(i) for i in params.index), params.to_numpy(dtype=np.float64)
    return tuple(names), np.asarray(params, dtype=np.float64)


def align_cov(cov: Any, names: tuple[str, ...], k_total: int | None = None) -> np.ndarray:
    """The block of ``cov`` for ``names``, aligned by name (never by position alone).

    MixedLM's ``cov_params()`` also holds the variance parameters, so taking the leading
    K×K block by position would only be right by accident of ordering.
    """
    if isinstance(cov, pd.DataFrame):
        missing = [n for n in names if n not in cov.index or n not in cov.columns]
        if missing:
            raise MarginsValueError(
                "the covariance matrix lacks rows/columns for coefficients "
                f"{missing}; its labels are {list(cov.index)}"
            )
        out = cov.loc[list(names), list(names)].to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(cov, dtype=np.float64)
        k = len(names)
        if arr.ndim != 2 or arr.shape[0] < k or arr.shape[0] != arr.shape[1]:
            raise MarginsValueError(
                f"the covariance matrix has shape {arr.shape}; expected at least {k}×{k}"
            )
        out = arr[:k, :k]
    return np.ascontiguousarray((out + out.T) / 2.0)


def _concrete_adapters(root: type[StatsmodelsAdapter]) -> list[type[StatsmodelsAdapter]]:
    """Every subclass of ``root`` (at any depth) that names the model classes it handles."""
    out: list[type[StatsmodelsAdapter]] = []
    sub: type[StatsmodelsAdapter]
    for sub in root.__subclasses__():
        if getattr(sub, "model_names", ()):
            out.append(sub)
        out.extend(_concrete_adapters(sub))
    return out


def supported_models() -> list[str]:
    """Names of the statsmodels model classes that have an adapter."""
    return sorted({n for cls in _concrete_adapters(StatsmodelsAdapter) for n in cls.model_names})


def adapter_class(fit: Any) -> type[StatsmodelsAdapter]:
    """The adapter class for a fitted statsmodels model, chosen by its model class.

    Raises
    ------
    TypeError
        If ``fit`` is not a fitted results object or its model class has no adapter.
    """
    model = getattr(fit, "model", None)
    if model is None or not hasattr(fit, "params"):
        hint = (
            " (it looks like an unfitted model; call .fit() first)"
            if hasattr(fit, "fit") and hasattr(fit, "endog")
            else ""
        )
        raise MarginsTypeError(
            f"fit: expected a fitted statsmodels results object, got {type(fit).__name__}{hint}"
        )
    name = type(model).__name__
    for cls in _concrete_adapters(StatsmodelsAdapter):
        if name in cls.model_names:
            return cls
    raise MarginsTypeError(
        f"fit: {type(model).__module__}.{name} models are not supported; supported model "
        "classes are " + ", ".join(supported_models())
    )


class StatsmodelsAdapter:
    """Shared logic: formula fits use the spec; array fits need ``training_data``.

    Parameters
    ----------
    fit : statsmodels results object
        A fitted model (the object ``.fit()`` returns).
    training_data : pandas.DataFrame, optional
        The rows the model was fitted on. Required for the array interface; for formula
        fits it defaults to the frame statsmodels kept, minus the rows it dropped.
    """

    model_names: tuple[str, ...] = ()

    def __new__(cls, fit: Any, training_data: pd.DataFrame | None = None) -> StatsmodelsAdapter:
        # The shared base knows no link: built directly, it would average X·β on the
        # linear scale for a Logit and call that a probability. Hand the fit to the
        # adapter of its model class instead (Python then runs that class's __init__).
        if cls is StatsmodelsAdapter or not cls.model_names:
            cls = adapter_class(fit)
        return super().__new__(cls)

    def __init__(self, fit: Any, training_data: pd.DataFrame | None = None) -> None:
        model = getattr(fit, "model", None)
        if model is None or not hasattr(fit, "params"):
            raise MarginsTypeError(
                f"fit: expected a fitted statsmodels results object, got {type(fit).__name__}; "
                "call .fit() on the model first"
            )
        if self.model_names and type(model).__name__ not in self.model_names:
            raise MarginsTypeError(
                f"fit: {type(self).__name__} handles {', '.join(self.model_names)} fits, "
                f"got {type(model).__name__}"
            )
        if training_data is not None and not isinstance(training_data, pd.DataFrame):
            raise MarginsTypeError(
                f"training_data: expected a pandas DataFrame, got {type(training_data).__name__}"
            )
        self.fit = fit
        self.model = model
        self.model_class = type(model).__name__
        self.formula: str | None = self._model_formula()
        self._spec = formula_spec(model) if self.formula is not None else None
        names, values = _fe_names_and_values(self._fe_params(), list(model.exog_names))
        self.coef_names = names
        self.params = values
        self._check_all_params_finite()
        try:
            cov = self._cov_params()
        except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. a singular Hessian
            raise MarginsValueError(
                f"fit: the {self.model_class} fit did not produce finite estimates: statsmodels "
                f"cannot give the covariance of its parameters ({exc}); refit before "
                "computing margins"
            ) from exc
        self.cov = align_cov(cov, names)
        check_finite_fit(self)
        self.link: InverseLink = IDENTITY_LINK
        self.data = self._recover_data(training_data)
        if self._spec is not None:
            spec_names = spec_column_names(self._spec)
            if spec_names != list(names):
                raise MarginsValueError(
                    f"the formula spec's columns {spec_names} do not match the coefficients "
                    f"{list(names)}"
                )
            self.variables = spec_variables(self._spec, list(self.data.columns), self.data)
        else:
            self._check_array_columns()
            used = [n for n in names if n in self.data.columns]
            self.variables = frame_variables(self.data, used)
        self._check_values()
        self._check_rows()

    def _check_all_params_finite(self) -> None:
        """Every parameter, not only the fixed effects: a NegativeBinomial whose alpha ran
        off to infinity has diverged even when its exog coefficients look finite."""
        raw = self.fit.params
        labels = [str(i) for i in raw.index] if isinstance(raw, pd.Series) else None
        arr = np.asarray(raw, dtype=np.float64).ravel()
        bad = ~np.isfinite(arr)
        if bad.any():
            which = [labels[i] if labels else f"#{i}" for i in np.flatnonzero(bad)]
            raise MarginsValueError(
                f"fit: the {self.model_class} fit did not produce finite estimates (parameters "
                f"{which} are NaN or infinite); the optimiser most likely diverged — refit "
                "(other start values, another method=, more iterations, or a simpler model) "
                "before computing margins"
            )

    # -- hooks a family overrides -------------------------------------------------------
    def _model_formula(self) -> str | None:
        """The formula the model was built from (None: the array interface)."""
        return getattr(self.model, "formula", None)

    def _fe_params(self) -> Any:
        return self.fit.params

    def _cov_params(self) -> Any:
        return self.fit.cov_params()

    # -- data ---------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        return len(self.data)

    def _recover_data(self, training_data: pd.DataFrame | None) -> pd.DataFrame:
        try:
            return self._recover_rows(training_data)
        except MarginsValueError as exc:
            if training_data is None:
                raise
            # an array fit on pre-cleaned data, given the uncleaned frame: drop the rows with
            # missing values in the model's columns (the design check confirms the match)
            names = self.model.endog_names
            endog = [names] if isinstance(names, str) else list(names or [])
            cols = [c for c in [*self.coef_names, *endog] if c in training_data.columns]
            complete = training_data.dropna(subset=cols) if cols else training_data
            n_fit = int(self.model.endog.shape[0])
            if len(complete) != n_fit:
                raise MarginsValueError(
                    f"{exc}; dropping the rows with missing values in the model's columns "
                    f"{cols} leaves {len(complete)} rows, which does not match either"
                ) from None
            return complete.reset_index(drop=True)

    def _check_values(self) -> None:
        """NaN or infinite values in a variable the model uses: name the column."""
        for name, var in self.variables.items():
            col = self.data[name]
            bad = col.isna().to_numpy().copy()
            if not var.categorical and pd.api.types.is_numeric_dtype(col):
                bad |= ~np.isfinite(col.to_numpy(dtype=np.float64, na_value=np.nan))
            if bad.any():
                raise MarginsValueError(
                    f"training_data: column {name!r} has {int(bad.sum())} missing or infinite "
                    f"values (first at row {int(np.flatnonzero(bad)[0])}) among the rows the "
                    "fit used; pass the rows the model was fitted on, without missing values"
                )

    def _check_rows(self) -> None:
        """The recovered rows must rebuild the fit's own design matrix, row for row.

        Built and compared in blocks of rows, so the check holds one block of the rebuild
        at a time (a 1,000,000 × 30 design compared at once needed four copies of it).
        When every block equals the fit's ``exog`` bit for bit, ``exog`` is the rows'
        design: :meth:`fitted_design` hands it to the margins instead of a rebuild.
        """
        exog = np.asarray(self.model.exog, dtype=np.float64)
        n = len(self.data)
        if n != exog.shape[0]:
            raise MarginsValueError(
                f"training_data: {n} rows recovered but the fit's design has "
                f"{exog.shape[0]}; pass the rows the model was fitted on"
            )
        identical = True
        for r0 in range(0, max(n, 1), _CHECK_ROWS):
            rows = self.data.iloc[r0 : r0 + _CHECK_ROWS]
            try:
                X = self.design(rows)
            except MarginsValueError as exc:
                raise MarginsValueError(
                    f"training_data: the design cannot be rebuilt from the rows recovered for "
                    f"this {self.model_class} ({exc}); pass the rows the model was fitted on"
                ) from exc
            part = exog[r0 : r0 + len(rows)]
            if X.shape != part.shape:
                raise MarginsValueError(
                    f"training_data: the rebuilt design has {X.shape[1]} columns but the "
                    f"fit's has {exog.shape[1]}; pass the rows the model was fitted on"
                )
            if np.array_equal(X, part):
                continue
            identical = False
            bad = ~(np.abs(X - part) <= 1e-8 * (1.0 + np.abs(part)))  # NaN counts as a mismatch
            if bad.any():
                row, col = (int(i[0]) for i in np.nonzero(bad))
                raise MarginsValueError(
                    f"training_data: these rows are not the rows the {self.model_class} was "
                    f"fitted on: row {r0 + row} gives {self.coef_names[col]}={X[row, col]!r} "
                    f"where the fit had {part[row, col]!r}; pass the rows the model used, in "
                    "the same order, after dropping rows with missing values"
                )
        contiguous = exog.flags.c_contiguous or exog.flags.f_contiguous
        self._fitted_design = exog if identical and contiguous else None

    def fitted_design(self) -> np.ndarray | None:
        """The design of the adapter's own rows when the fit's ``exog`` is exactly their
        rebuild (checked when the adapter was made), else None: the margins then take it as
        the base design instead of building a second copy."""
        return getattr(self, "_fitted_design", None)

    def _recover_rows(self, training_data: pd.DataFrame | None) -> pd.DataFrame:
        n_fit = int(self.model.endog.shape[0])
        frame = training_data
        from_model = False
        if frame is None:
            frame = getattr(self.model.data, "frame", None)
            from_model = True
        if frame is None:
            raise MarginsValueError(
                f"training_data: this {self.model_class} was fitted through the array "
                "interface, so its data cannot be recovered; pass the DataFrame it was "
                "fitted on as training_data="
            )
        missing_idx = getattr(self.model.data, "missing_row_idx", None)
        if len(frame) != n_fit and missing_idx is not None and len(missing_idx) > 0:
            keep = np.ones(len(frame), dtype=bool)
            keep[np.asarray(missing_idx, dtype=np.intp)] = False
            frame = frame.loc[keep]
        if len(frame) != n_fit:
            source = "the model's data" if from_model else "training_data"
            raise MarginsValueError(
                f"training_data: {source} has {len(frame)} rows but the fit used {n_fit}; "
                "pass exactly the rows the model was fitted on (after dropping missing values)"
            )
        return frame.reset_index(drop=True)

    def _check_array_columns(self) -> None:
        absent = [
            n for n in self.coef_names if n not in self.data.columns and n not in _CONSTANT_NAMES
        ]
        if absent:
            raise MarginsValueError(
                f"training_data: the model's exog columns {absent} are not columns of "
                f"training_data (its columns: {list(self.data.columns)}); name the exog "
                "columns as in the data or pass a DataFrame that has them"
            )

    # -- pickling (a dask.distributed worker gets the session's adapter) -------------------
    def __getstate__(self) -> dict[str, Any]:
        # patsy's DesignInfo refuses pickling; statsmodels' own results restore their spec
        # on unpickling, so the adapter takes it from the fit again (formula_spec)
        state = dict(self.__dict__)
        state["_spec"] = None
        state["_spec_from_fit"] = self._spec is not None
        return state

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self.fit,)  # __new__ takes the fit (it picks the class from it)

    def __setstate__(self, state: dict[str, Any]) -> None:
        from_fit = state.pop("_spec_from_fit", False)
        self.__dict__.update(state)
        if from_fit:
            self._spec = formula_spec(self.fit.model)

    # -- what the margins use -------------------------------------------------------------
    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """Design matrix of ``frame`` (same columns, same order as the coefficients)."""
        if self._spec is not None:
            return build_design(self._spec, frame)
        cols = []
        for name in self.coef_names:
            if name in frame.columns:
                cols.append(frame[name].to_numpy(dtype=np.float64))
            else:  # a constant column added by add_constant
                cols.append(np.ones(len(frame), dtype=np.float64))
        return np.ascontiguousarray(np.column_stack(cols))

    def offset(self, frame: pd.DataFrame) -> np.ndarray | None:
        return None

    # -- bootstrap ------------------------------------------------------------------------
    #: optimisers tried in turn for a replicate ("" = the model's only fitting route)
    refit_chain: tuple[str, ...] = ("",)
    _NOT_ROW_ARGS = frozenset({"formula", "model_spec", "design_info", "missing_idx", "missing"})

    def refit_problem(self, clusters: np.ndarray | None, warm: bool = True) -> RefitProblem:
        """Everything a bootstrap replicate needs to refit this model's specification.

        The replicate refits on the fit's own design rows (endog, exog and every
        row-aligned constructor argument such as weights, offset, exposure), so the
        coefficients keep their meaning and are pushed through the original data.
        """
        model = self.model
        n = int(model.endog.shape[0])
        row_arrays: dict[str, np.ndarray] = {}
        init: dict[str, Any] = {"missing": "none"}
        for key, value in model._get_init_kwds().items():
            if key in self._NOT_ROW_ARGS or value is None:
                continue
            if isinstance(value, (np.ndarray, pd.Series)) and value.ndim >= 1 and len(value) == n:
                row_arrays[key] = np.asarray(value)
            else:
                init[key] = value
        names = list(self.fit.params.index) if isinstance(self.fit.params, pd.Series) else None
        positions = (
            np.array([names.index(c) for c in self.coef_names])
            if names is not None
            else np.arange(len(self.coef_names))
        )
        needs_start = self.refit_chain != ("",)
        return RefitProblem(
            model_cls=type(model),
            endog=np.asarray(model.endog, dtype=np.float64),
            exog=np.asarray(model.exog, dtype=np.float64),
            row_arrays=row_arrays,
            init_kwargs=init,
            fit_kwargs={},
            chain=self.refit_chain,
            start_params=np.asarray(self.fit.params, dtype=float)
            if (warm and needs_start)
            else None,
            fe_positions=positions,
            clusters=clusters,
        )


def check_finite_fit(adapter: Any) -> None:
    """Refuse a fit whose fixed effects or their covariance hold NaN or inf.

    A diverged optimiser (statsmodels' default NegativeBinomial fit of ``cpunish``, say)
    leaves non-finite estimates that would otherwise surface as an SVD failure deep
    inside the first verb.
    """
    names = adapter.coef_names
    bad_params = [n for n, v in zip(names, adapter.params, strict=True) if not np.isfinite(v)]
    cov = np.asarray(adapter.cov)
    bad_cov = [
        n for n, row in zip(adapter.coef_names, cov, strict=True) if not np.all(np.isfinite(row))
    ]
    if bad_params or bad_cov:
        what = []
        if bad_params:
            what.append(f"non-finite estimates for {bad_params}")
        if bad_cov:
            what.append(f"a covariance with NaN or inf in the rows of {bad_cov}")
        raise MarginsValueError(
            f"fit: the {adapter.model_class} fit did not produce finite estimates ("
            + "; ".join(what)
            + "); the optimiser most likely diverged — refit (other start values, another "
            "method=, more iterations, or a simpler model) before computing margins"
        )
