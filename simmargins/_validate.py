"""Argument validation, called once at the public boundary.

Each helper names the argument, shows the value received and lists what is accepted,
so that errors teach (STYLE.md, habit 4).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._errors import MarginsTypeError, MarginsValueError

SeedLike = int | np.random.Generator | np.random.SeedSequence | None


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return a ``"; did you mean 'x'?"`` suffix when a close match exists."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_choice(arg: str, value: Any, accepted: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in accepted:
        raise MarginsValueError(
            f"{arg}: got {value!r}; accepted values are "
            + ", ".join(repr(a) for a in accepted)
            + (suggest(value, accepted) if isinstance(value, str) else "")
        )
    return value


def check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)):
        raise MarginsTypeError(f"level: expected a float in (0, 1), got {type(level).__name__}")
    if not 0.0 < float(level) < 1.0:
        raise MarginsValueError(
            f"level: must lie strictly between 0 and 1 (e.g. 0.95), got {level!r}"
        )
    return float(level)


def check_count(arg: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MarginsTypeError(f"{arg}: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise MarginsValueError(f"{arg}: must be at least {minimum}, got {value!r}")
    return int(value)


def check_seed(seed: Any) -> SeedLike:
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise MarginsTypeError(
            "seed: expected an int, numpy Generator, SeedSequence or None, "
            f"got {type(seed).__name__}"
        )
    if int(seed) < 0:
        raise MarginsValueError(f"seed: must be non-negative, got {seed!r}")
    return int(seed)


def make_rng(seed: SeedLike) -> np.random.Generator:
    """The one place a seed becomes a generator (so the same seed always gives the same draws)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def seed_attr(seed: SeedLike) -> int | str:
    """How a seed is recorded in a result's provenance attributes."""
    if seed is None:
        return "none"
    if isinstance(seed, (int, np.integer)):
        return int(seed)
    return type(seed).__name__


def check_variable(arg: str, name: Any, known: Sequence[str]) -> str:
    if not isinstance(name, str):
        raise MarginsTypeError(f"{arg}: variable names must be strings, got {name!r}")
    if name not in known:
        raise MarginsValueError(
            f"{arg}: {name!r} is not a variable of the model's data{suggest(name, known)} "
            f"(model variables: {', '.join(map(repr, known))})"
        )
    return name


def fit_converged(fit: Any) -> bool:
    """Whether a statsmodels fit's optimiser reported convergence (True when it does not say)."""
    flag = getattr(fit, "converged", None)
    if flag is None:
        flag = (getattr(fit, "mle_retvals", None) or {}).get("converged", True)
    return bool(flag)
