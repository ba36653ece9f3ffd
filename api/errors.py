"""One error shape for every failure: ``{"error": {"code": "...", "message": "..."}}``.

Codes are stable strings (docs/api.md lists them). No response ever carries a
stack trace: unexpected exceptions are logged here and answered with a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from processors.errors import EventRejected
from processors.rating import NotBillableError
from sinks.history.model import HistoryError, HistoryStoreUnavailable
from stream.catalog_feed import CatalogUnavailable

log = logging.getLogger(__name__)

# Status -> code for errors raised by the framework itself (unknown path, wrong method).
_HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 413: "TOO_LARGE",
               415: "UNSUPPORTED_MEDIA_TYPE", 422: "INVALID_REQUEST"}


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """Raised by the routes: answered as the error body with ``status``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def forbidden(message: str) -> ApiError:
    return ApiError(403, "FORBIDDEN", message)


_DESCRIPTIONS = {
    400: "Bad request: an invalid cursor, or a body that is not UTF-8 JSON.",
    401: "Missing or invalid bearer token.",
    403: "The token may not see this account.",
    404: "Not found.",
    422: "Invalid or unknown parameters, or an invalid body; for estimates, also an "
         "operation that cannot be rated (the code is the rating reason code, e.g. "
         "NO_ACCOUNT, or NOT_BILLABLE).",
    503: "A backing store (Redis, the billing history, the catalog) is unavailable; retry.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status documented with the error model."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
            for status in statuses}


def error_json(status: int, code: str, message: str,
               headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def _validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(item) for item in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    """Every error path of the app answers the error body."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_json(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            # Not JSON at all (docs/api.md: 400), rather than JSON with a wrong field (422).
            return error_json(400, "BAD_REQUEST",
                              "the body is not valid JSON: " + _validation_message(errors))
        return error_json(422, "INVALID_REQUEST", _validation_message(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_json(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(HistoryError)
    async def history_error(_: Request, exc: HistoryError) -> JSONResponse:
        return error_json(400, "BAD_REQUEST", str(exc))

    @app.exception_handler(EventRejected)
    async def not_ratable(_: Request, exc: EventRejected) -> JSONResponse:
        return error_json(422, str(exc.reason), exc.message)

    @app.exception_handler(NotBillableError)
    async def not_billable(_: Request, exc: NotBillableError) -> JSONResponse:
        return error_json(422, "NOT_BILLABLE", str(exc))

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("api: backing store unavailable: %s: %s", type(exc).__name__, exc)
        return error_json(503, "UNAVAILABLE", f"{_what(exc)} is unavailable, retry later")

    for kind in (HistoryStoreUnavailable, CatalogUnavailable, redis.ConnectionError,
                 redis.TimeoutError, redis.BusyLoadingError):
        app.add_exception_handler(kind, unavailable)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("api: %s %s failed", request.method, request.url.path, exc_info=exc)
        return error_json(500, "INTERNAL", "internal error (logged on the server)")


def _what(exc: Exception) -> str:
    if isinstance(exc, HistoryStoreUnavailable):
        return "the billing history"
    if isinstance(exc, CatalogUnavailable):
        return "the catalog"
    return "Redis"
