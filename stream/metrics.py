"""Prometheus metrics. Naming scheme: ``rating_<what>_<unit|total>``; labels are low-cardinality.

Documented in the README ("Metrics"); dashboards and alert rules depend on these names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
