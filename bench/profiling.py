"""A cProfile look at the rating loop: where a batch's time goes.

Run on its own lane after the timed runs (the profiler slows everything
down, so its run is never one of the measured ones). Start-up work (catalog,
restore, group join) also shows in a whole-run profile; to keep it out, the
hot spots are ranked among the functions reachable from the loop's
``_process_batch``, by their own time, as a share of all batch time.
"""

from __future__ import annotations

import cProfile
import importlib
import pstats
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.inprocess import time_processor
from bench.lanes import Lane
from bench.workload import Expected

# pstats' key for a function: (file, line, name).
Function = tuple[str, int, str]
BATCH = ("loop.py", "_process_batch")
CONSUME = "<method 'consume' of 'cimpl.Consumer' objects>"


def _c(method: str, cls: str) -> Function:
    return ("~", 0, f"<method '{method}' of 'cimpl.{cls}' objects>")


def _py(dotted: str) -> Function | None:
    """pstats' key of ``module:qualname``; None once the code has moved (the row shows 0)."""
    module_name, _, qualname = dotted.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
        code = target.__code__
    except (ImportError, AttributeError):
        return None
    return (code.co_filename, code.co_firstlineno, code.co_name)


# Where the time goes, by cumulative time; indented rows are part of the row above.
# Names, not imports: the stream code evolves, and a renamed function must not stop a run.
BREAKDOWN: list[tuple[str, list[Function | None]]] = [
    ("router stage: process()", [_py("stream.stages:RouterStage.process")]),
    ("rater stage: process()", [_py("stream.stages:RaterStage.process")]),
    ("  process_event(): dedup, quota, rating", [_py("processors.pipeline:process_event")]),
    ("    payload fingerprint (JSON + SHA-256)", [_py("processors.dedup:payload_fingerprint")]),
    ("    quota decision", [_py("processors.pipeline:_quota_decision")]),
    ("    rate()", [_py("processors.rating:rate")]),
    ("  rated output: metrics, encode", [_py("stream.stages:RaterStage._rated")]),
    ("  quota rejections (record, counted)", [_py("stream.stages:RaterStage._quota_rejected")]),
    ("rater stage: end_batch() (changelog JSON)", [_py("stream.stages:RaterStage.end_batch")]),
    ("event decode, both stages (read_event)", [_py("stream.codec:read_event")]),
    ("  of which fastavro + event_from_avro (fallback)",
     [_py("stream.serde:AvroDecoder.decode")]),
    ("rated record encode (rated_to_bytes)", [_py("stream.codec:rated_to_bytes")]),
    ("Prometheus labels() + inc() + observe()",
     [_py("prometheus_client.metrics:MetricWrapperBase.labels"),
      _py("prometheus_client.metrics:Counter.inc"),
      _py("prometheus_client.metrics:Histogram.observe")]),
    ("logging (dead letters; quota blocks per batch)", [_py("logging:Logger._log")]),
    ("librdkafka produce()", [_c("produce", "Producer")]),
    ("send_offsets_to_transaction()", [_c("send_offsets_to_transaction", "Producer")]),
    ("commit_transaction()", [_c("commit_transaction", "Producer")]),
    ("outside batches: consumer lag gauges", [_py("stream.observability:LagTracker.maybe_update")]),
    ("outside batches: catalog refresh", [_py("stream.catalog_feed:CatalogFeed.refresh")]),
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
    breakdown = []
    for label, keys in BREAKDOWN:
        seconds = sum(table[f][3] for f in keys if f is not None and f in table)
        breakdown.append({"part": label, "seconds": round(seconds, 3),
                          "share_of_batch": round(seconds / batch_s, 3) if batch_s else 0.0})
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
