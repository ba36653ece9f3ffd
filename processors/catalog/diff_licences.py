"""What changed in the licence sections between two catalog versions (``rating catalog diff``).

The lines a billing operator must see before a run: a campus billed to another
target, a product moved to another invoice, a run's dates or the proration rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from processors.catalog.licence_model import BillingRunSpec, Campus, LicenceCatalog, LicenceProduct

T = TypeVar("T")


def licence_changes(old: LicenceCatalog | None, new: LicenceCatalog | None) -> list[str]:
    if old is None and new is None:
        return []
    if old is None or new is None:
        return [f"licence billing {'added' if old is None else 'removed'}"]
    lines = [f"licence billing: {name} {before} -> {after}" for name, before, after in (
        ("service item type", old.service_item_type, new.service_item_type),
        ("fiscal year start month", old.fiscal_year_start_month, new.fiscal_year_start_month),
        ("proration", old.proration, new.proration)) if before != after]
    lines += _paired("billing run", old.runs, new.runs, _run)
    lines += _paired("licence product", old.products, new.products, _product)
    lines += _paired("campus", old.campuses, new.campuses, _campus)
    return lines


def _paired(kind: str, old: Mapping[str, T], new: Mapping[str, T],
            describe: Callable[[T], dict[str, object]]) -> list[str]:
    lines: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            shown = ", ".join(f"{name} {value}" for name, value in describe(new[key]).items())
            lines.append(f"{kind} added: {key} ({shown})")
        elif key not in new:
            lines.append(f"{kind} removed: {key}")
        else:
            before, after = describe(old[key]), describe(new[key])
            lines += [f"{kind} {key}: {name} {before[name]} -> {after[name]}"
                      for name in before if before[name] != after[name]]
    return lines


def _run(run: BillingRunSpec) -> dict[str, object]:
    return {"kind": run.kind, "month": run.month, "through month": run.through_month}


def _product(product: LicenceProduct) -> dict[str, object]:
    return {"name": product.name, "group": product.group}


def _campus(campus: Campus) -> dict[str, object]:
    return {"name": campus.name, "account": campus.account,
            "billing target": campus.billing_target}
