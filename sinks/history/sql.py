"""The billing history's tables and statements, written once for SQLite and PostgreSQL.

Layout (docs/billing-history.md):

- ``billing_history``: one row per record of ``usage.rated``: every field of
  RatedUsage under its own name, plus ``rated_topic``, ``rated_partition``,
  ``rated_offset`` (where the sink read it). ``event_id`` is the primary key:
  the unique guard behind the offsets fence. ``tiers`` and ``memo`` are JSON
  text (decimals inside as strings). Money, rates and quantities are NUMERIC
  in PostgreSQL and decimal TEXT in SQLite (SQLite's NUMERIC affinity would
  turn them into floats); never floats. Times are TIMESTAMPTZ in PostgreSQL
  and fixed-width UTC ISO-8601 text in SQLite (so text order is time order).
- ``sink_offsets``: (sink, topic, partition) -> next_offset, written in the
  same transaction as the rows it covers.

The two dialects differ only in column types, placeholders, the max function,
the exact decimal SUM (PostgreSQL's own over NUMERIC; in SQLite ``decimal_sum``,
a Python aggregate sqlite.py registers, because SQLite's sum() adds binary
floats) and how values travel (a :class:`Dialect` says how).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from operator import attrgetter
from typing import Any

from sinks.history.model import HistoryError, HistoryFilter, HistoryRow, HistoryTier

HISTORY_TABLE = "billing_history"
OFFSETS_TABLE = "sink_offsets"
STORES_TABLE = "sink_stores"  # one id per store, drawn once: names the sink's consumer group
SQLITE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width: text order == time order

# Column kinds: how a HistoryRow field is typed and carried in each backend.
TEXT, NULLABLE_TEXT, DECIMAL, TIME, INT, BIGINT, BOOL, JSON = (
    "text", "nullable_text", "decimal", "time", "int", "bigint", "bool", "json")

COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", TEXT), ("event_time", TIME), ("rated_at", TIME),
    ("service_item_type", TEXT), ("service_item_id", TEXT), ("operation", TEXT),
    ("account_id", TEXT), ("account_kind", TEXT), ("requester", TEXT), ("home_ou", TEXT),
    ("provider", NULLABLE_TEXT), ("product", NULLABLE_TEXT), ("source", TEXT),
    ("billing_period", TEXT), ("fiscal_period", TEXT), ("rate_group", TEXT),
    ("rate_table", TEXT), ("rate_code", TEXT), ("unit_of_measure", TEXT), ("pricing", TEXT),
    ("rate", DECIMAL), ("quantity", DECIMAL), ("tiers", JSON),
    ("minimum_charge_applied", BOOL), ("currency", TEXT), ("net_amount", DECIMAL),
    ("markup_rate", DECIMAL), ("markup_amount", DECIMAL), ("gross_amount", DECIMAL),
    ("credit_applied", DECIMAL), ("credit_remaining", DECIMAL), ("charged_amount", DECIMAL),
    ("memo", JSON), ("catalog_version", TEXT), ("quota_note", NULLABLE_TEXT),
    ("origin_topic", TEXT), ("origin_partition", INT), ("origin_offset", BIGINT),
    ("rated_topic", TEXT), ("rated_partition", INT), ("rated_offset", BIGINT),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
assert set(COLUMN_NAMES) == set(HistoryRow.__slots__), "every HistoryRow field is a column"

# One index per API filter: the filtered column, then the sort key, so that a page is a
# range scan already in (event_time, event_id) order; account + month, the API's most
# common question ("acct-eng's bill for May"), has its own, which also serves month_usage
# (an estimate's month position) as one range scan of exactly the account's month.
INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ix_billing_history_time", ("event_time", "event_id")),
    ("ix_billing_history_account", ("account_id", "event_time", "event_id")),
    ("ix_billing_history_account_period", ("account_id", "billing_period", "event_time",
                                           "event_id")),
    ("ix_billing_history_period", ("billing_period", "event_time", "event_id")),
    ("ix_billing_history_provider", ("provider", "event_time", "event_id")),
    ("ix_billing_history_product", ("product", "event_time", "event_id")),
    ("ix_billing_history_item", ("service_item_type", "event_time", "event_id")),
    ("ix_billing_history_item_id", ("service_item_id", "event_time", "event_id")),
)


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str
    types: dict[str, str]
    max_function: str
    sum_function: str  # an exact SUM over the DECIMAL columns as this dialect stores them

    # -- values in (JSON columns: see row_encoder) -------------------------------------
    def encode(self, kind: str, value: Any) -> Any:
        if self.name != "sqlite":
            return value  # psycopg adapts Decimal -> numeric, datetime -> timestamptz
        if kind == DECIMAL:
            return str(value)
        if kind == TIME:
            return format_sqlite_time(value)
        if kind == BOOL:
            return int(value)
        return value

    # -- values out -----------------------------------------------------------------
    def decode(self, kind: str, value: Any) -> Any:
        if kind == DECIMAL:
            return value if isinstance(value, Decimal) else Decimal(value)
        if kind == TIME:
            when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
            return when.astimezone(UTC)
        if kind == BOOL:
            return bool(value)
        if kind in (INT, BIGINT):
            return int(value)
        return value


SQLITE = Dialect("sqlite", "?", {
    TEXT: "TEXT NOT NULL", NULLABLE_TEXT: "TEXT", DECIMAL: "TEXT NOT NULL",
    TIME: "TEXT NOT NULL", INT: "INTEGER NOT NULL", BIGINT: "INTEGER NOT NULL",
    BOOL: "INTEGER NOT NULL", JSON: "TEXT NOT NULL"}, "max", "decimal_sum")
POSTGRES = Dialect("postgresql", "%s", {
    TEXT: "TEXT NOT NULL", NULLABLE_TEXT: "TEXT", DECIMAL: "NUMERIC NOT NULL",
    TIME: "TIMESTAMPTZ NOT NULL", INT: "INTEGER NOT NULL", BIGINT: "BIGINT NOT NULL",
    BOOL: "BOOLEAN NOT NULL", JSON: "TEXT NOT NULL"}, "GREATEST", "sum")


def format_sqlite_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise HistoryError(f"naive datetime {value!r}: history times are UTC-aware")
    return value.astimezone(UTC).strftime(SQLITE_TIME_FORMAT)


# -- schema -------------------------------------------------------------------------

def schema_statements(dialect: Dialect) -> list[str]:
    """Idempotent DDL: safe to run at every open, by several processes."""
    columns = ",\n  ".join(f"{name} {dialect.types[kind]}" for name, kind in COLUMNS)
    statements = [
        f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\n  {columns},\n"
        f"  PRIMARY KEY (event_id)\n)",
        f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (\n  sink TEXT NOT NULL,\n"
        f"  topic TEXT NOT NULL,\n  partition INTEGER NOT NULL,\n"
        f"  next_offset {dialect.types[BIGINT]},\n  PRIMARY KEY (sink, topic, partition)\n)",
        f"CREATE TABLE IF NOT EXISTS {STORES_TABLE} (\n  sink TEXT NOT NULL,\n"
        f"  store_id TEXT NOT NULL,\n  PRIMARY KEY (sink)\n)",
    ]
    statements += [f"CREATE INDEX IF NOT EXISTS {name} ON {HISTORY_TABLE} ({', '.join(cols)})"
                    for name, cols in INDEXES]
    return statements


# -- writes -------------------------------------------------------------------------

def insert_rows_sql(dialect: Dialect) -> str:
    """Insert, ignoring a row whose event_id is already stored (the unique guard)."""
    marks = ", ".join([dialect.placeholder] * len(COLUMNS))
    return (f"INSERT INTO {HISTORY_TABLE} ({', '.join(COLUMN_NAMES)}) VALUES ({marks}) "
            "ON CONFLICT (event_id) DO NOTHING")


def row_encoder(dialect: Dialect) -> Callable[[HistoryRow], tuple[Any, ...]]:
    """HistoryRow -> insert parameters, in COLUMNS order. Built once per store: only the
    columns the backend cannot take as they are get converted (the write hot path)."""
    values_of = attrgetter(*COLUMN_NAMES)
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for index, (name, kind) in enumerate(COLUMNS):
        if kind == JSON:
            converters.append((index, _tiers_json if name == "tiers" else _memo_json))
        elif dialect.encode(kind, _PROBE[kind]) is not _PROBE[kind]:
            converters.append((index, partial(dialect.encode, kind)))

    def encode(row: HistoryRow) -> tuple[Any, ...]:
        values = list(values_of(row))
        for index, convert in converters:
            values[index] = convert(values[index])
        return tuple(values)

    return encode


def claim_store_id_sql(dialect: Dialect) -> str:
    """The first id offered for a sink is kept: later offers (other processes) change nothing."""
    p = dialect.placeholder
    return (f"INSERT INTO {STORES_TABLE} (sink, store_id) VALUES ({p}, {p}) "
            "ON CONFLICT (sink) DO NOTHING")


def select_store_id_sql(dialect: Dialect) -> str:
    return f"SELECT store_id FROM {STORES_TABLE} WHERE sink = {dialect.placeholder}"


def select_offsets_sql(dialect: Dialect) -> str:
    p = dialect.placeholder
    return f"SELECT partition, next_offset FROM {OFFSETS_TABLE} WHERE sink = {p} AND topic = {p}"


def upsert_offset_sql(dialect: Dialect) -> str:
    """Offsets only move forward, even if two writers race."""
    p = dialect.placeholder
    return (f"INSERT INTO {OFFSETS_TABLE} (sink, topic, partition, next_offset) "
            f"VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (sink, topic, partition) DO UPDATE "
            f"SET next_offset = {dialect.max_function}({OFFSETS_TABLE}.next_offset, "
            "excluded.next_offset)")


def next_offsets(positions: Sequence[tuple[int, int]]) -> dict[int, int]:
    """(partition, offset) pairs -> partition -> the offset after the highest one."""
    highest: dict[int, int] = {}
    for partition, offset in positions:
        highest[partition] = max(highest.get(partition, -1), offset)
    return {partition: offset + 1 for partition, offset in highest.items()}


# -- reads --------------------------------------------------------------------------

FILTER_COLUMNS = ("account_id", "billing_period", "provider", "product", "service_item_type",
                  "service_item_id", "source")


def where_clause(where: HistoryFilter, dialect: Dialect,
                 after: tuple[datetime, str] | None = None) -> tuple[str, list[Any]]:
    """``WHERE ...`` (or "") and its parameters: every set filter field, then the cursor."""
    conditions: list[str] = []
    params: list[Any] = []
    for name in FILTER_COLUMNS:
        value = getattr(where, name)
        if value is not None:
            conditions.append(f"{name} = {dialect.placeholder}")
            params.append(value)
    if after is not None:
        p = dialect.placeholder
        # Row-value comparison: both backends use the (event_time, event_id) index for it.
        conditions.append(f"(event_time, event_id) > ({p}, {p})")
        params += [dialect.encode(TIME, after[0]), after[1]]
    return ("WHERE " + " AND ".join(conditions)) if conditions else "", params


def select_rows_sql(where_sql: str, dialect: Dialect, *, limited: bool) -> str:
    limit = f" LIMIT {dialect.placeholder}" if limited else ""
    return (f"SELECT {', '.join(COLUMN_NAMES)} FROM {HISTORY_TABLE} {where_sql} "
            f"ORDER BY event_time, event_id{limit}")


def count_sql(where_sql: str) -> str:
    return f"SELECT count(*) FROM {HISTORY_TABLE} {where_sql}"


def providers_sql(dialect: Dialect) -> str:
    return (f"SELECT DISTINCT provider FROM {HISTORY_TABLE} "
            f"WHERE billing_period = {dialect.placeholder}")


def month_usage_sql(dialect: Dialect) -> str:
    """One account's month, aggregated by the database: row count, the summed quantity of
    one rate table + code, the summed credit applied. Parameters: rate_table, rate_code,
    account_id, billing_period. A SUM over no value is NULL (the caller reads it as 0)."""
    p, total = dialect.placeholder, dialect.sum_function
    return (f"SELECT count(*), "
            f"{total}(CASE WHEN rate_table = {p} AND rate_code = {p} THEN quantity END), "
            f"{total}(credit_applied) FROM {HISTORY_TABLE} "
            f"WHERE account_id = {p} AND billing_period = {p}")


def row_decoder(dialect: Dialect) -> Callable[[Sequence[Any]], HistoryRow]:
    """Selected values (COLUMNS order) -> HistoryRow; built once per store (the read path)."""
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for index, (name, kind) in enumerate(COLUMNS):
        if kind == JSON:
            converters.append((index, _tiers if name == "tiers" else _memo))
        elif kind in (DECIMAL, TIME, BOOL):  # text and integers arrive as they are stored
            converters.append((index, partial(dialect.decode, kind)))

    def decode(values: Sequence[Any]) -> HistoryRow:
        fields = list(values)
        for index, convert in converters:
            fields[index] = convert(fields[index])
        return HistoryRow(**dict(zip(COLUMN_NAMES, fields, strict=True)))

    return decode


def _tiers_json(tiers: Sequence[HistoryTier]) -> str:
    """Decimals as their exact strings."""
    if not tiers:
        return "[]"
    return _json([{"tier_from": str(t.tier_from),
                   "tier_to": None if t.tier_to is None else str(t.tier_to),
                   "quantity": str(t.quantity), "rate": str(t.rate), "amount": str(t.amount)}
                  for t in tiers])


def _memo_json(memo: Mapping[str, str]) -> str:
    return _json(dict(memo)) if memo else "{}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# A sample value per column kind: a dialect whose encode returns it unchanged needs no
# conversion for that kind.
_PROBE: dict[str, Any] = {
    TEXT: "x", NULLABLE_TEXT: "x", DECIMAL: Decimal("1.5"),
    TIME: datetime(2024, 1, 1, tzinfo=UTC), INT: 1, BIGINT: 1, BOOL: True,
}


def _memo(text: str) -> dict[str, str]:
    return {} if text == "{}" else dict(json.loads(text))


def _tiers(text: str) -> tuple[HistoryTier, ...]:
    if text == "[]":
        return ()
    return tuple(HistoryTier(tier_from=Decimal(t["tier_from"]),
                             tier_to=None if t["tier_to"] is None else Decimal(t["tier_to"]),
                             quantity=Decimal(t["quantity"]), rate=Decimal(t["rate"]),
                             amount=Decimal(t["amount"]))
                 for t in json.loads(text))
