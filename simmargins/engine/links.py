"""Inverse link functions h and their first two derivatives, in plain numpy.

Each link carries an integer ``code`` so the numba kernels can dispatch on it without
knowing anything about statsmodels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from .._errors import MarginsValueError

Array = np.ndarray
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


@dataclass(frozen=True)
class InverseLink:
    name: str
    code: int
    h: Callable[[Array], Array]
    dh: Callable[[Array], Array]
    d2h: Callable[[Array], Array]
    power: float = 1.0  # only the power family uses it: h(η) = η^(1/power)

    @property
    def is_identity(self) -> bool:
        return self.code == IDENTITY

    def all_three(self, eta: Array) -> tuple[Array, Array, Array]:
        """(h, h′, h″) at η; logit and log share one evaluation of expit or exp."""
        if self.code == LOGIT:
            p = special.expit(eta)
            d = p * (1.0 - p)
            return p, d, d * (1.0 - 2.0 * p)
        if self.code == LOG:
            e = np.exp(eta)
            return e, e, e
        return self.h(eta), self.dh(eta), self.d2h(eta)


IDENTITY, LOGIT, PROBIT, LOG, CLOGLOG, INVERSE_POWER, LOGLOG, CAUCHY = range(8)


def _expit(eta: Array) -> Array:
    return special.expit(eta)


def _dexpit(eta: Array) -> Array:
    p = special.expit(eta)
    return p * (1.0 - p)


def _d2expit(eta: Array) -> Array:
    p = special.expit(eta)
    return p * (1.0 - p) * (1.0 - 2.0 * p)


def _exp(eta: Array) -> Array:
    return np.exp(eta)


def _cloglog_h(eta: Array) -> Array:
    return -np.expm1(-np.exp(eta))


def _cloglog_dh(eta: Array) -> Array:
    return np.exp(eta - np.exp(eta))


def _cloglog_d2h(eta: Array) -> Array:
    return np.exp(eta - np.exp(eta)) * (1.0 - np.exp(eta))


def _loglog_h(eta: Array) -> Array:
    return np.exp(-np.exp(-eta))


def _loglog_dh(eta: Array) -> Array:
    return np.exp(-eta - np.exp(-eta))


def _loglog_d2h(eta: Array) -> Array:
    return np.exp(-eta - np.exp(-eta)) * (np.exp(-eta) - 1.0)


def _cauchy_dh(eta: Array) -> Array:
    return 1.0 / (np.pi * (1.0 + eta**2))


def _cauchy_d2h(eta: Array) -> Array:
    return -2.0 * eta / (np.pi * (1.0 + eta**2) ** 2)


def _ident(eta: Array) -> Array:
    return np.asarray(eta, dtype=np.float64)


def _one(eta: Array) -> Array:
    return np.ones_like(eta, dtype=np.float64)


def _zero(eta: Array) -> Array:
    return np.zeros_like(eta, dtype=np.float64)


IDENTITY_LINK = InverseLink("identity", IDENTITY, _ident, _one, _zero)
LOGIT_LINK = InverseLink("logit", LOGIT, _expit, _dexpit, _d2expit)
PROBIT_LINK = InverseLink(
    "probit",
    PROBIT,
    special.ndtr,
    lambda eta: np.exp(-0.5 * np.square(eta)) / _SQRT_2PI,
    lambda eta: -eta * np.exp(-0.5 * np.square(eta)) / _SQRT_2PI,
)
LOG_LINK = InverseLink("log", LOG, _exp, _exp, _exp)
CLOGLOG_LINK = InverseLink("cloglog", CLOGLOG, _cloglog_h, _cloglog_dh, _cloglog_d2h)
LOGLOG_LINK = InverseLink("loglog", LOGLOG, _loglog_h, _loglog_dh, _loglog_d2h)
CAUCHY_LINK = InverseLink(
    "cauchy", CAUCHY, lambda eta: 0.5 + np.arctan(eta) / np.pi, _cauchy_dh, _cauchy_d2h
)


def power_link(power: float) -> InverseLink:
    """Inverse of the power link η = μ^p, i.e. h(η) = η^(1/p) (inverse, sqrt, inverse-squared).

    ``power_link(1)`` is the identity link itself, so it keeps the identity shortcuts.

    Examples
    --------
    >>> power_link(1.0) is IDENTITY_LINK
    True
    >>> float(power_link(-1.0).h(np.array([4.0]))[0])
    0.25
    """
    if power == 0:
        raise MarginsValueError("power_link: the power must be non-zero (p = 0 is the log link)")
    if power == 1:
        return IDENTITY_LINK
    a = 1.0 / power

    def h(eta: Array) -> Array:
        return np.power(eta, a)

    def dh(eta: Array) -> Array:
        return a * np.power(eta, a - 1.0)

    def d2h(eta: Array) -> Array:
        return a * (a - 1.0) * np.power(eta, a - 2.0)

    return InverseLink(f"power({power:g})", INVERSE_POWER, h, dh, d2h, power)
