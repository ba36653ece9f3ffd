"""`rating api`: serve the REST API with uvicorn (the handler behind stream/cli.py)."""

from __future__ import annotations

import argparse
import logging

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.app import create_app
from api.auth import TokenRegistry
from api.catalogs import FeedCatalog, FolderCatalog
from api.deps import CatalogProvider
from processors.errors import RatingError
from sinks.history import open_history_store
from sinks.history.urls import redact
from stream.catalog_feed import CatalogFeed, CatalogUnavailable
from stream.clients import reading_consumer
from stream.settings import connections_from_env, load_settings

log = logging.getLogger(__name__)


def api_redis_client(url: str) -> redis.Redis:
    """Fail fast: a request waits at most a second or two for an unreachable Redis before it
    is answered 503 (the client's default retries with backoff would hold it for seconds).
    One retry without backoff still replaces a pooled connection a Redis restart broke."""
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0,
                                decode_responses=True, retry=Retry(NoBackoff(), 1))


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings(args.settings)
    tokens = TokenRegistry.load(args.tokens or settings.api.tokens_file)
    if not len(tokens):
        log.warning("api: the token file has no tokens: every request will be refused (401)")
    connections = connections_from_env()
    history_url = args.history_url or settings.sinks.history_url
    history = open_history_store(history_url, must_exist=True)
    client = api_redis_client(connections.redis_url)
    catalog: CatalogProvider
    feed: FeedCatalog | None = None
    if args.catalog_dir is not None:
        catalog = FolderCatalog(args.catalog_dir)
    else:
        feed = FeedCatalog(CatalogFeed(reading_consumer(connections),
                                       settings.topics.catalog.name))
        catalog = feed
        try:
            catalog()  # read the topic now, not in the first estimate request
        except CatalogUnavailable as exc:
            log.warning("api: estimates answer 503 until a catalog is published: %s", exc)
    try:
        app = create_app(history=history, redis_client=client, catalog=catalog, tokens=tokens,
                         page_limit=settings.api.page_limit,
                         max_page_limit=settings.api.max_page_limit)
        host = args.host or settings.api.host
        port = settings.api.port if args.port is None else args.port
        log.info("api: serving on http://%s:%d (history %s, %d tokens)", host, port,
                 redact(history_url), len(tokens))
        try:
            uvicorn.run(app, host=host, port=port, log_config=None)
        except SystemExit as exc:  # uvicorn exits 3 when it cannot listen (logged above)
            if exc.code in (None, 0):
                raise
            raise RatingError(f"cannot serve on {host}:{port}: see the error logged "
                              "above (address in use?)") from None
    finally:
        if feed is not None:
            feed.close()
        client.close()
        history.close()
    return 0
