"""Prometheus metrics. Naming scheme: ``rating_<what>_<unit|total>``; labels are low-cardinality.

Documented in the README ("Metrics"); dashboards and alert rules depend on these names
(deploy/grafana/rating-dashboard.json, deploy/prometheus/alerts.yml; tests/deploy/test_rules.py
checks that they only use names defined here).

Served per process on ``/metrics`` by stream/observability.py (``--metrics-port``, default 9400):

- ``rating_events_consumed_total{stage}``, ``rating_events_routed_total``,
  ``rating_events_rated_total{currency}``, ``rating_events_skipped_total{reason}``,
  ``rating_events_dead_lettered_total{stage,reason}``: throughput and outcomes.
- ``rating_amount_rated_total{kind=net|gross,currency,provider}``: revenue.
- ``rating_batch_records``, ``rating_batch_seconds`` (histograms),
  ``rating_transactions_total{result=committed|aborted}``: the exactly-once loop's batches
  (aborted: its transaction aborted, or its processing failed before it began).
- ``rating_catalog_info{version}`` (1 for the version in use),
  ``rating_state_restored_records_total``.
- ``rating_consumer_lag_records{topic,partition}``: high watermark minus the
  consumer's position per assigned partition, refreshed every few seconds
  (a caught-up transactional partition may show 1: the commit marker).
- ``rating_end_to_end_seconds`` (histogram): event time to rated, observed by the rater.
- ``rating_quota_alerts_total{threshold,action}``: alerts written to quota.alerts.
  Quota blocks (usage.rejected) count in ``rating_events_dead_lettered_total{stage="quota"}``.
- ``rating_dedup_ids_in_memory{partition}``, ``rating_dedup_disk_bytes{partition}``: the
  rater's seen ids held in memory, and the file the older ones are in
  (``processor.dedup_memory_hours``; stream/seen_ids_on_disk.py), per owned partition.
"""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

MetricT = TypeVar("MetricT", Counter, Gauge, Histogram)


@cache
def labelled(metric: MetricT, *values: str) -> MetricT:
    """``metric.labels(*values)``, looked up once per label combination: the per-event
    path calls this several times per record, and labels() is not cheap."""
    return metric.labels(*values)

EVENTS_CONSUMED = Counter("rating_events_consumed_total", "Records consumed, by stage.",
                          ["stage"])
EVENTS_ROUTED = Counter("rating_events_routed_total", "Events re-keyed by account.", [])
EVENTS_RATED = Counter("rating_events_rated_total", "Events priced and written to usage.rated.",
                       ["currency"])
EVENTS_SKIPPED = Counter("rating_events_skipped_total",
                         "Events not rated on purpose (not_billable, duplicate).", ["reason"])
EVENTS_DEAD_LETTERED = Counter("rating_events_dead_lettered_total",
                               "Events written to the dead-letter topic, by stage and reason.",
                               ["stage", "reason"])
AMOUNT_RATED = Counter("rating_amount_rated_total",
                       "Sum of rated amounts (net and gross) by currency and provider.",
                       ["kind", "currency", "provider"])
BATCH_SIZE = Histogram("rating_batch_records", "Records per processed batch.",
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000))
BATCH_SECONDS = Histogram("rating_batch_seconds", "Wall time to process and commit a batch.",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
TRANSACTIONS = Counter("rating_transactions_total", "Kafka transactions by result.", ["result"])
CATALOG_VERSION = Gauge("rating_catalog_info", "The catalog version in use (value is 1).",
                        ["version"])
STATE_RESTORED = Counter("rating_state_restored_records_total",
                         "Changelog records replayed into state on partition assignment.", [])
CONSUMER_LAG = Gauge("rating_consumer_lag_records",
                     "Records between the consumer's position and the high watermark, "
                     "per assigned input partition.", ["topic", "partition"])
END_TO_END_SECONDS = Histogram("rating_end_to_end_seconds",
                               "Event time to rated record (seconds), observed by the rater.",
                               buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
                                        3600, 21600, 86400))
QUOTA_ALERTS = Counter("rating_quota_alerts_total",
                       "Quota alerts written to quota.alerts, by threshold percent and action.",
                       ["threshold", "action"])
DEDUP_IDS_IN_MEMORY = Gauge("rating_dedup_ids_in_memory",
                            "Seen event ids the rater holds in memory, per owned partition.",
                            ["partition"])
DEDUP_DISK_BYTES = Gauge("rating_dedup_disk_bytes",
                         "Bytes of the file holding the seen ids older than the memory span, "
                         "per owned partition.", ["partition"])
