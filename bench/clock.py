"""Timing an in-process ExactlyOnceLoop from the outside, through its own batch metrics.

The loop observes ``rating_batch_records`` and ``rating_batch_seconds`` right
after each transaction commits. A watcher thread reads both every 5 ms, so
the clock needs no hook in the loop (run_processor is used exactly as
production runs it) and counts only committed records:

* start: the first committed batch, minus that batch's own duration, i.e.
  the moment the loop had its first records in hand (the group join and
  state restore before it are not timed);
* end: the first moment the committed records reach the expected number,
  i.e. the commit of the batch that completes the input. The watcher then
  sets ``stop`` and the loop exits after that batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Histogram

from stream import metrics


@dataclass(frozen=True)
class Timing:
    seconds: float  # first batch start to the commit that completed the input
    committed: int  # input records committed in that time
    batches: int
    in_batches_s: float  # of ``seconds``: inside batches (the rest: consume(), between batches)
    complete: bool  # False: the time limit stopped the run first
    started_at: float = 0.0  # wall clock (time.time()) of the start, to compare processes
    # CPU seconds of this whole process (every thread: loop, commit, the client's) from
    # the first commit to the last, and the records committed in between: CPU per record
    # does not count the time the hypervisor or other programs take from us.
    cpu_s: float = 0.0
    cpu_records: int = 0
    # CPU seconds of the local broker over the same commits (None: not the local stack's).
    broker_cpu_s: float | None = None


def _sum_and_count(histogram: Histogram) -> tuple[float, float]:
    total = count = 0.0
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    return total, count


class LoopClock:
    """Sets ``stop`` once ``expected`` input records are committed (or after ``limit_s``)."""

    def __init__(self, expected: int, stop: threading.Event, limit_s: float,
                 tick_s: float = 0.005,
                 broker_cpu: Callable[[], float | None] | None = None):
        self._expected = expected
        self._stop = stop
        self._limit_s = limit_s
        self._tick_s = tick_s
        self._broker_cpu = broker_cpu
        # Metrics are process-wide and cumulative: count from here on.
        self._records0, self._batches0 = _sum_and_count(metrics.BATCH_SIZE)
        self._seconds0, _ = _sum_and_count(metrics.BATCH_SECONDS)
        self._wall_offset = time.time() - time.perf_counter()
        self._started: float | None = None
        self._finished: float | None = None
        self._committed = 0
        self._batches = 0
        self._busy = 0.0
        # (process CPU, records, broker CPU) at the first commit, and at the latest
        self._cpu_from: tuple[float, int, float | None] | None = None
        self._cpu_to: tuple[float, int, float | None] | None = None
        self._thread = threading.Thread(target=self._watch, name="bench-clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def result(self) -> Timing:
        self._stop.set()
        self._thread.join()
        end = self._finished if self._finished is not None else time.perf_counter()
        seconds = 0.0 if self._started is None else end - self._started
        started = end if self._started is None else self._started
        cpu_s, cpu_records, broker_cpu_s = 0.0, 0, None
        if self._cpu_from is not None and self._cpu_to is not None:
            cpu_s = self._cpu_to[0] - self._cpu_from[0]
            cpu_records = self._cpu_to[1] - self._cpu_from[1]
            broker_from, broker_to = self._cpu_from[2], self._cpu_to[2]
            if broker_from is not None and broker_to is not None:
                broker_cpu_s = broker_to - broker_from
        return Timing(seconds=seconds, committed=self._committed, batches=self._batches,
                      in_batches_s=self._busy, complete=self._finished is not None,
                      started_at=started + self._wall_offset, cpu_s=cpu_s,
                      cpu_records=cpu_records, broker_cpu_s=broker_cpu_s)

    def _broker_cpu_now(self) -> float | None:
        return None if self._broker_cpu is None else self._broker_cpu()

    def _watch(self) -> None:
        deadline = time.perf_counter() + self._limit_s
        while not self._stop.is_set():
            time.sleep(self._tick_s)
            now = time.perf_counter()
            records, batches = _sum_and_count(metrics.BATCH_SIZE)
            self._committed = int(records - self._records0)
            self._batches = int(batches - self._batches0)
            if self._batches > 0:
                busy, _ = _sum_and_count(metrics.BATCH_SECONDS)
                self._busy = busy - self._seconds0
                sample = (time.process_time(), self._committed, self._broker_cpu_now())
                if self._started is None:
                    self._started = now - self._busy
                    self._cpu_from = sample
                else:
                    self._cpu_to = sample
            if self._committed >= self._expected:
                self._finished = now
                self._stop.set()
            elif now > deadline:
                self._stop.set()
