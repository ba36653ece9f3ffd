"""Odd input records for byte-for-byte comparisons of two engines (``bench.offline --edge-cases``).

Derived from workload records: every odd case we could think of for the
decoder, the validation, dedup and rating (non-ASCII and long strings, ``4`` vs
``4.000``, NaN, both number and text, an attribute twice, unknown items and
accounts, conflicting re-publications, late events, a pre-1970 time), plus
random garbage, truncated and bit-flipped records, a wrong magic byte and an
exact duplicate. Deterministic for a given input and seed.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from stream.serde import parsed_schema

Record = tuple[bytes, bytes]
Variant = Callable[[dict[str, Any], list[dict[str, Any]], int], None]
_SCHEMA = parsed_schema("usage_event.avsc")


def _decode(value: bytes) -> dict[str, Any]:
    record = fastavro.schemaless_reader(io.BytesIO(value[5:]), _SCHEMA, None)
    assert isinstance(record, dict)
    return record


def _encode(header: bytes, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, _SCHEMA, record)
    return header + buffer.getvalue()


def _with_numbers_padded(r: dict[str, Any], _: list[dict[str, Any]], __: int) -> None:
    r["attributes"] = [dict(a, number=a["number"] + ".000")
                       if a["number"] and "." not in a["number"] else a
                       for a in r["attributes"]]


def _conflict(r: dict[str, Any], base: list[dict[str, Any]], i: int) -> None:
    r["event_id"] = base[i - 1]["event_id"]  # the same id with another payload


_VARIANTS: tuple[Variant, ...] = (
    lambda r, _, __: r.update(requester="Zoë Ørsted-" + "é" * 3),
    lambda r, _, __: r.update(home_ou=r["home_ou"] + "/" + "x" * 70),
    lambda r, _, __: r.update(service_item_id=r["service_item_id"] + "-" + "long" * 20),
    _with_numbers_padded,
    lambda r, _, __: r.update(event_time=r["event_time"] - timedelta(days=60)),  # late
    lambda r, _, __: r.update(attributes=[{"name": "vcpu", "number": "NaN", "text": None}]),
    lambda r, _, __: r.update(attributes=[{"name": "vcpu", "number": "4", "text": "four"}]),
    lambda r, _, __: r.update(source="  "),
    lambda r, _, __: r.update(account_id="no-such-account"),
    _conflict,
    lambda r, _, __: r.update(attributes=r["attributes"] * 2),  # an attribute twice
    lambda r, _, __: r.update(service_item_type="Teleporter"),
    lambda r, _, __: r.update(home_ou="/" + r["home_ou"] + "/"),
    lambda r, _, __: r.update(attributes=[dict(a, name=a["name"] + "é")
                                          for a in r["attributes"]]),
    lambda r, _, __: r.update(provider="", product=""),
    lambda r, _, __: r.update(event_time=datetime(1969, 12, 31, 23, 59, 59, 999000,
                                                  tzinfo=UTC)),
)


def edge_case_records(records: Sequence[Record], seed: int = 3, crafted: int = 400,
                      damaged: int = 40) -> list[Record]:
    """``crafted`` odd variants of the first records, ``damaged`` x 4 broken ones and an
    exact duplicate, shuffled; ``records`` are (key, Confluent-framed UsageEvent)."""
    if len(records) < max(crafted, damaged, 11):
        raise ValueError(f"need at least {max(crafted, damaged, 11)} records, got {len(records)}")
    rng = random.Random(seed)
    header = records[0][1][:5]
    base = [_decode(value) for _, value in records[:crafted]]
    out: list[Record] = []
    for i, original in enumerate(base):
        record = dict(original)
        _VARIANTS[i % len(_VARIANTS)](record, base, i)
        out.append((record["service_item_id"].encode(), _encode(header, record)))
    for _, good in records[:damaged]:
        out.append((b"garbage", b"\x07" + rng.randbytes(rng.randint(0, 40))))
        out.append((b"trunc", good[: rng.randint(1, len(good) - 1)]))
        flipped = bytearray(good)
        flipped[rng.randrange(5, len(good))] = rng.getrandbits(8)
        out.append((b"flip", bytes(flipped)))
        out.append((b"magic", b"\x01" + good[1:]))
    out.append((b"dup", records[10][1]))
    out.append((b"dup", records[10][1]))
    rng.shuffle(out)
    return out

