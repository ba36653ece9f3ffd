"""Catalog providers for estimates: the catalog topic (production) or a folder."""

from __future__ import annotations

import threading
from pathlib import Path

from processors.catalog import Catalog, load_catalog_dir
from stream.catalog_feed import CatalogFeed

CATALOG_WAIT_S = 30.0


class FeedCatalog:
    """The newest version on the catalog topic, refreshed (non-blocking) on each call.

    The feed's consumer is not thread-safe and the API answers from a thread pool, so
    calls are serialised; a refresh is one poll with no wait, so the lock is short.
    """

    def __init__(self, feed: CatalogFeed, wait_s: float = CATALOG_WAIT_S):
        self._feed = feed
        self._lock = threading.Lock()
        self._wait_s = wait_s
        self._waited = False

    def __call__(self) -> Catalog:
        with self._lock:
            if not self._waited:  # the first call reads the topic to its end
                self._waited = True
                return self._feed.wait_for_catalog(self._wait_s)
            self._feed.refresh()
            return self._feed.current  # CatalogUnavailable (503) if none was ever published

    def close(self) -> None:
        with self._lock:
            self._feed.close()


class FolderCatalog:
    """A catalog folder loaded once (development, tests): a bad catalog fails at start."""

    def __init__(self, directory: Path):
        self._catalog = load_catalog_dir(directory)

    def __call__(self) -> Catalog:
        return self._catalog
