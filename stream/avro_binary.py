"""Avro binary written out by hand for the two records on the hot path.

fastavro interprets the parsed schema for every value it reads or writes. For
the 12-field usage event (read twice per event, by the router and the rater)
and the 40-field rated record (written once per rated event), that
interpretation was most of their cost. The two functions here do the same
work for exactly these two schemas, field by field, in schema order:

- ``read_usage_event(data, start)``: the validated ``UsageEvent`` that
  ``event_from_avro(fastavro decode)`` gives for the Avro body at
  ``data[start:]``, or **None** as soon as anything is unusual (a union branch
  other than null/string, a negative length, a block-encoded array, bytes that
  are not UTF-8, a value ``event_from_avro`` would reject...). On None the
  caller takes the fastavro path, which then produces the exact result or
  rejection it always did: the fast path only ever handles inputs on which
  it agrees with the reference.
- ``write_rated_usage(rated)``: the Avro body fastavro writes for
  ``rated_to_avro(rated)``, byte for byte, for the usual record (every string
  ASCII and shorter than 64 characters, aware datetimes), built as one str;
  else None, and the caller encodes with fastavro.
- ``write_rejected_usage(...)``: the Avro body fastavro writes for
  ``rejection_to_avro(...)`` of the same arguments (rejected_usage.avsc), byte
  for byte, for any strings, bytes and details; None only for odd values (a
  naive datetime, a partition outside the Avro int, a non-bytes key...), and the
  caller encodes with fastavro.

They are used only when the schema files still have the layout they were
written for (``event_layout_ok`` / ``rated_layout_ok`` / ``rejected_layout_ok``,
checked once against the parsed schemas). tests/unit/stream/test_avro_binary.py
compares them with fastavro on generated records and on corrupted bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from processors.events import AttributeValue, Origin, RatedUsage, UsageEvent
from processors.money import MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS
from stream.serde import parsed_schema

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT32 = range(-(2**31), 2**31)

# (name, type) per field, in schema order: what the code below reads and writes.
STRING, OPTIONAL_STRING, TIMESTAMP, INT, LONG, BOOLEAN, STRING_MAP = (
    "string", "null|string", "timestamp-millis", "int", "long", "boolean", "map<string>")
OPTIONAL_BYTES, OPTIONAL_TIMESTAMP = "null|bytes", "null|timestamp-millis"
ATTRIBUTE_LAYOUT = (("name", STRING), ("number", OPTIONAL_STRING), ("text", OPTIONAL_STRING))
EVENT_LAYOUT = (
    ("event_id", STRING), ("event_time", TIMESTAMP), ("service_item_type", STRING),
    ("service_item_id", STRING), ("operation", STRING), ("attributes", ATTRIBUTE_LAYOUT),
    ("requester", STRING), ("home_ou", STRING), ("account_id", OPTIONAL_STRING),
    ("provider", OPTIONAL_STRING), ("product", OPTIONAL_STRING), ("source", STRING),
)
TIER_LAYOUT = (("tier_from", STRING), ("tier_to", OPTIONAL_STRING), ("quantity", STRING),
               ("rate", STRING), ("amount", STRING))
RATED_LAYOUT = (
    ("event_id", STRING), ("event_time", TIMESTAMP), ("rated_at", TIMESTAMP),
    ("service_item_type", STRING), ("service_item_id", STRING), ("operation", STRING),
    ("account_id", STRING), ("account_kind", STRING), ("requester", STRING),
    ("home_ou", STRING), ("provider", OPTIONAL_STRING), ("product", OPTIONAL_STRING),
    ("source", STRING), ("billing_period", STRING), ("fiscal_period", STRING),
    ("rate_group", STRING), ("rate_table", STRING), ("rate_code", STRING),
    ("unit_of_measure", STRING), ("pricing", STRING), ("rate", STRING), ("quantity", STRING),
    ("tiers", TIER_LAYOUT), ("minimum_charge_applied", BOOLEAN), ("currency", STRING),
    ("net_amount", STRING), ("markup_rate", STRING), ("markup_amount", STRING),
    ("gross_amount", STRING), ("credit_applied", STRING), ("credit_remaining", STRING),
    ("charged_amount", STRING), ("memo", STRING_MAP), ("catalog_version", STRING),
    ("quota_note", OPTIONAL_STRING), ("origin_topic", STRING), ("origin_partition", INT),
    ("origin_offset", LONG),
)
REJECTED_LAYOUT = (
    ("reason_code", STRING), ("message", STRING), ("event_id", OPTIONAL_STRING),
    ("stage", STRING), ("source_topic", STRING), ("source_partition", INT),
    ("source_offset", LONG), ("source_timestamp", OPTIONAL_TIMESTAMP),
    ("original_key", OPTIONAL_BYTES), ("original_value", OPTIONAL_BYTES),
    ("details", STRING_MAP), ("rejected_at", TIMESTAMP),
)


class Unusual(Exception):
    """A value the hand-written path does not handle; fastavro takes over."""


def layout(schema: Any) -> Any:
    """A parsed record schema as (name, type) pairs in the notation of the layouts above."""
    if isinstance(schema, list):
        return "|".join(str(layout(branch)) for branch in schema)
    if isinstance(schema, str):
        return schema
    kind = schema["type"]
    if kind == "record":
        return tuple((field["name"], layout(field["type"])) for field in schema["fields"])
    if kind == "array":
        return layout(schema["items"])
    if kind == "map":
        return f"map<{layout(schema['values'])}>"
    return schema.get("logicalType", kind)


@cache
def event_layout_ok() -> bool:
    return bool(layout(parsed_schema("usage_event.avsc")) == EVENT_LAYOUT)


@cache
def rated_layout_ok() -> bool:
    return bool(layout(parsed_schema("rated_usage.avsc")) == RATED_LAYOUT)


@cache
def rejected_layout_ok() -> bool:
    return bool(layout(parsed_schema("rejected_usage.avsc")) == REJECTED_LAYOUT)


# -- reading ----------------------------------------------------------------------------

def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``: (value, position after it)."""
    byte = data[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    value, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (value >> 1) ^ -(value & 1), pos + 1
        shift += 7
        if shift > 63:
            raise Unusual("varint longer than 10 bytes")


def _string(data: bytes, pos: int) -> tuple[str, int]:
    size = data[pos]
    if size < 0x80:  # a one-byte length, the usual case
        size, pos = (size >> 1) ^ -(size & 1), pos + 1
    else:
        size, pos = _long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise Unusual("bad string length")
    text = data[pos:end].decode()
    if "\x00" in text:
        raise Unusual("NUL in a string")  # event_from_avro names it
    return text, end


def _optional_string(data: bytes, pos: int) -> tuple[str | None, int]:
    branch = data[pos]
    if branch == 0:
        return None, pos + 1
    if branch != 2:  # union index 1 (string), zig-zag encoded
        raise Unusual("unexpected union branch")
    return _string(data, pos + 1)


def _attributes(data: bytes, pos: int) -> tuple[dict[str, AttributeValue], int]:
    """The attributes array, for the usual encoding only: one block, names and values
    shorter than 64 bytes, exactly one of number (a finite decimal below 10**18, not -0)
    or text set.

    Inlined rather than built from ``_string`` calls: an event has several attributes
    and this was half the cost of reading one. Reads past the end are caught by the
    caller's final length check (a slice past the end is short, not an error).
    """
    attributes: dict[str, AttributeValue] = {}
    count = data[pos]
    if count == 0:  # no attributes: the end of the array
        return attributes, pos + 1
    if count & 0x81:
        raise Unusual("not one short block")
    pos += 1
    for _ in range(count >> 1):
        size = data[pos]
        end = pos + 1 + (size >> 1)
        if size & 0x81:
            raise Unusual("long attribute name")
        name = data[pos + 1:end].decode()
        if name in attributes or "\x00" in name:
            raise Unusual("attribute twice, or a NUL")  # event_from_avro words the rejection
        if data[end] == 2:  # number set (union branch 1): text must be null
            size = data[end + 1]
            pos = end + 2 + (size >> 1)
            if size & 0x81 or data[pos] != 0:
                raise Unusual("unusual number")
            value = Decimal(data[end + 2:pos].decode())
            if not value.is_finite() or unusual_number(value, size >> 1):
                raise Unusual("not finite, out of range or -0")  # parse_number words it
            attributes[name] = value
            pos += 1
        elif data[end] == 0 and data[end + 1] == 2:  # number null, text set
            size = data[end + 2]
            pos = end + 3 + (size >> 1)
            text = data[end + 3:pos].decode()
            if size & 0x81 or "\x00" in text:
                raise Unusual("long text, or a NUL")
            attributes[name] = text
        else:
            raise Unusual("not exactly one of number and text")
    if data[pos] != 0:
        raise Unusual("more than one block")
    return attributes, pos + 1


def unusual_number(value: Decimal, length: int) -> bool:
    """True for a finite number ``parse_number`` refuses or changes (-0), and for some it
    takes: more than 18 digits before the point, -0, or possibly more than 18 after it.
    A text of 19 characters or fewer has at most 18 digits after the point unless it
    has an exponent, which makes a value below 1 or a long text; only those pay for
    ``as_tuple``."""
    adjusted = value.adjusted()
    if adjusted >= MAX_INTEGER_DIGITS or (value.is_signed() and value.is_zero()):
        return True
    exponent = value.as_tuple().exponent if adjusted < 0 or length > 19 else 0
    return isinstance(exponent, int) and exponent < -MAX_FRACTION_DIGITS


def read_usage_event(data: bytes, start: int) -> UsageEvent | None:
    """The event at ``data[start:]`` (written with usage_event.avsc), or None: see above."""
    try:
        return _read_usage_event(data, start)
    except (Unusual, IndexError, UnicodeDecodeError, OverflowError, ValueError,
            ArithmeticError):  # Decimal's InvalidOperation is an ArithmeticError
        return None


def _read_usage_event(data: bytes, pos: int) -> UsageEvent:
    event_id, pos = _string(data, pos)
    millis, pos = _long(data, pos)
    service_item_type, pos = _string(data, pos)
    service_item_id, pos = _string(data, pos)
    operation, pos = _string(data, pos)
    attributes, pos = _attributes(data, pos)
    requester, pos = _string(data, pos)
    home_ou, pos = _string(data, pos)
    account_id, pos = _optional_string(data, pos)
    provider, pos = _optional_string(data, pos)
    product, pos = _optional_string(data, pos)
    source, pos = _string(data, pos)
    if pos > len(data):
        raise Unusual("truncated")
    if not (event_id.strip() and service_item_type.strip() and service_item_id.strip()
            and operation.strip() and requester.strip() and home_ou.strip() and source.strip()):
        raise Unusual("empty required field")  # event_from_avro names it
    return UsageEvent(
        event_id=event_id,
        # As fastavro reads timestamp-millis (already UTC: what event_from_avro makes it).
        event_time=_EPOCH + timedelta(0, 0, millis * 1000),
        service_item_type=service_item_type,
        service_item_id=service_item_id,
        operation=operation,
        attributes=attributes,
        requester=requester,
        home_ou=home_ou.strip("/"),
        source=source,
        account_id=account_id or None,
        provider=provider or None,
        product=product or None,
    )


# -- writing ----------------------------------------------------------------------------

def _encode_long(value: int) -> bytes:
    if not -(2**63) <= value < 2**63:
        raise Unusual("out of the long range")
    return _encode_unsigned((value << 1) ^ (value >> 63))


def _money(value: Decimal) -> str:
    """``format(value, "f")``, as stream.codec writes amounts. ``str`` is three times
    cheaper and the same text unless it chooses exponent notation (``1E+2``)."""
    if type(value) is Decimal:
        text = str(value)
        if "E" not in text:
            return text
    return format(value, "f")


def write_rated_usage(rated: RatedUsage) -> bytes | None:
    """The Avro body of ``rated_to_avro(rated)`` (rated_usage.avsc) for the usual record,
    all of whose strings are ASCII and shorter than 64 characters; else None."""
    try:
        return _ascii_rated_usage(rated)
    except (IndexError, UnicodeEncodeError, TypeError, ValueError, AttributeError, Unusual):
        return None  # a long or non-ASCII string, or an odd value: fastavro takes it


def _short_optional(value: str | None) -> str:
    return "\x00" if value is None else "\x02" + _SHORT[len(value)] + value


def _ascii_rated_usage(rated: RatedUsage) -> bytes:
    """One str for everything between the timestamps and the two numbers at the end.

    Each ``{S[len(x)]}{x}`` below is one Avro string: an f-string builds the whole
    run at once, about twice as fast as joining the strings one by one.
    """
    event, origin, money, S = rated.event, rated.origin, _money, _SHORT  # noqa: N806
    if type(rated.minimum_charge_applied) is not bool:
        raise Unusual("not a bool")
    if type(origin.partition) is not int or origin.partition not in _INT32:
        raise Unusual("origin_partition is not an Avro int")
    if type(origin.offset) is not int:
        raise Unusual("origin_offset is not an int")
    item_type, item_id, operation = event.service_item_type, event.service_item_id, \
        event.operation
    account, kind, requester, ou = rated.account_id, rated.account_kind, event.requester, \
        event.home_ou
    source, month, period, group = event.source, rated.billing_period, rated.fiscal_period, \
        rated.rate_group
    table, code, unit, pricing = rated.rate_table, rated.rate_code, rated.unit_of_measure, \
        rated.pricing
    rate, quantity, currency = money(rated.rate), money(rated.quantity), rated.currency
    net, markup_rate, markup = money(rated.net_amount), money(rated.markup_rate), \
        money(rated.markup_amount)
    gross, applied, remaining = money(rated.gross_amount), money(rated.credit_applied), \
        money(rated.credit_remaining)
    charged, version, topic = money(rated.charged_amount), rated.catalog_version, origin.topic
    minimum = "\x01" if rated.minimum_charge_applied else "\x00"
    text = (
        f"{S[len(item_type)]}{item_type}{S[len(item_id)]}{item_id}{S[len(operation)]}{operation}"
        f"{S[len(account)]}{account}{S[len(kind)]}{kind}{S[len(requester)]}{requester}"
        f"{S[len(ou)]}{ou}{_short_optional(event.provider)}{_short_optional(event.product)}"
        f"{S[len(source)]}{source}{S[len(month)]}{month}{S[len(period)]}{period}"
        f"{S[len(group)]}{group}{S[len(table)]}{table}{S[len(code)]}{code}"
        f"{S[len(unit)]}{unit}{S[len(pricing)]}{pricing}{S[len(rate)]}{rate}"
        f"{S[len(quantity)]}{quantity}{_short_tiers(rated)}"
        f"{minimum}"
        f"{S[len(currency)]}{currency}{S[len(net)]}{net}{S[len(markup_rate)]}{markup_rate}"
        f"{S[len(markup)]}{markup}{S[len(gross)]}{gross}{S[len(applied)]}{applied}"
        f"{S[len(remaining)]}{remaining}{S[len(charged)]}{charged}{_short_map(rated.memo)}"
        f"{S[len(version)]}{version}{_short_optional(rated.quota_note)}{S[len(topic)]}{topic}"
    )
    return b"".join((
        (S[len(event.event_id)] + event.event_id).encode("ascii"),
        _timestamp(event.event_time), _timestamp(rated.rated_at), text.encode("ascii"),
        _long_bytes(origin.partition), _long_bytes(origin.offset)))


def _short_tiers(rated: RatedUsage) -> str:
    """The tiers array: one block of that many records, then the end (0)."""
    if not rated.tiers:
        return "\x00"
    money, S = _money, _SHORT  # noqa: N806
    parts = [S[len(rated.tiers)]]
    for tier in rated.tiers:
        low, quantity, rate, amount = (money(tier.tier_from), money(tier.quantity),
                                       money(tier.rate), money(tier.amount))
        high = _short_optional(None if tier.tier_to is None else money(tier.tier_to))
        parts.append(f"{S[len(low)]}{low}{high}{S[len(quantity)]}{quantity}"
                     f"{S[len(rate)]}{rate}{S[len(amount)]}{amount}")
    parts.append("\x00")
    return "".join(parts)


def _short_map(values: Mapping[str, str]) -> str:
    if not values:
        return "\x00"
    return "".join([_SHORT[len(values)],
                    *[_SHORT[len(text)] + text for pair in values.items() for text in pair],
                    "\x00"])


def _timestamp(moment: datetime) -> bytes:
    """timestamp-millis as fastavro writes an aware datetime."""
    if type(moment) is not datetime or moment.tzinfo is None:
        raise Unusual("not an aware datetime")  # fastavro uses local time for naive ones
    delta = moment - _EPOCH
    return _millis_bytes((delta.days * 86400 + delta.seconds) * 1000
                         + delta.microseconds // 1000)


def _millis_bytes(millis: int) -> bytes:
    """A timestamp-millis value as a long, its encoding partly kept between calls."""
    n = millis << 1  # zig-zag, for the positive times of this century
    high = n >> 14
    if millis < 0 or high == 0:
        return _long_bytes(millis)
    # The low 14 bits are two continued varint bytes; the rest changes every 8 s or so,
    # and its encoding is kept.
    tail = _TAILS.get(high)
    if tail is None:
        if len(_TAILS) >= 10_000:
            _TAILS.clear()
        tail = _TAILS[high] = _encode_unsigned(high)
    return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80)) + tail


_TAILS: dict[int, bytes] = {}


def _encode_unsigned(n: int) -> bytes:
    """The varint of ``n >= 0``: seven bits a byte, low first, the high bit on all but the
    last. Gathered in an int and converted once, three times faster than a bytearray."""
    if n < 0x80:
        return _BYTES[n]
    packed, shift = 0, 0
    while n > 0x7F:
        packed |= ((n & 0x7F) | 0x80) << shift
        n >>= 7
        shift += 8
    return (packed | n << shift).to_bytes((shift >> 3) + 1, "little")


_BYTES = tuple(bytes((byte,)) for byte in range(0x80))


def _long_bytes(value: int) -> bytes:
    return _SMALL_LONGS[value + 64] if -64 <= value < 64 else _encode_long(value)


_SMALL_LONGS = tuple(_encode_long(value) for value in range(-64, 64))  # one byte each


# -- the rejection envelope ---------------------------------------------------------------

# The Avro length of 0..1023 bytes (a zig-zag varint): one byte below 64, two above; as
# bytes, and as the str whose latin-1 encoding they are. Longer strings and bytes have
# theirs encoded when written.
_SIZES = tuple(_encode_unsigned(size << 1) for size in range(1024))
_SIZE_CHARS = tuple(size.decode("latin-1") for size in _SIZES)

# Avro writes a string as its byte length (a zig-zag varint) then its UTF-8 bytes. For
# ASCII text shorter than 64 characters the length is one byte below 0x80, so the length
# and the text can be one str: _SHORT[len(text)] + text. The usual rated record is all
# such strings between its two timestamps and its two numbers at the end: it is built as
# one str and encoded at once ("ascii": IndexError or UnicodeEncodeError means "not
# usual", and fastavro takes the record).
_SHORT = _SIZE_CHARS[:64]
_NULL, _SET = b"\x00", b"\x02"  # union branch 0 (null) and 1 (the value), zig-zag encoded

# source_timestamp reaches fastavro as ``datetime.fromtimestamp(ms / 1000, UTC)``, which
# it writes back as whole milliseconds. For |ms| <= 2**41 (years 1900 to 2039) that is
# ms itself: ms / 1000 is then below 2**32 seconds, within 2**-22 s (0.24 us) of the exact
# value, and fromtimestamp rounds to the nearest microsecond, a whole number of ms.
# Further out, the datetime is built as rejection_to_avro builds it (the test checks both).
_EXACT_MILLIS = 2**41


def write_rejected_usage(*, reason: str, message: str, stage: str, origin: Origin,
                         key: bytes | None, value: bytes | None, event_id: str | None,
                         source_timestamp_ms: int | None, details: Mapping[str, str],
                         rejected_at: datetime) -> bytes | None:
    """The Avro body of ``rejection_to_avro(...)`` of the same arguments
    (rejected_usage.avsc), or None for an odd value: see the module docstring."""
    try:
        return _rejected_usage(reason, message, stage, origin, key, value, event_id,
                               source_timestamp_ms, details, rejected_at)
    except (Unusual, TypeError, ValueError, AttributeError, OverflowError, OSError):
        return None  # fastavro takes it (and raises whatever it raised before)


def _rejected_usage(reason: str, message: str, stage: str, origin: Origin,
                    key: bytes | None, value: bytes | None, event_id: str | None,
                    source_timestamp_ms: int | None, details: Mapping[str, str],
                    rejected_at: datetime) -> bytes:
    partition, offset, topic = origin.partition, origin.offset, origin.topic
    if type(partition) is not int or partition not in _INT32:
        raise Unusual("source_partition is not an Avro int")
    if type(offset) is not int:
        raise Unusual("source_offset is not an int")
    if (_short_ascii(reason) and _short_ascii(message) and _short_ascii(stage)
            and _short_ascii(topic) and (event_id is None or _short_ascii(event_id))):
        # The usual envelope: the five strings at its head as one str, each
        # {C[len(x)]}{x} below one Avro string (its length's bytes as latin-1 chars).
        C = _SIZE_CHARS  # noqa: N806
        event = "\x00" if event_id is None else f"\x02{C[len(event_id)]}{event_id}"
        head = (f"{C[len(reason)]}{reason}{C[len(message)]}{message}{event}"
                f"{C[len(stage)]}{stage}{C[len(topic)]}{topic}").encode("latin-1")
    else:
        head = b"".join((_text(reason), _text(message),
                         _NULL if event_id is None else _SET + _text(event_id),
                         _text(stage), _text(topic)))
    return b"".join((
        head, _long_bytes(partition), _long_bytes(offset),
        _NULL if source_timestamp_ms is None else _source_timestamp(source_timestamp_ms),
        _optional_bytes(key), _optional_bytes(value), _string_map(details),
        _timestamp(rejected_at)))


def _short_ascii(text: str) -> bool:
    return len(text) < 1024 and text.isascii()


def _size(size: int) -> bytes:
    return _SIZES[size] if size < 1024 else _encode_long(size)


def _text(text: str) -> bytes:
    """An Avro string: its UTF-8 length, then its UTF-8 bytes."""
    data = text.encode()
    return _size(len(data)) + data


def _optional_bytes(data: bytes | None) -> bytes:
    """A null|bytes union: branch 0, or branch 1 then the length and the bytes."""
    if data is None:
        return _NULL
    if type(data) is not bytes:
        raise Unusual("not bytes")
    return b"".join((_SET, _size(len(data)), data))


def _string_map(values: Mapping[str, str]) -> bytes:
    """A map<string> as fastavro writes it: one block (the count, then each key and value),
    then the end (0); an empty map is just the end."""
    if not values:
        return _NULL
    if len(values) >= 1024:
        return _any_string_map(values)
    C = _SIZE_CHARS  # noqa: N806
    parts = [C[len(values)]]
    for name, text in values.items():
        if not (_short_ascii(name) and _short_ascii(text)):
            return _any_string_map(values)  # some text is not short ASCII: UTF-8 lengths
        parts.append(f"{C[len(name)]}{name}{C[len(text)]}{text}")
    parts.append("\x00")
    return "".join(parts).encode("latin-1")


def _any_string_map(values: Mapping[str, str]) -> bytes:
    parts = [_size(len(values))]
    for name, text in values.items():
        parts.append(_text(name))
        parts.append(_text(text))
    parts.append(_NULL)
    return b"".join(parts)


def _source_timestamp(millis: int) -> bytes:
    """The null|timestamp-millis union set to what fastavro writes for
    ``datetime.fromtimestamp(millis / 1000, UTC)``: branch 1, then the long."""
    if type(millis) is not int:
        raise Unusual("not an int")
    if -_EXACT_MILLIS <= millis <= _EXACT_MILLIS:
        return _SET + _millis_bytes(millis)
    return _SET + _timestamp(datetime.fromtimestamp(millis / 1000, UTC))
