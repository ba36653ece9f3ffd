"""POST /v1/estimates: what an operation would cost, priced by the rating engine itself.

``processors.rating.estimate`` prices with the same steps as the rater and
changes nothing. Tiers and the monthly usage credit depend on what the account
already used this month, which the rater keeps in its own state; the API
rebuilds exactly those two numbers from the billing history (the rows of the
account and month: the accumulated quantity of the rate table and code that
prices the operation, and the credit drawn so far). The store aggregates them
in one query (``month_usage``), so an estimate costs the same for an account
with a hundred thousand rows this month as for one with ten. The history lags
the rater by the sink's delay, so an estimate made seconds after other usage
may not see it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from fastapi import APIRouter

from api.deps import Caller, Services, account_in_scope
from api.errors import ApiError, error_responses
from api.models import EstimateBasis, EstimateOut, EstimateRequest, HistoryTierOut
from processors.catalog import AttributeType, Catalog
from processors.errors import EventRejected, ReasonCode
from processors.events import AttributeValue, RatedUsage, UsageEvent, parse_number
from processors.money import ZERO
from processors.rating import estimate
from processors.state import AccumulationKey, CreditKey, RatingState
from sinks.history.model import BillingHistoryStore
from stream.codec import NUL, OPTIONAL_TEXT, REQUIRED_TEXT

router = APIRouter(tags=["estimates"])
ESTIMATE_SOURCE = "rating-api-estimate"
ESTIMATE_EVENT_ID = "estimate"
TIERED = ("graduated", "volume")
# The text fields of a request that become the event's (event_id and source are ours).
ESTIMATE_TEXT = tuple(name for name in (*REQUIRED_TEXT, *OPTIONAL_TEXT)
                      if name in EstimateRequest.model_fields)


def event_of(body: EstimateRequest, catalog: Catalog, now: datetime) -> UsageEvent:
    """The request as a usage event; attributes typed by the catalog's item type (a
    declared number must be an integer or a decimal string)."""
    _refuse_text_the_rater_refuses(body)
    item = catalog.service_item_types.get(body.service_item_type)
    attributes: dict[str, AttributeValue] = {}
    for name, raw in body.attributes.items():
        declared = item.attributes.get(name) if item is not None else None
        if declared is not None and declared.type is AttributeType.STRING:
            attributes[name] = str(raw)
        elif declared is not None or isinstance(raw, int):
            attributes[name] = parse_number(str(raw), event_id=ESTIMATE_EVENT_ID,
                                            attribute=name)
        else:
            attributes[name] = raw
    when = utc_event_time(body.event_time or now)
    return UsageEvent(event_id=ESTIMATE_EVENT_ID, event_time=when,
                      service_item_type=body.service_item_type,
                      service_item_id=body.service_item_id, operation=body.operation,
                      attributes=attributes, requester=body.requester, home_ou=body.home_ou,
                      source=ESTIMATE_SOURCE, account_id=body.account_id,
                      provider=body.provider, product=body.product)


def _refuse_text_the_rater_refuses(body: EstimateRequest) -> None:
    """INVALID_EVENT, as the rater answers an event with a blank required field or a NUL
    character in any text (stream/codec.py): an operation it would never price."""
    texts = {name: getattr(body, name) for name in ESTIMATE_TEXT}
    texts.update({f"attributes.{name}": f"{name}{raw}" for name, raw in body.attributes.items()})
    for name, text in texts.items():
        if name in REQUIRED_TEXT and not (text or "").strip():
            raise EventRejected(ReasonCode.INVALID_EVENT, f"field {name!r} is empty",
                                {"field": name})
        if NUL in (text or ""):
            raise EventRejected(ReasonCode.INVALID_EVENT,
                                f"field {name!r} contains a NUL character", {"field": name})


def utc_event_time(when: datetime) -> datetime:
    """``when`` in UTC. An aware time at the edge of the datetime range (0001-01-01T00:00
    at +01:00) has no UTC value: the caller's mistake, answered like any invalid body."""
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ApiError(422, "INVALID_REQUEST", f"body.event_time: {when.isoformat()} is "
                       "outside the supported date range once converted to UTC") from None


def usage_so_far(history: BillingHistoryStore, priced: RatedUsage
                 ) -> tuple[RatingState, EstimateBasis]:
    """The rating state the rater would hold for this account and month, as far as the
    billing history knows: the tier position of the pricing row and the credit used."""
    usage = history.month_usage(priced.account_id, priced.billing_period,
                                priced.rate_table, priced.rate_code)
    # Only tiered pricing depends on the quantity already accumulated on its row.
    accumulated = usage.quantity if priced.pricing in TIERED else ZERO
    credit_used = usage.credit_applied
    state = RatingState()
    month = priced.billing_period
    if priced.pricing in TIERED:
        key = AccumulationKey(priced.account_id, month, priced.rate_table, priced.rate_code)
        state.load(key.encode(), _json({"quantity": str(accumulated)}))
    state.load(CreditKey(priced.account_id, month).encode(), _json({"used": str(credit_used)}))
    return state, EstimateBasis(history_rows=usage.rows,
                                accumulated_quantity=_text(accumulated),
                                credit_used=_text(credit_used))


def _json(value: dict[str, str]) -> bytes:
    return json.dumps(value).encode()


def _text(value: Decimal) -> str:
    return format(value, "f")


def estimate_out(priced: RatedUsage, basis: EstimateBasis) -> EstimateOut:
    return EstimateOut(
        account_id=priced.account_id, account_kind=priced.account_kind,
        billing_period=priced.billing_period, fiscal_period=priced.fiscal_period,
        rate_group=priced.rate_group, rate_table=priced.rate_table,
        rate_code=priced.rate_code, unit_of_measure=priced.unit_of_measure,
        pricing=priced.pricing, rate=_text(priced.rate), quantity=_text(priced.quantity),
        tiers=[HistoryTierOut(tier_from=_text(t.tier_from),
                              tier_to=None if t.tier_to is None else _text(t.tier_to),
                              quantity=_text(t.quantity), rate=_text(t.rate),
                              amount=_text(t.amount)) for t in priced.tiers],
        minimum_charge_applied=priced.minimum_charge_applied, currency=priced.currency,
        net_amount=_text(priced.net_amount), markup_rate=_text(priced.markup_rate),
        markup_amount=_text(priced.markup_amount), gross_amount=_text(priced.gross_amount),
        credit_applied=_text(priced.credit_applied),
        credit_remaining=_text(priced.credit_remaining),
        charged_amount=_text(priced.charged_amount), memo=dict(priced.memo),
        catalog_version=priced.catalog_version, estimated_at=priced.rated_at, basis=basis)


@router.post("/v1/estimates", response_model=EstimateOut,
             responses=error_responses(400, 401, 403, 422, 503),
             summary="Price an operation before ordering it (changes nothing)")
def price_estimate(body: EstimateRequest, services: Services, caller: Caller) -> EstimateOut:
    """The amount the rater would charge for the operation now: rate group, table, row,
    tiers, minimum, markup and usage credit, with the account's usage so far this month.
    An operation that cannot be rated answers 422 with the rating reason code."""
    catalog = services.catalog()
    now = services.clock()
    event = event_of(body, catalog, now)
    located = estimate(event, catalog, RatingState(), now)  # where it prices: account, row
    account_in_scope(caller, located.account_id)
    state, basis = usage_so_far(services.history, located)
    return estimate_out(estimate(event, catalog, state, now), basis)
