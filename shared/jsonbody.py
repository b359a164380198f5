"""Strict JSON for request bodies: what msgspec accepts, minus what the services cannot store.

msgspec already refuses invalid UTF-8, lone surrogates (escaped or not) and raw control
characters; it accepts `\\u0000`, integers of any size and nesting up to the interpreter's
recursion limit (then RecursionError). `parse_json` refuses those too, with a 400 naming where.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.errors import ApiError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_decoder = msgspec.json.Decoder()


def _bad(what: str, message: str, where: str = "") -> ApiError:
    detail = {"field": where, "message": message}
    located = f" at {where}" if where else ""
    return ApiError(400, "malformed_json", f"{what} is not acceptable JSON: {message}{located}", [detail])


def _path(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}" if parent else key


def check_value(value: Any, *, max_depth: int = 32, what: str = "the body") -> None:
    """Raise ApiError 400 when decoded JSON nests deeper than `max_depth`, holds a NUL in a string
    or key, or an integer outside int64; iterative, so any depth is safe to check."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise _bad(what, "a string holds a NUL character (\\u0000)", where)
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise _bad(what, "an integer is outside the 64-bit range", where)
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise _bad(what, f"nested deeper than {max_depth} levels", where)
            if isinstance(item, dict):
                for key, child in item.items():
                    if "\x00" in key:
                        raise _bad(what, "a key holds a NUL character (\\u0000)", where)
                    stack.append((child, _path(where, key), depth + 1))
            else:
                stack.extend((child, _path(where, i), depth + 1) for i, child in enumerate(item))


def parse_json(raw: bytes, *, max_depth: int = 32, what: str = "the body") -> Any:
    """Decode `raw` as JSON; ApiError 400 `malformed_json` for invalid JSON or UTF-8, lone
    surrogates, NUL in strings, nesting deeper than `max_depth`, integers outside int64."""
    try:
        value = _decoder.decode(raw)
    except RecursionError:
        raise _bad(what, f"nested deeper than {max_depth} levels") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _bad(what, str(exc)) from None
    check_value(value, max_depth=max_depth, what=what)
    return value
