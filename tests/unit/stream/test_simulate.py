"""The simulated workload (`make run`, the benchmark): reproducible, and lifecycles that
make sense (an item is operated on only while it exists)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from processors.errors import RatingError
from stream.simulate import Workload, id_scope_after, load_workload

WORKLOAD = Path(__file__).resolve().parents[3] / "config" / "workload.yaml"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _events(count: int, seed: int) -> list[tuple[str, str, str, str, dict[str, object]]]:
    workload = Workload(load_workload(WORKLOAD), random.Random(seed), NOW)
    events = []
    for _ in range(count):
        kind, event = workload.next_event()
        events.append((kind, event.service_item_type, event.service_item_id, event.operation,
                       dict(event.attributes)))
    return events


def test_the_same_seed_gives_the_same_workload_and_another_seed_another() -> None:
    assert _events(3_000, seed=7) == _events(3_000, seed=7)
    assert _events(3_000, seed=7) != _events(3_000, seed=8)


def test_items_are_operated_on_only_between_their_create_and_their_delete() -> None:
    spec = load_workload(WORKLOAD)
    creates = {item["create"] for item in spec["items"].values()}
    deletes = {item["delete"] for item in spec["items"].values() if item.get("delete")}
    live: set[str] = set()
    deleted: set[str] = set()
    operated = 0
    for kind, item_type, item_id, operation, _ in _events(20_000, seed=7):
        if kind == "duplicate" or item_type not in spec["items"]:
            continue  # a re-published copy of an earlier event; marketplace usage
        if item_id not in live and item_id not in deleted:
            assert operation in creates, (item_id, operation)
            live.add(item_id)
            continue
        assert item_id in live, f"{operation} of {item_id} after its delete"
        operated += 1
        if operation in deletes:
            live.remove(item_id)
            deleted.add(item_id)
    assert deleted  # the workload does delete
    assert operated > len(deleted)  # and operates on items between create and delete


def test_a_workload_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "workload.yaml"
    path.write_text(WORKLOAD.read_text() + "\nitems: {}\n")
    with pytest.raises(RatingError, match=r"workload.yaml: cannot read the workload: .*the key "
                                          r"'items' is given twice"):
        load_workload(path)


def test_two_runs_with_the_same_seed_never_share_an_item_id() -> None:
    # A second `make run` against the same processor state must not operate on the
    # first run's instances (deleted by then): real platforms never reuse an id.
    def ids(scope: str) -> set[str]:
        workload = Workload(load_workload(WORKLOAD), random.Random(7), NOW, id_scope=scope)
        return {workload.next_event()[1].service_item_id for _ in range(2_000)}
    first, second = ids("a1b2c3-"), ids("d4e5f6-")
    assert first.isdisjoint(second)
    assert {item_id.rsplit("-", 2)[1] for item_id in first} == {"a1b2c3"}
    assert {item_id.replace("a1b2c3-", "") for item_id in first} == ids("")


def test_a_run_on_a_fresh_topic_keeps_the_seed_s_ids_later_runs_get_their_own() -> None:
    assert id_scope_after(0) == ""
    assert id_scope_after(5_000) == "r5000-"
    assert id_scope_after(5_000) != id_scope_after(10_000)
