"""Billing-history test helpers: a store per backend, rated records on the real broker,
the sink in a thread or in a process, and what Kafka itself says was rated."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from confluent_kafka import KafkaError, Message
from prometheus_client import REGISTRY

from sinks.history import HistoryFilter, open_history_store
from sinks.history.model import BillingHistoryStore, HistoryRow
from sinks.history.sink import run_billing_history
from stream.clients import transactional_producer
from stream.settings import REPO_ROOT
from tests.integration.harness import Pipeline
from tests.integration.running_sink import RunningSink
from tests.unit.sinks.history_records import rated_value

BACKENDS = ("sqlite", "postgres")
SINK = "billing-history"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"sink": SINK, **labels}) or 0.0


def sink_records(result: str) -> float:
    return metric("rating_sink_records_total", result=result)


# -- stores ---------------------------------------------------------------------------

def postgres_schema_url(dsn: str, schema: str) -> str:
    """``dsn`` confined to ``schema`` (libpq options: search_path)."""
    joiner = "&" if urlsplit(dsn).query else "?"
    return f"{dsn}{joiner}options=-csearch_path%3D{schema}"


class Backend:
    """One empty billing history of this test: an SQLite file, or a PostgreSQL schema."""

    def __init__(self, kind: str, tmp_path: Path, postgres_dsn: str | None):
        self.kind = kind
        self.dsn = postgres_dsn
        self.schema = f"bh_test_{uuid.uuid4().hex[:12]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'billing-history.db'}"
        else:
            assert postgres_dsn is not None
            with psycopg.connect(postgres_dsn, autocommit=True) as connection:
                connection.execute(f"CREATE SCHEMA {self.schema}")  # type: ignore[arg-type]
            self.url = postgres_schema_url(postgres_dsn, self.schema)

    def url_through(self, port: int) -> str:
        """The same database reached on another local port (a CuttableProxy)."""
        parts = urlsplit(self.url)
        host = f"{parts.username}@" if parts.username else ""
        return parts._replace(netloc=f"{host}127.0.0.1:{port}").geturl()

    def open(self) -> BillingHistoryStore:
        return open_history_store(self.url)

    def drop(self) -> None:
        if self.kind == "postgres" and self.dsn is not None:
            with psycopg.connect(self.dsn, autocommit=True) as connection:
                connection.execute(
                    f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    made = Backend(request.param, tmp_path, dsn)
    try:
        yield made
    finally:
        made.drop()


def stored_rows(backend: Backend) -> list[HistoryRow]:
    store = backend.open()
    try:
        return list(store.iter_rows(HistoryFilter()))
    finally:
        store.close()


def stored_count(backend: Backend, where: HistoryFilter | None = None) -> int:
    store = backend.open()
    try:
        return store.count(where or HistoryFilter())
    finally:
        store.close()


# -- rated records on the broker ------------------------------------------------------------

def varied_values(tag: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    """Rated records with amounts that differ in every digit, three providers and two
    currencies, spread over May and June 2024."""
    values = []
    for n in range(start, start + count):
        provider = (None, "acme", "nimbus")[n % 3]
        currency = "JPY" if n % 7 == 0 else "USD"
        cents = "" if currency == "JPY" else f".{n % 100:02d}"
        net = f"{n % 250}{cents}"
        markup = "0" if provider is None else f"{n % 9}{cents}"
        gross = str(Decimal(net) + Decimal(markup))
        credit = "0" + ("" if currency == "JPY" else ".00")
        values.append(rated_value(
            n, event_id=f"{tag}-{n:06d}", provider=provider,
            product=None if provider is None else f"{provider}-app",
            account_id=f"acct-{n % 5}", currency=currency, quantity=str(n % 11 + 1),
            net_amount=net, markup_amount=markup, gross_amount=gross,
            markup_rate="0" if provider is None else "0.15", credit_applied=credit,
            charged_amount=gross, billing_period="2024-05" if n % 4 else "2024-06"))
    return values


def produce_rated(pipeline: Pipeline, values: list[dict[str, Any]], *,
                  commit: bool = True) -> None:
    """One transaction of rated records on the pipeline's usage.rated, keyed by account."""
    topic = pipeline.settings.topics.rated.name
    producer = transactional_producer(pipeline.connections, f"test-history-{uuid.uuid4().hex}",
                                      60_000)
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            errors.append(error)

    producer.init_transactions()
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, key=str(value["account_id"]).encode(),
                         value=pipeline.codecs.rated_encoder.encode(value),
                         on_delivery=delivered)
        producer.poll(0)
    producer.flush(60)
    if commit:
        producer.commit_transaction()
    else:
        producer.abort_transaction()
    assert not errors, errors


Position = tuple[int, int]


def kafka_view(pipeline: Pipeline) -> dict[Position, tuple[str, ...]]:
    """What usage.rated holds (read_committed), read back independently of the sink:
    (partition, offset) -> event id, account, period, provider and amounts as sent."""
    return {(r.partition, r.offset): _fields(r.value) for r in pipeline.rated()}


def history_view(rows: list[HistoryRow]) -> dict[Position, tuple[str, ...]]:
    view: dict[Position, tuple[str, ...]] = {}
    for row in rows:
        position = (row.rated_partition, row.rated_offset)
        assert position not in view, f"{position} stored twice"
        view[position] = (row.event_id, row.account_id, row.billing_period,
                          row.provider or "", row.currency, str(row.quantity),
                          str(row.net_amount), str(row.markup_amount), str(row.gross_amount),
                          str(row.charged_amount))
    return view


def _fields(value: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(value[name] or "") for name in (
        "event_id", "account_id", "billing_period", "provider", "currency", "quantity",
        "net_amount", "markup_amount", "gross_amount", "charged_amount"))


# -- the sink ----------------------------------------------------------------------------------

def history_sink(pipeline: Pipeline, url: str, replay: bool = False) -> RunningSink:
    """run_billing_history in a thread of this process."""
    return RunningSink(SINK, lambda stop: run_billing_history(
        pipeline.settings, pipeline.connections, url, stop, replay=replay))


class SinkProcess:
    """`rating sink billing-history` in a child process, as in production."""

    def __init__(self, pipeline: Pipeline, url: str, *extra: str, batch_size: int = 1000):
        self.log_path = pipeline.tmp_dir / f"history-sink-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "sink", "billing-history", "--url", url,
             *extra], cwd=REPO_ROOT,
            env={**pipeline.env(), "RATING_BATCH_SIZE": str(batch_size)},
            stdout=self._log, stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"sink exited with {self.popen.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()

