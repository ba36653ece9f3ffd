"""SIGKILL the subscription stage in the middle of a billing run, restart it: every due
licence billed exactly once, and a re-run bills nothing.

How a run is processed (docs/licences.md): `rating billing-run` puts one request into
every partition of licence.events; a partition's request is billed in the transaction
of the batch that consumes it: its charges on usage.rated, its paid marks on
licence.changelog, its report on licence.runs and the request's offset, together.
One instance that owns every partition usually consumes the six requests in one batch:
the whole run is then one transaction, all or nothing. Here the run is spread over six
transactions, as with several instances or a busy topic: the processor that bills runs
with RATING_BATCH_SIZE=1, one request per transaction, and each partition holds one
campus with 600 due licences, so that each transaction takes a while. (The restarted
processor runs at the default batch size.)

The kill lands for real mid-run, and the test checks it did: once a partition's report
is committed, the processor is stepped (SIGSTOP / SIGCONT in 20 ms slices) until, frozen,
it has an open transaction whose charges are in the log; it is SIGKILLed right there.
So the kill cuts an open transaction with charges in it, after some partitions committed
and before the others (asserted on what the broker holds after the kill). Then it
proves, with read_committed readers:

- the killed transaction's charges are never visible (the restarted instance fences its
  zombie and aborts it), while they stay in the log;
- the partitions committed before the kill are not billed again (their request offsets
  were committed with their charges), the others are billed once after the restart:
  exactly one report per partition, every due licence once, no duplicate event id, the
  hand-computed total;
- the paid marks of the partitions billed before the kill were committed with their
  charges: a re-run after the restart bills nothing (every due licence already paid).

It fails when the paid marks are not written to licence.changelog, or one transaction
late, (the re-run bills a partition again) and when the charges are produced outside
the transaction (charges visible before their report; duplicates after the restart).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import count
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from processors.licences.model import BillingRunRequest, LicenceAction
from stream.clients import reading_consumer
from stream.lag import caught_up
from stream.licence_publisher import LicencePublisher, new_licence_event
from stream.run_reports import RunReport
from stream.settings import Connections
from tests.integration.harness import EXAMPLE_CATALOG, Pipeline, ProcessorProcess

pytestmark = [pytest.mark.integration, pytest.mark.fault]

P, D = LicenceAction.PROVISIONED, LicenceAction.DEPROVISIONED
# Annual fee = 12 x the monthly rate of config/catalog/licences.yaml.
ANNUAL_FEE = {"sf-sales-cloud": Decimal("1500.00"),  # 12 x 125.00
              "sf-marketing-cloud": Decimal("720.00"),  # 12 x 60.00
              "cvent-events": Decimal("420.00")}  # 12 x 35.00
DUE_PER_PRODUCT = 200  # per campus: 600 due licences, 200 of each product
# Six campuses (one per partition) x 200 x (1500.00 + 720.00 + 420.00) = 6 x 528,000.00.
TOTAL = Decimal("3168000.00")
PARTITIONS = 6  # licence.events in config/settings.yaml
RUN = "annual"
STEP_S = 0.02  # how long the processor runs between two looks at the broker
SETTLE_S = 0.2


def _campus_per_partition(partitions: int) -> list[str]:
    """A campus id for each partition of licence.events. Changes are keyed by campus and
    the publisher's producer partitions by librdkafka's default (consistent_random:
    crc32(key) % partitions); the reports check the spread: every partition bills."""
    found: dict[int, str] = {}
    for number in count():
        name = f"campus{number}"
        found.setdefault(zlib.crc32(name.encode()) % partitions, name)
        if len(found) == partitions:
            return [found[p] for p in range(partitions)]
    raise AssertionError("unreachable")


def _catalog(tmp_path: Path, campuses: list[str]) -> Path:
    """The example catalog plus the test's campuses (sections merge across files)."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    for source in EXAMPLE_CATALOG.glob("*.yaml"):
        (folder / source.name).write_text(source.read_text())
    lines = ["campuses:"]
    lines += [f'  - {{id: {c}, name: Campus {c}, account: acct-{c}, billing_target: '
              f'"SPD-9{n:07d}"}}' for n, c in enumerate(campuses)]
    lines.append(f"org_units: [{', '.join(f'campuses/{c}' for c in campuses)}]")
    lines.append("accounts:")
    for campus in campuses:
        lines += [f"  - id: acct-{campus}", "    kind: tenant", f"    ou: campuses/{campus}",
                  "    rate_groups:", "      - {rate_group: standard, from: FY2026-H1}"]
    (folder / "zz-crash-campuses.yaml").write_text("\n".join(lines) + "\n")
    return folder


def _publish_licences(pipeline: Pipeline, campuses: list[str]) -> set[str]:
    """Per campus: 600 licences due for the FY2027 annual run, 10 provisioned and
    deprovisioned before it, 10 provisioned after July (not due); the due charge ids."""
    due: set[str] = set()
    with LicencePublisher.connect(pipeline.connections,
                                  pipeline.settings.topics.subscriptions.name) as publisher:
        def change(action: LicenceAction, campus: str, record: str, product: str,
                   on: date) -> None:
            publisher.publish(new_licence_event(
                action=action, campus=campus, record_number=record, user=f"user-{record}",
                product=product, effective_date=on, source="crash-test"))

        for campus in campuses:
            for product in ANNUAL_FEE:
                for n in range(DUE_PER_PRODUCT):
                    record = f"{campus}-{product}-{n}"
                    change(P, campus, record, product, date(2026, 1 + n % 6, 1 + n % 28))
                    due.add(f"licence:FY2027:{RUN}:{campus}:{record}")
            for n in range(10):
                change(P, campus, f"{campus}-gone-{n}", "cvent-events", date(2025, 9, 1))
                change(D, campus, f"{campus}-gone-{n}", "cvent-events", date(2026, 5, 31))
                change(P, campus, f"{campus}-late-{n}", "sf-sales-cloud", date(2026, 8, 3))
    return due


def _read_to_end(connections: Connections, topic: str, *,
                 committed: bool = True) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of ``topic``, read from the start to the end: the last
    stable offset with read_committed, the high watermark with read_uncommitted."""
    isolation = "read_committed" if committed else "read_uncommitted"
    consumer = reading_consumer(connections, **{"isolation.level": isolation})
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        pending, deadline = set(partitions), time.monotonic() + 30
        while pending:
            assert time.monotonic() < deadline, f"{topic}: {sorted(pending)} not read to end"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                records.append((message.key(), message.value()))
            elif error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
    finally:
        consumer.close()
    return records


def _reports(pipeline: Pipeline, request_id: str) -> list[RunReport]:
    """The committed reports of one request (one per partition when all is well)."""
    return [RunReport.decode(value) for key, value in
            _read_to_end(pipeline.connections, pipeline.settings.topics.licence_runs.name)
            if key == request_id.encode()]


def _request_run(pipeline: Pipeline) -> str:
    """What `rating billing-run` publishes: the request in every partition."""
    request = BillingRunRequest(request_id=str(uuid.uuid4()), fiscal_year=2027, run=RUN,
                                event_time=datetime.now(UTC), source="crash-test")
    with LicencePublisher.connect(pipeline.connections,
                                  pipeline.settings.topics.subscriptions.name) as publisher:
        assert sorted(publisher.request_run(request)) == list(range(PARTITIONS))
    return request.request_id


def _wait_for_reports(pipeline: Pipeline, request_id: str, processor: ProcessorProcess,
                      timeout_s: float) -> list[RunReport]:
    deadline = time.monotonic() + timeout_s
    while True:
        processor.check_alive()
        reports = _reports(pipeline, request_id)
        if len(reports) >= PARTITIONS:
            return reports
        assert time.monotonic() < deadline, (f"{len(reports)} of {PARTITIONS} reports in "
                                             f"{timeout_s} s:\n{processor.log_tail()}")
        time.sleep(0.5)


class _RunWatch:
    """Follows a run as it happens: the committed reports (licence.runs, read_committed)
    and every charge in the log, committed or not (usage.rated, read_uncommitted)."""

    def __init__(self, pipeline: Pipeline, request_id: str):
        topics = pipeline.settings.topics
        self._key = request_id.encode()
        self.reports: list[RunReport] = []
        self.charges_in_log = 0
        fast = {"fetch.wait.max.ms": 10, "enable.partition.eof": False}
        self._reports = self._follow(reading_consumer(pipeline.connections, **fast),
                                     topics.licence_runs.name)
        self._charges = self._follow(reading_consumer(
            pipeline.connections, **fast, **{"isolation.level": "read_uncommitted"}),
            topics.rated.name)

    @staticmethod
    def _follow(consumer: Consumer, topic: str) -> Consumer:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        return consumer

    def poll(self) -> None:
        for message in self._reports.consume(100, 0.02):
            if message.error() is None and message.key() == self._key:
                self.reports.append(RunReport.decode(message.value()))
        self.charges_in_log += sum(message.error() is None
                                   for message in self._charges.consume(10_000, 0.02))

    def charges_in_flight(self) -> bool:
        """Charges in the log that no committed report accounts for: an open transaction."""
        return self.charges_in_log > sum(len(report.billed) for report in self.reports)

    def close(self) -> None:
        self._reports.close()
        self._charges.close()


@dataclass(frozen=True)
class _AtKill:
    reports: list[RunReport]  # committed before the kill
    committed_charges: int  # on usage.rated, read_committed
    charges_in_log: int  # on usage.rated, read_uncommitted: the open transaction's too

    @property
    def reported_charges(self) -> int:
        return sum(len(report.billed) for report in self.reports)


def _at_this_point(pipeline: Pipeline, request_id: str) -> _AtKill:
    rated = pipeline.settings.topics.rated.name
    return _AtKill(_reports(pipeline, request_id),
                   len(_read_to_end(pipeline.connections, rated)),
                   len(_read_to_end(pipeline.connections, rated, committed=False)))


def _kill_mid_run(pipeline: Pipeline, processor: ProcessorProcess, request_id: str) -> _AtKill:
    """SIGKILL ``processor`` inside an open transaction holding charges, after 1 to 5
    partitions committed their part of the run; what was committed then.

    Once a partition has reported, the processor runs in slices of STEP_S between
    freezes (SIGSTOP): a transaction's charges are in the log only for the last few
    milliseconds before its commit (they are priced first, then produced and committed
    at once), too short to catch by watching alone. Frozen, it cannot commit: what the
    broker holds then is what the kill leaves."""
    watch = _RunWatch(pipeline, request_id)
    deadline = time.monotonic() + 300
    try:
        while not watch.reports:
            processor.check_alive()
            assert time.monotonic() < deadline, processor.log_tail()
            watch.poll()
        while True:
            assert len(watch.reports) < PARTITIONS, (
                "the run ended before the kill could land: make each partition's share "
                "bigger")
            assert time.monotonic() < deadline, processor.log_tail()
            os.kill(processor.popen.pid, signal.SIGSTOP)
            time.sleep(SETTLE_S)  # the broker finishes what it was sent before the freeze
            watch.poll()
            if watch.charges_in_flight():  # a quick look; then read it all again
                now = _at_this_point(pipeline, request_id)
                if now.charges_in_log > now.reported_charges:
                    processor.kill()
                    return _at_this_point(pipeline, request_id)
            os.kill(processor.popen.pid, signal.SIGCONT)
            processor.check_alive()
            time.sleep(STEP_S)
    finally:
        watch.close()


def _wait_caught_up(pipeline: Pipeline, processor: ProcessorProcess) -> None:
    topic = pipeline.settings.topics.subscriptions.name
    deadline = time.monotonic() + 120
    while not caught_up(pipeline.connections, pipeline.group_id, [topic]):
        processor.check_alive()
        assert time.monotonic() < deadline, processor.log_tail()
        time.sleep(0.5)


def test_sigkill_in_the_middle_of_a_billing_run_bills_every_licence_once(
        pipeline: Pipeline, tmp_path: Path) -> None:
    campuses = _campus_per_partition(PARTITIONS)
    pipeline.load_catalog(_catalog(tmp_path, campuses))
    due = _publish_licences(pipeline, campuses)
    assert len(due) == PARTITIONS * 3 * DUE_PER_PRODUCT
    # The licences first, at the default batch size; then the billing instance.
    loading = pipeline.start_processor("0", "--stages", "subscriptions")
    _wait_caught_up(pipeline, loading)
    loading.stop()
    billing = pipeline.start_processor("0", "--stages", "subscriptions",
                                       env={"RATING_BATCH_SIZE": "1"})

    request_id = _request_run(pipeline)
    requested = time.monotonic()
    at_kill = _kill_mid_run(pipeline, billing, request_id)
    # Mid-run for real: some partitions had committed their share, not all, and the open
    # transaction held charges that read_committed readers do not see.
    assert 0 < len(at_kill.reports) < PARTITIONS
    assert at_kill.charges_in_log > at_kill.reported_charges
    assert at_kill.committed_charges == at_kill.reported_charges
    print(f"killed after {len(at_kill.reports)} of {PARTITIONS} partitions, "
          f"{time.monotonic() - requested:.1f} s after the request, "
          f"{at_kill.charges_in_log - at_kill.committed_charges} charges in flight")

    # Same instance id: fences the zombie and aborts its transaction.
    restarted = pipeline.start_processor("0", "--stages", "subscriptions")
    reports = _wait_for_reports(pipeline, request_id, restarted, timeout_s=180)
    assert sorted(r.origin.partition for r in reports) == list(range(PARTITIONS))
    assert all(report.billed for report in reports)  # every partition had licences due
    assert sum(r.already_paid for r in reports) == 0
    assert [r.error for r in reports if r.error] == []
    assert [r.failed for r in reports if r.failed] == []

    rated = [record.value for record in pipeline.rated()]
    ids = Counter(str(value["event_id"]) for value in rated)
    assert [event_id for event_id, seen in ids.items() if seen > 1] == []
    assert len(rated) == len(due)
    assert set(ids) == due
    assert all(Decimal(value["charged_amount"]) == ANNUAL_FEE[value["product"]]
               for value in rated)
    assert sum((Decimal(value["charged_amount"]) for value in rated), Decimal(0)) == TOTAL
    # The aborted charges are still in the log, never committed.
    in_log = len(_read_to_end(pipeline.connections, pipeline.settings.topics.rated.name,
                              committed=False))
    assert in_log - len(due) >= at_kill.charges_in_log - at_kill.committed_charges

    # A re-run after the crash bills nothing: the paid marks came back from the changelog.
    again = _wait_for_reports(pipeline, _request_run(pipeline), restarted, timeout_s=120)
    assert sorted(r.origin.partition for r in again) == list(range(PARTITIONS))
    assert [charge for report in again for charge in report.billed] == []
    assert sum(report.already_paid for report in again) == len(due)
    assert len(pipeline.rated()) == len(due)
    assert pipeline.dead_letters() == []
