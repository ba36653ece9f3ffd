"""The billing history: every rated record in SQLite or PostgreSQL (see model.py).

Readers open a store with :func:`open_history_store` and use the
:class:`BillingHistoryStore` protocol only.
"""

from sinks.history.model import (
    BillingHistoryStore,
    HistoryError,
    HistoryFilter,
    HistoryPage,
    HistoryRow,
    HistoryStoreUnavailable,
    HistoryTier,
    MonthUsage,
)
from sinks.history.urls import open_history_store

__all__ = ["BillingHistoryStore", "HistoryError", "HistoryFilter", "HistoryPage", "HistoryRow",
           "HistoryStoreUnavailable", "HistoryTier", "MonthUsage", "open_history_store"]
