"""GET /v1/history: the billing history, filtered, in stable pages (keyset cursors).

No ``from __future__ import annotations`` here: the route is built inside a function and
FastAPI must evaluate its annotations, which name the local page-size bounds.
"""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Caller, Services, account_in_scope
from api.errors import ApiError, error_responses
from api.models import HistoryItem, HistoryPageOut
from sinks.aggregate_layout import PERIOD
from sinks.history.model import HistoryError, HistoryFilter, decode_cursor, json_safe

# Filters are exact matches on stored text; control characters never are.
TEXT = r"^[^\x00-\x1f\x7f]*$"
MAX_TEXT = 200
MAX_CURSOR = 512


def _text(description: str) -> object:
    return Query(description=description, max_length=MAX_TEXT, pattern=TEXT)


def history_router(page_limit: int, max_page_limit: int) -> APIRouter:
    """Built per app: the page-size bounds are part of the OpenAPI document."""
    router = APIRouter(tags=["billing history"])

    @router.get("/v1/history", response_model=HistoryPageOut,
                responses=error_responses(400, 401, 403, 422, 503),
                summary="Billing-history rows, oldest first, in pages")
    def list_history(
        services: Services, caller: Caller,
        account: Annotated[str | None, _text("Customer account id (an account token is "
                                             "limited to its own)")] = None,
        period: Annotated[str | None, Query(description="Billing period YYYY-MM",
                                            pattern=PERIOD.pattern)] = None,
        provider: Annotated[str | None, _text("Provider partner id")] = None,
        product: Annotated[str | None, _text("Product (SKU)")] = None,
        service_item_type: Annotated[str | None, _text("Service item type")] = None,
        service_item_id: Annotated[str | None, _text("Service item id")] = None,
        source: Annotated[str | None, _text("Platform service that reported it")] = None,
        cursor: Annotated[str | None, Query(
            description="next_cursor of the previous page", max_length=MAX_CURSOR)] = None,
        limit: Annotated[int, Query(ge=1, le=max_page_limit,
                                    description="Rows per page")] = page_limit,
    ) -> HistoryPageOut:
        """Rows in ``(event_time, event_id)`` order. Follow ``next_cursor`` until it is null:
        every row stored before the first page was read comes exactly once."""
        where = HistoryFilter(account_id=account_in_scope(caller, account),
                              billing_period=period, provider=provider, product=product,
                              service_item_type=service_item_type,
                              service_item_id=service_item_id, source=source)
        if cursor is not None:
            try:
                decode_cursor(cursor)
            except HistoryError as exc:
                raise ApiError(400, "INVALID_CURSOR", str(exc)) from None
        page = services.history.page(where, cursor, limit)
        return HistoryPageOut(items=[HistoryItem.model_validate(json_safe(row))
                                     for row in page.rows],
                              next_cursor=page.next_cursor)

    return router
