"""A hand-checked month of billing history (May 2024), and its totals worked out by hand.

USD: net 20 + 30 + 12.50 + 100 + 200 + 10 = 372.50; markup 15 + 30 + 1.50 = 46.50;
gross 372.50 + 46.50 = 419.00; credit 5 + 15 = 20.00; charged 419.00 - 20.00 = 399.00.
JPY: net 1000, markup 100, gross 1100, charged 1100.
"""

from __future__ import annotations

from typing import Any

from sinks.history.model import HistoryRow
from sinks.history.rows import row_from_rated
from tests.unit.sinks.history_records import rated_value

PERIOD = "2024-05"


def _row(n: int, **fields: Any) -> dict[str, Any]:
    return rated_value(n, **fields)


def _partner(n: int, provider: str, product: str, account: str, quantity: str, net: str,
             markup: str, gross: str, credit: str, charged: str, unit: str,
             currency: str = "USD") -> dict[str, Any]:
    return _row(n, provider=provider, product=product, account_id=account,
                service_item_type="MarketplaceApp", quantity=quantity, net_amount=net,
                markup_rate="0.15", markup_amount=markup, gross_amount=gross,
                credit_applied=credit, charged_amount=charged, unit_of_measure=unit,
                currency=currency)


def may_rows() -> list[HistoryRow]:
    """In history order (event_time, event_id), as read from usage.rated partition 0."""
    return [row_from_rated(value, "usage.rated", 0, n) for n, value in enumerate(may_values())]


def may_values() -> list[dict[str, Any]]:
    """The month as decoded rated records."""
    return [
        _row(0, account_id="acct-a", quantity="2", net_amount="20.00", gross_amount="20.00",
             charged_amount="20.00"),
        _row(1, account_id="acct-a", quantity="3", net_amount="30.00", gross_amount="30.00",
             credit_applied="5.00", charged_amount="25.00"),
        _row(2, account_id="acct-b", service_item_type="VirtualMachine", quantity="10",
             unit_of_measure="hours", rate="1.25", net_amount="12.50", gross_amount="12.50",
             charged_amount="12.50"),
        _partner(3, "acme", "acme-db", "acct-a", "1", "100.00", "15.00", "115.00", "15.00",
                 "100.00", "instances"),
        _partner(4, "acme", "acme-db", "acct-b", "2", "200.00", "30.00", "230.00", "0.00",
                 "230.00", "instances"),
        _partner(5, "acme", "acme-cache", "acct-b", "5", "10.00", "1.50", "11.50", "0.00",
                 "11.50", "GB-month"),
        _partner(6, "nimbus", "nimbus-ai", "acct-c", "1000", "1000", "100", "1100", "0",
                 "1100", "tokens", currency="JPY"),
    ]
