"""GET /v1/aggregates/{period}: a month's totals from the Redis period aggregates.

Reads the layout documented in sinks/aggregates.py through its period index
(no SCAN). ``provider=-`` / ``product=-`` select platform services (no provider).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import Caller, Services, account_in_scope
from api.errors import error_responses, forbidden
from api.history import MAX_TEXT, TEXT
from api.models import AggregateOut, AggregatesOut, Amounts, CurrencyTotal, PeriodsOut
from sinks.aggregate_layout import (
    NO_VALUE,
    PERIOD,
    Aggregate,
    Totals,
    read_period,
    read_periods,
    sum_by_currency,
)

router = APIRouter(tags=["aggregates"])


def _amounts(totals: Totals) -> dict[str, Any]:
    return Amounts(count=totals.count, quantity=_text(totals.quantity),
                   units=sorted(totals.units), net_amount=_text(totals.net_amount),
                   markup_amount=_text(totals.markup_amount),
                   gross_amount=_text(totals.gross_amount),
                   credit_applied=_text(totals.credit_applied),
                   charged_amount=_text(totals.charged_amount)).model_dump()


def _text(value: object) -> str:
    return format(value, "f")


def _matches(wanted: str | None, value: str | None) -> bool:
    if wanted is None:
        return True
    return value is None if wanted == NO_VALUE else value == wanted


def _out(aggregate: Aggregate) -> AggregateOut:
    group = aggregate.group
    return AggregateOut(billing_period=group.billing_period, provider=group.provider,
                        product=group.product, account=group.account,
                        currency=group.currency, updated_from=aggregate.updated_from,
                        **_amounts(aggregate.totals))


def _filter(description: str) -> object:
    return Query(description=description, max_length=MAX_TEXT, pattern=TEXT)


@router.get("/v1/aggregates", response_model=PeriodsOut,
            responses=error_responses(401, 403, 422, 503),
            summary="Billing periods that have aggregates (finance tokens)")
def list_periods(services: Services, caller: Caller) -> PeriodsOut:
    if caller.account is not None:
        raise forbidden("listing every period is for finance tokens; ask for a period")
    return PeriodsOut(periods=read_periods(services.redis, services.key_prefix))


@router.get("/v1/aggregates/{period}", response_model=AggregatesOut,
            responses=error_responses(401, 403, 422, 503),
            summary="Totals of a billing period by provider, product, account, currency")
def period_aggregates(
    services: Services, caller: Caller,
    period: Annotated[str, Path(description="YYYY-MM", pattern=PERIOD.pattern)],
    provider: Annotated[str | None, _filter("Provider id; - for platform services")] = None,
    product: Annotated[str | None, _filter("Product (SKU); - for platform services")] = None,
    account: Annotated[str | None, _filter("Customer account id (an account token is "
                                           "limited to its own)")] = None,
) -> AggregatesOut:
    """Count, quantity and exact amount sums per group, and per currency over the listed
    groups (amounts in different currencies never add). An unknown period lists nothing."""
    scope = account_in_scope(caller, account)
    found = [aggregate for aggregate in read_period(services.redis, services.key_prefix, period)
             if _matches(provider, aggregate.group.provider)
             and _matches(product, aggregate.group.product)
             and (scope is None or aggregate.group.account == scope)]
    totals = [CurrencyTotal(currency=currency, **_amounts(sums))
              for currency, sums in sorted(sum_by_currency(found).items())]
    return AggregatesOut(billing_period=period, items=[_out(a) for a in found], totals=totals)
