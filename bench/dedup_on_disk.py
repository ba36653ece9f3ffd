"""What seen ids on disk cost and save: CPU per event and memory per id, against memory.

    python -m bench.dedup_on_disk [--ids 300000] [--per-second 1] [--memory-hours 24]

Feeds ``--ids`` events, in time order at ``--per-second`` events per second of event
time, through one partition's rating state as the rater does (``check``, then
``remember``, a changelog batch written every 1,000 events), once with every id in
memory and once with ids older than ``--memory-hours`` on disk
(``stream.seen_ids_on_disk``); ids are random UUIDs, as the platform services' are.
Then replays the changelog it wrote into a fresh state, as a restore does. Reports CPU
µs per event and per restored id, and the Python memory held per id (tracemalloc,
measured in a separate pass: tracing slows everything).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from processors.dedup import Verdict
from processors.state import RatingState
from stream.compiled import engine_build
from stream.seen_ids_on_disk import SeenIdsOnDisk

T0 = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = timedelta(days=35)
BATCH = 1_000


def _fill(state: RatingState, ids: int, per_second: float) -> list[tuple[str, bytes | None]]:
    log: list[tuple[str, bytes | None]] = []
    draw = random.Random(7)  # the same ids in every pass
    for n in range(ids):
        # Random, as the platform services' UUIDs are: an index by id gets no locality.
        event_id = str(uuid.UUID(int=draw.getrandbits(128), version=4))
        fingerprint = hashlib.sha256(event_id.encode()).hexdigest()
        at = T0 + timedelta(seconds=n / per_second)
        if state.dedup.check(event_id, fingerprint) is Verdict.NEW:
            state.remember(event_id, fingerprint, at)
        if n % BATCH == BATCH - 1:
            log += [(key, state.dump(key)) for key in sorted(state.dirty_keys())]
            state.clear_dirty()
    log += [(key, state.dump(key)) for key in sorted(state.dirty_keys())]
    state.clear_dirty()
    return log


def _restore(make: Callable[[], RatingState], log: list[tuple[str, bytes | None]]
             ) -> RatingState:
    state = make()
    for key, value in log:
        state.load(key, value)
    state.clear_dirty()
    return state


def _measure(name: str, make: Callable[[], RatingState], ids: int, per_second: float) -> None:
    started = time.process_time()
    state = make()
    log = _fill(state, ids, per_second)
    fill_us = (time.process_time() - started) / ids * 1e6
    started = time.process_time()
    restored = _restore(make, log)
    restored.dedup.knows("the first lookup after a restore")  # the file's index is built
    restore_us = (time.process_time() - started) / ids * 1e6
    held = len(restored.dedup.ids())
    del state, restored
    gc.collect()
    tracemalloc.start()
    state = make()
    _fill(state, ids, per_second)
    gc.collect()
    memory, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{name:<22} {fill_us:>8.1f} µs/event {restore_us:>8.1f} µs/id restored "
          f"{memory / ids:>7.0f} B/id in memory  in memory {state.dedup.held_in_memory():>8,}"
          f"  on disk {state.dedup.older_bytes() / 1e6:>7.1f} MB  held {held:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=300_000)
    parser.add_argument("--per-second", type=float, default=1.0)
    parser.add_argument("--memory-hours", type=int, default=24)
    args = parser.parse_args()
    span = timedelta(hours=args.memory_hours)
    hours = args.ids / args.per_second / 3600
    print(f"engine: {engine_build().describe()}")
    print(f"{args.ids:,} ids over {hours:.0f} h of event time, window {WINDOW.days} days, "
          f"a changelog batch every {BATCH:,} events")
    with tempfile.TemporaryDirectory() as directory:
        _measure("every id in memory", lambda: RatingState(WINDOW), args.ids, args.per_second)
        _measure(f"{args.memory_hours} h in memory",
                 lambda: RatingState(WINDOW, SeenIdsOnDisk(directory), span),
                 args.ids, args.per_second)


if __name__ == "__main__":
    main()
