"""What GLMs and the discrete models share: an inverse link, offsets and exposures.

Offsets and exposures
---------------------
statsmodels keeps a model's ``offset=`` and ``exposure=`` as arrays aligned to the rows it
fitted (``model.offset``; ``model.exposure`` holds log exposure), not as column names. The
adapter copies them into hidden columns of its ``data`` (names in
``simmargins.engine.design.OFFSET_SETTINGS``), so every row, and every subset of rows, carries its
own offset and exposure, and ``offset(frame)`` returns offset + log(exposure) read from
those columns. A setting ``{"offset": o}`` or ``{"exposure": t}`` in ``at``, ``atexog`` or a
scenario overwrites the column for all rows; a model variable of the same name takes
precedence over the reserved key.

Rows are recovered and checked against the fit's own design in the shared base adapter.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsValueError, SeparationWarning
from ..engine.design import OFFSET_SETTINGS
from ..engine.links import InverseLink
from ._base import StatsmodelsAdapter


class GLMLikeAdapter(StatsmodelsAdapter):
    """Base of the GLM and discrete adapters: link, offset/exposure and a row check.

    Subclasses say which inverse link the fit uses through ``_inverse_link``.
    """

    def __init__(self, fit: Any, training_data: pd.DataFrame | None = None) -> None:
        super().__init__(fit, training_data)
        self.link = self._inverse_link()
        self._offset_parts: tuple[str, ...] = self._attach_offsets()
        self._check_separation()

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

    # -- separation -----------------------------------------------------------------------
    def _check_separation(self) -> None:
        """Warn when a binary-outcome fit puts rows at probability 0 or 1.

        Under (quasi-)complete separation the likelihood has no finite maximum: some
        coefficients run off towards infinity and their SEs are huge and meaningless, so
        neither the delta method nor draws from N(β̂, V̂) describe the uncertainty.
        """
        if self.link.name not in ("logit", "probit", "cloglog", "loglog", "cauchy"):
            return
        endog = np.asarray(self.model.endog, dtype=np.float64)
        if not np.all((endog == 0) | (endog == 1)):
            return
        X = np.asarray(self.model.exog, dtype=np.float64)
        off = self.offset(self.data)
        eta = X @ self.params + (0.0 if off is None else off)
        p = self.link.h(eta)
        stuck = (p < 1e-8) | (p > 1 - 1e-8)
        if stuck.any():
            se = np.sqrt(np.clip(np.diag(self.cov), 0, None))
            worst = self.coef_names[int(np.argmax(se))]
            warnings.warn(
                f"fit: the {self.model_class} looks perfectly separated: {int(stuck.sum())} "
                f"rows have fitted probabilities within 1e-8 of 0 or 1 and the largest SE is "
                f"{se.max():.3g} ({worst!r}); its SEs, and every interval built on them, are "
                "not to be trusted — consider penalised (e.g. Firth) or exact methods",
                SeparationWarning,
                stacklevel=4,
            )
