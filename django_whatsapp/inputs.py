"""Everything a caller passes is checked before it is stored.

:func:`check_input` is the one validator for what reaches the database from a caller: texts,
numbers, senders, idempotency keys, tags, template parameters and metadata. It refuses, with a
``ValidationError`` (never a database error, never a ``RecursionError``):

- a NUL character (``\\x00``): PostgreSQL stores none, in text or in JSON;
- a lone surrogate (``\\ud800``..``\\udfff`` not in a pair): not Unicode, no driver encodes it;
- JSON nested deeper than :data:`MAX_DEPTH` levels (``{"a": 1}`` is one level);
- more than :data:`MAX_BYTES` bytes once encoded as JSON (UTF-8);
- in JSON, a key that is not a string, or a value that is not JSON (an object, ``NaN``).

The walk is iterative and stops at the first level too deep, so a value nested 5,000 levels (or
one that contains itself) is refused, not a crash.

:func:`render_json` shows any stored JSON (metadata written before these checks, 900 levels
deep) without recursion, for the admin's pages.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

__all__ = ["MAX_BYTES", "MAX_DEPTH", "check_input", "render_json", "storable"]

#: The deepest JSON a caller may pass.
MAX_DEPTH = 32
#: The largest value a caller may pass, in bytes of UTF-8 JSON.
MAX_BYTES = 64 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValidationError(
            _("This value holds a NUL character (\\x00), which cannot be stored."),
            code="null_character",
        )
    if _SURROGATE.search(text):
        raise ValidationError(
            _("This value holds a lone surrogate (\\ud800 to \\udfff), which is not Unicode."),
            code="surrogate",
        )


def _too_large(max_bytes: int) -> ValidationError:
    return ValidationError(
        _("This value is larger than %(max)d bytes of JSON."),
        code="too_large",
        params={"max": max_bytes},
    )


def check_input(value: Any, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> None:
    """Raise ``ValidationError`` when ``value`` (a string, or a JSON value: dicts with string
    keys, lists, strings, numbers, booleans, ``None``) cannot be stored as it is: see the
    module's docstring. Tuples count as lists."""
    if isinstance(value, str):
        _check_text(value)
        if len(value) > max_bytes or len(value.encode("utf-8")) > max_bytes:
            raise _too_large(max_bytes)
        return
    estimate = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth + 1 > max_depth:
                raise ValidationError(
                    _("This value is nested deeper than %(max)d levels."),
                    code="too_deep",
                    params={"max": max_depth},
                )
            if isinstance(item, dict):
                for key, inner in item.items():
                    if not isinstance(key, str):
                        raise ValidationError(
                            _("Keys must be strings, not %(type)s."),
                            code="invalid_key",
                            params={"type": type(key).__name__},
                        )
                    _check_text(key)
                    estimate += len(key) + 4
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
            estimate += 2
        elif isinstance(item, str):
            _check_text(item)
            estimate += len(item) + 2
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationError(
                _("%(value)s is not a JSON number."), code="not_json", params={"value": item}
            )
        elif not (item is None or isinstance(item, bool | int | float)):
            raise ValidationError(
                _(
                    "A %(type)s is not JSON: only JSON values (strings, numbers, booleans, "
                    "null, lists and dicts) can be stored."
                ),
                code="not_json",
                params={"type": type(item).__name__},
            )
        else:
            estimate += 1
        if estimate > max_bytes:
            raise _too_large(max_bytes)
    encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if len(encoded.encode("utf-8")) > max_bytes:
        raise _too_large(max_bytes)


def storable(text: str) -> str:
    """``text`` as every database keeps it, for what is kept as it came rather than refused (a
    rejected campaign row): a NUL becomes the four characters ``\\x00``, a lone surrogate its
    six-character escape (``\\ud800``); every other character is kept."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def render_json(value: Any, *, max_depth: int = MAX_DEPTH, indent: int = 2) -> str:
    """``value`` as indented JSON (keys sorted), written without recursion; parts nested deeper
    than ``max_depth`` are shown as ``…``. Safe for anything a JSON column holds."""
    out: list[str] = []
    # Each entry: what to write next (a value at a depth, or literal text).
    stack: list[tuple[str, Any, int]] = [("value", value, 0)]
    while stack:
        kind, item, depth = stack.pop()
        if kind == "text":
            out.append(item)
            continue
        pad = " " * (indent * (depth + 1))
        end = " " * (indent * depth)
        if isinstance(item, dict | list) and item and depth >= max_depth:
            out.append("…")
        elif isinstance(item, dict) and item:
            keys = sorted(item, key=str)
            out.append("{\n")
            parts: list[tuple[str, Any, int]] = []
            for index, key in enumerate(keys):
                parts.append(("text", f"{pad}{json.dumps(str(key), ensure_ascii=False)}: ", 0))
                parts.append(("value", item[key], depth + 1))
                parts.append(("text", ",\n" if index < len(keys) - 1 else "\n", 0))
            parts.append(("text", end + "}", 0))
            stack.extend(reversed(parts))
        elif isinstance(item, list) and item:
            out.append("[\n")
            parts = []
            for index, inner in enumerate(item):
                parts.append(("text", pad, 0))
                parts.append(("value", inner, depth + 1))
                parts.append(("text", ",\n" if index < len(item) - 1 else "\n", 0))
            parts.append(("text", end + "]", 0))
            stack.extend(reversed(parts))
        else:
            try:
                out.append(json.dumps(item, ensure_ascii=False))
            except (TypeError, ValueError):
                out.append(json.dumps(str(item), ensure_ascii=False))
    return "".join(out)
