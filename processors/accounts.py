"""Which account pays for an event: an explicit account, else the OU walk-up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from processors.catalog import AccountKind, Catalog
from processors.errors import EventRejected, ReasonCode
from processors.events import UsageEvent


@dataclass(frozen=True, slots=True)
class ResolvedAccount:
    account_id: str
    kind: AccountKind  # a StrEnum: "tenant" or "project"


def resolve_account(event: UsageEvent, catalog: Catalog) -> ResolvedAccount:
    """The account named on the event, or the tenant account of the nearest OU above.

    An explicit ``account_id`` (how project accounts are used) overrides the
    walk-up, and must exist: silently falling back to the tenant would bill
    the wrong party.
    """
    if event.account_id:
        account = catalog.accounts.get(event.account_id)
        if account is None:
            raise EventRejected(
                ReasonCode.NO_ACCOUNT,
                f"event {event.event_id}: account {event.account_id!r} does not exist",
                {"account_id": event.account_id, "home_ou": event.home_ou},
            )
        return ResolvedAccount(account.id, account.kind)
    for ou in ou_and_ancestors(event.home_ou):
        tenant = catalog.tenant_by_ou.get(ou)
        if tenant is not None:
            return ResolvedAccount(tenant, AccountKind.TENANT)
    raise EventRejected(
        ReasonCode.NO_ACCOUNT,
        f"event {event.event_id}: no tenant account for OU {event.home_ou!r} or any OU above it",
        {"home_ou": event.home_ou},
    )


def ou_and_ancestors(path: str) -> Iterator[str]:
    """``eng/data/ml``, ``eng/data``, ``eng``: the OU first, then up to the root."""
    segments = [segment for segment in path.strip().split("/") if segment]
    for end in range(len(segments), 0, -1):
        yield "/".join(segments[:end])
