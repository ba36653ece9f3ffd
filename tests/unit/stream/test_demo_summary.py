"""`make run`'s closing summary (stream/demo.py print_summary): counts, reasons, totals."""

from __future__ import annotations

import io

from stream.demo import print_summary


def rated(provider: str | None, net: str, gross: str) -> dict[str, object]:
    return {"provider": provider, "currency": "USD", "net_amount": net, "gross_amount": gross}


def test_the_summary_counts_each_outcome_and_names_the_reasons() -> None:
    out = io.StringIO()
    outcomes: dict[str, list[dict[str, object]]] = {
        "rated": [rated(None, "10.00", "10.00"), rated("acme", "8.00", "9.20")],
        "dlq": [{"reason_code": "NO_ACCOUNT"}],
        "rejected": [{"reason_code": "QUOTA_EXCEEDED"}, {"reason_code": "BLOCKED_INSTANCE"},
                     {"reason_code": "BLOCKED_INSTANCE"}],
        "late": [],
        "quota_alerts": [],
    }
    print_summary(out, 10, outcomes)
    lines = out.getvalue().splitlines()
    assert ("Events in: 10   rated: 2   blocked by quota: 3   dead-lettered: 1   late: 0   "
            "skipped (not billable or duplicate): 4") in lines
    assert "Blocked by reason: BLOCKED_INSTANCE 2, QUOTA_EXCEEDED 1" in lines
    assert "Dead-lettered by reason: NO_ACCOUNT 1" in lines
    assert any(line.split() == ["acme", "USD", "8.00", "9.20"] for line in lines)
    assert any(line.split() == ["(platform)", "USD", "10.00", "10.00"] for line in lines)
