"""What a value of the configuration becomes when a program gets it as text. Pure.

YAML reads ``true``, ``null``, ``3.10`` and ``1e3`` as a boolean, nothing and floats: passed on
as text they would be ``True``, ``None``, ``3.1`` and ``1000.0``, not what the user wrote. So
strings are taken as they are and integers as their digits (``PORT: 80``); everything else is
refused by the caller, with :data:`QUOTE` as the fix. (YAML 1.1 also reads ``0755`` as the
integer 493: quote octal modes too.)
"""

from __future__ import annotations

from typing import Any

QUOTE = "quote it, as YAML would otherwise change it: `DEBUG: 'true'`, `PYTHON: '3.10'`, `MODE: '0755'`"


def as_text(value: Any) -> str | None:
    """``value`` as the text a program gets, or None when it is no string or integer."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def first_not_text(values: Any) -> Any:
    """The first of ``values`` that :func:`as_text` refuses, or None (then all are text)."""
    return next((v for v in values if as_text(v) is None), None)


def shown(value: Any) -> str:
    """``value`` as the user wrote it in YAML, for a message (``true``, ``null``, ``3.1``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
