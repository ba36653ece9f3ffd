"""Reading and checking the licence sections of the catalog (model: ``licence_model``).

Everything a billing run needs is checked at load, at the line of the entry
that is wrong: a campus's account exists and draws no usage credit, and for
every rate group that account uses, a unit-priced rate table of the licence
item type has a monthly rate for every licence product. A billing run can
then only fail on what the catalog cannot know in advance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from processors.catalog.errors import CatalogError, SourceRef
from processors.catalog.licence_model import (
    MONTHS_ATTRIBUTE,
    PRODUCT_ATTRIBUTE,
    BillingRunSpec,
    Campus,
    LicenceCatalog,
    LicenceGroup,
    LicenceProduct,
    Proration,
    RunKind,
)
from processors.catalog.model import (
    Account,
    AttributeType,
    Pricing,
    RateTable,
    ServiceItemType,
)
from processors.catalog.parse import optional_text, parse_named
from processors.catalog.source import Fields, Value

SECTION = "licence_billing"


class _Billing:
    """``licence_billing`` as read, before the references are checked."""

    def __init__(self, fields: Fields, runs: dict[str, BillingRunSpec]) -> None:
        self.fields = fields
        self.runs = runs


def parse_licence_billing(value: Value) -> _Billing:
    fields = value.mapping({"runs"}, {"service_item_type", "fiscal_year_start_month",
                                      "proration", "description"})
    start_value = fields.get("fiscal_year_start_month")
    start = _month(start_value) if start_value is not None else 7
    proration_value = fields.get("proration")
    if proration_value is not None and proration_value.text() not in {p.value for p in Proration}:
        raise proration_value.fail(f"proration must be month or day, got "
                                   f"{proration_value.text()!r}")
    runs = parse_named(fields.each("runs"), lambda v: _parse_run(v, start), lambda r: r.name,
                       "billing run")
    if not runs:
        raise fields.fail("runs", "licence billing needs at least one billing run")
    return _Billing(fields, runs)


def _parse_run(value: Value, fiscal_start: int) -> BillingRunSpec:
    fields = value.mapping({"name", "kind", "month"}, {"through_month", "description"})
    name = fields.req("name").identifier()
    fields = fields.renamed(f"billing run {name!r}")
    kind_text = fields.req("kind").text()
    if kind_text not in {k.value for k in RunKind}:
        raise fields.req("kind").fail(f"kind must be annual or true-up, got {kind_text!r}")
    kind = RunKind(kind_text)
    month = _month(fields.req("month"))
    through_value = fields.get("through_month")
    if through_value is None and kind is RunKind.TRUE_UP:
        raise fields.owner.fail("a true-up names the last provisioning month it covers "
                                "with through_month")
    through = _month(through_value) if through_value is not None else month
    if (through - fiscal_start) % 12 > (month - fiscal_start) % 12:
        raise fields.fail("through_month", f"month {through} comes after the run's month "
                          f"{month} in a fiscal year starting in month {fiscal_start}")
    return BillingRunSpec(name, kind, month, through, fields.ref)


def _month(value: Value) -> int:
    number = value.decimal()
    if number != number.to_integral_value() or not 1 <= number <= 12:
        raise value.fail(f"a month is a whole number from 1 to 12, got {number}")
    return int(number)


def parse_licence_group(value: Value) -> LicenceGroup:
    fields = value.mapping({"name", "products"}, {"title", "description"})
    name = fields.req("name").identifier()
    fields = fields.renamed(f"licence group {name!r}")
    products = parse_named(fields.each("products"), lambda v: _parse_product(v, name),
                           lambda p: p.id, "licence product")
    if not products:
        raise fields.fail("products", "a licence group needs at least one product")
    return LicenceGroup(name, optional_text(fields, "title", name), MappingProxyType(products),
                        fields.ref)


def _parse_product(value: Value, group: str) -> LicenceProduct:
    fields = value.mapping({"id", "name"}, {"description"})
    product_id = fields.req("id").identifier()
    fields = fields.renamed(f"licence product {product_id!r}")
    return LicenceProduct(product_id, fields.req("name").text(), group, fields.ref)


def parse_campus(value: Value) -> Campus:
    fields = value.mapping({"id", "account", "billing_target"}, {"name", "description"})
    campus_id = fields.req("id").identifier()
    fields = fields.renamed(f"campus {campus_id!r}")
    target = fields.req("billing_target").text().strip()
    if not target:
        raise fields.fail("billing_target", "a campus needs its billing target (speedtype)")
    return Campus(campus_id, optional_text(fields, "name", campus_id),
                  fields.req("account").identifier(), target, fields.ref)


def build_licences(
    billing: _Billing | None,
    groups: Mapping[str, LicenceGroup],
    campuses: Mapping[str, Campus],
    products_of_groups: Iterable[LicenceProduct],
    item_types: Mapping[str, ServiceItemType],
    accounts: Mapping[str, Account],
    rate_tables: Mapping[str, RateTable],
    table_for: Mapping[tuple[str, str, str], str],
) -> LicenceCatalog | None:
    """The checked licence catalog; None when the catalog bills no licences."""
    if billing is None:
        if groups or campuses:
            refs = [group.ref for group in groups.values()]
            refs += [campus.ref for campus in campuses.values()]
            raise CatalogError.at(refs[0], f"licence groups and campuses need a {SECTION} "
                                  "section (fiscal year, proration, runs)")
        return None
    fields = billing.fields
    item = _licence_item(fields, item_types, {run.kind for run in billing.runs.values()})
    products = _products(products_of_groups)
    if not products:
        raise fields.owner.fail("licence billing needs licence_groups with products")
    for campus in campuses.values():
        _check_campus(campus, item, billing.runs.values(), products, accounts, rate_tables,
                      table_for)
    proration = fields.get("proration")
    start = fields.get("fiscal_year_start_month")
    return LicenceCatalog(
        service_item_type=item.name,
        fiscal_year_start_month=_month(start) if start is not None else 7,
        proration=Proration(proration.text()) if proration is not None else Proration.MONTH,
        runs=MappingProxyType(billing.runs),
        groups=MappingProxyType(dict(groups)),
        products=MappingProxyType(products),
        campuses=MappingProxyType(dict(campuses)),
        ref=fields.ref,
    )


def _licence_item(fields: Fields, item_types: Mapping[str, ServiceItemType],
                  kinds: set[RunKind]) -> ServiceItemType:
    value = fields.get("service_item_type")
    name = value.identifier() if value is not None else "Licence"
    where = fields.ref.at("service_item_type")
    item = item_types.get(name)
    if item is None:
        raise CatalogError.at(where, f"unknown service item type {name!r} for licence fees")
    if item.marketplace:
        raise CatalogError.at(where, f"{name} is a marketplace item: licence fees carry no "
                              "marketplace markup")
    for attribute, type_ in ((PRODUCT_ATTRIBUTE, AttributeType.STRING),
                             (MONTHS_ATTRIBUTE, AttributeType.NUMBER)):
        declared = item.attributes.get(attribute)
        if declared is None or declared.type is not type_:
            raise CatalogError.at(item.ref, f"licence item type {name} needs a {type_} "
                                  f"attribute {attribute!r}")
    for kind in sorted(kinds):
        operation = item.operations.get(kind.operation)
        if operation is None or not operation.billable:
            raise CatalogError.at(item.ref, f"licence item type {name} needs a billable "
                                  f"operation {kind.operation!r} for {kind} runs")
    return item


def _products(products: Iterable[LicenceProduct]) -> dict[str, LicenceProduct]:
    found: dict[str, LicenceProduct] = {}
    for product in products:
        if product.id in found:
            raise CatalogError.at(product.ref, f"licence product {product.id!r} is already in "
                                  f"group {found[product.id].group!r}")
        found[product.id] = product
    return found


def _check_campus(campus: Campus, item: ServiceItemType, runs: Iterable[BillingRunSpec],
                  products: Mapping[str, LicenceProduct], accounts: Mapping[str, Account],
                  rate_tables: Mapping[str, RateTable],
                  table_for: Mapping[tuple[str, str, str], str]) -> None:
    account = accounts.get(campus.account)
    where = campus.ref.at("account")
    if account is None:
        raise CatalogError.at(where, f"unknown account {campus.account!r}")
    if account.credit_plan is not None:
        # The rater owns usage-credit balances (per account-keyed partition); a licence
        # charge drawing on them from another partition would spend the credit twice.
        raise CatalogError.at(where, f"account {account.id!r} has credit plan "
                              f"{account.credit_plan!r}: licence fees cannot draw usage credit")
    for assignment in account.rate_groups:
        for operation in sorted({run.kind.operation for run in runs}):
            table_name = table_for.get((assignment.rate_group, item.name, operation))
            if table_name is None:
                raise CatalogError.at(where, f"rate group {assignment.rate_group!r} of account "
                                      f"{account.id!r} has no rate table for {item.name} "
                                      f"{operation}")
            _check_table(rate_tables[table_name], products)


def _check_table(table: RateTable, products: Mapping[str, LicenceProduct]) -> None:
    ref: SourceRef = table.ref
    if table.pricing is not Pricing.UNIT or table.quantity_attribute != MONTHS_ATTRIBUTE:
        # Tiers and credits are per-account running totals the rater owns; a licence
        # fee is one line: a monthly rate x the months billed.
        raise CatalogError.at(ref.at("pricing"), f"licence fees are priced per month: "
                              f"pricing unit with quantity_attribute {MONTHS_ATTRIBUTE}")
    if set(table.lookup) - {PRODUCT_ATTRIBUTE}:
        raise CatalogError.at(ref.at("lookup"), f"a licence rate table can only look up by "
                              f"{PRODUCT_ATTRIBUTE}")
    for product in products:
        values = [product] if table.lookup else []
        if table.rows.find(values) is None:
            raise CatalogError.at(ref.at("rows"), f"no monthly rate for licence product "
                                  f"{product!r}")
