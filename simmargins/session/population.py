"""The rows a verb averages over: the fit's data by default, or a frame the user gives
(``newdata=``, post-stratification) checked against the fit's formula."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.design import CounterfactualData


@dataclass
class Population:
    """Rows to average over, their analysis weights and where both came from."""

    cf: CounterfactualData
    data: pd.DataFrame
    weights: np.ndarray
    source: str | None = None  # None: the fit's own rows
