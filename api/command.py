"""`rating api`: serve the REST API with uvicorn (the handler behind stream/cli.py)."""

from __future__ import annotations

import argparse
import errno
import logging
import socket

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
from stream.settings import WITH_REDIS, connections_from_env, load_settings

log = logging.getLogger(__name__)


def api_redis_client(url: str) -> redis.Redis:
    """Fail fast: a request waits at most a second or two for an unreachable Redis before it
    is answered 503 (the client's default retries with backoff would hold it for seconds).
    One retry without backoff still replaces a pooled connection a Redis restart broke."""
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0,
                                decode_responses=True, retry=Retry(NoBackoff(), 1))


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's socket, bound before "serving on" is logged: a taken port is one error,
    and port 0 is logged as the port it got."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        # As uvicorn binds: a restart need not wait for the old connections' TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        hint = (" (another port: --port or api.port, 0 = any free one)"
                if exc.errno == errno.EADDRINUSE else "")
        raise RatingError(f"cannot serve on {host}:{port}: {exc.strerror or exc}{hint}"
                          ) from None
    return listener


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings(args.settings)
    tokens = TokenRegistry.load(args.tokens or settings.api.tokens_file)
    if not len(tokens):
        log.warning("api: the token file has no tokens: every request will be refused (401)")
    connections = connections_from_env(needed=WITH_REDIS)  # aggregates, quota view
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
        listener = listening_socket(host, settings.api.port if args.port is None else args.port)
        log.info("api: serving on http://%s:%d (history %s, %d tokens)", host,
                 listener.getsockname()[1], redact(history_url), len(tokens))
        try:
            uvicorn.Server(uvicorn.Config(app, log_config=None)).run(sockets=[listener])
        except KeyboardInterrupt:  # Ctrl-C: uvicorn has already shut down cleanly: exit 0
            pass
        except SystemExit as exc:  # uvicorn exits 3 when the app fails to start (logged)
            if exc.code in (None, 0):
                raise
            raise RatingError(f"cannot serve on {host}:{listener.getsockname()[1]}: see the "
                              "error logged above") from None
        finally:
            listener.close()
    finally:
        if feed is not None:
            feed.close()
        client.close()
        history.close()
    return 0
