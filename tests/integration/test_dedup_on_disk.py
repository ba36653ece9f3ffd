"""Seen ids on local disk, on the real broker: re-published events stay duplicates.

The processor keeps one hour of seen ids in memory (``RATING_DEDUP_MEMORY_HOURS``) and
the rest in a SQLite file per partition; the events span 18 days, so nearly every id is
on disk. After a SIGKILL, the restarted processor rebuilds the files from the changelog
and must still recognise every re-published event.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from stream.stack.ports import LOOPBACK, free_port
from tests.exposition import http_get
from tests.integration.events import order_independent_mix
from tests.integration.harness import Pipeline, ProcessorProcess

pytestmark = pytest.mark.integration


def _dedup_series(port: int, process: ProcessorProcess) -> dict[str, dict[str, float]]:
    """``rating_dedup_*`` by metric and partition, from the processor's /metrics."""
    deadline = time.monotonic() + 60
    while True:
        process.check_alive()
        try:
            status, exposition = http_get(f"http://{LOOPBACK}:{port}/metrics")
        except OSError:
            status, exposition = 0, ""
        series: dict[str, dict[str, float]] = {}
        for name, partition, value in re.findall(
                r'^(rating_dedup_\w+)\{partition="(\d+)"\} (\S+)$', exposition, re.MULTILINE):
            series.setdefault(name, {})[partition] = float(value)
        if (status == 200 and series) or time.monotonic() > deadline:
            return series
        time.sleep(0.5)


def test_ids_on_disk_survive_a_kill_and_keep_re_published_events_duplicates(
        pipeline: Pipeline, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = {"RATING_DEDUP_MEMORY_HOURS": "1", "RATING_STATE_DIR": str(state_dir)}
    pipeline.load_catalog()
    events = pipeline.publish(order_independent_mix(1_500, seed=17))
    port = free_port()
    first = pipeline.start_processor("0", "--metrics-port", str(port), env=env)
    pipeline.wait_caught_up()
    rated_once = Counter(str(record.value["event_id"]) for record in pipeline.rated())
    assert [event_id for event_id, count in rated_once.items() if count > 1] == []
    assert len(rated_once) > 500

    series = _dedup_series(port, first)
    partitions = pipeline.settings.topics.by_account.partitions
    assert len(series["rating_dedup_disk_bytes"]) == partitions
    # An hour of 18 days in memory: the ids are on disk, nearly all of them.
    assert sum(series["rating_dedup_ids_in_memory"].values()) < len(rated_once) / 10
    assert sum(series["rating_dedup_disk_bytes"].values()) > 0
    assert list(state_dir.iterdir()) == []  # held open, unlinked: nothing to leave behind

    first.kill()
    pipeline.publish(events)  # every event again: same ids, same payloads
    pipeline.start_processor("1", env=env)
    pipeline.wait_caught_up()
    rated = Counter(str(record.value["event_id"]) for record in pipeline.rated())
    assert rated == rated_once, "a re-published event was rated again"
    assert list(state_dir.iterdir()) == []
