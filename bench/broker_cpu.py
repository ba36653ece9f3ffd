"""CPU time of the local broker, read from /proc, to report the broker's share of a lane.

The broker runs on the same cores as the benchmark, so its CPU per event is part of
what a contender costs the machine. It can be read only when the run uses the local
stack's broker (``rating stack up``): then ``broker_cpu_reader`` returns a function
giving that process's CPU seconds so far (user + system, every thread). For a
broker named by ``KAFKA_BOOTSTRAP_SERVERS`` that is not the local stack's, or
without /proc, it returns None and the report leaves the column out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from stream.settings import Connections
from stream.stack import manager

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all threads), None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14, 15


def broker_cpu_reader(connections: Connections) -> Callable[[], float | None] | None:
    """CPU seconds of the local stack's broker, when ``connections`` point at it."""
    kafka = manager.status().get("kafka")
    if kafka is None or not kafka.running or kafka.pid is None:
        return None
    if kafka.endpoint != connections.kafka_bootstrap or process_cpu_s(kafka.pid) is None:
        return None
    pid = kafka.pid
    return lambda: process_cpu_s(pid)
