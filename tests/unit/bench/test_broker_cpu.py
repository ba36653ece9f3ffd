"""Reading a process's CPU time from /proc, for the broker's share of a lane."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.broker_cpu import broker_cpu_reader, process_cpu_s
from stream.settings import Connections


def test_a_busy_process_shows_its_cpu_seconds() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend = time.process_time() + 0.3\n"
                              "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        used = process_cpu_s(child.pid)
        while (used is None or used < 0.3) and time.monotonic() < deadline:
            time.sleep(0.05)
            used = process_cpu_s(child.pid)
        assert used is not None
        assert 0.25 <= used < 5.0
    finally:
        child.kill()
        child.wait()


def test_a_gone_process_reads_as_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_cpu_s(child.pid) is None


def test_our_own_cpu_grows() -> None:
    before = process_cpu_s(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = process_cpu_s(os.getpid())
    assert before is not None
    assert after is not None
    assert after - before >= 0.1


def test_a_broker_that_is_not_the_local_stacks_is_not_read() -> None:
    elsewhere = Connections(kafka_bootstrap="broker.invalid:9092",
                            schema_registry_url="http://registry.invalid",
                            redis_url="redis://redis.invalid")
    assert broker_cpu_reader(elsewhere) is None
