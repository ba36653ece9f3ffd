"""Factories for integration tests on the real broker: isolated topics, a processor
process that can be SIGKILLed, publishing and reading back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from processors.catalog import read_catalog_folder
from processors.events import UsageEvent
from processors.pipeline import PartitionState
from stream.catalog_feed import publish_catalog
from stream.clients import admin_client, idempotent_producer, reading_consumer, registry_client
from stream.contracts import Codecs, build_codecs
from stream.lag import caught_up, committed_since
from stream.publisher import UsagePublisher
from stream.readback import Record, read_all
from stream.settings import REPO_ROOT, Connections, Settings, load_settings
from stream.topics import ensure_topics

EXAMPLE_CATALOG = REPO_ROOT / "config" / "catalog"


class Pipeline:
    """One isolated pipeline: its own topics (random suffix) and consumer group."""

    def __init__(self, connections: Connections, tmp_dir: Path):
        self.connections = connections
        self.suffix = f"-t{uuid.uuid4().hex[:10]}"
        self.group_id = f"rating-test{self.suffix}"
        self.settings: Settings = load_settings(environ={"RATING_TOPIC_SUFFIX": self.suffix,
                                                         "RATING_GROUP_ID": self.group_id})
        self.tmp_dir = tmp_dir
        ensure_topics(admin_client(connections), self.settings.topics)
        self.codecs: Codecs = build_codecs(registry_client(connections), self.settings.topics)
        self.processes: list[ProcessorProcess] = []

    def load_catalog(self, directory: Path = EXAMPLE_CATALOG) -> str:
        folder = read_catalog_folder(directory)
        publish_catalog(idempotent_producer(self.connections), self.settings.topics.catalog.name,
                        folder.catalog, folder.sources)
        return folder.catalog.version

    def publisher(self) -> UsagePublisher:
        return UsagePublisher.connect(self.connections, self.settings.topics.events.name)

    def publish(self, events: Iterable[UsageEvent]) -> list[UsageEvent]:
        published = list(events)
        with self.publisher() as publisher:
            for event in published:
                publisher.publish(event)
        return published

    def env(self) -> dict[str, str]:
        return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.connections.kafka_bootstrap,
                "SCHEMA_REGISTRY_URL": self.connections.schema_registry_url,
                "REDIS_URL": self.connections.redis_url,
                "RATING_TOPIC_SUFFIX": self.suffix, "RATING_GROUP_ID": self.group_id}

    def start_processor(self, instance_id: str = "0", *extra: str,
                        env: dict[str, str] | None = None) -> ProcessorProcess:
        process = ProcessorProcess(self, instance_id, list(extra), env or {})
        self.processes.append(process)
        return process

    def start_sink(self, name: str, *extra: str) -> ProcessorProcess:
        """`rating sink NAME ...` in a child process (stopped with the pipeline's processors)."""
        process = ProcessorProcess(self, name, list(extra), {}, command=["sink", name])
        self.processes.append(process)
        return process

    def caught_up(self) -> bool:
        return caught_up(self.connections, self.group_id,
                         [self.settings.topics.events.name, self.settings.topics.by_account.name])

    def wait_caught_up(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                process.check_alive()
            if self.caught_up():
                return
            time.sleep(0.3)
        raise AssertionError(f"pipeline did not catch up in {timeout_s} s; logs: "
                             f"{[str(p.log_path) for p in self.processes]}")

    def committed(self, topic: str) -> int:
        """How many offsets of ``topic`` the group has committed."""
        return committed_since(self.connections, self.group_id, topic, {})

    def wait_committed(self, topic: str, count: int, process: ProcessorProcess,
                       timeout_s: float = 120.0) -> None:
        """Until the group has committed ``count`` offsets of ``topic`` (``process``
        alive); polled often, so a caller can act while the stream is still running."""
        deadline = time.monotonic() + timeout_s
        while self.committed(topic) < count:
            process.check_alive()
            assert time.monotonic() < deadline, process.log_tail()
            time.sleep(0.05)

    def rated(self) -> list[Record]:
        return read_all(self.connections, self.settings.topics.rated.name,
                        self.codecs.rated_decoder)

    def dead_letters(self) -> list[Record]:
        return read_all(self.connections, self.settings.topics.dlq.name,
                        self.codecs.dead_letter_decoder)

    def restored_state(self) -> PartitionState:
        """The rater's state as its committed changelog holds it, all partitions merged."""
        state = PartitionState()
        consumer = reading_consumer(self.connections)
        topic = self.settings.topics.changelog.name
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
            pending = set(partitions)
            while pending:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    pending.discard(message.partition())
                    continue
                key = message.key()
                assert key is not None
                state.load(key.decode(), message.value())
        finally:
            consumer.close()
        return state

    def rejected(self) -> list[Record]:
        return read_all(self.connections, self.settings.topics.rejected.name,
                        self.codecs.dead_letter_decoder)

    def alerts(self) -> list[Record]:
        return read_all(self.connections, self.settings.topics.quota_alerts.name,
                        self.codecs.alert_decoder)

    def late(self) -> list[Record]:
        return read_all(self.connections, self.settings.topics.late.name,
                        self.codecs.dead_letter_decoder)

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


class ProcessorProcess:
    """`rating process` (or another long-running ``command``, e.g. a sink) in a child
    process, as it runs in production."""

    def __init__(self, pipeline: Pipeline, instance_id: str, extra: list[str],
                 env: dict[str, str], command: list[str] | None = None):
        self.ended_on_purpose = False
        self.name = " ".join(command) if command else "processor"
        log_name = "-".join(command) if command else f"processor-{instance_id}"
        self.log_path = pipeline.tmp_dir / f"{log_name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        argv = command or ["process", "--instance-id", instance_id]
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", *argv, *extra], cwd=REPO_ROOT,
            env={**pipeline.env(), **env}, stdout=self._log, stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        if not self.ended_on_purpose and self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n"
                                 f"{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        self.ended_on_purpose = True
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        self.ended_on_purpose = True
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def values(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [record.value for record in records]


def money_state(state: PartitionState) -> dict[str, object]:
    """Tier positions, credit used and quota counters by state key, and how many instances
    each account holds per item type (which ones depends on the order, not how many)."""
    held = Counter(key.rsplit("|", 1)[0] for key in state.all_keys() if key.startswith("qi|"))
    exact: dict[str, object] = {key: state.dump(key) for key in state.all_keys()
                                if not key.startswith(("seen|", "seenb|", "qi|", "qu|"))}
    for key in state.all_keys():
        if key.startswith("qu|"):
            usage = json.loads(state.dump(key) or b"{}")
            last = usage.pop("last_alert", None)
            # Which event crossed last, and when, depends on order; the threshold does not.
            usage["last_alert"] = None if last is None else (last["percent"], last["action"])
            exact[key] = usage
    return {**exact, **{f"{prefix}|<count>": count for prefix, count in held.items()}}
