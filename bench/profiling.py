"""A cProfile look at the rating loop: where a batch's time goes.

Run on its own lane after the timed runs (the profiler slows everything
down, so its run is never one of the measured ones). Start-up work (catalog,
restore, group join) also shows in a whole-run profile; to keep it out, the
hot spots are ranked among the functions reachable from the loop's
``_process_batch``, by their own time, as a share of all batch time.
"""

from __future__ import annotations

import cProfile
import pstats
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.metrics import Counter, MetricWrapperBase

from bench.inprocess import time_processor
from bench.lanes import Lane
from bench.workload import Expected
from processors.dedup import payload_fingerprint
from processors.rating import rate
from stream.codec import event_from_avro, rated_to_avro
from stream.serde import AvroDecoder, AvroEncoder
from stream.stages import RaterStage, RouterStage

# pstats' key for a function: (file, line, name).
Function = tuple[str, int, str]
BATCH = ("loop.py", "_process_batch")
CONSUME = "<method 'consume' of 'cimpl.Consumer' objects>"


def _c(method: str, cls: str) -> Function:
    return ("~", 0, f"<method '{method}' of 'cimpl.{cls}' objects>")


def _py(function: Any) -> Function:
    code = function.__code__
    return (code.co_filename, code.co_firstlineno, code.co_name)


# Where a batch's time goes, by cumulative time; indented rows are part of the row above.
BREAKDOWN: list[tuple[str, list[Function]]] = [
    ("router stage: process()", [_py(RouterStage.process)]),
    ("rater stage: process()", [_py(RaterStage.process)]),
    ("  rate(): the engine", [_py(rate)]),
    ("    payload fingerprint (JSON+SHA-256)", [_py(payload_fingerprint)]),
    ("rater stage: end_batch() (changelog)", [_py(RaterStage.end_batch)]),
    ("Avro decode, fastavro (both stages)", [_py(AvroDecoder.decode)]),
    ("event_from_avro (both stages)", [_py(event_from_avro)]),
    ("rated_to_avro + Avro encode", [_py(rated_to_avro), _py(AvroEncoder.encode)]),
    ("Prometheus labels() + inc()", [_py(MetricWrapperBase.labels), _py(Counter.inc)]),
    ("librdkafka produce()", [_c("produce", "Producer")]),
    ("send_offsets_to_transaction()", [_c("send_offsets_to_transaction", "Producer")]),
    ("commit_transaction()", [_c("commit_transaction", "Producer")]),
]


def profile_rating(lane: Lane, expected: Expected, limit_s: float, path: Path,
                   top: int = 15) -> dict[str, Any]:
    """Profile router+rater over the lane's input; batch time, consume time, hot spots."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        time_processor(lane, ("router", "rater"), expected.events + expected.routed, limit_s)
    finally:
        profiler.disable()
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path))
    return hot_spots(pstats.Stats(profiler), top)


def hot_spots(stats: pstats.Stats, top: int) -> dict[str, Any]:
    table: dict[Function, Any] = stats.stats  # type: ignore[attr-defined]
    roots = [f for f in table if f[0].endswith(BATCH[0]) and f[2] == BATCH[1]]
    batch_s = sum(table[f][3] for f in roots)
    inside = _reachable(table, roots)
    ranked = sorted(inside, key=lambda f: table[f][2], reverse=True)[:top]
    breakdown = [{"part": label, "seconds": round(sum(table[f][3] for f in keys if f in table), 3),
                  "share_of_batch": round(sum(table[f][3] for f in keys if f in table) / batch_s,
                                          3) if batch_s else 0.0}
                 for label, keys in BREAKDOWN]
    return {
        "batch_seconds": round(batch_s, 3),
        "breakdown": breakdown,
        "consume_seconds": round(sum(v[2] for f, v in table.items() if f[2] == CONSUME), 3),
        "top": [{"function": _name(f), "calls": table[f][1], "own_s": round(table[f][2], 3),
                 "share_of_batch": round(table[f][2] / batch_s, 3) if batch_s else 0.0,
                 "cumulative_s": round(table[f][3], 3)} for f in ranked],
    }


def _reachable(table: dict[Function, Any], roots: list[Function]) -> set[Function]:
    callees: dict[Function, set[Function]] = defaultdict(set)
    for function, row in table.items():
        for caller in row[4]:
            callees[caller].add(function)
    seen, todo = set(roots), list(roots)
    while todo:
        for callee in callees[todo.pop()] - seen:
            seen.add(callee)
            todo.append(callee)
    return seen


def _name(function: Function) -> str:
    file, line, name = function
    return name if file == "~" else f"{Path(file).parent.name}/{Path(file).name}:{line}({name})"
