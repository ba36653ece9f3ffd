"""The account the router keyed an event by pays for it, whatever catalog the rater has.

The router resolves the account with its catalog and keys usage.by-account by it; the
account's tiers, credit, quotas and seen ids live in the partition of that key. A newer
catalog that moves the event's OU to another account may reach the rater before the
events routed with the older one: rating those for the new account would split both
accounts' state over two partitions (found by review: the second 100 GB of an account
priced in the first tier again). The rater prices them for the routed account.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from processors.errors import EventRejected, ReasonCode
from processors.events import Origin, UsageEvent
from processors.pipeline import PartitionState, process_event
from tests.unit.processors.factories import BASE, NOV, RATED_AT, catalog, event

# Version 1: eng/data has no tenant account of its own; it is billed to acct-eng.
V1 = BASE.replace("version: test-1", "version: test-v1").replace(
    """  - id: acct-data
    kind: tenant
    ou: eng/data
    rate_groups:
      - {rate_group: standard, from: P1}
      - {rate_group: enterprise, from: P2}
""", "")
# Version 2, published later: eng/data gets its own tenant account, acct-data.
V2 = BASE.replace("version: test-1", "version: test-v2")
ORIGIN = Origin("usage.by-account", 1, 0)


def _bucket(event_id: str, hour: int) -> UsageEvent:
    return event(event_id, item="Bucket", operation="Meter", home_ou="eng/data",
                 stored_gb=100, at=NOV.replace(hour=hour))


def test_the_versions_disagree_about_eng_data() -> None:
    v1, v2 = catalog(base=V1), catalog(base=V2)
    assert "acct-data" not in v1.accounts
    before = process_event(_bucket("e-0", 9), ORIGIN, v1, PartitionState(), RATED_AT).rated
    after = process_event(_bucket("e-0", 9), ORIGIN, v2, PartitionState(), RATED_AT).rated
    assert before is not None
    assert after is not None
    assert (before.account_id, after.account_id) == ("acct-eng", "acct-data")


def test_events_routed_before_a_catalog_switch_are_rated_for_the_routed_account() -> None:
    v2 = catalog(base=V2)
    state = PartitionState()  # acct-eng's partition
    # Both were routed with version 1 (key acct-eng); version 2 reached the rater first.
    one = process_event(_bucket("e-1", 10), ORIGIN, v2, state, RATED_AT,
                        routed_account="acct-eng")
    two = process_event(_bucket("e-2", 11), ORIGIN, v2, state, RATED_AT,
                        routed_account="acct-eng")
    assert one.rated is not None
    assert two.rated is not None
    assert one.rated.account_id == two.rated.account_id == "acct-eng"
    assert one.rated.catalog_version == "test-v2"
    # Graduated tiers on one state: the account's second 100 GB is in the 0.08 tier.
    assert one.rated.net_amount == Decimal("10.00")
    assert two.rated.net_amount == Decimal("8.00")


def test_an_event_routed_to_an_account_the_catalog_no_longer_has_is_rejected() -> None:
    v1 = catalog(base=V1)
    with pytest.raises(EventRejected) as raised:
        process_event(_bucket("e-3", 10), ORIGIN, v1, PartitionState(),
                      RATED_AT, routed_account="acct-data")
    assert raised.value.reason is ReasonCode.NO_ACCOUNT
    assert raised.value.message == ("event e-3: it was routed to account 'acct-data', which "
                                    "catalog version test-v1 does not have")
