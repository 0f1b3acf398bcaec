"""Adapters from fitted statsmodels models to what the margins need.

``adapter_for(fit)`` picks the adapter for a fit's model class; pass one explicitly
(``Margins(fit, adapter=...)``) for the array interface, which needs ``training_data``.
"""

from __future__ import annotations

from typing import Any

from .._errors import MarginsTypeError
from ._base import ModelAdapter, StatsmodelsAdapter
from .discrete import StatsmodelsDiscreteAdapter
from .glm import StatsmodelsGLMAdapter
from .linear import StatsmodelsOLSAdapter
from .mixedlm import StatsmodelsMixedLMAdapter

__all__ = [
    "ModelAdapter",
    "StatsmodelsAdapter",
    "StatsmodelsDiscreteAdapter",
    "StatsmodelsGLMAdapter",
    "StatsmodelsMixedLMAdapter",
    "StatsmodelsOLSAdapter",
    "adapter_for",
    "supported_models",
]

_REGISTRY: tuple[type[StatsmodelsAdapter], ...] = (
    StatsmodelsMixedLMAdapter,
    StatsmodelsOLSAdapter,
    StatsmodelsGLMAdapter,
    StatsmodelsDiscreteAdapter,
)


def supported_models() -> list[str]:
    """Names of the statsmodels model classes that have an adapter."""
    return [name for cls in _REGISTRY for name in cls.model_names]


def adapter_for(fit: Any) -> StatsmodelsAdapter:
    """Return the adapter for a fitted statsmodels model.

    Raises
    ------
    TypeError
        If ``fit`` is not a fitted results object or its model class is not supported.
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
    for cls in _REGISTRY:
        if name in cls.model_names:
            return cls(fit)
    raise MarginsTypeError(
        f"fit: {name} models are not supported; supported model classes are "
        + ", ".join(supported_models())
    )
