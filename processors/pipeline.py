"""One event, start to finish, for one partition's state: dedup, quota, then rating.

The order is the domain's: a re-published event is recognised first; quota
runs before rating, so an operation blocked by its agreement is never billed;
rating comes last. Nothing is written to the state unless the event gets
through every step (a rejection anywhere leaves the state as it was), but for
one thing: quota remembers the instances of some refused operations (a blocked
create, the delete of an instance it never saw), so that the instance's later
operations are judged by them (``processors/quota/state.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from processors.catalog import Catalog
from processors.catalog.model import MissingPolicy
from processors.dedup import DEFAULT_WINDOW, OlderIds, Verdict, payload_fingerprint
from processors.errors import EventRejected, ReasonCode
from processors.events import Origin, RatedUsage, UsageEvent
from processors.lookups import paying_account
from processors.quota import QuotaAlert, QuotaDecision, QuotaState, check_quota
from processors.quota.model import UnknownInstances
from processors.rating import DUPLICATE, Rated, inexact, rate
from processors.state import RatingState

QUOTA_PREFIXES = ("qi|", "qu|")
# The outcomes of a quota decision (usage.rejected); any other rejection is a bad event.
QUOTA_REASONS = frozenset((ReasonCode.QUOTA_EXCEEDED, ReasonCode.NO_AGREEMENT,
                           ReasonCode.NO_QUOTA, ReasonCode.UNKNOWN_INSTANCE,
                           ReasonCode.BLOCKED_INSTANCE, ReasonCode.RELEASED_INSTANCE))
# How far ahead of the processor's clock an event's time may be. An operation is
# published after it happened; a time far ahead is a publisher's clock or bug, and
# rating it would move the partition's dedup horizon (newest time - window) ahead with
# it: every ordinary event on the partition would then be parked as late.
MAX_AHEAD = timedelta(hours=1)


class PartitionState:
    """Rating and quota state of one partition, behind one persistence protocol."""

    def __init__(self, dedup_window: timedelta = DEFAULT_WINDOW,
                 older_ids: OlderIds | None = None,
                 memory_span: timedelta | None = None) -> None:
        self.rating = RatingState(dedup_window, older_ids, memory_span)
        self.quota = QuotaState(self.rating.dedup)

    def is_late(self, event_time: datetime) -> bool:
        return self.rating.is_late(event_time)

    def all_keys(self) -> set[str]:
        return self.rating.all_keys() | self.quota.all_keys()

    def dirty_keys(self) -> set[str]:
        return self.rating.dirty_keys() | self.quota.dirty_keys()

    def clear_dirty(self) -> None:
        self.rating.clear_dirty()
        self.quota.clear_dirty()

    def dump(self, key: str) -> bytes | None:
        return self._owner(key).dump(key)

    def load(self, key: str, value: bytes | None) -> None:
        self._owner(key).load(key, value)

    def _owner(self, key: str) -> RatingState | QuotaState:
        return self.quota if key.startswith(QUOTA_PREFIXES) else self.rating


@dataclass(slots=True, init=False)  # one per event: see processors/events.py
class EventOutcome:
    """What became of one event (a rejection for the DLQ is raised, not returned)."""

    rated: RatedUsage | None
    skipped: str | None  # "not_billable" | "duplicate"
    quota_rejection: EventRejected | None  # -> usage.rejected, never billed
    alerts: tuple[QuotaAlert, ...]

    def __init__(self, rated: RatedUsage | None = None, skipped: str | None = None,
                 quota_rejection: EventRejected | None = None,
                 alerts: tuple[QuotaAlert, ...] = ()) -> None:
        self.rated = rated
        self.skipped = skipped
        self.quota_rejection = quota_rejection
        self.alerts = alerts


def process_event(event: UsageEvent, origin: Origin, catalog: Catalog,
                  state: PartitionState, now: datetime,
                  no_agreement: MissingPolicy = MissingPolicy.ALLOW,
                  routed_account: str | None = None,
                  unknown_instances: UnknownInstances = UnknownInstances.REJECT
                  ) -> EventOutcome:
    """Dedup, quota and rating of one event; raises ``EventRejected``, changing nothing,
    when it cannot be processed (any other exception is a bug and stops the loop).

    ``routed_account``: the account the router keyed the event by, which pays for it
    (``processors.lookups.paying_account``); None resolves it from ``catalog``.
    ``no_agreement`` and ``unknown_instances``: the quota settings (check_quota)."""
    try:
        return _process_event(event, origin, catalog, state, now,
                              (no_agreement, unknown_instances), routed_account)
    except ArithmeticError as error:  # an amount that cannot be exact: processors/money.py
        raise inexact(event, error) from None


def _process_event(event: UsageEvent, origin: Origin, catalog: Catalog,
                   state: PartitionState, now: datetime,
                   policies: tuple[MissingPolicy, UnknownInstances],
                   routed_account: str | None) -> EventOutcome:
    if event.event_time > now + MAX_AHEAD:
        raise EventRejected(ReasonCode.INVALID_EVENT,
                            f"event {event.event_id}: event_time {event.event_time.isoformat()} "
                            f"is more than {MAX_AHEAD} ahead of the processor's clock "
                            f"({now.isoformat()})", {"field": "event_time"})
    # The fingerprint is needed to compare with an id seen before, and to remember the
    # event; an event seen for the first time and blocked by quota needs neither.
    fingerprint = None
    if state.rating.dedup.knows(event.event_id):
        fingerprint = payload_fingerprint(event)
        verdict = state.rating.dedup.check(event.event_id, fingerprint)
        if verdict is Verdict.DUPLICATE:
            return EventOutcome(skipped=DUPLICATE)
        if verdict is Verdict.CONFLICT:
            raise EventRejected(ReasonCode.DUPLICATE_CONFLICT,
                                f"event {event.event_id}: this id was already processed with "
                                "a different payload", {"event_id": event.event_id})
    decision = _quota_decision(event, catalog, state.quota, now, policies, routed_account)
    if decision is not None and not decision.allowed:
        state.quota.apply(decision)  # a blocked instance is remembered
        return EventOutcome(quota_rejection=decision.rejection)
    if fingerprint is None:
        fingerprint = payload_fingerprint(event)
    missing = None if decision is None or decision.missing is None else str(decision.missing)
    outcome = rate(event, origin, catalog, state.rating, now, checked_fingerprint=fingerprint,
                   quota_note=missing, routed_account=routed_account)  # raises: nothing applied
    alerts: tuple[QuotaAlert, ...] = ()
    if decision is not None:
        state.quota.apply(decision)
        alerts = decision.alerts
    if isinstance(outcome, Rated):
        state.quota.expire()  # rating moved the dedup horizon
        return EventOutcome(rated=outcome.record, alerts=alerts)
    if decision is not None and decision.change is not None:
        state.rating.remember(event.event_id, fingerprint, event.event_time)
        state.quota.expire()
    return EventOutcome(skipped=outcome.reason, alerts=alerts)


def _quota_decision(event: UsageEvent, catalog: Catalog, state: QuotaState, now: datetime,
                    policies: tuple[MissingPolicy, UnknownInstances],
                    routed_account: str | None
                    ) -> QuotaDecision | None:
    """The quota decision, or None when the event has nothing to do with quotas."""
    item = catalog.service_item_types.get(event.service_item_type)
    if item is None:
        return None  # rating rejects it with UNKNOWN_SERVICE_ITEM
    operation = item.operations.get(event.operation)
    if operation is None:
        return None  # rating rejects it with UNKNOWN_OPERATION (usage.dlq)
    if operation.quota is None and not (operation.billable
                                        and state.remembers_gone(item.name)):
        return None  # else it may be a follow-up of a blocked create (check_quota)
    account = paying_account(event, catalog, routed_account)
    decision = check_quota(event, account, catalog, state, no_agreement=policies[0],
                           unknown_instances=policies[1],
                           raised_at=now)
    if decision.rejection is not None and decision.rejection.reason not in QUOTA_REASONS:
        raise decision.rejection  # a bad event (BAD_ATTRIBUTE, NEGATIVE_QUANTITY): usage.dlq
    return decision
