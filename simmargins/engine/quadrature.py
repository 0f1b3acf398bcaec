"""Rules for E over ε ~ N(0, 1), and the per-row expectations the delta method needs.

A row with linear predictor η and random-effects SD s (s² = Σ_c z²_c σ²_c) has
population-averaged mean g(η, s) = E[h(η + s ε)]. The delta method and κ need its
derivatives in η and s, all expectations of the same kind:

    a = E[h′],  b = E[h′ ε] = ∂g/∂s,  c = E[h″],  d = E[h″ ε],  e = E[h″ ε²]

(∂g/∂η = a, ∂²g/∂η² = c, ∂²g/∂η∂s = d, ∂²g/∂s² = e). For the log link they have the
closed form g = exp(η + s²/2), a = c = g, b = d = s·g, e = (1 + s²)·g; for the identity
link g = η, a = 1 and the rest vanish.
"""

from __future__ import annotations

import numpy as np

from .links import LOG, InverseLink

# rows per block of the numpy expectations (Q × rows values held at once)
_BLOCK_VALUES = 1 << 21


def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n-node Gauss–Hermite rule for E[f(ε)], ε ~ N(0, 1): nodes √2·x_q, weights w_q/√π.

    Exact for polynomials of degree < 2n.

    Examples
    --------
    >>> t, w = gauss_hermite(5)
    >>> round(float(w @ t**2), 12), round(float(w @ t**4), 12)
    (1.0, 3.0)
    """
    x, w = np.polynomial.hermite.hermgauss(int(n))
    return np.sqrt(2.0) * x, w / np.sqrt(np.pi)


def sobol_normal(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n scrambled Sobol points mapped to N(0, 1) by Φ⁻¹, equal weights (quasi-Monte Carlo).

    ``n`` should be a power of two (Sobol's balance properties hold for those).
    """
    from scipy.special import ndtri
    from scipy.stats import qmc  # scipy.stats loads only when quasi-Monte Carlo is asked for

    u = qmc.Sobol(d=1, scramble=True, seed=seed).random(int(n))[:, 0]
    return ndtri(u), np.full(int(n), 1.0 / int(n))


def closed_form(link: InverseLink) -> bool:
    """Whether E[h(η + sε)] and its derivatives have a closed form (identity, log)."""
    return link.is_identity or link.code == LOG


def row_expectations(
    eta: np.ndarray,
    var: np.ndarray,
    link: InverseLink,
    t: np.ndarray,
    omega: np.ndarray,
    derivatives: bool = True,
) -> tuple[np.ndarray, ...]:
    """Per row (g, a, b, c, d, e) as in the module docstring (only g if not ``derivatives``).

    ``var`` is each row's s²; the rule (t, ω) is used unless the link has a closed form.
    """
    n = eta.shape[0]
    sd = np.sqrt(var)
    if link.is_identity:
        zero = np.zeros(n)
        return (eta.copy(),) if not derivatives else (eta.copy(), np.ones(n), *([zero] * 4))
    if link.code == LOG:
        g = np.exp(eta + 0.5 * var)
        if not derivatives:
            return (g,)
        return g, g, sd * g, g, sd * g, (1.0 + var) * g
    k = 6 if derivatives else 1
    out = [np.empty(n) for _ in range(k)]
    block = max(1, _BLOCK_VALUES // max(t.shape[0], 1))
    for r0 in range(0, n, block):
        sl = slice(r0, min(n, r0 + block))
        x = eta[sl, None] + sd[sl, None] * t[None, :]
        out[0][sl] = link.h(x) @ omega
        if derivatives:
            d1, d2 = link.dh(x), link.d2h(x)
            out[1][sl] = d1 @ omega
            out[2][sl] = d1 @ (omega * t)
            out[3][sl] = d2 @ omega
            out[4][sl] = d2 @ (omega * t)
            out[5][sl] = d2 @ (omega * t * t)
    return tuple(out)
