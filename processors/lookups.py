"""Memoised catalog lookups: the answers rating repeats for every event of an account.

A catalog version is immutable, so a lookup that depends only on the catalog
and a few event fields (the account of an OU, the rate group of an account
in a fiscal period, the rate row of a table for some lookup values...) gives
the same answer for every event with those fields. ``PerCatalog`` keeps such
answers for the catalog in use and forgets them all when another catalog
object is passed (processors switch versions between batches). It is bounded,
so lookup values with many distinct values cannot grow it without limit.

Only answers are kept, never rejections: a lookup that fails is asked again
of the catalog for each event, so the rejection names that event.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from processors.accounts import ResolvedAccount, resolve_account
from processors.catalog import Catalog
from processors.errors import EventRejected, ReasonCode
from processors.events import UsageEvent

K = TypeVar("K", bound=Hashable)
A = TypeVar("A")
V = TypeVar("V")

DEFAULT_LIMIT = 10_000


class PerCatalog(Generic[K, A, V]):
    """``compute(catalog, arg)`` memoised by ``key`` for the catalog last used.

    ``key`` must determine the answer together with the catalog; ``arg`` is
    what ``compute`` needs to find it (often the event the key was taken from).
    """

    def __init__(self, compute: Callable[[Catalog, A], V], limit: int = DEFAULT_LIMIT) -> None:
        self._compute = compute
        self._limit = limit
        # One tuple, replaced whole: a reader never pairs one catalog with another's answers.
        self._slot: tuple[Catalog | None, dict[K, V]] = (None, {})

    def __call__(self, catalog: Catalog, key: K, arg: A) -> V:
        used, answers = self._slot
        if used is not catalog:
            answers = {}
            self._slot = (catalog, answers)
        try:
            return answers[key]
        except KeyError:
            pass
        if len(answers) >= self._limit:
            answers.clear()
        answer = answers[key] = self._compute(catalog, arg)
        return answer


def _account_or_none(catalog: Catalog, event: UsageEvent) -> ResolvedAccount | None:
    try:
        return resolve_account(event, catalog)
    except EventRejected:
        return None


_ACCOUNTS: PerCatalog[tuple[str | None, str], UsageEvent, ResolvedAccount | None] = \
    PerCatalog(_account_or_none)


def account_of(event: UsageEvent, catalog: Catalog) -> ResolvedAccount:
    """``resolve_account(event, catalog)``, memoised by (explicit account, home OU)."""
    account = _ACCOUNTS(catalog, (event.account_id, event.home_ou), event)
    if account is None:
        return resolve_account(event, catalog)  # raises NO_ACCOUNT naming this event
    return account


def _routed_or_none(catalog: Catalog, account_id: str) -> ResolvedAccount | None:
    account = catalog.accounts.get(account_id)
    return None if account is None else ResolvedAccount(account.id, account.kind)


_ROUTED: PerCatalog[str, str, ResolvedAccount | None] = PerCatalog(_routed_or_none)


def paying_account(event: UsageEvent, catalog: Catalog, routed: str | None) -> ResolvedAccount:
    """The account that pays for ``event``: the one the router keyed it by (``routed``),
    else (an event not routed: estimates, tests) ``account_of(event, catalog)``.

    The router decides the account once, with the catalog it has, and the account's
    state (tiers, credit, quotas, seen ids) lives in the partition of that key. A newer
    catalog reaching the rater first may resolve the event's OU to another account;
    rating it for that account would split the account's state over two partitions.
    So the rater prices it for the account it was routed to, with its own catalog."""
    if routed is None:
        return account_of(event, catalog)
    account = _ROUTED(catalog, routed, routed)
    if account is None:
        raise EventRejected(
            ReasonCode.NO_ACCOUNT,
            f"event {event.event_id}: it was routed to account {routed!r}, which catalog "
            f"version {catalog.version} does not have",
            {"account_id": routed, "home_ou": event.home_ou},
        )
    return account
