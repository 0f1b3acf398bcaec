"""Value checks for the spec's structure pass, and :class:`Table`, one TOML table being read.

Each check takes a TOML value and the key it stands under, and returns the value (converted
where needed) or raises a :class:`SpecError` naming that key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .spec import (
    DATA_FORMATS,
    DataSpec,
    SpecError,
    data_format,
    describe_value,
    did_you_mean,
    listing,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


Checker = Callable[[Any, str], Any]


def string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise SpecError(key, f"expected a string, got {describe_value(value)}")
    if not value.strip():
        raise SpecError(key, "expected a non-empty string")
    return value


def output_name(value: Any, key: str) -> str:
    value = string(value, key)
    if not _NAME.match(value):
        raise SpecError(
            key,
            f"{value!r} cannot name an output folder; use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit",
        )
    return value


def strings(value: Any, key: str) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    if isinstance(value, str):
        return (string(value, key),)
    if not isinstance(value, list) or not value:
        raise SpecError(
            key, f"expected a string or a non-empty list of strings, got {describe_value(value)}"
        )
    return tuple(string(v, f"{key}[{i}]") for i, v in enumerate(value))


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(key, f"expected true or false, got {describe_value(value)}")
    return value


def integer(minimum: int, nonzero: bool = False) -> Checker:
    def check(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(key, f"expected an integer, got {describe_value(value)}")
        if value < minimum or (nonzero and value == 0):
            extra = " and not 0 (-1 means all cores)" if nonzero else ""
            raise SpecError(key, f"must be at least {minimum}{extra}, got {value}")
        return value

    return check


def positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpecError(key, f"expected a positive number, got {describe_value(value)}")
    return float(value)


def level(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(
            key, f"expected a number in (0, 1) such as 0.95, got {describe_value(value)}"
        )
    if not 0.0 < float(value) < 1.0:
        raise SpecError(key, f"must lie strictly between 0 and 1 (e.g. 0.95), got {value!r}")
    return float(value)


def choice(accepted: Sequence[str]) -> Checker:
    def check(value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise SpecError(
                key, f"expected one of {listing(accepted)}, got {describe_value(value)}"
            )
        if value not in accepted:
            lowered = {a.lower(): a for a in accepted}
            if value.lower() in lowered:
                return lowered[value.lower()]
            raise SpecError(
                key,
                f"got {value!r}; accepted values are {listing(accepted)}"
                + did_you_mean(value, accepted),
            )
        return value

    return check


def scalar(value: Any, key: str) -> Any:
    if not _is_scalar(value):
        raise SpecError(
            key, f"expected a single value (string, number or boolean), got {describe_value(value)}"
        )
    return value


def scalar_table(value: Any, key: str) -> dict[str, Any]:
    """A table {column = value} of single values (``at``, a scenario)."""
    if not isinstance(value, dict) or not value:
        raise SpecError(
            key, f"expected a non-empty table of column = value, got {describe_value(value)}"
        )
    return {k: scalar(v, f"{key}.{k}") for k, v in value.items()}


def grid_table(value: Any, key: str) -> dict[str, Any]:
    """A table {column = value or [values]} (``atexog``)."""
    if not isinstance(value, dict) or not value:
        raise SpecError(
            key,
            "expected a non-empty table of column = value or [values], got "
            + describe_value(value),
        )
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, list):
            if not v:
                raise SpecError(f"{key}.{k}", "expected at least one value, got an empty list")
            out[k] = [scalar(x, f"{key}.{k}[{i}]") for i, x in enumerate(v)]
        else:
            out[k] = scalar(v, f"{key}.{k}")
    return out


class Table:
    """One TOML table being read: every key must be consumed or known."""

    def __init__(self, raw: Any, key: str, what: str = "a table") -> None:
        if not isinstance(raw, dict):
            raise SpecError(key, f"expected {what}, got {describe_value(raw)}")
        self.raw: dict[str, Any] = raw
        self.key = key

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def has(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str, check: Checker, default: Any = None, required: bool = False) -> Any:
        if name not in self.raw:
            if required:
                raise SpecError(self.path(name), "required key is missing")
            return default
        return check(self.raw[name], self.path(name))

    def only(self, allowed: Sequence[str], elsewhere: Mapping[str, str] | None = None) -> None:
        """Refuse keys outside ``allowed``; ``elsewhere`` explains keys of another kind."""
        for name in self.raw:
            if name in allowed:
                continue
            if elsewhere and name in elsewhere:
                raise SpecError(self.path(name), elsewhere[name])
            raise SpecError(
                self.path(name),
                f"unknown key{did_you_mean(name, allowed)} (accepted here: {', '.join(allowed)})",
            )


def read_kind(
    t: Table,
    kinds: Sequence[str],
    common: Sequence[str],
    only: Mapping[str, Sequence[str]],
    what: str,
    this: str,
) -> tuple[str, list[str]]:
    """A table's ``kind`` and the keys it allows: ``common`` and those ``only`` gives that kind.

    Keys of other kinds are refused, naming the kinds that use them (``what`` kind ...,
    ``this`` is ...).
    """
    kind = t.get("kind", choice(kinds), required=True)
    allowed = [*common, *(k for k, users in only.items() if kind in users)]
    elsewhere = {
        k: f"only used by {what} kind {' or '.join(map(repr, users))} ({this} is {kind!r})"
        for k, users in only.items()
        if kind not in users
    }
    t.only(allowed, elsewhere)
    return kind, allowed


def read_data(t: Table, base: Path) -> DataSpec:
    """A data table's ``path``, ``format`` and ``categorical`` (the caller limits its keys);
    a relative path is relative to ``base``, the spec's folder."""
    path = Path(t.get("path", string, required=True))
    full = path if path.is_absolute() else base / path
    fmt = t.get("format", choice(DATA_FORMATS)) or data_format(full, t.path("path"))
    return DataSpec(full, fmt, t.get("categorical", strings, default=()))
