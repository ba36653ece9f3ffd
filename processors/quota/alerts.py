"""Quota alerts: one per upward crossing of each policy threshold, re-armed below it.

A threshold is *reached* when ``used >= limit x percent / 100`` (and something
is used: a zero quota does not alert at zero). Reached and not fired: alert and
remember it as fired. Not reached: re-arm it. The fired set is state, so a
threshold crossed twice without falling back alerts once, and a limit lowered
under the current usage alerts on the next event that touches the quota. A limit
raised above the usage re-arms the thresholds no longer reached (``rearmed``, before
the next crossing is judged).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from processors.catalog.model import QuotaPolicy
from processors.events import UsageEvent
from processors.money import multiply
from processors.quota.model import QuotaAlert, UsageKey

HUNDRED = Decimal(100)


def alert_id(key: UsageKey, percent: int, event_id: str) -> str:
    """Same crossing, same id: a replay after a crash produces the same alert_id."""
    identity = "|".join((key.account, key.agreement, key.quota, str(percent), event_id))
    return "qa-" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


def crossings(
    event: UsageEvent,
    key: UsageKey,
    policy: QuotaPolicy,
    fired: Iterable[int],
    used: Decimal,
    limit: Decimal,
    raised_at: datetime | None = None,
) -> tuple[frozenset[int], list[QuotaAlert]]:
    """Fire each threshold reached and not yet fired; re-arm those fallen below."""
    now_fired = set(fired)
    alerts: list[QuotaAlert] = []
    for threshold in policy.thresholds:
        reached = _reached(used, limit, threshold.percent)
        if reached and threshold.percent not in now_fired:
            now_fired.add(threshold.percent)
            alert = _alert(event, key, threshold.percent, str(threshold.action), used, limit)
            alerts.append(alert if raised_at is None else replace(alert, raised_at=raised_at))
        elif not reached:
            now_fired.discard(threshold.percent)
    return frozenset(now_fired), alerts


def rearmed(policy: QuotaPolicy, fired: frozenset[int], used: Decimal,
            limit: Decimal) -> frozenset[int]:
    """``fired`` without the thresholds ``used`` no longer reaches under ``limit``."""
    if not fired:
        return fired
    return frozenset(t.percent for t in policy.thresholds
                     if t.percent in fired and _reached(used, limit, t.percent))


def _reached(used: Decimal, limit: Decimal, percent: int) -> bool:
    """``used >= limit x percent / 100``, and something is used (module docstring)."""
    return used > 0 and multiply(used, HUNDRED) >= multiply(limit, Decimal(percent))


def _alert(
    event: UsageEvent, key: UsageKey, percent: int, action: str, used: Decimal, limit: Decimal
) -> QuotaAlert:
    return QuotaAlert(
        alert_id=alert_id(key, percent, event.event_id),
        account_id=key.account,
        agreement_id=key.agreement,
        quota_id=key.quota,
        threshold_percent=percent,
        action=action,
        used=used,
        limit=limit,
        event_id=event.event_id,
        event_time=event.event_time,
        raised_at=event.event_time,
    )
