"""Checks on text from outside that every layer shares."""

from __future__ import annotations

from typing import Any

NUL = "\x00"


def reject_nul(value: Any) -> Any:
    """Refuse NUL characters in a string, or in the strings of a list or dict.

    PostgreSQL cannot store them in text columns (SQLite can), so without this check a NUL in a
    name or a filter fails in the database, as a server error, and only on PostgreSQL. Meant as
    a pydantic field validator: the ValueError becomes a validation error naming the field.
    """
    if isinstance(value, str):
        if NUL in value:
            raise ValueError("must not contain NUL characters")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            reject_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key)
            reject_nul(item)
    return value
