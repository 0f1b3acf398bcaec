"""Functions of results are results: linear combinations Rθ, and functions of several results
that share the session's coefficient draws.

Every quantity of a result is a function θ(β) evaluated at β̂ (``estimate``), at each
coefficient draw (``draws``) and differentiated at β̂ (``gradient`` G, so the delta
covariance is G V̂ Gᵀ). A function f of such quantities is again one: its draws are f of
the draws, its estimate f(θ̂), its gradient J·G with J the Jacobian of f at θ̂. That holds
across results only when their draws are draws of the *same* coefficients, so
:func:`stack` checks what the Datasets hold about the coefficient draws and refuses
otherwise (:func:`check_same_draws`).

κ needs the Hessian of each quantity, which a result does not keep. A combination whose
inputs are all linear in β (κ = 0) is linear too, so its κ is 0; otherwise κ is NaN (not
available) and ``kappa_bound`` holds Σⱼ |Rᵢⱼ| κⱼ SEⱼ / SEᵢ, which bounds it from above
(‖Lᵀ(Σ rⱼHⱼ)L‖ ≤ Σ |rⱼ| ‖LᵀHⱼL‖ and ‖LᵀHⱼL‖ = κⱼ ‖Lᵀ∇ⱼ‖ = κⱼ SEⱼ).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .._errors import MarginsTypeError, MarginsValueError

if TYPE_CHECKING:
    from .result import MarginsResult

# attrs that determine the coefficient draws (with the coefficient names and V̂)
_DRAW_ATTRS = (
    "draws_kind",
    "seed",
    "n_sims",
    "n_boot",
    "cluster",
    "data_fingerprint",
    "model_class",
    "formula",
    "link",
)
_DRAW_ID = "coef_draws_id"  # if a session records an id of its coefficient draws, it decides
_BOOT_COORDS = ("boot_replicate", "boot_seed", "boot_converged")


@dataclass
class Stack:
    """The quantities of one or more results side by side, as arrays."""

    labels: list[str]
    estimate: np.ndarray  # (n,)
    draws: np.ndarray  # (draw, n)
    gradient: np.ndarray  # (n, coef)
    std_err: np.ndarray  # delta SEs (n,)
    kappa: np.ndarray  # (n,)
    base: xr.Dataset  # the first result's Dataset: V̂, draw coordinates, provenance
    # the results' class: combinations are built as one without this module importing
    # result.py, which imports the algebra that calls in here (no import cycle)
    make: Callable[[xr.Dataset], MarginsResult]


def is_result(x: Any) -> bool:
    """Whether ``x`` is a result (duck-typed: its Dataset and labels), for the same reason."""
    return hasattr(x, "to_dataset") and hasattr(x, "labels") and hasattr(x, "_ds")


def _differences(a: xr.Dataset, b: xr.Dataset) -> list[str]:
    """What differs between two results in what determines their coefficient draws."""
    if _DRAW_ID in a.attrs and _DRAW_ID in b.attrs:
        return [] if a.attrs[_DRAW_ID] == b.attrs[_DRAW_ID] else [_DRAW_ID]
    out = [
        f"{k} ({a.attrs.get(k, 'absent')!r} vs {b.attrs.get(k, 'absent')!r})"
        for k in _DRAW_ATTRS
        if a.attrs.get(k) != b.attrs.get(k)
    ]
    if a.sizes["draw"] != b.sizes["draw"]:
        out.append(f"number of draws ({a.sizes['draw']} vs {b.sizes['draw']})")
    ca, cb = [str(c) for c in a["coef"].values], [str(c) for c in b["coef"].values]
    if ca != cb:
        out.append(f"coefficient names ({ca} vs {cb})")
    elif not np.array_equal(a["coef_cov"].to_numpy(), b["coef_cov"].to_numpy()):
        out.append("coefficient covariance V̂")
    for c in _BOOT_COORDS:
        if (c in a.coords) != (c in b.coords) or (
            c in a.coords and not np.array_equal(a[c].to_numpy(), b[c].to_numpy())
        ):
            out.append(f"bootstrap replicates ({c})")
            break
    return out


def check_same_draws(datasets: Sequence[xr.Dataset], arg: str) -> None:
    """Refuse results whose draws are not draws of the same coefficients, naming what differs.

    The Datasets do not hold the coefficient draws, so what determines them is compared:
    the draws' kind, seed, number (simulations, bootstrap replicates and the replicates
    kept), the data's fingerprint, the model class, formula and link, the coefficient names
    and V̂ exactly. An unseeded session cannot be shown to share its draws and is refused,
    unless no result has draws (``method="delta"``: the joint covariance is G V̂ Gᵀ).
    """
    first = datasets[0]
    for i, ds in enumerate(datasets[1:], start=1):
        diff = _differences(first, ds)
        if diff:
            raise MarginsValueError(
                f"{arg}: result {i} does not share the coefficient draws of result 0 "
                f"(it differs in {'; '.join(diff)}); combine only results of one session "
                "(or of sessions with the same fit, method and seed)"
            )
    no_draws = all(ds.sizes.get("draw", 0) == 0 for ds in datasets)  # the delta method alone
    if _DRAW_ID not in first.attrs and len(datasets) > 1 and not no_draws:
        seed = first.attrs.get("seed")
        if isinstance(seed, str) or seed is None:
            raise MarginsValueError(
                f"{arg}: the results' seed is {seed!r}, so it cannot be shown that they "
                "share coefficient draws; give Margins an integer seed (seed=...)"
            )


def as_stack(results: Sequence[MarginsResult], arg: str) -> Stack:
    """The results' quantities side by side, after checking they share coefficient draws."""
    if not results:
        raise MarginsValueError(f"{arg}: expected at least one result, got none")
    for r in results:
        if not is_result(r):
            raise MarginsTypeError(f"{arg}: expected MarginsResult objects, got {type(r).__name__}")
    datasets = [r._ds for r in results]
    check_same_draws(datasets, arg)
    return Stack(
        labels=[lab for r in results for lab in r.labels],
        estimate=np.concatenate([r.estimate for r in results]),
        draws=np.concatenate([r.draws.transpose("draw", "label").to_numpy() for r in results], 1),
        gradient=np.concatenate([ds["gradient"].to_numpy() for ds in datasets], 0),
        std_err=np.concatenate([r.delta_std_err for r in results]),
        kappa=np.concatenate([r.kappa for r in results]),
        base=datasets[0],
        make=type(results[0]),
    )


def _result(
    st: Stack,
    estimate: np.ndarray,
    draws: np.ndarray,
    gradient: np.ndarray,
    kappa: np.ndarray,
    kappa_bound: np.ndarray,
    labels: list[str],
    description: str,
) -> MarginsResult:
    base = st.base
    V = base["coef_cov"].to_numpy()
    se = np.sqrt(np.clip(np.einsum("ik,kl,il->i", gradient, V, gradient), 0, None))
    draw_coords = {c: base[c] for c in base.coords if base[c].dims == ("draw",)}
    attrs = {k: v for k, v in base.attrs.items() if k != "p_adjust"}
    attrs.update(quantity="combination", combination=description, grid_columns=[])
    ds = xr.Dataset(
        {
            "estimate": ("label", estimate),
            "delta_std_err": ("label", se),
            "kappa": ("label", kappa),
            "kappa_bound": ("label", kappa_bound),
            "draws": (("draw", "label"), draws),
            "gradient": (("label", "coef"), gradient),
            "coef_cov": (("coef", "coef_col"), V),
        },
        coords={
            "label": labels,
            **draw_coords,
            "coef": base["coef"].to_numpy(),
            "coef_col": base["coef_col"].to_numpy(),
        },
        attrs=attrs,
    )
    return st.make(ds)


def _term(weight: float, label: str, first: bool) -> str:
    lab = f"({label})" if any(ch in label for ch in " +-*/=|,") else label
    mag = abs(weight)
    body = lab if mag == 1 else f"{mag:g}·{lab}"
    if first:
        return body if weight > 0 else f"−{body}"
    return f"{'+' if weight > 0 else '−'} {body}"


def describe_row(row: np.ndarray, labels: list[str]) -> str:
    """``a − b``, ``0.5·a + 0.5·b``: a row of weights over labels in words."""
    terms = [(w, lab) for w, lab in zip(row, labels, strict=True) if w != 0]
    terms.sort(key=lambda t: t[0] < 0)  # positive weights first: "a − b", not "−b + a"
    if not terms:
        return "0"
    return " ".join(_term(float(w), lab, i == 0) for i, (w, lab) in enumerate(terms))


def linear(st: Stack, R: np.ndarray, labels: list[str] | None = None) -> MarginsResult:
    """Rθ as a result: draws R·draws, gradient R·G, estimate Rθ̂; κ as the module says."""
    R = np.atleast_2d(np.asarray(R, dtype=float))
    names = labels or [describe_row(row, st.labels) for row in R]
    used = R != 0
    linear_inputs = np.all(~used | (st.kappa == 0)[None, :], axis=1)
    est = R @ st.estimate
    G = R @ st.gradient
    V = st.base["coef_cov"].to_numpy()
    se = np.sqrt(np.clip(np.einsum("ik,kl,il->i", G, V, G), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (np.abs(R) @ (st.kappa * st.std_err)) / se
    bound = np.where(linear_inputs, 0.0, bound)
    kappa = np.where(linear_inputs, 0.0, np.nan)
    return _result(st, est, st.draws @ R.T, G, kappa, bound, names, "; ".join(names))


def _numerical_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, se: np.ndarray):
    """Central differences with a step of 10⁻⁵ of each input's scale (its SE or |value|)."""
    scale = np.where(se > 0, se, np.maximum(np.abs(x), 1.0))
    h = 1e-5 * scale
    cols = []
    for j in range(x.size):
        up, down = x.copy(), x.copy()
        up[j] += h[j]
        down[j] -= h[j]
        cols.append((f(up) - f(down)) / (up[j] - down[j]))
    return np.column_stack(cols)


def _outputs(fn: Callable[..., Any], parts: list[np.ndarray], n_rows: int) -> np.ndarray:
    out = np.asarray(fn(*parts), dtype=float)
    if out.ndim == 1 and out.shape[0] == n_rows:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != n_rows:
        raise MarginsValueError(
            f"fn: must return one value per row of its inputs (shape ({n_rows},) or "
            f"({n_rows}, m)), got shape {out.shape}"
        )
    return out


def combine(
    results: Sequence[MarginsResult],
    fn: Callable[..., Any],
    gradient: Callable[..., Any] | None = None,
    labels: Sequence[str] | None = None,
) -> MarginsResult:
    """A function of the quantities of results that share their coefficient draws.

    ``fn(a, b, ...)`` receives one 2-D array per result, shape ``(n, labels of that
    result)`` — each row one draw, or the estimates as a single row — and returns one value
    per row (shape ``(n,)`` or ``(n, m)``), vectorised over rows, e.g.
    ``lambda a, b: a / b``. The draws are ``fn`` of the draws, the estimate ``fn`` of the
    estimates, and the delta gradient J·G with J the Jacobian of ``fn`` at the estimates
    over the stacked quantities: central differences with a step of 10⁻⁵ of each
    quantity's delta SE, or ``gradient(a, b, ...)`` (1-D estimates in, J of shape
    ``(m, Σ labels)`` out) when given. κ is NaN (the Hessians are not kept), unless
    ``fn`` is checked linear (see :mod:`.combination`). The results must share
    coefficient draws (same session, or the same fit, method and seed): otherwise a
    :class:`MarginsValueError` names what differs.
    """
    if not isinstance(results, (list, tuple)):
        raise MarginsTypeError(
            f"results: expected a list of MarginsResult, got {type(results).__name__}"
        )
    if not callable(fn):
        raise MarginsTypeError(f"fn: expected a function, got {type(fn).__name__}")
    st = as_stack(list(results), "results")
    sizes = [r.estimate.size for r in results]
    splits = np.cumsum(sizes)[:-1]

    def on_rows(x: np.ndarray) -> np.ndarray:  # (n, Σ labels) → (n, m)
        return _outputs(fn, np.split(x, splits, axis=1), x.shape[0])

    est = on_rows(st.estimate[None, :])[0]
    draws = on_rows(st.draws)
    if gradient is None:
        J = _numerical_jacobian(lambda x: on_rows(x[None, :])[0], st.estimate, st.std_err)
    else:
        J = np.atleast_2d(np.asarray(gradient(*np.split(st.estimate, splits)), dtype=float))
        if J.shape != (est.size, st.estimate.size):
            raise MarginsValueError(
                f"gradient: expected a Jacobian of shape ({est.size}, {st.estimate.size}) "
                f"(outputs × stacked quantities), got {J.shape}"
            )
    names = _names(labels, est.size, getattr(fn, "__name__", "fn"))
    nan = np.full(est.size, np.nan)
    return _result(st, est, draws, J @ st.gradient, nan, nan, names, f"{names[0]}, ...")


def _names(labels: Sequence[str] | None, m: int, fname: str) -> list[str]:
    if labels is None:
        fname = "fn" if fname == "<lambda>" else fname
        return [fname] if m == 1 else [f"{fname}[{j}]" for j in range(m)]
    names = [str(x) for x in labels]
    if len(names) != m:
        raise MarginsValueError(f"labels: expected {m} names (one per output of fn), got {names}")
    return names


def arithmetic(a: Any, b: Any, op: str) -> MarginsResult:
    """``a ± b`` of two results (row by row, a one-row result broadcast), or ``c·a``."""
    if op == "*":
        res, c = (a, b) if is_result(a) else (b, a)
        if isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating)):
            raise MarginsTypeError(
                f"a result can be multiplied by a number only, got {type(c).__name__}"
            )
        st = as_stack([res], "result")
        R = float(c) * np.eye(len(st.labels))
        names = [describe_row(row, st.labels) for row in R] if c != 1 else st.labels
        return linear(st, R, names)
    if not is_result(b):
        raise MarginsTypeError(
            f"results combine with results (or a number by *), got {type(b).__name__}"
        )
    na, nb = len(a.labels), len(b.labels)
    if na != nb and 1 not in (na, nb):
        raise MarginsValueError(
            f"{op}: the results have {na} and {nb} labels; they must match, or one must have one"
        )
    n = max(na, nb)
    st = as_stack([a, b], f"result {op} result")
    sign = 1.0 if op == "+" else -1.0
    R = np.zeros((n, na + nb))
    R[np.arange(n), np.arange(n) % na] = 1.0
    R[np.arange(n), na + np.arange(n) % nb] = sign
    names = [describe_row(row, st.labels) for row in R]
    return linear(st, R, names)
