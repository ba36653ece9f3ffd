"""The API's own metrics and its ``/metrics`` page (no token, like ``/healthz``).

- ``rating_api_requests_total{route,method,status}``: requests answered, by route
  template (``/v1/aggregates/{period}``, not the path asked for, so the label set stays
  small; FastAPI's ``/openapi.json`` and ``/docs`` by their path; ``unmatched`` for paths
  no route serves).
- ``rating_api_request_seconds{route}``: time to answer, by route template.

The page is the default registry of the process, the same exposition as the processor's
and the sinks' (stream/observability.py). It holds counts and timings, no data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

UNMATCHED = "unmatched"
METRICS_PATH = "/metrics"

API_REQUESTS = Counter("rating_api_requests_total",
                       "REST API requests answered, by route template, method and status.",
                       ["route", "method", "status"])
API_SECONDS = Histogram("rating_api_request_seconds",
                        "Time to answer a REST API request, by route template.", ["route"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def install_metrics(app: FastAPI) -> None:
    # FastAPI's own pages (the OpenAPI document, the docs) are plain Starlette routes,
    # which leave no route in the request's scope: named by their path, not "unmatched".
    own_pages = {path for path in (app.openapi_url, app.docs_url, app.redoc_url,
                                   app.swagger_ui_oauth2_redirect_url) if path}

    @app.middleware("http")
    async def measure(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500  # unless a response comes back: an error escaped every handler
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", None) or (
                request.url.path if request.url.path in own_pages else UNMATCHED)
            if route != METRICS_PATH:
                API_REQUESTS.labels(route=route, method=request.method,
                                    status=str(status)).inc()
                API_SECONDS.labels(route=route).observe(time.perf_counter() - started)

    @app.get(METRICS_PATH, include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
