"""Reading rate tables: definition, rows and tiers, checked against their item type.

A table is read after the service item types because its rows can only be
understood through them (a numeric attribute's row value is a number, a
string attribute's is text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import yaml

from processors.catalog.errors import CatalogError
from processors.catalog.matching import DuplicateRowError, RowIndex
from processors.catalog.model import (
    MARKETPLACE_FIELDS,
    AttributeType,
    Pricing,
    RateRow,
    RateTable,
    ServiceItemType,
    Tier,
)
from processors.catalog.parse import known_currency, money_amount, non_negative, parse_named
from processors.catalog.source import Fields, Value
from processors.events import AttributeValue
from processors.money import Currency

ANY = "*"
_TABLE_KEYS = {
    "name", "rate_groups", "service_item_type", "operations", "currency", "pricing", "rows",
}  # fmt: skip
_TABLE_OPTIONAL = {"lookup", "memo", "quantity_attribute", "description"}


@dataclass(frozen=True, slots=True)
class _TableContext:
    label: str
    item: ServiceItemType
    lookup: tuple[str, ...]
    pricing: Pricing
    currency: Currency


def parse_rate_table(value: Value, item_types: Mapping[str, ServiceItemType]) -> RateTable:
    fields = value.mapping(_TABLE_KEYS, _TABLE_OPTIONAL)
    name = fields.req("name").identifier()
    fields = fields.renamed(f"rate_table {name!r}")
    item = _item_type(fields.req("service_item_type"), item_types)
    pricing = _pricing(fields.req("pricing"))
    operations = _operations(fields, item)
    memo = _names(fields, "memo", set(item.attributes), "memo attribute")
    quantity_attribute = _quantity_attribute(fields, item, pricing)
    context = _TableContext(
        label=fields.owner.entry,
        item=item,
        lookup=_names(fields, "lookup", item.lookup_fields(), "lookup attribute"),
        pricing=pricing,
        currency=known_currency(fields.req("currency")),
    )
    rows = parse_named(fields.each("rows"), lambda v: _parse_row(v, context), _code, "rate code")
    if not rows:
        raise fields.fail("rows", "a rate table needs at least one row")
    return RateTable(
        name=name,
        rate_groups=_names(fields, "rate_groups", None, "rate group"),
        service_item_type=item.name,
        operations=operations,
        lookup=context.lookup,
        memo=memo,
        currency=context.currency,
        pricing=pricing,
        quantity_attribute=quantity_attribute,
        rows=_index(list(rows.values())),
        ref=fields.ref,
    )


def _code(row: RateRow) -> str:
    return row.rate_code


def _item_type(value: Value, item_types: Mapping[str, ServiceItemType]) -> ServiceItemType:
    name = value.identifier()
    item = item_types.get(name)
    if item is None:
        raise value.fail(f"unknown service item type {name!r}")
    return item


def _pricing(value: Value) -> Pricing:
    text = value.text()
    if text not in {member.value for member in Pricing}:
        raise value.fail(f"pricing must be one of flat, unit, graduated, volume; got {text!r}")
    return Pricing(text)


def _names(fields: Fields, key: str, allowed: set[str] | None, what: str) -> tuple[str, ...]:
    """A list of distinct names under ``key``, each one of ``allowed`` when given."""
    value = fields.get(key)
    if value is None:
        return ()
    seen: list[str] = []
    for name, item in value.renamed(f"{fields.owner.entry} {key}").identifiers():
        if allowed is not None and name not in allowed:
            raise item.fail(f"unknown {what} {name!r} (known: {', '.join(sorted(allowed))})")
        if name in seen:
            raise item.fail(f"{what} {name!r} is listed twice")
        seen.append(name)
    return tuple(seen)


def _operations(fields: Fields, item: ServiceItemType) -> tuple[str, ...]:
    names = _names(fields, "operations", set(item.operations), f"operation of {item.name}")
    if not names:
        raise fields.fail("operations", "a rate table applies to at least one operation")
    for name in names:
        if not item.operations[name].billable:
            raise fields.fail("operations", f"operation {name!r} of {item.name} is not billable")
    return names


def _quantity_attribute(fields: Fields, item: ServiceItemType, pricing: Pricing) -> str | None:
    value = fields.get("quantity_attribute")
    if pricing is Pricing.FLAT:
        if value is not None:
            raise value.fail("flat pricing charges per operation: drop quantity_attribute")
        return None
    if value is None:
        raise fields.owner.fail(f"{pricing} pricing needs a quantity_attribute")
    name = value.identifier()
    attribute = item.attributes.get(name)
    if attribute is None:
        raise value.fail(f"unknown attribute {name!r} of {item.name}")
    if attribute.type is not AttributeType.NUMBER:
        raise value.fail(f"quantity attribute {name!r} must be a number, it is a string")
    return name


def _index(rows: list[RateRow]) -> RowIndex[RateRow]:
    try:
        index = RowIndex(rows)
    except DuplicateRowError as exc:
        first, second = exc.first, exc.second
        message = f"same match as row {first.rate_code!r} (line {first.ref.line})"
        raise _row_error(second, message) from None
    for first, second in index.ambiguous_pairs():
        later, earlier = sorted((first, second), key=lambda row: -row.ref.line)
        raise _row_error(
            later,
            f"ambiguous with row {earlier.rate_code!r} (line {earlier.ref.line}): both are "
            "equally specific and can match the same event; make one more specific or add a "
            "row for the combination",
        )
    return index


def _row_error(row: RateRow, message: str) -> CatalogError:
    return CatalogError.at(row.ref, message)


def _parse_row(value: Value, table: _TableContext) -> RateRow:
    fields = value.mapping(
        {"rate_code", "unit"}, {"match", "rate", "tiers", "minimum_charge", "description"}
    )
    code = fields.req("rate_code").identifier()
    fields = fields.renamed(f"{table.label} row {code!r}")
    minimum = fields.get("minimum_charge")
    return RateRow(
        match=_parse_match(fields, table),
        rate_code=code,
        unit_of_measure=fields.req("unit").text(),
        rate=_row_rate(fields, table.pricing),
        tiers=_row_tiers(fields, table.pricing),
        minimum_charge=(
            money_amount(minimum, table.currency, "minimum_charge") if minimum is not None else None
        ),
        ref=fields.ref,
    )


def _parse_match(fields: Fields, table: _TableContext) -> tuple[AttributeValue | None, ...]:
    value = fields.get("match")
    if value is None:
        return (None,) * len(table.lookup)
    given = value.open_mapping()
    for key in given.names():
        if key not in table.lookup:
            lookup = ", ".join(table.lookup) or "none"
            raise given.fail(key, f"{key!r} is not a lookup attribute of the table ({lookup})")
    return tuple(_match_value(given.get(name), name, table.item) for name in table.lookup)


def _match_value(cell: Value | None, name: str, item: ServiceItemType) -> AttributeValue | None:
    """A row's value for one lookup attribute; omitted or ``"*"`` means any value."""
    if cell is None or (not _is_mapping_or_list(cell) and cell.text() == ANY):
        return None
    if name in MARKETPLACE_FIELDS or item.attributes[name].type is AttributeType.STRING:
        return cell.text()
    return cell.decimal()


def _is_mapping_or_list(value: Value) -> bool:
    return not isinstance(value.node, yaml.ScalarNode)


def _row_rate(fields: Fields, pricing: Pricing) -> Decimal | None:
    value = fields.get("rate")
    if pricing.tiered:
        if value is not None:
            raise value.fail(f"{pricing} pricing takes its rates from 'tiers', not 'rate'")
        return None
    if value is None:
        raise fields.owner.fail(f"{pricing} pricing needs a 'rate'")
    return non_negative(value, "rate")


def _row_tiers(fields: Fields, pricing: Pricing) -> tuple[Tier, ...]:
    value = fields.get("tiers")
    if not pricing.tiered:
        if value is not None:
            raise value.fail(f"{pricing} pricing has no tiers (use graduated or volume)")
        return ()
    if value is None:
        raise fields.owner.fail(f"{pricing} pricing needs 'tiers'")
    tiers: list[Tier] = []
    for item in fields.each("tiers"):
        tiers.append(_parse_tier(item, tiers[-1] if tiers else None))
    if not tiers:
        raise value.fail("at least one tier is needed")
    if tiers[-1].end is not None:
        raise CatalogError.at(tiers[-1].ref, "the last tier must be open-ended (no 'to')")
    return tuple(tiers)


def _parse_tier(value: Value, previous: Tier | None) -> Tier:
    fields = value.mapping({"from", "rate"}, {"to"})
    start = non_negative(fields.req("from"), "tier 'from'")
    expected = Decimal(0) if previous is None else previous.end
    if previous is not None and previous.end is None:
        raise value.fail("only the last tier may be open-ended (no 'to')")
    if start != expected:
        raise fields.fail(
            "from",
            f"tier starts at {start}, expected {expected} "
            "(tiers are contiguous and increasing, starting at 0)",
        )
    end_value = fields.get("to")
    end = end_value.decimal() if end_value is not None else None
    if end_value is not None and end is not None and end <= start:
        raise end_value.fail(f"tier 'to' ({end}) must be greater than 'from' ({start})")
    return Tier(start, end, non_negative(fields.req("rate"), "tier rate"), fields.ref)
