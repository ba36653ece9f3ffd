"""`make run`'s billing half: when a sink's stored offsets cannot be of this usage.rated,
and the demo licences (stream/demo_billing.py)."""

from __future__ import annotations

from datetime import date

from processors.catalog import load_catalog_dir
from processors.licences.fiscal import FiscalYear
from processors.licences.model import LicenceAction
from stream.demo_billing import DEMO_LICENCES, demo_licence_events, stale_offsets
from stream.settings import REPO_ROOT


def test_a_store_that_never_stored_anything_is_never_stale() -> None:
    assert stale_offsets({}, {0: 0, 1: 0}, topic_created=True) is None
    assert stale_offsets({}, {0: 40}, topic_created=False) is None


def test_offsets_within_the_topic_are_not_stale() -> None:
    # A caught-up sink on a transactional topic: its next offset is the commit marker's.
    assert stale_offsets({0: 10, 1: 7}, {0: 11, 1: 7, 2: 0}, topic_created=False) is None


def test_offsets_of_an_earlier_topic_are_stale() -> None:
    reason = stale_offsets({0: 500, 1: 3}, {0: 20, 1: 3}, topic_created=False)
    assert reason == "stored next offsets {0: 500} lie beyond the topic's end"
    # A partition the topic does not have:
    assert stale_offsets({2: 1}, {0: 5, 1: 5}, topic_created=False) is not None
    assert stale_offsets({0: 3}, {0: 5}, topic_created=True) == "the topic was just created"


def test_demo_licences_are_covered_by_the_annual_run_and_republish_identically() -> None:
    catalog = load_catalog_dir(REPO_ROOT / "config" / "catalog")
    year = FiscalYear.of(date(2026, 11, 22), 7)
    first, again = demo_licence_events(catalog, year), demo_licence_events(catalog, year)
    assert len(first) == DEMO_LICENCES
    assert [e.event_id for e in first] == [e.event_id for e in again]  # duplicates on re-run
    assert all(e.action is LicenceAction.PROVISIONED for e in first)
    assert all(e.effective_date < year.start for e in first)  # provisioned before FY2027
    assert {e.campus for e in first} == {"boulder", "denver", "uccs"}
    assert len({(e.campus, e.record_number) for e in first}) == DEMO_LICENCES
