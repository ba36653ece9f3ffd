"""What changed between two catalog versions, in lines a billing operator reads.

Pure: two ``Catalog`` objects in, a list of change lines out (empty when the
versions price, group and limit everything the same way). Entities are paired
by their identity (table name, rate code, account id ...); for each pair the
fields that matter for billing are compared and every difference is one line,
``old -> new``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from processors.catalog.diff_item_types import item_type_changes, item_type_summary
from processors.catalog.diff_licences import licence_changes
from processors.catalog.diff_lines import changed, paired, shown
from processors.catalog.model import (
    Account,
    Agreement,
    AgreementTemplate,
    Catalog,
    CreditPlan,
    FiscalPeriod,
    Provider,
    Quota,
    QuotaPolicy,
    RateRow,
    RateTable,
    Tier,
)


def diff_catalogs(old: Catalog, new: Catalog) -> list[str]:
    """Every difference from ``old`` to ``new``, one line each, in a stable order."""
    lines: list[str] = []
    if old.version != new.version:
        lines.append(f"version: {old.version} -> {new.version}")
    lines += paired("fiscal period", _by_name(old.fiscal_periods), _by_name(new.fiscal_periods),
                    _period_summary, _period_changes)
    lines += _names("rate group", old.rate_groups, new.rate_groups)
    lines += paired("service item type", old.service_item_types, new.service_item_types,
                    item_type_summary, item_type_changes)
    lines += _names("org unit", old.org_units, new.org_units)
    lines += paired("rate table", old.rate_tables, new.rate_tables, _table_summary,
                    _table_changes)
    lines += paired("account", old.accounts, new.accounts, _account_summary,
                    _account_changes)
    lines += paired("credit plan", old.credit_plans, new.credit_plans, _plan_summary,
                    _plan_changes)
    lines += paired("provider", old.providers, new.providers, _provider_summary,
                    _provider_changes)
    lines += paired("agreement template", old.agreement_templates, new.agreement_templates,
                    _template_summary, _template_changes)
    lines += paired("agreement", old.agreements, new.agreements, _agreement_summary,
                    _agreement_changes)
    lines += licence_changes(old.licences, new.licences)
    return lines


def _names(kind: str, old: Iterable[str], new: Iterable[str]) -> list[str]:
    before, after = set(old), set(new)
    return ([f"{kind} added: {name}" for name in sorted(after - before)]
            + [f"{kind} removed: {name}" for name in sorted(before - after)])


# Fiscal periods


def _by_name(periods: Iterable[FiscalPeriod]) -> dict[str, FiscalPeriod]:
    return {period.name: period for period in periods}


def _instant(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, so that two spellings of one instant read the same."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _period_summary(period: FiscalPeriod) -> str:
    end = _instant(period.end)
    return f"from {_instant(period.start)}, {f'to {end}' if end else 'open-ended'}"


def _period_changes(old: FiscalPeriod, new: FiscalPeriod) -> list[str]:
    """A moved boundary moves events to another period, and so to another rate group."""
    return (changed("start", _instant(old.start), _instant(new.start))
            + changed("end", _instant(old.end), _instant(new.end)))


# Rate tables and rows


def _table_summary(table: RateTable) -> str:
    return (f"{table.service_item_type} {'/'.join(table.operations)}, {table.pricing}, "
            f"{table.currency.code}, groups {', '.join(table.rate_groups)}, "
            f"{len(table.rows.rows)} rows")


def _table_changes(old: RateTable, new: RateTable) -> list[str]:
    lines = (changed("rate groups", old.rate_groups, new.rate_groups)
             + changed("service item type", old.service_item_type, new.service_item_type)
             + changed("operations", old.operations, new.operations)
             + changed("pricing", str(old.pricing), str(new.pricing))
             + changed("currency", old.currency.code, new.currency.code)
             + changed("quantity attribute", old.quantity_attribute, new.quantity_attribute)
             + changed("lookup", old.lookup, new.lookup)
             + changed("memo", old.memo, new.memo))
    old_rows, new_rows = _rows_by_key(old), _rows_by_key(new)
    currency = new.currency.code
    for key in sorted(set(old_rows) | set(new_rows)):
        if key not in old_rows:
            lines.append(f"row added: {key} {_price(new_rows[key], currency)}")
        elif key not in new_rows:
            lines.append(f"row removed: {key} {_price(old_rows[key], old.currency.code)}")
        else:
            lines += [f"row {key}: {change}" for change in
                      _row_changes(old_rows[key], new_rows[key], old, new)]
    return lines


def _rows_by_key(table: RateTable) -> dict[str, RateRow]:
    """Rows by rate code; a code used by several rows is told apart by its match."""
    codes = [row.rate_code for row in table.rows.rows]
    return {(row.rate_code if codes.count(row.rate_code) == 1
             else f"{row.rate_code} {_match(row, table)}"): row for row in table.rows.rows}


def _match(row: RateRow, table: RateTable) -> str:
    fixed = [f"{name}={value}" for name, value in zip(table.lookup, row.match, strict=True)
             if value is not None]
    return f"[{', '.join(fixed)}]" if fixed else "[any]"


def _price(row: RateRow, currency: str) -> str:
    if row.tiers:
        text = f"tiers {_tiers(row.tiers)} {currency}/{row.unit_of_measure}"
    else:
        text = f"{shown(row.rate)} {currency}/{row.unit_of_measure}"
    if row.minimum_charge is not None:
        text += f", minimum charge {row.minimum_charge} {currency}"
    return text


def _tiers(tiers: tuple[Tier, ...]) -> str:
    return ", ".join(f"{tier.start}{'+' if tier.end is None else f'-{tier.end}'} @ {tier.rate}"
                     for tier in tiers)


def _row_changes(old: RateRow, new: RateRow, old_table: RateTable,
                 new_table: RateTable) -> list[str]:
    lines = changed("match", _match(old, old_table), _match(new, new_table))
    lines += changed("unit", old.unit_of_measure, new.unit_of_measure)
    lines += changed("rate", old.rate, new.rate)
    if _tier_values(old.tiers) != _tier_values(new.tiers):
        lines.append(f"tiers {_tiers(old.tiers) or 'none'} -> {_tiers(new.tiers) or 'none'}")
    lines += changed("minimum charge", old.minimum_charge, new.minimum_charge)
    return lines


def _tier_values(tiers: tuple[Tier, ...]) -> list[tuple[Decimal, Decimal | None, Decimal]]:
    return [(tier.start, tier.end, tier.rate) for tier in tiers]


# Accounts, credit plans, providers


def _groups(account: Account) -> str:
    return ", ".join(f"{a.rate_group} from {a.from_period}" for a in account.rate_groups)


def _account_summary(account: Account) -> str:
    where = account.ou if account.ou is not None else ", ".join(account.ous)
    plan = f", credit plan {account.credit_plan}" if account.credit_plan else ""
    return f"{account.kind} {where}, rate groups {_groups(account) or 'none'}{plan}"


def _account_changes(old: Account, new: Account) -> list[str]:
    return (changed("kind", str(old.kind), str(new.kind))
            + changed("ou", old.ou, new.ou)
            + changed("ous", old.ous, new.ous)
            + changed("rate groups", _groups(old) or None, _groups(new) or None)
            + changed("credit plan", old.credit_plan, new.credit_plan))


def _plan_summary(plan: CreditPlan) -> str:
    return f"{plan.amount} {plan.currency.code} a month"


def _plan_changes(old: CreditPlan, new: CreditPlan) -> list[str]:
    return changed("amount", f"{old.amount} {old.currency.code}",
                   f"{new.amount} {new.currency.code}")


def _provider_summary(provider: Provider) -> str:
    return (f"{provider.name}, markup {provider.markup}, "
            f"products {', '.join(sorted(provider.products)) or 'none'}")


def _provider_changes(old: Provider, new: Provider) -> list[str]:
    lines = changed("name", old.name, new.name) + changed("markup", old.markup, new.markup)
    for sku in sorted(set(old.products) | set(new.products)):
        if sku not in old.products:
            product = new.products[sku]
            markup = "" if product.markup is None else f", markup {product.markup}"
            lines.append(f"product added: {sku} ({product.name}{markup})")
        elif sku not in new.products:
            lines.append(f"product removed: {sku}")
        else:
            before, after = old.products[sku], new.products[sku]
            lines += [f"product {sku}: {change}" for change in
                      changed("name", before.name, after.name)
                      + changed("service item type", before.service_item_type,
                                after.service_item_type)
                      + changed("markup", before.markup, after.markup)]
    return lines


# Agreements and their templates


def _policy(policy: QuotaPolicy | None) -> str | None:
    if policy is None:
        return None
    return ", ".join(f"{t.percent}% {t.action}" for t in policy.thresholds)


def _quota_changes(old: Mapping[str, Quota], new: Mapping[str, Quota]) -> list[str]:
    lines: list[str] = []
    for quota_id in sorted(set(old) | set(new)):
        if quota_id not in old:
            lines.append(f"quota added: {quota_id} limit {new[quota_id].limit}")
        elif quota_id not in new:
            lines.append(f"quota removed: {quota_id} (limit was {old[quota_id].limit})")
        else:
            lines += [f"quota {quota_id}: {change}" for change in
                      changed("limit", old[quota_id].limit, new[quota_id].limit)]
    return lines


def _quotas(quotas: Mapping[str, Quota]) -> str:
    return ", ".join(f"{quota_id} {quotas[quota_id].limit}" for quota_id in sorted(quotas))


def _template_summary(template: AgreementTemplate) -> str:
    return f"quotas {_quotas(template.quotas) or 'none'}"


def _template_changes(old: AgreementTemplate, new: AgreementTemplate) -> list[str]:
    return (_quota_changes(old.quotas, new.quotas)
            + changed("policy", _policy(old.policy), _policy(new.policy)))


def _agreement_summary(agreement: Agreement) -> str:
    parent = f", under {agreement.parent}" if agreement.parent else ""
    return (f"account {agreement.account}{parent}, quotas {_quotas(agreement.quotas) or 'none'}"
            f", policy {_policy(agreement.policy)}")


def _agreement_changes(old: Agreement, new: Agreement) -> list[str]:
    return (changed("account", old.account, new.account)
            + changed("parent", old.parent, new.parent)
            + changed("ous", old.ous, new.ous)
            + changed("template", old.template, new.template)
            + _quota_changes(old.quotas, new.quotas)
            + changed("policy", _policy(old.policy), _policy(new.policy))
            + changed("on missing quota", str(old.on_missing_quota),
                      str(new.on_missing_quota)))
