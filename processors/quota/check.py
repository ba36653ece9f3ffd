"""The quota check for one event: the seed's five steps, without side effects.

1. find the account's agreement (and the sub-agreement of the requester's OU);
2. find the quotas for the item type; 3. none: NO_AGREEMENT / NO_QUOTA, rejected
or allowed by policy; 4. apply the policy: an increase beyond the block
threshold is rejected with QUOTA_EXCEEDED; 5. if allowed, the new used amounts,
the instance's holdings and the alerts of every threshold crossed upward.

Nothing is written here: ``QuotaState.apply(decision)`` does that, and only
for an allowed event, so a rejected event leaves the state as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from processors.accounts import ResolvedAccount, ou_and_ancestors
from processors.catalog import AccountKind, Catalog
from processors.catalog.model import (
    Aggregate,
    Agreement,
    MissingPolicy,
    QuotaEffect,
    QuotaPolicy,
    ServiceItemType,
    ThresholdAction,
    quota_id,
)
from processors.dedup import micros_since_epoch
from processors.errors import EventRejected, ReasonCode
from processors.events import UsageEvent
from processors.lookups import PerCatalog
from processors.money import ZERO, add, multiply, subtract
from processors.quota.alerts import crossings, rearmed
from processors.quota.model import (
    BLOCKED,
    RELEASED,
    WITHDRAWN,
    Gone,
    Holding,
    Instance,
    InstanceKey,
    LastAlert,
    QuotaAlert,
    QuotaChange,
    QuotaDecision,
    QuotaUsage,
    UnknownInstances,
    UsageKey,
)
from processors.quota.state import QuotaState

ONE = Decimal(1)
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class _Target:
    """One quota an instance of the event's item counts against."""

    agreement: str
    quota: str
    attribute: str | None  # sum quotas


def check_quota(
    event: UsageEvent,
    account: ResolvedAccount,
    catalog: Catalog,
    state: QuotaState,
    *,
    no_agreement: MissingPolicy = MissingPolicy.ALLOW,
    unknown_instances: UnknownInstances = UnknownInstances.REJECT,
    raised_at: datetime | None = None,
) -> QuotaDecision:
    """Decide ``event`` under the account's agreements; reads ``state``, never changes it.

    ``no_agreement`` is what to do for an account without a master agreement
    (allowed events are still tracked, so a later delete is understood).
    ``unknown_instances`` is what to do with a resize or delete of an instance neither
    held nor remembered (``UnknownInstances``). ``raised_at`` stamps alerts; it defaults
    to the event time.
    """
    item = catalog.service_item_types.get(event.service_item_type)
    operation = None if item is None else item.operations.get(event.operation)
    effect = None if operation is None else operation.quota
    # Only item types with a quota-managed attribute have operations with an effect
    # (processors/catalog/parse.py), so the others never reach the decision.
    if item is None or effect is None:
        if (item is not None and operation is not None and operation.billable
                and state.remembers_gone(item.name)):
            # Snapshot...: nothing to count, but an instance whose create was blocked is
            # not billed for anything (a non-billable Start is skipped as before).
            key = InstanceKey(account.account_id, item.name, event.service_item_id)
            gone = state.gone(key)
            if gone is not None and gone.kind != RELEASED:  # blocked, or blocked then deleted
                return _follow_up_refused(event, account, item, None, key, gone)
        return QuotaDecision(event.event_id, account.account_id, allowed=True)
    try:
        return _decide(event, account, catalog, state, item, effect,
                       (no_agreement, unknown_instances), raised_at)
    except EventRejected as rejected:
        return QuotaDecision(event.event_id, account.account_id, False, rejection=rejected,
                             change=_blocked(event, account, item, effect, state, rejected))


BLOCKING_REASONS = frozenset((ReasonCode.QUOTA_EXCEEDED, ReasonCode.NO_AGREEMENT,
                              ReasonCode.NO_QUOTA))


def _blocked(event: UsageEvent, account: ResolvedAccount, item: ServiceItemType,
             effect: QuotaEffect, state: QuotaState, rejected: EventRejected
             ) -> QuotaChange | None:
    """A create refused by quota is remembered (``Gone``), so its follow-ups are refused
    too rather than taken for an instance quota has never seen."""
    if effect is not QuotaEffect.ACQUIRE or rejected.reason not in BLOCKING_REASONS:
        return None
    key = InstanceKey(account.account_id, item.name, event.service_item_id)
    at_us = micros_since_epoch(event.event_time)
    known = state.gone(key)
    if state.instance(key) is not None or (known is not None and known.at_us >= at_us):
        return None
    return QuotaChange(None, (), (key, Gone(BLOCKED, at_us)))


def agreements_for(
    event: UsageEvent, account: ResolvedAccount, catalog: Catalog
) -> tuple[Agreement, ...]:
    """The master agreement, then the sub-agreement of the nearest OU that has one."""
    return _AGREEMENTS(catalog, (account.account_id, account.kind, event.home_ou),
                       (event, account))


def _agreements_for(
    catalog: Catalog, event_account: tuple[UsageEvent, ResolvedAccount]
) -> tuple[Agreement, ...]:
    event, account = event_account
    master_id = catalog.master_agreement_for.get(account.account_id)
    if master_id is None:
        return ()
    master = catalog.agreements[master_id]
    if account.kind is not AccountKind.TENANT:
        return (master,)
    for ou in ou_and_ancestors(event.home_ou):
        sub = catalog.sub_agreement_for.get((master_id, ou))
        if sub is not None:
            return (master, catalog.agreements[sub])
    return (master,)


_AGREEMENTS: PerCatalog[tuple[str, AccountKind, str], tuple[UsageEvent, ResolvedAccount],
                       tuple[Agreement, ...]] = PerCatalog(_agreements_for)


def _decide(
    event: UsageEvent,
    account: ResolvedAccount,
    catalog: Catalog,
    state: QuotaState,
    item: ServiceItemType,
    effect: QuotaEffect,
    policies: tuple[MissingPolicy, UnknownInstances],
    raised_at: datetime | None,
) -> QuotaDecision:
    key = InstanceKey(account.account_id, item.name, event.service_item_id)
    held = state.instance(key)
    gone = None if held is not None else state.gone(key)
    if gone is not None:
        refused = _of_gone(event, account, item, effect, key, gone)
        if refused is not None:
            return refused
    elif held is None and effect is not QuotaEffect.ACQUIRE and \
            policies[1] is UnknownInstances.REJECT:
        rejection = _reject(
            ReasonCode.UNKNOWN_INSTANCE,
            event,
            f"{event.operation} of {item.name} {event.service_item_id!r}, "
            f"which account {account.account_id!r} does not hold",
            service_item_id=event.service_item_id,
        )
        if effect is not QuotaEffect.RELEASE:
            raise rejection
        # Refused, but the instance is deleted all the same: remembered, so that its
        # create delivered after it (same time, or older) holds nothing, as with adopt.
        return QuotaDecision(event.event_id, account.account_id, False, rejection=rejection,
                             change=QuotaChange(None, (), (key, Gone(
                                 RELEASED, micros_since_epoch(event.event_time)))))
    # A create not newer than its instance's delete (see _of_gone): it must fit like any
    # create, and then holds nothing, as the instance is gone (below).
    before_delete = (gone is not None and gone.kind == RELEASED
                     and micros_since_epoch(event.event_time) <= gone.at_us)
    targets, missing = _targets_of(event, account, catalog, item, effect, held, policies[0])
    now_gone: tuple[InstanceKey, Gone | None] | None = None
    if effect is QuotaEffect.RELEASE:
        # Remembered as deleted, so that a resize or create of it replayed later does not
        # take quota again (see the module docstring of processors/quota/state.py).
        now_gone = (key, Gone(RELEASED, micros_since_epoch(event.event_time)))
        if held is None:
            # Not seen within the window (adopt): it predates quota tracking or its create
            # was lost upstream. The delete happened and may be billable; it gives nothing
            # back.
            return QuotaDecision(event.event_id, account.account_id, allowed=True,
                                 change=QuotaChange(None, (), now_gone),
                                 missing=missing or ReasonCode.UNKNOWN_INSTANCE)
    elif held is None and effect is QuotaEffect.ACQUIRE and gone is not None \
            and not before_delete:
        now_gone = (key, None)  # its create blocked before, or an id used again
    elif held is None and effect is QuotaEffect.RESIZE:
        missing = missing or ReasonCode.UNKNOWN_INSTANCE  # adopted (_instance_after)
    after = _instance_after(event, effect, held, targets)
    usage = _usage_after(event, account, catalog, state, held, after, raised_at)  # may block
    if before_delete:  # the note of a missing agreement or quota comes first
        return QuotaDecision(event.event_id, account.account_id, allowed=True,
                             change=QuotaChange(None, ()),
                             missing=missing or ReasonCode.RELEASED_INSTANCE)
    return QuotaDecision(
        event.event_id,
        account.account_id,
        allowed=True,
        alerts=tuple(alert for _, _, alerts in usage for alert in alerts),
        change=QuotaChange((key, after), tuple((k, u) for k, u, _ in usage), now_gone),
        missing=missing,
    )


def _targets_of(event: UsageEvent, account: ResolvedAccount, catalog: Catalog,
                item: ServiceItemType, effect: QuotaEffect, held: Instance | None,
                no_agreement: MissingPolicy) -> tuple[Sequence[_Target], ReasonCode | None]:
    """``_targets``, but giving back needs no agreement or quota: a delete, or a resize
    down of a held instance, is never refused for one missing (the catalog or the setting
    changed since the instance was created); the reason goes on the record."""
    chain = agreements_for(event, account, catalog)
    try:
        return _targets(event, account, catalog, item, chain, no_agreement,
                        every_sum=held is None and effect is QuotaEffect.RESIZE)
    except EventRejected as rejected:
        if effect is not QuotaEffect.RELEASE and (
                held is None or not _gives_back_only(event, effect, held)):
            raise
        return (), rejected.reason


def _instance_after(event: UsageEvent, effect: QuotaEffect, held: Instance | None,
                    targets: Sequence[_Target]) -> Instance | None:
    """What the instance holds after the event: nothing once released; for a new one, a
    hold per target; for a resize of an instance not held, adopted at the event's values
    (blocked like a create when they do not fit); else the held ones, resized (a Create
    delivered again is a resize), and a hold adopted at the event's values for each quota
    of an agreement it holds in that it did not hold: one added to the catalog after the
    instance's create (a vCPU sum beside a count), which would otherwise never count it.
    The agreements stay those of its create (a resize by a requester of another OU does
    not move it into that OU's sub-agreement)."""
    if effect is QuotaEffect.RELEASE:
        return None
    if held is None and effect is QuotaEffect.ACQUIRE:
        return Instance(tuple(_hold(event, target) for target in targets))
    if held is None:
        return Instance(tuple(_adopted(event, target) for target in targets))
    resized = tuple(_resized(event, holding) for holding in held.holdings)
    holds = {(holding.agreement, holding.quota) for holding in held.holdings}
    agreements = {holding.agreement for holding in held.holdings}
    added = tuple(_adopted(event, target) for target in targets
                  if target.agreement in agreements
                  and (target.agreement, target.quota) not in holds)
    return Instance(resized + added)


def _of_gone(event: UsageEvent, account: ResolvedAccount, item: ServiceItemType,
             effect: QuotaEffect, key: InstanceKey, gone: Gone) -> QuotaDecision | None:
    """The refusal of an operation on an instance remembered as gone; None for a create.
    A create not newer than the instance's delete (replayed after it; the same time is
    "not newer": a delete never precedes its own create) is refused when quota blocked
    it before the delete (still the blocked create, never billed); else it happened: it
    is billed if it fits, and holds nothing (``_decide``)."""
    if effect is not QuotaEffect.ACQUIRE:
        return _follow_up_refused(event, account, item, effect, key, gone)
    if gone.kind == WITHDRAWN and micros_since_epoch(event.event_time) <= gone.at_us:
        return _follow_up_refused(event, account, item, effect, key, gone)
    return None


def _follow_up_refused(event: UsageEvent, account: ResolvedAccount, item: ServiceItemType,
                       effect: QuotaEffect | None, key: InstanceKey, gone: Gone
                       ) -> QuotaDecision:
    """Any operation but a create on an instance remembered as blocked or deleted is
    refused, and a create of a withdrawn one (blocked, then deleted) not newer than the
    delete: a blocked create and its follow-ups are never billed, nor a resize or a
    second delete of a deleted instance. A blocked instance is remembered from the
    event's time if later; a deleted or withdrawn one keeps its delete's time (only a
    later delete moves it); a delete turns a blocked instance into a withdrawn one."""
    at_us = micros_since_epoch(event.event_time)
    kind = WITHDRAWN if gone.kind == BLOCKED and effect is QuotaEffect.RELEASE else gone.kind
    # A deleted (or withdrawn) instance keeps its delete's time: "a create older than the
    # delete" is measured against it, and a refused follow-up stamped later must not move
    # it; a later delete does (the id is deleted then: a create before it holds nothing).
    if gone.kind == BLOCKED or effect is QuotaEffect.RELEASE:
        later = Gone(kind, max(at_us, gone.at_us))
    else:
        later = gone
    if gone.kind == BLOCKED or (gone.kind == WITHDRAWN
                                and effect in (None, QuotaEffect.ACQUIRE)):
        reason, what = ReasonCode.BLOCKED_INSTANCE, "whose create was blocked by quota"
    else:
        reason, what = ReasonCode.RELEASED_INSTANCE, "which was deleted"
    rejection = _reject(reason, event,
                        f"{event.operation} of {item.name} {event.service_item_id!r}, {what}",
                        service_item_id=event.service_item_id)
    change = None if later == gone else QuotaChange(None, (), (key, later))
    return QuotaDecision(event.event_id, account.account_id, False, rejection=rejection,
                         change=change)


def _targets(
    event: UsageEvent,
    account: ResolvedAccount,
    catalog: Catalog,
    item: ServiceItemType,
    chain: tuple[Agreement, ...],
    no_agreement: MissingPolicy,
    *,
    every_sum: bool = False,
) -> tuple[Sequence[_Target], ReasonCode | None]:
    """Steps 1-3: the quotas a new instance counts against, or why there are none.

    Counted without a quota (NO_QUOTA allowed), an instance counts the quota-managed
    attributes its event carries; ``every_sum``: all of them, for an instance adopted
    from a resize, which may carry only some (the others count from a later resize)."""
    if not chain:
        if no_agreement is MissingPolicy.REJECT:
            raise _reject(
                ReasonCode.NO_AGREEMENT,
                event,
                f"account {account.account_id!r} has no agreement",
                account_id=account.account_id,
            )
        return [], ReasonCode.NO_AGREEMENT
    targets = _TARGETS(catalog, (tuple(agreement.id for agreement in chain), item.name),
                       (chain, item))
    if targets:
        return targets, None
    master = chain[0]
    if master.on_missing_quota is MissingPolicy.REJECT:
        raise _reject(
            ReasonCode.NO_QUOTA,
            event,
            f"agreement {master.id!r} has no quota for {item.name}",
            agreement=master.id,
            service_item_type=item.name,
        )
    # Allowed and counted without a limit, so the usage is known when a quota is added.
    counted = [_Target(master.id, quota_id(item.name, Aggregate.COUNT, None), None)]
    counted += [
        _Target(master.id, quota_id(item.name, Aggregate.SUM, name), name)
        for name, attribute in sorted(item.attributes.items())
        if attribute.quota_managed
        and (every_sum or isinstance(event.attributes.get(name), Decimal))
    ]
    return counted, ReasonCode.NO_QUOTA


def _quota_targets(catalog: Catalog, chain_item: tuple[tuple[Agreement, ...], ServiceItemType]
                   ) -> tuple[_Target, ...]:
    """The quotas of the chain an instance of the item counts against, in a fixed order."""
    chain, item = chain_item
    return tuple(
        _Target(agreement.id, quota.id, quota.attribute)
        for agreement in chain
        for quota in sorted(agreement.quotas.values(), key=lambda q: q.id)
        if quota.service_item_type == item.name
    )


_TARGETS: PerCatalog[tuple[tuple[str, ...], str],
                     tuple[tuple[Agreement, ...], ServiceItemType], tuple[_Target, ...]] = \
    PerCatalog(_quota_targets)


def _gives_back_only(event: UsageEvent, effect: QuotaEffect, held: Instance) -> bool:
    """A release, or a resize (or a create of the held instance, which is one) that takes
    no more of any quota than the instance holds."""
    if effect is QuotaEffect.RELEASE:
        return True
    return all(_resized(event, holding).amount <= holding.amount for holding in held.holdings)


def _hold(event: UsageEvent, target: _Target) -> Holding:
    if target.attribute is None:
        return Holding(target.agreement, target.quota, ONE)
    return Holding(target.agreement, target.quota, _amount(event, target.attribute))


def _adopted(event: UsageEvent, target: _Target) -> Holding:
    """What an adopted instance holds: one of each count, and of each sum the event's value;
    an attribute the resize does not carry counts from the first event that does."""
    if target.attribute is not None and target.attribute not in event.attributes:
        return Holding(target.agreement, target.quota, ZERO)
    return _hold(event, target)


def _resized(event: UsageEvent, holding: Holding) -> Holding:
    name = holding.attribute
    if name is None or name not in event.attributes:
        return holding  # a count, or an attribute the event does not change
    return Holding(holding.agreement, holding.quota, _amount(event, name))


def _amount(event: UsageEvent, attribute: str) -> Decimal:
    value = event.number(attribute)
    if value < 0:
        raise _reject(
            ReasonCode.NEGATIVE_QUANTITY,
            event,
            f"quota-managed attribute {attribute!r} is negative: {value}",
            attribute=attribute,
        )
    return value


def _deltas(before: Instance | None, after: Instance | None) -> dict[tuple[str, str], Decimal]:
    deltas: dict[tuple[str, str], Decimal] = {}
    for holding in before.holdings if before is not None else ():
        key = (holding.agreement, holding.quota)
        deltas[key] = subtract(deltas.get(key, ZERO), holding.amount)
    for holding in after.holdings if after is not None else ():
        key = (holding.agreement, holding.quota)
        deltas[key] = add(deltas.get(key, ZERO), holding.amount)
    return {key: delta for key, delta in deltas.items() if delta != 0}


def _usage_after(
    event: UsageEvent,
    account: ResolvedAccount,
    catalog: Catalog,
    state: QuotaState,
    before: Instance | None,
    after: Instance | None,
    raised_at: datetime | None,
) -> list[tuple[UsageKey, QuotaUsage, list[QuotaAlert]]]:
    """Step 4 then 5: reject any increase past a block threshold, else the new usage."""
    result: list[tuple[UsageKey, QuotaUsage, list[QuotaAlert]]] = []
    for (agreement_id, quota), delta in sorted(_deltas(before, after).items()):
        key = UsageKey(account.account_id, agreement_id, quota)
        current = state.usage(key)
        used = add(current.used, delta)
        agreement = catalog.agreements.get(agreement_id)
        limit = agreement.quotas[quota].limit if agreement and quota in agreement.quotas else None
        if agreement is None or limit is None:  # counted without a limit
            result.append((key, QuotaUsage(used, frozenset()), []))
            continue
        if delta > 0:
            _enforce(event, agreement.id, quota, agreement.policy, current.used, delta, limit)
        # A threshold fired under an older (lower) limit and no longer reached under this
        # one is re-armed first, so crossing it again alerts.
        armed = rearmed(agreement.policy, current.fired, current.used, limit)
        fired, alerts = crossings(
            event, key, agreement.policy, armed, used, limit, raised_at
        )
        result.append((key, QuotaUsage(used, fired, _last_alert(alerts, current)), alerts))
    return result


def _enforce(
    event: UsageEvent,
    agreement: str,
    quota: str,
    policy: QuotaPolicy,
    used: Decimal,
    requested: Decimal,
    limit: Decimal,
) -> None:
    for threshold in policy.thresholds:
        if threshold.action is not ThresholdAction.BLOCK:
            continue
        if multiply(add(used, requested), HUNDRED) > multiply(limit, Decimal(threshold.percent)):
            raise _reject(
                ReasonCode.QUOTA_EXCEEDED,
                event,
                f"{quota} of agreement {agreement!r}: {used} used + {requested} requested "
                f"exceeds {threshold.percent}% of the quota {limit}",
                agreement=agreement,
                quota=quota,
                used=str(used),
                requested=str(requested),
                limit=str(limit),
                threshold_percent=str(threshold.percent),
            )


def _last_alert(alerts: list[QuotaAlert], current: QuotaUsage) -> LastAlert | None:
    """The highest threshold this event crossed, else the quota's previous last alert."""
    if not alerts:
        return current.last_alert
    top = max(alerts, key=lambda alert: alert.threshold_percent)
    return LastAlert(top.threshold_percent, top.action, top.raised_at, top.event_id)


def _reject(reason: ReasonCode, event: UsageEvent, message: str, **details: str) -> EventRejected:
    return EventRejected(reason, f"event {event.event_id}: {message}", details)
