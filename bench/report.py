"""The printed method and table, and the JSON file of a run."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from bench.harness import Report
from bench.results import Result
from bench.summary import Summary, find, median_ratio, paired_ratio, summarise

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
        "rounds": report.config.rounds,
        "warm_up": "an untimed pass-through lane first" if report.config.warm_up else "none",
        "faust_cap_s": report.config.faust_cap_s,
    }


def ratios(summary: Summary, summaries: Sequence[Summary]
           ) -> tuple[float | None, float | None]:
    """(this / pass-through, paired by round; rating / this, of the medians: faust only)."""
    base, rating = find(summaries, PASS_THROUGH), find(summaries, RATING)
    vs_base = paired_ratio(summary, base) if base and summary.rates else None
    is_faust = summary.contender.startswith(FAUST)
    rating_over = median_ratio(rating, summary) if is_faust and rating else None
    return vs_base, rating_over


def print_report(report: Report, info: dict[str, Any], out: TextIO) -> None:
    summaries = summarise(report.results)
    rounds = report.config.rounds
    out.write(f"\nExactly-once throughput, run {report.run_id}: {info['events']} events, "
              f"batch {info['batch_size']} (timeout {info['batch_timeout_s']} s), "
              f"{info['partitions']} partitions, {info['machine']['cores']} cores "
              f"(load {info['machine']['load_1m']} before the run)\n")
    out.write(f"Timed: {info['timed']}.\nNot timed: {info['not_timed']}.\n"
              f"Order: {info['order']}.\n")
    versions = ", ".join(f"{k} {v}" for k, v in info["machine"].items()
                         if k not in ("cores", "load_1m"))
    out.write(f"Versions: {versions}\n\n")
    if rounds > 1:
        out.write(f"{rounds} rounds: events/s is the median over the rounds a contender ran "
                  "in (range: slowest to fastest); vs pass-thr is the median of each round's "
                  "ratio to that round's pass-through.\n")
    header = (f"{'contender':<32} {'events':>8} {'rounds':>6} {'events/s':>10} "
              f"{'range':>17} {'vs pass-thr':>11} {'rating/faust':>12}  check\n")
    out.write(header + "-" * (len(header) + 8) + "\n")
    for summary in summaries:
        vs_base, rating_over = ratios(summary, summaries)
        rates = summary.rates
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else "-"
        out.write(f"{summary.contender:<32} {summary.rows[0].events:>8} {len(summary.rows):>6} "
                  f"{summary.median_rate:>10,.0f} {spread:>17} {_ratio(vs_base):>11} "
                  f"{_ratio(rating_over):>12}  {_check(summary)}\n")
    engine = report.engine
    out.write(f"{'(engine only, no Kafka: reference)':<32} {engine.events:>8} {1:>6} "
              f"{engine.events / max(engine.seconds, 1e-9):>10,.0f}\n\n")
    out.write("Outputs (committed records; expected from the dry run, where quota outcomes "
              "follow the input order, not the pipeline's per-account interleaving):\n")
    for summary in summaries:
        rows = [row for row in summary.rows if row.outputs]
        if rows and len(rows) > 1 and all(row.outputs == rows[0].outputs for row in rows):
            out.write(f"  {summary.contender} (the same in all {len(rows)} rounds): "
                      f"{_outputs(rows[0])}\n")
            continue
        for row in rows:
            label = f"{row.contender}, round {row.round}" if rounds > 1 else row.contender
            out.write(f"  {label}: {_outputs(row)}\n")
    cpu = [(s.contender, s.median_cpu_us, s.median_broker_cpu_us) for s in summaries
           if s.median_cpu_us]
    if cpu:
        with_broker = any(broker for _, _, broker in cpu)
        out.write("CPU per input event, first commit to last, of the bench process (all its "
                  "threads)" + (" and of the local broker" if with_broker else "")
                  + " (less moved than the rate by other load"
                  + ("; median over the rounds" if rounds > 1 else "") + "):\n")
        for contender, micros, broker in cpu:
            beside = f", broker {broker:,.1f} µs" if broker else ""
            out.write(f"  {contender}: {micros:,.1f} µs{beside}\n")
    out.write("\n")
    for result in report.results:
        if result.note:
            out.write(f"note, {result.contender}: {result.note.splitlines()[0]}\n")
        if result.mismatches and result.processed:
            out.write(f"check, {result.contender}: {'; '.join(result.mismatches)}\n")
    for line in target_lines(summaries):
        out.write(line + "\n")
    out.flush()


def _outputs(result: Result) -> str:
    return ", ".join(
        f"{role} {count}" + ("" if result.expected_outputs.get(role) == count
                             else f" (expected {result.expected_outputs.get(role)})")
        for role, count in result.outputs.items())


def _check(summary: Summary) -> str:
    if summary.verified:
        return "ok"
    return "capped" if any(row.processed and not row.complete for row in summary.rows) \
        else "FAILED"


def target_lines(summaries: Sequence[Summary]) -> list[str]:
    rating, base = find(summaries, RATING), find(summaries, PASS_THROUGH)
    faust = find(summaries, FAUST)
    lines = []
    share = paired_ratio(rating, base) if rating and base else None
    if share is not None:
        lines.append(f"target rating >= {TARGET_VS_PASS_THROUGH:.0%} of pass-through: "
                     f"{share:.0%} -> {'MET' if share >= TARGET_VS_PASS_THROUGH else 'NOT MET'}")
    times = median_ratio(rating, faust) if rating and faust else None
    if times is not None and faust is not None:
        lines.append(f"target rating >= {TARGET_VS_FAUST:.0f}x {faust.contender}: {times:.1f}x "
                     f"-> {'MET' if times >= TARGET_VS_FAUST else 'NOT MET'}")
    return lines + yardstick_lines(summaries)


def yardstick_lines(summaries: Sequence[Summary]) -> list[str]:
    """Extra information next to the targets: the fairer baselines, and one process per core."""
    rating, base = find(summaries, RATING), find(summaries, PASS_THROUGH)
    lines = []
    for name, what in ((TWO_HOP, "the Kafka work of rating without the rating"),
                       (AVRO, "Avro decode and encode per event, nothing else")):
        row = find(summaries, name)
        if not (row and row.rates):
            continue
        parts = [f"{name} ({what}): {row.median_rate:,.0f}/s"]
        over_base = paired_ratio(row, base) if base else None
        if over_base is not None:
            parts.append(f"{over_base:.0%} of pass-through")
        rating_over = paired_ratio(rating, row) if rating else None
        if rating_over is not None:
            parts.append(f"rating is {rating_over:.0%} of it")
        lines.append("for reference, " + "; ".join(parts))
    per_core = find(summaries, PER_CORE)
    over_one = paired_ratio(per_core, rating) if per_core and rating else None
    if per_core is not None and over_one is not None:
        lines.append(f"for reference, {per_core.contender}: {per_core.median_rate:,.0f}/s, "
                     f"{over_one:.1f}x one process")
    return lines


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_json(report: Report, info: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    summaries = summarise(report.results)
    document = {
        "run_id": report.run_id,
        "method": info,
        "expected": {**asdict(report.expected), "dead_letters": report.expected.dead_letters},
        "engine_only": {"events": report.engine.events, "seconds": report.engine.seconds},
        "results": [result.as_json() for result in report.results],
        "summary": [{"contender": summary.contender, "rounds": len(summary.rows),
                     "median_events_per_s": round(summary.median_rate, 1),
                     "events_per_s": [round(rate, 1) for rate in summary.rates],
                     "median_cpu_us_per_event": summary.median_cpu_us,
                     "median_broker_cpu_us_per_event": summary.median_broker_cpu_us,
                     "verified": summary.verified,
                     "vs_pass_through": ratios(summary, summaries)[0],
                     "rating_over_faust": ratios(summary, summaries)[1]}
                    for summary in summaries],
        "targets": target_lines(summaries),
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
