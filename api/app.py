"""The REST API application: ``create_app`` builds it from the stores it reads.

Routes (docs/api.md): billing history (api/history.py), period aggregates
(api/aggregates.py), quota status (api/quota.py), price estimates
(api/estimates.py), and ``/healthz``. Every route but ``/healthz`` and the
OpenAPI document needs a bearer token (api/auth.py). Routes are plain ``def``:
FastAPI runs them in its thread pool, and the stores are thread-safe (the
history store holds a lock, redis-py pools connections).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis
from fastapi import Depends, FastAPI

from api import aggregates, estimates, quota
from api.auth import TokenRegistry
from api.deps import ApiServices, CatalogProvider, reject_unknown_query
from api.errors import install_error_handlers
from api.history import history_router
from api.metrics import install_metrics
from api.models import Health
from sinks.aggregate_layout import DEFAULT_PREFIX
from sinks.history.model import BillingHistoryStore

API_VERSION = "1.0.0"
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(*, history: BillingHistoryStore, redis_client: redis.Redis,
               catalog: CatalogProvider, tokens: TokenRegistry,
               key_prefix: str = DEFAULT_PREFIX, page_limit: int = DEFAULT_PAGE_LIMIT,
               max_page_limit: int = MAX_PAGE_LIMIT,
               clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The API over these stores. ``redis_client`` must decode responses; ``key_prefix`` is
    the one the quota view and aggregates sinks write with; ``clock`` dates estimates."""
    if not 1 <= page_limit <= max_page_limit:
        raise ValueError(f"page limit {page_limit} must be within 1..{max_page_limit}")
    app = FastAPI(
        title="usage-rating API", version=API_VERSION,
        description="Billing history, period aggregates, quota status and price estimates "
                    "of the real-time usage rating pipeline. Money is decimal strings.")
    app.state.services = ApiServices(history=history, redis=redis_client,
                                     key_prefix=key_prefix, catalog=catalog, tokens=tokens,
                                     page_limit=page_limit, max_page_limit=max_page_limit,
                                     clock=clock)
    install_error_handlers(app)
    install_metrics(app)

    @app.get("/healthz", response_model=Health, tags=["health"],
             summary="Liveness: the process answers (no token needed)")
    def healthz() -> Health:
        return Health(status="ok")

    strict = [Depends(reject_unknown_query)]
    app.include_router(history_router(page_limit, max_page_limit), dependencies=strict)
    app.include_router(aggregates.router, dependencies=strict)
    app.include_router(quota.router, dependencies=strict)
    app.include_router(estimates.router, dependencies=strict)
    return app
