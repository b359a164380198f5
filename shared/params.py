"""Query-string parameters: validation (every bad field named in one 400) and SQL conditions."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import msgspec

from shared.errors import ApiError
from shared.teams import expand

SEASON_TYPES = frozenset({"PRE", "REG", "POST"})
Parser = Callable[[str], Any]
# One item of a comma-separated list: no comma, no NUL, not blank (items are stripped).
ITEM_PATTERN = r"^[^,\u0000]*[^,\s\u0000][^,\u0000]*$"


class Param:
    """A parser that also says, as JSON Schema, what it accepts (the gateway's OpenAPI document reads it).

    `many`: the value is a comma-separated list (OpenAPI `style: form, explode: false`).
    """

    __slots__ = ("many", "parse", "schema")

    def __init__(self, parse: Parser, schema: dict[str, Any], many: bool = False) -> None:
        self.parse = parse
        self.schema = schema
        self.many = many

    def __call__(self, raw: str) -> Any:
        return self.parse(raw)

    def __repr__(self) -> str:
        return f"Param({self.schema!r}, many={self.many})"


def schema_of(parser: Parser) -> tuple[dict[str, Any], bool]:
    """The JSON Schema of a parser's values and whether it takes a list (a bare string for plain callables)."""
    if isinstance(parser, Param):
        return parser.schema, parser.many
    return {"type": "string"}, False


def integer(lo: int, hi: int) -> Param:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
        if not lo <= value <= hi:
            raise ValueError(f"{value} is outside {lo}..{hi}")
        return value

    return Param(parse, {"type": "integer", "minimum": lo, "maximum": hi})


def integers(lo: int, hi: int) -> Param:
    one = integer(lo, hi)
    return Param(lambda raw: [one(part) for part in _split(raw)], _list(one.schema), many=True)


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1}


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{raw!r} is not a boolean (true or false)")


boolean = Param(_boolean, {"type": "boolean"})


def text(max_len: int = 64) -> Param:
    def parse(raw: str) -> str:
        if not raw or len(raw) > max_len:
            raise ValueError(f"must be 1..{max_len} characters")
        return raw

    return Param(parse, {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": "^[^\\u0000]*$"})


def texts(max_len: int = 64, upper: bool = False) -> Param:
    one = text(max_len)
    item = {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": ITEM_PATTERN}
    return Param(lambda raw: [one(p.upper() if upper else p) for p in _split(raw)], _list(item), many=True)


def teams() -> Param:
    """Team codes (comma-separated, any case), each standing for every code of its franchise:
    `STL` and `LA` both select the Rams of every season (shared.teams)."""
    codes = texts(4, upper=True)
    return Param(lambda raw: expand(codes(raw)), codes.schema, many=True)


def choice(options: frozenset[str], upper: bool = True) -> Param:
    def parse(raw: str) -> list[str]:
        values = [p.upper() if upper else p for p in _split(raw)]
        bad = [v for v in values if v not in options]
        if bad:
            raise ValueError(f"{', '.join(bad)} not one of {', '.join(sorted(options))}")
        return values

    return Param(parse, _list({"type": "string", "enum": sorted(options)}), many=True)


def _split(raw: str) -> list[str]:
    parts = [p.strip() for p in raw.split(",")]
    if not parts or any(not p for p in parts):
        raise ValueError("empty value in the list")
    return parts


def situation() -> dict[str, Parser]:
    """The situational filters shared by the play list and the rankings (spec: /v1/plays)."""
    return {
        "season": integers(1920, 2100),
        "season_type": choice(SEASON_TYPES),
        "week_min": integer(0, 30),
        "week_max": integer(0, 30),
        "team": teams(),
        "quarter": integers(1, 6),
        "down": integers(0, 4),
        "ytg_min": integer(0, 99),
        "ytg_max": integer(0, 99),
        "yardline_min": integer(1, 99),
        "yardline_max": integer(1, 99),
    }


def parse_params(query: Mapping[str, str], spec: Mapping[str, Parser]) -> dict[str, Any]:
    """Parse `query` by `spec`; unknown names and bad values are all reported together."""
    errors: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for name in query:
        if name not in spec:
            errors.append({"field": name, "message": "unknown parameter"})
            continue
        try:
            values[name] = spec[name](query[name])
        except ValueError as exc:
            errors.append({"field": name, "message": str(exc)})
    for lo, hi in _ranges(spec):
        if lo in values and hi in values and values[lo] > values[hi]:
            errors.append(
                {"field": lo, "message": f"{lo} ({values[lo]}) is greater than {hi} ({values[hi]})"}
            )
    if errors:
        names = ", ".join(e["field"] for e in errors)
        raise ApiError(400, "invalid_parameters", f"invalid query parameters: {names}", errors)
    return values


def _ranges(spec: Mapping[str, Parser]) -> list[tuple[str, str]]:
    return [(n, n[:-4] + "_max") for n in spec if n.endswith("_min") and n[:-4] + "_max" in spec]


class Where:
    """SQL conditions joined by AND, with numbered placeholders for their values."""

    def __init__(self, base: str = "true") -> None:
        self.clauses: list[str] = [base]
        self.args: list[Any] = []

    def add(self, template: str, *values: Any) -> None:
        """Add `template`, whose `{}` are replaced by the placeholders of `values`."""
        start = len(self.args)
        self.args.extend(values)
        self.clauses.append(template.format(*(f"${start + i + 1}" for i in range(len(values)))))

    def sql(self) -> str:
        return " AND ".join(self.clauses)


# Cursor fields: each decoded within its column's range, so a tampered cursor is a 400 and never
# reaches asyncpg (which refuses integers beyond int32 with an error of its own).
SeasonField = Annotated[int, msgspec.Meta(ge=1920, le=2100)]
IdField = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern="^[^\\x00]*$")]
TextField = Annotated[str, msgspec.Meta(max_length=256, pattern="^[^\\x00]*$")]
NaturalField = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]  # an int32 column that is never negative


class Cursor:
    """A keyset cursor, opaque to clients: base64url of the JSON array of the last row's sort key.

    `fields` are the key's types (the *Field annotations above); a cursor that does not decode to
    them exactly is a 400 naming `cursor`.
    """

    def __init__(self, *fields: Any) -> None:
        self._decoder = msgspec.json.Decoder(tuple[fields])  # type: ignore[valid-type]

    def encode(self, *values: Any) -> str:
        return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")

    def decode(self, token: str) -> tuple[Any, ...]:
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
            return self._decoder.decode(raw)
        except (ValueError, binascii.Error, msgspec.DecodeError, RecursionError):
            raise ApiError(400, "invalid_parameters", "cursor is not one this API returned",
                           [{"field": "cursor", "message": "malformed cursor"}]) from None  # fmt: skip
