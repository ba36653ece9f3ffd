"""Reading one catalog entry at a time into the model (rate tables: ``parse_rates``).

Each parser checks what the entry alone can tell: required keys, types,
allowed values, signs. References between entries are checked later by
``validation`` once everything is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from types import MappingProxyType
from typing import TypeVar

from processors.catalog.errors import CatalogError
from processors.catalog.model import (
    MARKETPLACE_FIELDS,
    Account,
    AccountKind,
    Attribute,
    AttributeType,
    CreditPlan,
    FiscalPeriod,
    GroupAssignment,
    Operation,
    Product,
    Provider,
    QuotaEffect,
    RateGroup,
    ServiceItemType,
)
from processors.catalog.source import IDENTIFIER, Fields, Value
from processors.money import Currency, currency, fits_minor_unit

T = TypeVar("T")


def parse_named(
    items: Iterable[Value], parse: Callable[[Value], T], name: Callable[[T], str], what: str
) -> dict[str, T]:
    """Parsed entries keyed by name; a second entry with a known name fails at its line."""
    result: dict[str, T] = {}
    first_at: dict[str, str] = {}
    for item in items:
        entry = parse(item)
        key = name(entry)
        if key in result:
            raise item.fail(f"duplicate {what} {key!r} (first at {first_at[key]})")
        result[key] = entry
        first_at[key] = f"{item.ref.file}:{item.ref.line}"
    return result


def optional_text(fields: Fields, key: str, default: str = "") -> str:
    value = fields.get(key)
    return default if value is None else value.text()


def non_negative(value: Value, what: str) -> Decimal:
    number = value.decimal()
    if number < 0:
        raise value.fail(f"{what} must not be negative, got {number}")
    return number


def markup_fraction(value: Value) -> Decimal:
    """A fraction of net, 0 to 1: "18" for 18 % would bill 19 times the net price."""
    number = non_negative(value, "markup")
    if number > 1:
        raise value.fail(f"markup is a fraction of net (0.18 for 18 %), at most 1 (100 %), "
                         f"got {number}")
    return number


def known_currency(value: Value) -> Currency:
    code = value.text()
    found = currency(code)
    if found is None:
        raise value.fail(f"unknown currency {code!r} (an ISO 4217 code such as USD, EUR, JPY)")
    return found


def money_amount(value: Value, cur: Currency, what: str) -> Decimal:
    amount = non_negative(value, what)
    if not fits_minor_unit(amount, cur):
        raise value.fail(f"{what} {amount} has more decimals than {cur.code} allows")
    return amount


def parse_item_type(value: Value) -> ServiceItemType:
    fields = value.mapping({"name"}, {"description", "attributes", "operations", "marketplace"})
    name = fields.req("name").identifier()
    fields = fields.renamed(f"service_item_type {name!r}")
    marketplace = fields.get("marketplace")
    is_marketplace = marketplace.boolean() if marketplace is not None else False
    attributes = parse_named(
        fields.each("attributes"), _parse_attribute, lambda a: a.name, "attribute"
    )
    for attribute in attributes.values():
        if is_marketplace and attribute.name in MARKETPLACE_FIELDS:
            raise CatalogError.at(
                attribute.ref,
                f"attribute {attribute.name!r} clashes with the event field of that name "
                "that marketplace items are looked up by",
            )
    quota_managed = any(attribute.quota_managed for attribute in attributes.values())
    operations = parse_named(
        fields.each("operations"),
        lambda value: _parse_operation(value, quota_managed),
        lambda o: o.name,
        "operation",
    )
    if not operations:
        raise fields.fail("operations", "a service item type needs at least one operation")
    return ServiceItemType(
        name=name,
        attributes=MappingProxyType(attributes),
        operations=MappingProxyType(operations),
        marketplace=is_marketplace,
        ref=fields.ref,
    )


def _parse_attribute(value: Value) -> Attribute:
    fields = value.mapping({"name", "type"}, {"quota_managed", "description"})
    kind = fields.req("type").text()
    if kind not in {member.value for member in AttributeType}:
        raise fields.req("type").fail(f"attribute type must be number or string, got {kind!r}")
    quota = fields.get("quota_managed")
    return Attribute(
        name=fields.req("name").identifier(),
        type=AttributeType(kind),
        quota_managed=quota.boolean() if quota is not None else False,
        ref=fields.ref,
    )


# What an operation does to quota when its item type has quota-managed attributes and
# the operation does not say (``quota:``). Any other name leaves quota alone.
CONVENTIONAL_QUOTA_EFFECTS = {
    **dict.fromkeys(("Create", "Order", "Subscribe", "Deploy"), QuotaEffect.ACQUIRE),
    **dict.fromkeys(("Resize", "Extend"), QuotaEffect.RESIZE),
    **dict.fromkeys(("Delete", "Return", "Unsubscribe", "Remove"), QuotaEffect.RELEASE),
}
NO_QUOTA_EFFECT = "none"


def _parse_operation(value: Value, quota_managed: bool) -> Operation:
    fields = value.mapping({"name", "billable"}, {"description", "quota"})
    name = fields.req("name").identifier()
    return Operation(
        name=name,
        billable=fields.req("billable").boolean(),
        quota=_quota_effect(fields.get("quota"), name, quota_managed),
        ref=fields.ref,
    )


def _quota_effect(declared: Value | None, operation: str,
                  quota_managed: bool) -> QuotaEffect | None:
    if declared is None:
        return CONVENTIONAL_QUOTA_EFFECTS.get(operation) if quota_managed else None
    text = declared.text()
    choices = [effect.value for effect in QuotaEffect] + [NO_QUOTA_EFFECT]
    if text not in choices:
        raise declared.fail(f"quota must be one of {', '.join(choices)}, got {text!r}")
    if text == NO_QUOTA_EFFECT:
        return None
    if not quota_managed:
        raise declared.fail(
            f"operation {operation!r} declares quota {text!r}, but its item type has no "
            "quota_managed attribute, so none of its operations can take or give back quota"
        )
    return QuotaEffect(text)


def parse_rate_group(value: Value) -> RateGroup:
    fields = value.mapping({"name"}, {"description"})
    name = fields.req("name").identifier()
    return RateGroup(
        name, optional_text(fields, "description"), fields.renamed(f"rate_group {name!r}").ref
    )


def parse_fiscal_period(value: Value) -> FiscalPeriod:
    fields = value.mapping({"name", "start"}, {"end", "description"})
    name = fields.req("name").identifier()
    fields = fields.renamed(f"fiscal_period {name!r}")
    start = fields.req("start").instant()
    end_value = fields.get("end")
    end = end_value.instant() if end_value is not None else None
    if end_value is not None and end is not None and end <= start:
        raise end_value.fail("a fiscal period must end after it starts")
    return FiscalPeriod(name, start, end, fields.ref)


def parse_org_unit(value: Value) -> str:
    path = value.text()
    segments = path.split("/")
    if not all(IDENTIFIER.match(segment) for segment in segments):
        raise value.fail(f"OU path {path!r} must be names separated by '/', e.g. eng/platform")
    return path


def parse_credit_plan(value: Value) -> CreditPlan:
    fields = value.mapping({"name", "amount", "currency"}, {"description"})
    name = fields.req("name").identifier()
    fields = fields.renamed(f"credit_plan {name!r}")
    cur = known_currency(fields.req("currency"))
    amount = money_amount(fields.req("amount"), cur, "monthly credit amount")
    return CreditPlan(name, amount, cur, fields.ref)


def parse_account(value: Value) -> Account:
    fields = value.mapping(
        {"id", "kind", "rate_groups"}, {"ou", "ous", "credit_plan", "description"}
    )
    account_id = fields.req("id").identifier()
    fields = fields.renamed(f"account {account_id!r}")
    kind_text = fields.req("kind").text()
    if kind_text not in {member.value for member in AccountKind}:
        raise fields.req("kind").fail(f"account kind must be tenant or project, got {kind_text!r}")
    kind = AccountKind(kind_text)
    ou_value, ous_value = fields.get("ou"), fields.get("ous")
    if kind is AccountKind.TENANT and (ou_value is None or ous_value is not None):
        raise fields.owner.fail("a tenant account names exactly one OU with 'ou' (not 'ous')")
    if kind is AccountKind.PROJECT and ou_value is not None:
        raise fields.fail("ou", "a project account lists its OUs with 'ous', not 'ou'")
    plan = fields.get("credit_plan")
    return Account(
        id=account_id,
        kind=kind,
        ou=ou_value.text() if ou_value is not None else None,
        ous=tuple(item.text() for item in fields.each("ous")),
        rate_groups=tuple(_parse_assignment(item) for item in fields.each("rate_groups")),
        credit_plan=plan.identifier() if plan is not None else None,
        ref=fields.ref,
    )


def _parse_assignment(value: Value) -> GroupAssignment:
    fields = value.mapping({"rate_group", "from"})
    return GroupAssignment(
        rate_group=fields.req("rate_group").identifier(),
        from_period=fields.req("from").identifier(),
        ref=fields.ref,
    )


def parse_provider(value: Value) -> Provider:
    fields = value.mapping({"id", "name", "markup", "products"}, {"description"})
    provider_id = fields.req("id").identifier()
    fields = fields.renamed(f"provider {provider_id!r}")
    products = parse_named(
        fields.each("products"),
        lambda item: _parse_product(item, provider_id),
        lambda p: p.sku,
        "product",
    )
    if not products:
        raise fields.fail("products", "a provider needs at least one product")
    return Provider(
        id=provider_id,
        name=fields.req("name").text(),
        markup=markup_fraction(fields.req("markup")),
        products=MappingProxyType(products),
        ref=fields.ref,
    )


def _parse_product(value: Value, provider_id: str) -> Product:
    fields = value.mapping({"sku", "name", "service_item_type"}, {"markup", "description"})
    sku = fields.req("sku").identifier()
    fields = fields.renamed(f"product {sku!r} of provider {provider_id!r}")
    markup = fields.get("markup")
    return Product(
        sku=sku,
        name=fields.req("name").text(),
        provider=provider_id,
        service_item_type=fields.req("service_item_type").identifier(),
        markup=markup_fraction(markup) if markup is not None else None,
        ref=fields.ref,
    )
