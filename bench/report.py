"""The printed method and table, and the JSON file of a run."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from bench.harness import Report
from bench.results import Result

PASS_THROUGH = "pass-through"
RATING = "rating"
FAUST = "faust"
TWO_HOP = "two-hop pass-through"
AVRO = "Avro pass-through"
PER_CORE = "per-core rating"
TARGET_VS_PASS_THROUGH = 0.5
TARGET_VS_FAUST = 10.0


def method(report: Report, versions: dict[str, str], machine: dict[str, Any]) -> dict[str, Any]:
    settings = report.settings
    return {
        "events": report.config.events,
        "seed": report.config.seed,
        "workload": "config/workload.yaml mix (stream.simulate), encoded once, same bytes "
                    "for every contender",
        "batch_size": settings.processor.batch_size,
        "batch_timeout_s": settings.processor.batch_timeout_s,
        "partitions": settings.topics.events.partitions,
        "machine": {**machine, "python": platform.python_version(), **versions},
        "timed": "first batch in hand -> commit of the batch completing the input "
                 "(in-process, from the loop's own batch metrics); faust: first event in "
                 "its router agent -> its group caught up on both input topics",
        "not_timed": "topic creation, publishing, catalog load, group join, state restore",
        "order": "one contender at a time, each on fresh topics, single process each",
        "faust_cap_s": report.config.faust_cap_s,
    }


def ratios(result: Result, report: Report) -> tuple[float | None, float | None]:
    """(this / pass-through, rating / this): the second for faust rows only."""
    base, rating = report.result(PASS_THROUGH), report.result(RATING)
    rate = result.events_per_s
    vs_base = rate / base.events_per_s if base and base.events_per_s and rate else None
    is_faust = result.contender.startswith(FAUST)
    rating_over = rating.events_per_s / rate if is_faust and rating and rate else None
    return vs_base, rating_over


def print_report(report: Report, info: dict[str, Any], out: TextIO) -> None:
    out.write(f"\nExactly-once throughput, run {report.run_id}: {info['events']} events, "
              f"batch {info['batch_size']} (timeout {info['batch_timeout_s']} s), "
              f"{info['partitions']} partitions, {info['machine']['cores']} cores "
              f"(load {info['machine']['load_1m']} before the run)\n")
    out.write(f"Timed: {info['timed']}.\nNot timed: {info['not_timed']}.\n"
              f"Order: {info['order']}.\n")
    versions = ", ".join(f"{k} {v}" for k, v in info["machine"].items()
                         if k not in ("cores", "load_1m"))
    out.write(f"Versions: {versions}\n\n")
    header = (f"{'contender':<32} {'events':>8} {'seconds':>8} {'events/s':>10} "
              f"{'vs pass-thr':>11} {'rating/faust':>12}  check\n")
    out.write(header + "-" * (len(header) + 8) + "\n")
    for result in report.results:
        vs_base, rating_over = ratios(result, report)
        check = "ok" if result.verified else (
            "capped" if result.processed and not result.complete else "FAILED")
        out.write(f"{result.contender:<32} {result.processed:>8} {result.seconds:>8.2f} "
                  f"{result.events_per_s:>10,.0f} {_ratio(vs_base):>11} "
                  f"{_ratio(rating_over):>12}  {check}\n")
    engine = report.engine
    out.write(f"{'(engine only, no Kafka: reference)':<32} {engine.events:>8} "
              f"{engine.seconds:>8.2f} {engine.events / max(engine.seconds, 1e-9):>10,.0f}\n\n")
    out.write("Outputs (committed records; expected from the dry run, where quota outcomes "
              "follow the input order, not the pipeline's per-account interleaving):\n")
    for result in report.results:
        if result.outputs:
            out.write(f"  {result.contender}: " + ", ".join(
                f"{role} {count}" + ("" if result.expected_outputs.get(role) == count
                                     else f" (expected {result.expected_outputs.get(role)})")
                for role, count in result.outputs.items()) + "\n")
    cpu = [(r.contender, r.extra["cpu_us_per_event"]) for r in report.results
           if r.extra.get("cpu_us_per_event")]
    if cpu:
        out.write("CPU of the bench process per input event, first commit to last (all its "
                  "threads, not the broker's; less moved than the rate by other load):\n")
        for contender, micros in cpu:
            out.write(f"  {contender}: {micros:,.1f} µs\n")
    out.write("\n")
    for result in report.results:
        if result.note:
            out.write(f"note, {result.contender}: {result.note.splitlines()[0]}\n")
        if result.mismatches and result.processed:
            out.write(f"check, {result.contender}: {'; '.join(result.mismatches)}\n")
    for line in target_lines(report):
        out.write(line + "\n")
    out.flush()


def target_lines(report: Report) -> list[str]:
    rating, base = report.result(RATING), report.result(PASS_THROUGH)
    faust = report.result(FAUST)
    lines = []
    if rating and base and base.events_per_s:
        share = rating.events_per_s / base.events_per_s
        lines.append(f"target rating >= {TARGET_VS_PASS_THROUGH:.0%} of pass-through: "
                     f"{share:.0%} -> {'MET' if share >= TARGET_VS_PASS_THROUGH else 'NOT MET'}")
    if rating and faust and faust.events_per_s:
        times = rating.events_per_s / faust.events_per_s
        lines.append(f"target rating >= {TARGET_VS_FAUST:.0f}x {faust.contender}: {times:.1f}x "
                     f"-> {'MET' if times >= TARGET_VS_FAUST else 'NOT MET'}")
    return lines + yardstick_lines(report)


def yardstick_lines(report: Report) -> list[str]:
    """Extra information next to the targets: the fairer baselines, and one process per core."""
    rating, base = report.result(RATING), report.result(PASS_THROUGH)
    lines = []
    for name, what in ((TWO_HOP, "the Kafka work of rating without the rating"),
                       (AVRO, "Avro decode and encode per event, nothing else")):
        row = report.result(name)
        if not (row and row.events_per_s):
            continue
        parts = [f"{name} ({what}): {row.events_per_s:,.0f}/s"]
        if base and base.events_per_s:
            parts.append(f"{row.events_per_s / base.events_per_s:.0%} of pass-through")
        if rating and rating.events_per_s:
            parts.append(f"rating is {rating.events_per_s / row.events_per_s:.0%} of it")
        lines.append("for reference, " + "; ".join(parts))
    per_core = report.result(PER_CORE)
    if per_core and per_core.events_per_s and rating and rating.events_per_s:
        lines.append(f"for reference, {per_core.contender}: {per_core.events_per_s:,.0f}/s, "
                     f"{per_core.events_per_s / rating.events_per_s:.1f}x one process")
    return lines


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_json(report: Report, info: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "run_id": report.run_id,
        "method": info,
        "expected": {**asdict(report.expected), "dead_letters": report.expected.dead_letters},
        "engine_only": {"events": report.engine.events, "seconds": report.engine.seconds},
        "results": [{**result.as_json(),
                     "vs_pass_through": ratios(result, report)[0],
                     "rating_over_faust": ratios(result, report)[1]}
                    for result in report.results],
        "targets": target_lines(report),
        "profile": report.profile,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def print_profile(report: Report, path: Path | None, out: TextIO, rows: int = 10) -> None:
    profile = report.profile
    if not profile:
        return
    out.write(f"\nRating loop under cProfile ({path}): {profile['batch_seconds']:.2f} s in "
              f"batches, {profile['consume_seconds']:.2f} s in consume().\n"
              "Where the time goes, as a share of batch time (cumulative; indented rows are\n"
              "part of the row above; 'outside batches' rows come on top):\n")
    for part in profile["breakdown"]:
        out.write(f"  {part['share_of_batch']:>6.1%}  {part['seconds']:>7.2f} s  {part['part']}\n")
    out.write("Top functions by own time, as a share of batch time:\n")
    for row in profile["top"][:rows]:
        out.write(f"  {row['share_of_batch']:>6.1%}  {row['own_s']:>7.2f} s  {row['calls']:>9}  "
                  f"{row['function']}\n")
    out.flush()
