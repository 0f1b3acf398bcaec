"""Hypothesis tests and arithmetic on results, as methods of MarginsResult (a mixin).

The logic lives in :mod:`.hypotheses` and :mod:`.combination`; this keeps ``result.py``
to the result itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hypotheses import HypothesisTest
    from .result import MarginsResult


class ResultAlgebra:
    """``test``, ``lincom`` and ``+ − ×`` for :class:`~simmargins.MarginsResult`."""

    def test(
        self,
        *quantities: Any,
        equal: bool = False,
        weights: Any = None,
        value: Any = None,
        equivalence: Any = None,
    ) -> HypothesisTest:
        """Test H0: Rθ = r by the delta method and the draws (headline: the result's method).

        What R is:

        - ``res.test("x")``: θ_x = 0; ``res.test("x", "z")`` (or a list; labels or
          positions): θ_x = θ_z = 0 jointly; ``res.test()``: all labels jointly.
        - ``res.test("prof", "manager", equal=True)``: θ_prof = θ_manager; with k
          quantities, all equal (the first minus each other one, jointly).
        - ``weights=``: any linear combinations — a dict ``{label: weight}``, a list of
          them, a Series, a DataFrame with label columns (one row per restriction), or
          numbers: a vector or matrix over the named quantities (all labels when none).
        - ``value``: r, one number or one per restriction (default 0).
        - ``equivalence=(lo, hi)``: TOST instead, H0: Rθ ≤ lo or Rθ ≥ hi; p is the larger
          one-sided p-value and p < α exactly when the route's interval at level 1 − 2α
          lies inside (lo, hi).

        One restriction is tested as the table would test Rθ − r (delta: Wald; draws:
        the result's interval kind). Several jointly: the delta Wald χ² with covariance
        R G V̂ Gᵀ Rᵀ; from the draws, the share of draws at least as far (Mahalanobis, the
        draws' covariance) from the draws' mean as r is. See :mod:`.hypotheses`.
        """
        from .hypotheses import hypothesis_test

        return hypothesis_test(self._as_result(), quantities, equal, weights, value, equivalence)

    def lincom(self, weights: Any, labels: Sequence[str] | None = None) -> MarginsResult:
        """Linear combinations Rθ as a result: draws R·draws, gradient R·G, estimate Rθ̂.

        ``weights`` as for :meth:`test`. κ is 0 when every quantity used is linear in β,
        otherwise NaN (the Hessians are not kept) with an upper bound in the Dataset's
        ``kappa_bound``.
        """
        from .combination import as_stack, linear
        from .hypotheses import restrictions

        res = self._as_result()
        R = restrictions(res.labels, (), False, weights)
        if labels is not None and len(list(labels)) != R.shape[0]:
            from .._errors import MarginsValueError

            raise MarginsValueError(
                f"labels: expected {R.shape[0]} names (one per row of weights), got {labels!r}"
            )
        return linear(as_stack([res], "result"), R, None if labels is None else list(labels))

    def _as_result(self) -> MarginsResult:
        return self  # type: ignore[return-value]

    def __add__(self, other: Any) -> MarginsResult:
        from .combination import arithmetic

        return arithmetic(self, other, "+")

    def __sub__(self, other: Any) -> MarginsResult:
        from .combination import arithmetic

        return arithmetic(self, other, "-")

    def __mul__(self, other: Any) -> MarginsResult:
        from .combination import arithmetic

        return arithmetic(self, other, "*")

    __rmul__ = __mul__

    def __neg__(self) -> MarginsResult:
        return self.__mul__(-1.0)
