"""Cluster-specific predictions of a linear mixed model: the random effects as coefficients.

``Margins(fit, random_effects="blup")`` wraps the MixedLM adapter so that the coefficient
vector is θ = (β, u_1, …, u_G), u_g the q random effects of group g, and each row's design
is (x, its group's z in the group's block, zeros elsewhere): N × (K + G·q). Then X·θ is
x·β + z·u_g, the prediction that includes the row's cluster's random effects, and every verb
(predict, dydx, contrasts, ``by=``, draws, delta) works on it unchanged.

θ̂ = (β̂, û): statsmodels' ``fe_params`` and ``random_effects`` (checked against the BLUPs
of Henderson's mixed-model equations at the fitted variance parameters). The covariance is
that of θ̂ − θ, Henderson's σ²C⁻¹ with

    C = [[XᵀX, XᵀZ], [ZᵀX, ZᵀZ + σ²G⁻¹]],    G = I_G ⊗ Ψ,

computed at the fitted variance parameters (σ², Ψ) and treating them as known. It includes
the fixed effects' uncertainty (lme4's ``condVar``, the u-block conditional on β̂, omits
it and is smaller); its β-block is lme4's σ²(XᵀV⁻¹X)⁻¹, not statsmodels' ``cov_params()``.
C⁻¹ is formed blockwise through the Schur complement of the (block-diagonal) u-block, with
(ZᵀZ + σ²Ψ⁻¹)⁻¹ written as (ΨZᵀZ + σ²I)⁻¹Ψ so that a singular Ψ needs no inverse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import MarginsTypeError, MarginsValueError
from ..engine.formula import Variable
from ..engine.links import IDENTITY_LINK, InverseLink

#: refuse more random-effect coefficients than this (the design is dense: N × (K + G·q))
MAX_RANDOM_COEFS = 2000
#: and designs of more entries than this on the fit's rows (8 bytes each)
MAX_DESIGN_ENTRIES = 200_000_000
#: hidden data column holding each row's group when the group is not a data column
GROUP_COLUMN = "__simmargins_group__"


def _group_column(base: Any) -> tuple[str, bool]:
    """The data column holding the model's groups (name, hidden?).

    statsmodels keeps the groups (``model.groups``) but not the name of their column, so
    the column is found by its values, the names statsmodels put in ``exog_re_names``
    first; when no column matches, the groups go into a hidden column.
    """
    data, model = base.data, base.model
    groups = np.asarray(model.groups, dtype=object)
    names = [str(n) for n in getattr(model.data, "exog_re_names", None) or []]
    named = getattr(base, "group_column", None)
    order = [n for n in [named, *names] if n] + [str(c) for c in data.columns]
    for name in dict.fromkeys(order):
        if name in data.columns and name not in base.variables:
            col = np.asarray(data[name], dtype=object)
            if col.shape == groups.shape and bool(np.all(col == groups)):
                return name, False
    return GROUP_COLUMN, True


class RandomEffectsDesign:
    """The random-effects design z of counterfactual rows, rebuilt from their columns.

    Shared by the cluster-specific adapters (:class:`StatsmodelsBLUPAdapter` here and the
    new-cluster adapter); the host sets ``base``, ``model``, ``data`` and ``variables``.
    """

    base: Any
    model: Any
    data: pd.DataFrame
    variables: dict[str, Variable]
    _z_sources: list[tuple[str, str]]

    def _z_columns(self) -> list[tuple[str, str]]:
        """Where each column of ``exog_re`` comes from: a fixed-effect design column of the
        same name, a constant one, or a numeric data column."""
        model, base = self.model, self.base
        exog_re = np.asarray(model.exog_re, dtype=np.float64)
        names = [str(n) for n in getattr(model.data, "exog_re_names", None) or []]
        if len(names) < exog_re.shape[1]:
            names = [f"Z{j}" for j in range(exog_re.shape[1])]
        out: list[tuple[str, str]] = []
        for j, name in enumerate(names[: exog_re.shape[1]]):
            if name in base.coef_names:
                out.append(("x", name))
            elif np.all(exog_re[:, j] == 1.0):
                out.append(("one", ""))
            elif name in self.data.columns and pd.api.types.is_numeric_dtype(self.data[name]):
                out.append(("col", name))
                self.variables.setdefault(name, Variable(name, False, None))
            else:
                raise MarginsValueError(
                    f"random_effects: the random-effects column {name!r} is neither a "
                    "fixed-effect column nor a numeric data column, so it cannot be rebuilt "
                    "for counterfactual rows; add it to the fixed-effects formula"
                )
        return out

    def _z(self, frame: pd.DataFrame, X: np.ndarray) -> np.ndarray:
        cols = []
        for kind, name in self._z_sources:
            if kind == "x":
                cols.append(X[:, self.base.coef_names.index(name)])
            elif kind == "one":
                cols.append(np.ones(len(frame)))
            else:
                cols.append(frame[name].to_numpy(dtype=np.float64))
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))

    def _check_z(self) -> None:
        data = self.data
        Z = self._z(data, self.base.design(data))
        exog_re = np.asarray(self.model.exog_re, dtype=np.float64)
        if Z.shape != exog_re.shape or not np.allclose(Z, exog_re, rtol=1e-10, atol=1e-10):
            raise MarginsValueError(
                "random_effects: the random-effects design cannot be rebuilt from the data "
                "rows (it does not match the model's exog_re)"
            )


class StatsmodelsBLUPAdapter(RandomEffectsDesign):
    """A MixedLM adapter whose coefficients include every group's random effects.

    Parameters
    ----------
    base : StatsmodelsMixedLMAdapter
        The adapter of a linear mixed model with random intercepts and/or random slopes
        (``re_formula``) and no variance components.

    Examples
    --------
    >>> import statsmodels.formula.api as smf, simmargins
    >>> df = simmargins.sleepstudy_data()
    >>> fit = smf.mixedlm("Reaction ~ Days", df, groups="Subject", re_formula="~Days").fit()
    >>> ad = StatsmodelsBLUPAdapter(simmargins.adapters.adapter_for(fit))
    >>> ad.coef_names[:4], ad.cov.shape
    (('Intercept', 'Days', 'Subject[308]:Intercept', 'Subject[308]:Days'), (38, 38))
    """

    offset_keys: tuple[str, ...] = ()
    _spec = None  # the design is not the formula spec's: every scenario is built in full

    def __init__(self, base: Any) -> None:
        if getattr(base, "model_class", None) != "MixedLM" or not hasattr(base, "model"):
            raise MarginsTypeError(
                "random_effects: cluster-specific predictions need a statsmodels MixedLM "
                f"adapter, got {type(base).__name__}"
            )
        model, fit = base.model, base.fit
        if getattr(model, "k_vc", 0):
            raise MarginsValueError(
                "random_effects: 'blup' covers random intercepts and random slopes "
                "(re_formula); this MixedLM also has variance components (vc_formula)"
            )
        q = int(getattr(model, "k_re", 0))
        labels = list(model.group_labels)
        K, n_groups = len(base.coef_names), len(labels)
        if q == 0:
            raise MarginsValueError("random_effects: this MixedLM has no random effects")
        if n_groups * q > MAX_RANDOM_COEFS:
            raise MarginsValueError(
                f"random_effects: 'blup' makes the {n_groups} groups × {q} random effects "
                f"= {n_groups * q} extra coefficients, more than {MAX_RANDOM_COEFS}; the "
                "dense design and covariance would be too large (use random_effects='zero')"
            )
        if len(base.data) * (K + n_groups * q) > MAX_DESIGN_ENTRIES:
            raise MarginsValueError(
                f"random_effects: the design of {len(base.data)} rows × {K + n_groups * q} "
                "coefficients would be too large to hold; use random_effects='zero'"
            )
        self.base = base
        self.fit, self.model = fit, model
        self.model_class: str = "MixedLM"
        self.formula: str | None = base.formula
        self.link: InverseLink = IDENTITY_LINK
        self.group_labels = labels
        self.n_random = q
        self._index = pd.Index(labels)
        self.group_column, hidden = _group_column(base)
        data = base.data
        if hidden:
            data = data.copy()
            data[GROUP_COLUMN] = np.asarray(model.groups, dtype=object)
        self.data: pd.DataFrame = data
        self.variables: dict[str, Variable] = dict(base.variables)
        if not hidden:
            self.variables[self.group_column] = Variable(self.group_column, True, tuple(labels))
        self._z_sources = self._z_columns()
        re_names = ["Intercept" if s == ("one", "") else s[1] for s in self._z_sources]
        prefix = "Group" if hidden else self.group_column
        self.coef_names: tuple[str, ...] = (
            *base.coef_names,
            *(f"{prefix}[{g}]:{r}" for g in labels for r in re_names),
        )
        self._check_z()
        u_hat = np.concatenate(
            [np.asarray(fit.random_effects[g], dtype=np.float64)[:q] for g in labels]
        )
        self.params: np.ndarray = np.concatenate([np.asarray(base.params, np.float64), u_hat])
        self.cov: np.ndarray
        self.cov, u_mme = self._henderson()
        scale = 1.0 + float(np.max(np.abs(u_mme), initial=0.0))
        if not np.all(np.abs(u_hat - u_mme) <= 1e-6 * scale):
            raise MarginsValueError(
                "random_effects: statsmodels' random_effects differ from the BLUPs of the "
                f"mixed-model equations by up to {float(np.max(np.abs(u_hat - u_mme))):.3g}; "
                "the fit's variance parameters and its predictions do not agree"
            )

    def group_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Position of each row's group among ``model.group_labels``."""
        col = self.group_column
        if col not in frame.columns:
            raise MarginsValueError(
                f"random_effects: 'blup' needs each row's group (column {col!r}) to pick its "
                "cluster's random effects; the rows given do not have that column"
            )
        codes = self._index.get_indexer(np.asarray(frame[col], dtype=object))
        if np.any(codes < 0):
            unseen = sorted({str(v) for v, c in zip(frame[col], codes, strict=True) if c < 0})
            raise MarginsValueError(
                f"random_effects: 'blup' predicts for the fit's own clusters; {col!r} has "
                f"groups the fit never saw: {', '.join(unseen[:5])}"
            )
        return np.asarray(codes, dtype=np.intp)

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """(x, z in the row's group's block): N × (K + G·q)."""
        X = self.base.design(frame)
        codes = self.group_codes(frame)
        Z = self._z(frame, X)
        n, K, q = X.shape[0], X.shape[1], self.n_random
        out = np.zeros((n, K + len(self.group_labels) * q), dtype=np.float64)
        out[:, :K] = X
        if n:
            cols = K + codes[:, None] * q + np.arange(q)[None, :]
            out[np.arange(n)[:, None], cols] = Z
        return out

    def offset(self, frame: pd.DataFrame) -> np.ndarray | None:
        return None

    @property
    def nobs(self) -> int:
        return len(self.data)

    # -- Henderson's mixed-model equations ---------------------------------------------------
    def extended_cov(self, psi: np.ndarray, sigma2: float, fixed: np.ndarray) -> np.ndarray:
        """Henderson's σ²C⁻¹ at other variance parameters (σ²Ψ = ``psi``, σ² = ``sigma2``),
        for Satterthwaite df; its β-block is ``fixed`` (lme4's covariance) already."""
        return self._henderson(sigma2, psi)[0]

    def _henderson(
        self, sig2: float | None = None, psi: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """σ²C⁻¹ and the BLUPs û solving the mixed-model equations at β̂ (at the fitted
        variance parameters unless σ² and σ²Ψ are given)."""
        model, fit = self.model, self.fit
        y = np.asarray(model.endog, dtype=np.float64)
        X = np.asarray(model.exog, dtype=np.float64)
        Z = np.asarray(model.exog_re, dtype=np.float64)
        sig2 = float(fit.scale) if sig2 is None else sig2
        psi = np.asarray(fit.cov_re if psi is None else psi, dtype=np.float64)
        beta = np.asarray(self.base.params, dtype=np.float64)
        K, q, n_groups = X.shape[1], self.n_random, len(self.group_labels)
        S = np.zeros((K, K))
        E = np.zeros((K, n_groups * q))
        d_inv = np.zeros((n_groups, q, q))
        u = np.zeros(n_groups * q)
        for g, label in enumerate(self.group_labels):
            rows = np.asarray(model.row_indices[label])
            Xg, Zg = X[rows], Z[rows]
            Dg = np.linalg.solve(psi @ (Zg.T @ Zg) + sig2 * np.eye(q), psi)
            Dg = (Dg + Dg.T) / 2.0  # (ZᵀZ + σ²Ψ⁻¹)⁻¹
            B = Xg.T @ Zg
            S += Xg.T @ Xg - B @ Dg @ B.T
            block = slice(g * q, (g + 1) * q)
            E[:, block] = B @ Dg
            d_inv[g] = Dg
            u[block] = Dg @ (Zg.T @ (y[rows] - Xg @ beta))
        S_inv = np.linalg.inv((S + S.T) / 2.0)
        top_right = -S_inv @ E
        bottom = E.T @ S_inv @ E
        for g in range(n_groups):
            block = slice(g * q, (g + 1) * q)
            bottom[block, block] += d_inv[g]
        cov = sig2 * np.block([[S_inv, top_right], [top_right.T, bottom]])
        return np.ascontiguousarray((cov + cov.T) / 2.0), u
