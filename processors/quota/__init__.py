"""Agreement quotas: the pure decision run before rating (no Kafka, no Redis).

``check_quota`` decides whether an event may proceed under its account's
agreement (and sub-agreement), which alerts it raises and what it changes;
``QuotaState.apply`` records that change once the event is accepted.
"""

from processors.catalog.model import QuotaEffect
from processors.quota.check import agreements_for, check_quota
from processors.quota.model import (
    Holding,
    Instance,
    InstanceKey,
    QuotaAlert,
    QuotaChange,
    QuotaDecision,
    QuotaUsage,
    UsageKey,
)
from processors.quota.state import QuotaState, QuotaStateError

__all__ = [
    "Holding",
    "Instance",
    "InstanceKey",
    "QuotaAlert",
    "QuotaChange",
    "QuotaDecision",
    "QuotaEffect",
    "QuotaState",
    "QuotaStateError",
    "QuotaUsage",
    "UsageKey",
    "agreements_for",
    "check_quota",
]
