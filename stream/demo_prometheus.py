"""`make run` seen from the ops side: the demo's processes registered with the local
Prometheus, and what Prometheus scraped from them.

Each process serves ``/metrics`` on a port picked for it. The stack's Prometheus reads
its scrape targets from a file (file-based discovery, re-read every 5 s); the demo puts
its processes there, labelled ``process=<name>``, and empties the file when it stops
them. At the end the summary comes from Prometheus' HTTP API, not from the processes:
it shows what a dashboard or an alert sees.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from stream import stack as local_stack
from stream.stack.ports import LOOPBACK
from stream.stack.prometheus import write_target_groups

SCRAPE_TIMEOUT_S = 45.0  # file re-read (5 s) + scrape interval (5 s), with margin
Sample = tuple[dict[str, str], float]


@dataclass(frozen=True)
class MetricsEndpoint:
    process: str  # the `process` label its series get, e.g. "processor"
    port: int

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.port}"


def register(targets_file: Path, endpoints: Sequence[MetricsEndpoint]) -> None:
    """Make Prometheus scrape exactly ``endpoints`` (none: stop scraping)."""
    write_target_groups(targets_file, [([e.target], {"process": e.process})
                                       for e in endpoints])


def query(prometheus_url: str, promql: str, timeout_s: float = 5.0) -> list[Sample]:
    """An instant query: (labels, value) per series. PrometheusQueryError when it fails."""
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise PrometheusQueryError(f"{promql!r} at {prometheus_url}: {exc}") from None
    if answer.get("status") != "success":
        raise PrometheusQueryError(f"{promql!r} at {prometheus_url}: {answer}")
    return [(dict(series["metric"]), float(series["value"][1]))
            for series in answer["data"]["result"]]


class PrometheusQueryError(Exception):
    """Prometheus did not answer a query (down, or the query is wrong)."""


@dataclass(frozen=True)
class ScrapedView:
    """What Prometheus holds about the demo's processes after a run."""

    up: dict[str, float]  # process -> 1 when its last scrape succeeded
    rated: float  # sum of rating_events_rated_total
    sink_written: dict[str, float]  # sink -> rating_sink_records_total{result="written"}
    sink_up: dict[str, float]  # sink -> rating_sink_up
    firing: list[str]  # alert names firing

    def lines(self, prometheus_url: str) -> list[str]:
        up = ", ".join(f"{name} {'up' if value == 1 else 'DOWN'}"
                       for name, value in sorted(self.up.items()))
        sinks = ", ".join(f"{name} {self.sink_written.get(name, 0):.0f} written "
                          f"(store {'up' if self.sink_up.get(name) == 1 else 'DOWN'})"
                          for name in sorted(set(self.sink_written) | set(self.sink_up)))
        return [f"Prometheus ({prometheus_url}) scrapes: {up or 'nothing'}",
                f"  rating_events_rated_total: {self.rated:.0f}",
                f"  rating_sink_records_total: {sinks or 'no sink reported'}",
                f"  alerts firing: {', '.join(self.firing) or 'none'}"]


def scraped_view(prometheus_url: str, endpoints: Sequence[MetricsEndpoint]) -> ScrapedView:
    processes = {e.process for e in endpoints}

    def by(label: str, samples: list[Sample]) -> dict[str, float]:
        return {labels[label]: value for labels, value in samples if label in labels}

    up = {name: value for name, value in by("process", query(prometheus_url, "up")).items()
          if name in processes}
    rated = sum(value for _labels, value in query(
        prometheus_url, "sum(rating_events_rated_total)"))
    written = by("sink", query(prometheus_url, 'sum by (sink) '
                               '(rating_sink_records_total{result="written"})'))
    sink_up = by("sink", query(prometheus_url, "max by (sink) (rating_sink_up)"))
    firing = sorted({labels["alertname"] for labels, _value in query(
        prometheus_url, 'ALERTS{alertstate="firing"}')})
    return ScrapedView(up, rated, written, sink_up, firing)


def wait_for_scrape(prometheus_url: str, endpoints: Sequence[MetricsEndpoint],
                    complete: Callable[[ScrapedView], bool],
                    timeout_s: float = SCRAPE_TIMEOUT_S) -> tuple[ScrapedView, bool]:
    """Poll until Prometheus has scraped every endpoint and ``complete`` holds (or the
    timeout); the last view, and whether it got there."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = scraped_view(prometheus_url, endpoints)
        done = (len(view.up) == len(endpoints) and all(v == 1 for v in view.up.values())
                and complete(view))
        if done or time.monotonic() >= deadline:
            return view, done
        time.sleep(1.0)


def start(say: Callable[[str], None]) -> str | None:
    """The stack's Prometheus (Debian's package), or None with a note when it cannot be
    had: it only observes, so the demo goes on without it."""
    try:
        return local_stack.up(components={"prometheus"}, quiet=True).prometheus_url
    except local_stack.StackError as exc:
        say(f"no Prometheus ({exc}); the demo goes on without it")
        return None


def print_scraped(out: TextIO, prometheus_url: str, endpoints: Sequence[MetricsEndpoint],
                  rated: int, say: Callable[[str], None]) -> None:
    """What Prometheus scraped from the demo's processes, once it has the final counts:
    ``rated`` events rated by the processor and written by every sink."""
    sinks = [e.process for e in endpoints if e.process != "processor"]
    try:
        view, complete = wait_for_scrape(
            prometheus_url, endpoints,
            lambda v: v.rated >= rated and all(v.sink_written.get(s, 0) >= rated
                                               for s in sinks))
    except PrometheusQueryError as exc:
        say(f"Prometheus did not answer: {exc}")
        return
    out.write("\n" + "\n".join(view.lines(prometheus_url)) + "\n")
    if not complete:
        out.write("  (not every count scraped yet: Prometheus scrapes every 5 s)\n")
    out.flush()
