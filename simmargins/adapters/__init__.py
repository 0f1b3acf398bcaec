"""Adapters from fitted statsmodels models to what the margins need.

``adapter_for(fit, training_data=None)`` picks the adapter for a fit's model class (so
does ``StatsmodelsAdapter(fit, ...)`` built directly); array-interface fits need
``training_data``, which ``Margins(fit, training_data=df)`` passes on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ._base import ModelAdapter, StatsmodelsAdapter, adapter_class, supported_models
from .bayes_blup import BayesBLUPAdapter
from .bayes_mixed import BayesIntegratedAdapter, StatsmodelsBayesMixedGLMAdapter
from .blup import StatsmodelsBLUPAdapter
from .discrete import StatsmodelsDiscreteAdapter
from .gee import StatsmodelsGEEAdapter
from .glm import StatsmodelsGLMAdapter
from .linear import StatsmodelsOLSAdapter
from .mixedlm import StatsmodelsMixedLMAdapter
from .multinomial import StatsmodelsMNLogitAdapter, StatsmodelsOrderedModelAdapter

__all__ = [
    "BayesBLUPAdapter",
    "BayesIntegratedAdapter",
    "ModelAdapter",
    "StatsmodelsAdapter",
    "StatsmodelsBLUPAdapter",
    "StatsmodelsBayesMixedGLMAdapter",
    "StatsmodelsDiscreteAdapter",
    "StatsmodelsGEEAdapter",
    "StatsmodelsGLMAdapter",
    "StatsmodelsMNLogitAdapter",
    "StatsmodelsMixedLMAdapter",
    "StatsmodelsOLSAdapter",
    "StatsmodelsOrderedModelAdapter",
    "adapter_class",
    "adapter_for",
    "supported_models",
]

def adapter_for(fit: Any, training_data: pd.DataFrame | None = None) -> StatsmodelsAdapter:
    """Return the adapter for a fitted statsmodels model, chosen by its model class.

    Parameters
    ----------
    fit : statsmodels results
        The fitted model.
    training_data : pandas.DataFrame, optional
        The rows the model was fitted on; required for array-interface fits.

    Raises
    ------
    TypeError
        If ``fit`` is not a fitted results object or its model class is not supported.
    """
    return adapter_class(fit)(fit, training_data)
