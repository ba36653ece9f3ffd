"""Confluent wire format with fastavro: magic byte 0, 4-byte schema id, Avro binary.

The hot path never talks to the registry after warm-up: writer schemas are
parsed once per schema id and cached; our own schema is registered once per
subject at start-up and its id reused for every record.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from functools import cache
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from processors.errors import RatingError
from schemas import SCHEMA_DIR
from stream.errors import TransientError

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size

# Public contract: which schema file each topic role carries (subject = "<topic>-value").
SCHEMA_FILES = {
    "events": "usage_event.avsc",
    "by_account": "usage_event.avsc",
    "rated": "rated_usage.avsc",
    "rejected": "rejected_usage.avsc",
    "dlq": "rejected_usage.avsc",
    "late": "rejected_usage.avsc",
    "quota_alerts": "quota_alert.avsc",
}


class SerdeError(RatingError):
    """Bytes that are not a record we can read (the DLQ reason is UNDECODABLE)."""


class RegistryUnavailable(TransientError):
    """The registry could not answer: transient, so the batch is retried, not dead-lettered."""


@cache
def schema_text(file_name: str) -> str:
    return (SCHEMA_DIR / file_name).read_text()


@cache
def parsed_schema(file_name: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_text(file_name)))


# Schemas of the topics other services write and the processor reads (usage events, licence
# changes): FULL, so that a platform service's new schema version is one the running
# processor can read (forward: with BACKWARD alone, a version dropping a field without a
# default was accepted, and every event written with it was UNDECODABLE) and the
# processor's own next version reads the events already written (backward). The topics
# the pipeline writes keep BACKWARD: their next version is ours, read by consumers that
# upgrade first.
FULL_COMPATIBILITY = frozenset({"usage_event.avsc", "subscription_event.avsc"})


def compatibility_of(file_name: str) -> str:
    return "FULL" if file_name in FULL_COMPATIBILITY else "BACKWARD"


def register(client: SchemaRegistryClient, topic: str, file_name: str) -> int:
    """Register ``file_name`` under ``<topic>-value`` with its compatibility rule
    (``compatibility_of``); its id."""
    subject = f"{topic}-value"
    compatibility = compatibility_of(file_name)
    try:
        client.set_compatibility(subject_name=subject, level=compatibility)
        return int(client.register_schema(subject, Schema(schema_text(file_name), "AVRO")))
    except SchemaRegistryError as exc:
        if exc.http_status_code >= 500:
            raise RegistryUnavailable(f"schema registry error registering {subject}: "
                                      f"{exc}") from exc
        raise RatingError(f"the schema registry refused {file_name} for {subject}: "
                          f"{exc}") from exc
    except Exception as exc:  # connection refused, timeouts (the client's HTTP errors)
        raise RegistryUnavailable(f"schema registry unreachable registering {subject}: "
                                  f"{type(exc).__name__}: {exc}") from exc


class AvroEncoder:
    """Encodes dicts for one subject with an already-registered schema id."""

    def __init__(self, schema_id: int, file_name: str):
        self.schema_id = schema_id
        self.file_name = file_name
        self._schema = parsed_schema(file_name)
        # The wire header of every record: ``header + body`` frames a body already
        # written with this schema (an attribute, not a method: this module is
        # interpreted, and its callers on the hot path are compiled).
        self.header = _HEADER.pack(MAGIC_BYTE, schema_id)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self._schema, record)
        return buffer.getvalue()


class AvroDecoder:
    """Decodes any schema id the registry knows into our reader schema (schema resolution)."""

    def __init__(self, client: SchemaRegistryClient, reader_file: str):
        self._client = client
        self.reader_file = reader_file
        self._reader = parsed_schema(reader_file)
        self._writers: dict[int, Any] = {}
        # The wire headers (magic byte + schema id) of the known writer schemas that are
        # the reader schema itself: a record whose first bytes are one of these was written
        # with the reader schema (codec.read_event's fast path tests exactly that). An id
        # not seen yet is not here until ``decode`` has learnt it: never asks the registry.
        self.reader_headers: set[bytes] = set()

    def remember(self, schema_id: int, file_name: str) -> None:
        """Seed the cache with a schema we registered ourselves: records written with our
        own schemas decode even while the registry is unreachable."""
        self._learn(schema_id, parsed_schema(file_name))

    def _learn(self, schema_id: int, parsed: Any) -> None:
        self._writers[schema_id] = parsed
        header = _HEADER.pack(MAGIC_BYTE, schema_id)
        if parsed == self._reader:
            self.reader_headers.add(header)
        else:
            self.reader_headers.discard(header)

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None or len(data) < _HEADER.size:
            raise SerdeError(f"value of {0 if data is None else len(data)} bytes is too short "
                             "for the Confluent wire format")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise SerdeError(f"unknown magic byte {magic} (expected {MAGIC_BYTE})")
        writer = self._writer(schema_id)
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size:]), writer,
                                                self._reader)
        except Exception as exc:  # fastavro raises many types for corrupt input
            raise SerdeError(f"Avro body does not match schema id {schema_id}: "
                             f"{type(exc).__name__}: {exc}") from None
        if not isinstance(record, dict):
            raise SerdeError(f"schema id {schema_id} did not decode to a record")
        return record

    def _writer(self, schema_id: int) -> Any:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SerdeError(f"schema id {schema_id} is unknown to the registry") from None
            raise RegistryUnavailable(f"schema registry error for id {schema_id}: {exc}") from exc
        except Exception as exc:  # connection refused, timeouts: retry, never dead-letter
            raise RegistryUnavailable(f"schema registry unreachable for id {schema_id}: "
                                      f"{exc}") from exc
        if schema.schema_str is None:
            raise SerdeError(f"schema id {schema_id} has no schema text in the registry")
        parsed = fastavro.parse_schema(json.loads(schema.schema_str))
        self._learn(schema_id, parsed)
        return parsed
