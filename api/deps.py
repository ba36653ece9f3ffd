"""What every route depends on: the services the app was built with, and the caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal, TokenRegistry
from api.errors import ApiError, forbidden
from processors.catalog import Catalog
from sinks.history.model import BillingHistoryStore

# The catalog to price estimates with: the newest version on the catalog topic in
# production (api/catalogs.py), a folder loaded once in tests and development.
CatalogProvider = Callable[[], Catalog]


@dataclass(frozen=True)
class ApiServices:
    history: BillingHistoryStore
    redis: redis.Redis  # decode_responses=True
    key_prefix: str  # of the quota view and the aggregates ("rating")
    catalog: CatalogProvider
    tokens: TokenRegistry
    page_limit: int
    max_page_limit: int
    clock: Callable[[], datetime]


def services(request: Request) -> ApiServices:
    found: ApiServices = request.app.state.services
    return found


_bearer = HTTPBearer(auto_error=False, description="A token from the API token file "
                     "(finance, or bound to one account)")


def principal(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
              ) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "UNAUTHENTICATED", "missing bearer token (Authorization: Bearer "
                       "TOKEN)", challenge)
    found = services(request).tokens.principal(credentials.credentials)
    if found is None:
        raise ApiError(401, "INVALID_TOKEN", "unknown bearer token", challenge)
    return found


Services = Annotated[ApiServices, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]


def reject_unknown_query(request: Request) -> None:
    """A misspelt filter (``acount=``) must not silently list every account: query
    parameters a route does not declare are refused (422)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError(422, "INVALID_REQUEST", f"unknown query parameters {unknown}; this "
                       f"operation takes {sorted(known) or 'none'}")


def _query_names(dependant: Any) -> set[str]:
    """Query parameter names of a route and of everything it depends on."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def account_in_scope(caller: Principal, requested: str | None) -> str | None:
    """The account a request is limited to: an account token's own (asking for another is
    403), else what a finance token asked for (None: every account)."""
    if requested is not None and not caller.may_see(requested):
        raise forbidden(f"token {caller.name!r} may not see account {requested!r}")
    return caller.account if caller.account is not None else requested
