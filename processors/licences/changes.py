"""Applying one licence event to a campus's licences, or rejecting it with the reason.

Rules (docs/licences.md):

- PROVISIONED starts a licence record: ``provisioned_on`` is the event's date.
  A record already active with the same holder, product and date is a
  re-published duplicate (nothing changes); with anything else it is a
  conflict. An ended record can be provisioned again from its end date on; the
  provisioning that started it, delivered again, is a duplicate (it must not
  bring the licence back), and one dated before its end is a conflict.
- TRANSFERRED gives an active record to a new holder: it keeps its own
  provisioning date, so a transfer never makes a licence net new (and never
  un-makes one). A transfer naming a record that is not active creates it as
  *from a transfer*: the seed's "new user who resulted from a licence
  transfer", billed by annual runs but never as net new.
- DEPROVISIONED ends an active record on its date (it stays in the state,
  ended, so a repeated deprovisioning is recognised); it must name the current
  holder (one naming the holder before a transfer is a conflict). The date may
  be ahead: billing runs look at the record on their billing date. It is not
  checked against the catalog: a licence whose campus or product left it can
  still end.

Nothing is written unless the event is accepted.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from processors.catalog.licence_model import LicenceCatalog
from processors.errors import EventRejected, ReasonCode
from processors.licences.model import Licence, LicenceAction, LicenceEvent
from processors.licences.state import SubscriptionState


class Applied(StrEnum):
    PROVISIONED = "provisioned"
    TRANSFERRED = "transferred"
    DEPROVISIONED = "deprovisioned"
    DUPLICATE = "duplicate"  # already applied: nothing changed


def apply_licence_event(event: LicenceEvent, licences: LicenceCatalog | None,
                        state: SubscriptionState) -> Applied:
    current = state.licence(event.campus, event.record_number)
    if event.action is LicenceAction.DEPROVISIONED:
        # Not checked against the catalog: a licence whose product or campus has left
        # the catalog must still be able to end.
        return _deprovision(event, current, state)
    check_against_catalog(event, licences)
    active = current if current is not None and current.active else None
    if event.action is LicenceAction.PROVISIONED:
        return _provision(event, active, current, state)
    return _transfer(event, active, state)


def check_against_catalog(event: LicenceEvent, licences: LicenceCatalog | None) -> None:
    """The campus and product exist, and the billing target, when given, is the campus's."""
    if licences is None:
        raise _reject(ReasonCode.UNKNOWN_SERVICE_ITEM, event,
                      "the catalog in use bills no licences (no licence_billing section)")
    campus = licences.campuses.get(event.campus)
    if campus is None:
        raise _reject(ReasonCode.NO_ACCOUNT, event, f"unknown campus {event.campus!r}",
                      campus=event.campus)
    if event.product not in licences.products:
        raise _reject(ReasonCode.UNKNOWN_PRODUCT, event,
                      f"unknown licence product {event.product!r}", product=event.product)
    if event.billing_target is not None and event.billing_target != campus.billing_target:
        # One billing target per campus: a different one is a mistake upstream, and
        # billing it anyway would charge a speedtype the campus did not choose.
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"campus {campus.id!r} is billed to {campus.billing_target!r}, the event "
                      f"names {event.billing_target!r}", billing_target=event.billing_target)


def _provision(event: LicenceEvent, active: Licence | None, current: Licence | None,
               state: SubscriptionState) -> Applied:
    if active is not None:
        if _same_start(active, event):
            return Applied.DUPLICATE
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"licence {event.record_number} of campus {event.campus} is already "
                      f"held by {active.user} since {active.holder_since}")
    if current is not None and current.ended_on is not None:
        # An ended record starts again only after its end. The provisioning of its ended
        # life delivered again is a duplicate: starting it again would revive a licence
        # that was deprovisioned, and bill it.
        if _same_start(current, event):
            return Applied.DUPLICATE
        if event.effective_date < current.ended_on:
            raise _reject(ReasonCode.INVALID_EVENT, event,
                          f"provisioned on {event.effective_date}, before licence "
                          f"{event.record_number} ended on {current.ended_on}")
    state.put(Licence(campus=event.campus, record_number=event.record_number,
                      user=event.user, product=event.product,
                      provisioned_on=event.effective_date, holder_since=event.effective_date,
                      from_transfer=False, last_event_id=event.event_id,
                      unit_billing_target=event.unit_billing_target))
    return Applied.PROVISIONED


def _same_start(licence: Licence, event: LicenceEvent) -> bool:
    """``event`` is the provisioning that started ``licence`` (re-published)."""
    return not licence.from_transfer and (
        licence.user, licence.product, licence.provisioned_on) == (
        event.user, event.product, event.effective_date)


def _transfer(event: LicenceEvent, active: Licence | None, state: SubscriptionState) -> Applied:
    if active is None:
        state.put(Licence(campus=event.campus, record_number=event.record_number,
                          user=event.user, product=event.product,
                          provisioned_on=event.effective_date,
                          holder_since=event.effective_date, from_transfer=True,
                          last_event_id=event.event_id, previous_user=event.previous_user,
                          unit_billing_target=event.unit_billing_target))
        return Applied.TRANSFERRED
    if active.user == event.user:  # re-published, or a transfer to the holder: no change
        return Applied.DUPLICATE
    if active.product != event.product:
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"licence {event.record_number} is a {active.product} licence, the "
                      f"transfer names {event.product}")
    if event.effective_date < active.holder_since:
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"transfer on {event.effective_date} is before the current holder "
                      f"{active.user} got licence {event.record_number} on "
                      f"{active.holder_since}")
    state.put(replace(active, user=event.user, holder_since=event.effective_date,
                      previous_user=event.previous_user or active.user,
                      last_event_id=event.event_id,
                      unit_billing_target=event.unit_billing_target
                      or active.unit_billing_target))
    return Applied.TRANSFERRED


def _deprovision(event: LicenceEvent, current: Licence | None,
                 state: SubscriptionState) -> Applied:
    if current is None:
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"campus {event.campus} has no licence {event.record_number}")
    if current.product != event.product:
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"licence {event.record_number} is a {current.product} licence, the "
                      f"deprovisioning names {event.product}")
    if current.user != event.user:
        # Ending the current holder's licence for someone who no longer holds it (say the
        # holder before a transfer) would stop billing a user who is still active.
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"licence {event.record_number} is held by {current.user} (since "
                      f"{current.holder_since}), the deprovisioning names {event.user}")
    if current.ended_on is not None:
        if current.ended_on == event.effective_date:
            return Applied.DUPLICATE
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"licence {event.record_number} already ended on {current.ended_on}")
    if event.effective_date < current.holder_since:
        raise _reject(ReasonCode.INVALID_EVENT, event,
                      f"deprovisioned on {event.effective_date}, before its holder got it on "
                      f"{current.holder_since}")
    state.put(replace(current, ended_on=event.effective_date, last_event_id=event.event_id))
    return Applied.DEPROVISIONED


def _reject(reason: ReasonCode, event: LicenceEvent, message: str,
            **details: str) -> EventRejected:
    return EventRejected(reason, f"event {event.event_id}: {message}",
                         {"campus": event.campus, "record_number": event.record_number,
                          **details})
