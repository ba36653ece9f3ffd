"""Finding what the catalog says about one event, or rejecting it with the reason.

Each function answers one question of the rating steps (which item type and
operation, which rate group, which row, which quantity, which marketplace
product) and raises ``EventRejected`` with a precise reason code and a
message naming the event and the offending value.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from processors.catalog.model import (
    MARKETPLACE_FIELDS,
    Account,
    AttributeType,
    Catalog,
    FiscalPeriod,
    Product,
    RateRow,
    RateTable,
    ServiceItemType,
)
from processors.errors import EventRejected, ReasonCode
from processors.events import AttributeValue, UsageEvent

ONE = Decimal(1)


def _reject(reason: ReasonCode, event: UsageEvent, message: str, **details: str) -> EventRejected:
    return EventRejected(reason, f"event {event.event_id}: {message}", details)


def billable_item(event: UsageEvent, catalog: Catalog) -> ServiceItemType | None:
    """The event's item type, attributes checked; None when the operation is not billable."""
    if event.event_time.tzinfo is None:
        raise _reject(ReasonCode.INVALID_EVENT, event, "event_time has no timezone")
    item = catalog.service_item_types.get(event.service_item_type)
    if item is None:
        raise _reject(
            ReasonCode.UNKNOWN_SERVICE_ITEM,
            event,
            f"unknown service item type {event.service_item_type!r}",
            service_item_type=event.service_item_type,
        )
    operation = item.operations.get(event.operation)
    if operation is None:
        raise _reject(
            ReasonCode.UNKNOWN_OPERATION,
            event,
            f"{item.name} has no operation {event.operation!r}",
            operation=event.operation,
        )
    if not operation.billable:
        return None
    check_attribute_types(event, item)
    return item


def check_attribute_types(event: UsageEvent, item: ServiceItemType) -> None:
    """Declared attributes carry their declared type; undeclared ones are ignored."""
    for name, attribute in item.attributes.items():
        value = event.attributes.get(name)
        if value is None:
            continue
        is_number = isinstance(value, Decimal)
        if is_number != (attribute.type is AttributeType.NUMBER):
            raise _reject(
                ReasonCode.BAD_ATTRIBUTE,
                event,
                f"attribute {name!r} of {item.name} must be a {attribute.type}, got {value!r}",
                attribute=name,
            )


def rate_group_at(event: UsageEvent, catalog: Catalog, account: Account) -> tuple[str, str]:
    """(fiscal period, rate group) in force for the account at the event's time."""
    period: FiscalPeriod | None = catalog.fiscal_period_at(event.event_time)
    if period is None:
        raise _reject(
            ReasonCode.NO_RATE_GROUP,
            event,
            f"no fiscal period covers {_iso(event.event_time)}",
            account_id=account.id,
        )
    group = catalog.rate_group_for(account, period)
    if group is None:
        raise _reject(
            ReasonCode.NO_RATE_GROUP,
            event,
            f"account {account.id!r} has no rate group in fiscal period {period.name!r}",
            account_id=account.id,
            fiscal_period=period.name,
        )
    return period.name, group


def marketplace_product(
    event: UsageEvent, catalog: Catalog, item: ServiceItemType
) -> Product | None:
    """The product a marketplace event names, sold by the provider it names."""
    if not item.marketplace:
        return None
    if not event.provider or not event.product:
        raise _reject(
            ReasonCode.BAD_ATTRIBUTE,
            event,
            f"{item.name} is a marketplace item: provider and product are required",
            attribute="product" if event.provider else "provider",
        )
    product = catalog.products.get(event.product)
    if product is None or product.provider != event.provider:
        raise _reject(
            ReasonCode.UNKNOWN_PRODUCT,
            event,
            f"provider {event.provider!r} has no product {event.product!r}",
            attribute="product",
        )
    if product.service_item_type != item.name:
        raise _reject(
            ReasonCode.BAD_ATTRIBUTE,
            event,
            f"product {product.sku!r} is a {product.service_item_type}, not a {item.name}",
            attribute="product",
        )
    return product


def find_row(event: UsageEvent, table: RateTable) -> RateRow:
    """The most specific row of ``table`` matching the event's lookup values."""
    values = [_lookup_value(event, table, name) for name in table.lookup]
    row = table.rows.find(values)
    if row is None:
        shown = ", ".join(
            f"{name}={value}" for name, value in zip(table.lookup, values, strict=True)
        )
        raise _reject(
            ReasonCode.NO_RATE_ROW,
            event,
            f"rate table {table.name!r} has no row for {shown or 'this event'}",
            rate_table=table.name,
        )
    return row


def _lookup_value(event: UsageEvent, table: RateTable, name: str) -> AttributeValue:
    value: AttributeValue | None
    if name in MARKETPLACE_FIELDS:
        value = event.provider if name == "provider" else event.product
    else:
        value = event.attributes.get(name)
    if value is None:
        raise _reject(
            ReasonCode.BAD_ATTRIBUTE,
            event,
            f"lookup attribute {name!r} of rate table {table.name!r} is missing",
            attribute=name,
        )
    return value


def priced_quantity(event: UsageEvent, table: RateTable) -> Decimal:
    """The quantity to price: the table's numeric attribute, or 1 for flat pricing."""
    if table.quantity_attribute is None:
        return ONE
    quantity = event.number(table.quantity_attribute)
    if quantity < 0:
        raise _reject(
            ReasonCode.NEGATIVE_QUANTITY,
            event,
            f"quantity attribute {table.quantity_attribute!r} is negative: {quantity}",
            attribute=table.quantity_attribute,
        )
    return quantity


def memo(event: UsageEvent, table: RateTable) -> dict[str, str]:
    """The table's memo attributes present on the event, as text, for the record."""
    return {name: str(event.attributes[name]) for name in table.memo if name in event.attributes}


def _iso(moment: datetime) -> str:
    return moment.isoformat()
