"""Checks between catalog entries, each returning the index the engine needs.

Runs after every entry has been read, so a reference can point anywhere in
any file. Each problem is reported at the line of the entry that makes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from itertools import pairwise

from processors.catalog.errors import CatalogError
from processors.catalog.model import (
    Account,
    AccountKind,
    CreditPlan,
    FiscalPeriod,
    Product,
    Provider,
    RateGroup,
    RateTable,
    ServiceItemType,
)
from processors.catalog.source import Value


def check_fiscal_periods(periods: Mapping[str, FiscalPeriod]) -> tuple[FiscalPeriod, ...]:
    """Periods sorted by start, each without an explicit end running to the next start."""
    ordered = sorted(periods.values(), key=lambda period: period.start)
    closed: list[FiscalPeriod] = []
    for current, following in pairwise(ordered):
        if current.end is not None and current.end > following.start:
            raise CatalogError.at(
                current.ref.at("end"),
                f"ends after fiscal period {following.name!r} starts "
                f"({following.ref.file}:{following.ref.line}): fiscal periods must not overlap",
            )
        if current.start == following.start:
            raise CatalogError.at(
                following.ref,
                f"starts with fiscal period {current.name!r} "
                f"({current.ref.file}:{current.ref.line}): fiscal periods must not overlap",
            )
        closed.append(current if current.end is not None else replace(current, end=following.start))
    return (*closed, *ordered[-1:])


def check_org_units(units: Mapping[str, Value]) -> frozenset[str]:
    for path, value in units.items():
        parent = path.rpartition("/")[0]
        if parent and parent not in units:
            raise value.fail(f"parent OU {parent!r} of {path!r} is not defined")
    return frozenset(units)


def check_accounts(
    accounts: Mapping[str, Account],
    org_units: frozenset[str],
    groups: Mapping[str, RateGroup],
    periods: Mapping[str, FiscalPeriod],
    plans: Mapping[str, CreditPlan],
) -> dict[str, str]:
    """Validated references; returns the tenant account of each OU that has one."""
    tenant_by_ou: dict[str, str] = {}
    for account in accounts.values():
        if account.ou is not None and account.ou not in org_units:
            raise CatalogError.at(account.ref.at("ou"), f"unknown OU {account.ou!r}")
        for ou in account.ous:
            if ou not in org_units:
                raise CatalogError.at(account.ref.at("ous"), f"unknown OU {ou!r}")
        if account.kind is AccountKind.TENANT and account.ou is not None:
            if account.ou in tenant_by_ou:
                raise CatalogError.at(
                    account.ref.at("ou"),
                    f"OU {account.ou!r} already has tenant account {tenant_by_ou[account.ou]!r}",
                )
            tenant_by_ou[account.ou] = account.id
        if account.credit_plan is not None and account.credit_plan not in plans:
            raise CatalogError.at(
                account.ref.at("credit_plan"), f"unknown credit plan {account.credit_plan!r}"
            )
        _check_assignments(account, groups, periods)
    return tenant_by_ou


def _check_assignments(
    account: Account, groups: Mapping[str, RateGroup], periods: Mapping[str, FiscalPeriod]
) -> None:
    if not account.rate_groups:
        raise CatalogError.at(account.ref.at("rate_groups"), "needs at least one rate group")
    starts: set[str] = set()
    for assignment in account.rate_groups:
        if assignment.rate_group not in groups:
            raise CatalogError.at(assignment.ref, f"unknown rate group {assignment.rate_group!r}")
        if assignment.from_period not in periods:
            raise CatalogError.at(
                assignment.ref, f"unknown fiscal period {assignment.from_period!r}"
            )
        if assignment.from_period in starts:
            raise CatalogError.at(
                assignment.ref, f"two rate groups from fiscal period {assignment.from_period!r}"
            )
        starts.add(assignment.from_period)


def check_products(
    providers: Mapping[str, Provider], item_types: Mapping[str, ServiceItemType]
) -> dict[str, Product]:
    """Every product of every provider, by SKU (unique across providers)."""
    products: dict[str, Product] = {}
    for provider in providers.values():
        for product in provider.products.values():
            if product.sku in products:
                first = products[product.sku]
                raise CatalogError.at(
                    product.ref, f"SKU {product.sku!r} is already a product of {first.provider!r}"
                )
            item = item_types.get(product.service_item_type)
            if item is None or not item.marketplace:
                raise CatalogError.at(
                    product.ref.at("service_item_type"),
                    f"{product.service_item_type!r} is not a marketplace service item type",
                )
            products[product.sku] = product
    return products


def check_rate_tables(
    tables: Mapping[str, RateTable],
    groups: Mapping[str, RateGroup],
    providers: Mapping[str, Provider],
    products: Mapping[str, Product],
) -> dict[tuple[str, str, str], str]:
    """Validated references; returns the table of each (group, item type, operation)."""
    table_for: dict[tuple[str, str, str], str] = {}
    for table in tables.values():
        if not table.rate_groups:
            raise CatalogError.at(table.ref.at("rate_groups"), "needs at least one rate group")
        for group in table.rate_groups:
            if group not in groups:
                raise CatalogError.at(table.ref.at("rate_groups"), f"unknown rate group {group!r}")
            for operation in table.operations:
                key = (group, table.service_item_type, operation)
                if key in table_for:
                    raise CatalogError.at(
                        table.ref.at("operations"),
                        f"rate table {table_for[key]!r} already prices "
                        f"{table.service_item_type} {operation} in rate group {group!r}",
                    )
                table_for[key] = table.name
        _check_marketplace_rows(table, providers, products)
    return table_for


def _check_marketplace_rows(
    table: RateTable, providers: Mapping[str, Provider], products: Mapping[str, Product]
) -> None:
    for row in table.rows.rows:
        for name, value in zip(table.lookup, row.match, strict=True):
            if value is None:
                continue
            if name == "provider" and value not in providers:
                raise CatalogError.at(row.ref, f"unknown provider {value!r}")
            if name == "product":
                product = products.get(str(value))
                if product is None or product.service_item_type != table.service_item_type:
                    raise CatalogError.at(
                        row.ref, f"{value!r} is not a product of {table.service_item_type}"
                    )
        sold_by = dict(zip(table.lookup, row.match, strict=True))
        provider, sku = sold_by.get("provider"), sold_by.get("product")
        if provider is not None and sku is not None and \
                products[str(sku)].provider != provider:
            # No event can match it (the product must be the provider's): its events would
            # be priced by another row, silently.
            raise CatalogError.at(row.ref, f"provider {provider!r} does not sell {sku!r} "
                                  f"(a product of {products[str(sku)].provider!r}): the row "
                                  "could never match")
