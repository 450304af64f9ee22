"""Reading values of any shape from what clients and Mistral send, for the bridge's translations: a value of
the wrong type counts as absent, never as an error."""

from __future__ import annotations

from typing import Any, Collection, TypeGuard


def one_of(value: Any, options: Collection[str]) -> TypeGuard[str]:
    """Whether value is one of the strings in options (an unhashable value is simply not)."""
    return isinstance(value, str) and value in options


def dict_or_empty(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def int_or_zero(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def number_or_none(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
