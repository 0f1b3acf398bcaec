"""What GLMs and the discrete models share: an inverse link, offsets and exposures.

Offsets and exposures
---------------------
statsmodels keeps a model's ``offset=`` and ``exposure=`` as arrays aligned to the rows it
fitted (``model.offset``; ``model.exposure`` holds log exposure), not as column names. The
adapter copies them into hidden columns of its ``data`` (names in
``simmargins._design.OFFSET_SETTINGS``), so every row, and every subset of rows, carries its
own offset and exposure, and ``offset(frame)`` returns offset + log(exposure) read from
those columns. A setting ``{"offset": o}`` or ``{"exposure": t}`` in ``at``, ``atexog`` or a
scenario overwrites the column for all rows; a model variable of the same name takes
precedence over the reserved key.

Rows
----
The margins average over the rows the fit used. After recovering them (dropping the rows
statsmodels dropped for missing values), the adapter rebuilds the design from those rows
and checks that it reproduces ``model.exog``; if not, the rows are not the fit's rows and
it says so rather than averaging over the wrong ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._design import OFFSET_SETTINGS
from .._errors import MarginsValueError
from .._links import InverseLink
from ._base import StatsmodelsAdapter


class GLMLikeAdapter(StatsmodelsAdapter):
    """Base of the GLM and discrete adapters: link, offset/exposure and a row check.

    Subclasses say which inverse link the fit uses through ``_inverse_link``.
    """

    def __init__(self, fit: Any, training_data: pd.DataFrame | None = None) -> None:
        super().__init__(fit, training_data)
        self.link = self._inverse_link()
        self._offset_parts: tuple[str, ...] = self._attach_offsets()
        self._check_rows()

    def _inverse_link(self) -> InverseLink:
        raise NotImplementedError

    # -- offsets ----------------------------------------------------------------------------
    def _attach_offsets(self) -> tuple[str, ...]:
        """Copy the model's offset and exposure into hidden columns of ``data``."""
        n = self.nobs
        log_exposure = getattr(self.model, "exposure", None)
        sources = {
            "offset": getattr(self.model, "offset", None),
            "exposure": None if log_exposure is None else np.exp(np.asarray(log_exposure)),
        }
        parts = []
        for key, values in sources.items():
            if values is None:
                continue
            arr = np.asarray(values, dtype=np.float64).ravel()
            if arr.shape[0] != n:
                raise MarginsValueError(
                    f"the model's {key} has {arr.shape[0]} values but the fit used {n} rows; "
                    f"refit with one {key} value per row of the data"
                )
            self.data[OFFSET_SETTINGS[key]] = arr
            parts.append(key)
        return tuple(parts)

    @property
    def offset_keys(self) -> tuple[str, ...]:
        """The reserved setting keys (``"offset"``, ``"exposure"``) this model accepts."""
        return tuple(k for k in self._offset_parts if k not in self.variables)

    def offset(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Each row's offset + log(exposure), read from the hidden columns of ``frame``.

        None when the model has neither, so the margins skip adding zeros.
        """
        total: np.ndarray | None = None
        for key in self._offset_parts:
            col = OFFSET_SETTINGS[key]
            if col not in frame.columns:
                raise MarginsValueError(
                    f"offset: this {self.model_class} was fitted with {key}=, and the frame has "
                    f"no {col!r} column holding each row's {key}; build frames from the "
                    "adapter's data so that rows keep their own values"
                )
            values = frame[col].to_numpy(dtype=np.float64)
            part = np.log(values) if key == "exposure" else values
            total = part if total is None else total + part
        return None if total is None else np.ascontiguousarray(total)

    # -- rows -------------------------------------------------------------------------------
    def _recover_data(self, training_data: pd.DataFrame | None) -> pd.DataFrame:
        try:
            return super()._recover_data(training_data)
        except MarginsValueError as exc:
            if training_data is None:
                raise
            # an array fit on pre-cleaned data, given the uncleaned frame: drop the rows with
            # missing values in the model's columns (the design check below confirms the match)
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

    def _check_rows(self) -> None:
        """The recovered rows must rebuild the fit's own design matrix, row for row."""
        exog = np.asarray(self.model.exog, dtype=np.float64)
        try:
            X = self.design(self.data)
        except MarginsValueError as exc:
            raise MarginsValueError(
                f"training_data: the design cannot be rebuilt from the rows recovered for "
                f"this {self.model_class} ({exc}); pass the rows the model was fitted on"
            ) from exc
        if X.shape != exog.shape:
            raise MarginsValueError(
                f"training_data: the rebuilt design has shape {X.shape} but the fit's has "
                f"{exog.shape}; pass the rows the model was fitted on"
            )
        tol = 1e-8 * (1.0 + np.abs(exog))
        bad = ~(np.abs(X - exog) <= tol)  # NaN counts as a mismatch
        if bad.any():
            row, col = (int(i[0]) for i in np.nonzero(bad))
            raise MarginsValueError(
                f"training_data: these rows are not the rows the {self.model_class} was fitted "
                f"on: row {row} gives {self.coef_names[col]}={X[row, col]!r} where the fit had "
                f"{exog[row, col]!r} ({int(bad.any(axis=1).sum())} rows differ); pass the rows "
                "the model used, in the same order, after dropping rows with missing values"
            )
