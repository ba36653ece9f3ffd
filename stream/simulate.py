"""A realistic simulated workload, published through the publisher API.

The mix comes from config/workload.yaml: requesters in OUs, service items with
lifecycles (create, operate, resize, delete), marketplace usage, explicit
project-account events, re-published duplicates, and a small share of bad
events (garbage bytes, unknown service items) that must reach the DLQ.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from processors.errors import RatingError
from processors.events import UsageEvent
from stream.progress import Progress
from stream.publisher import UsagePublisher, new_event
from stream.readback import end_offsets
from stream.settings import Connections, Settings
from stream.strict_yaml import load_yaml


@dataclass
class SimulationReport:
    published: int = 0
    duplicates: int = 0
    garbage: int = 0
    unknown_items: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)

    def describe(self) -> str:
        mix = ", ".join(f"{name} {count}" for name, count in sorted(self.by_type.items()))
        return (f"published {self.published} events in {self.seconds:.1f} s "
                f"({self.published / max(self.seconds, 1e-9):,.0f}/s): {mix}; "
                f"{self.duplicates} re-published duplicates, {self.garbage} garbage, "
                f"{self.unknown_items} unknown items")


@dataclass
class _Instance:
    item_type: str
    item_id: str
    requester: dict[str, str]
    attributes: dict[str, int | str | Decimal]
    account_id: str | None


class Workload:
    """``id_scope`` goes into every service item id (``vm-<scope>12``): a platform never
    gives two instances one id, so two runs against the same processor state must not
    either (the second would operate on the first's instances, deleted by then)."""

    def __init__(self, spec: dict[str, Any], rng: random.Random, now: datetime,
                 id_scope: str = ""):
        self._spec = spec
        self._rng = rng
        self._now = now
        self._id_scope = id_scope
        self._live: list[_Instance] = []
        self._recent: list[UsageEvent] = []
        self._serial = 0

    def next_event(self) -> tuple[str, UsageEvent]:
        """(kind, event): kind is the item type, or 'duplicate'."""
        if self._recent and self._rng.random() < self._spec.get("duplicate_share", 0.0):
            return "duplicate", self._rng.choice(self._recent)
        if self._rng.random() < self._spec.get("marketplace_share", 0.0):
            event = self._marketplace()
        else:
            event = self._lifecycle()
        self._recent = [*self._recent, event][-200:]
        return event.service_item_type, event

    def unknown_item(self) -> UsageEvent:
        requester = self._rng.choice(self._spec["requesters"])
        return self._event("Teleporter", self._item_id("tp"), "Create", {"range_km": 12},
                           requester, None)

    def _item_id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._id_scope}{self._serial}"

    def _when(self) -> datetime:
        spread = float(self._spec.get("event_time_spread_minutes", 60))
        return self._now - timedelta(minutes=self._rng.uniform(0, spread))

    def _event(self, item_type: str, item_id: str, operation: str,
               attributes: dict[str, int | str | Decimal], requester: dict[str, str],
               account_id: str | None, provider: str | None = None,
               product: str | None = None) -> UsageEvent:
        return new_event(service_item_type=item_type, service_item_id=item_id,
                         operation=operation, attributes=attributes,
                         requester=requester["name"], home_ou=requester["home_ou"],
                         source=self._spec.get("source", "simulator"), event_time=self._when(),
                         account_id=account_id, provider=provider, product=product)

    def _pick_attributes(self, choices: dict[str, list[Any]]) -> dict[str, int | str | Decimal]:
        return {name: _value(self._rng.choice(values)) for name, values in choices.items()}

    def _lifecycle(self) -> UsageEvent:
        items = self._spec["items"]
        if self._live and self._rng.random() < 0.45:
            # randrange(n) draws what choice() draws (the same workload for a seed); the
            # index deletes in O(1) comparisons, where list.remove compared dataclasses
            # one by one (the main cost of generating 150,000 events).
            index = self._rng.randrange(len(self._live))
            instance = self._live[index]
            item = items[instance.item_type]
            roll = self._rng.random()
            if roll < 0.25 and item.get("delete"):
                del self._live[index]
                return self._event(instance.item_type, instance.item_id, item["delete"],
                                   instance.attributes, instance.requester,
                                   instance.account_id)
            if roll < 0.55 and item.get("resize"):
                resize = item["resize"]
                attribute = resize["attribute"]
                instance.attributes[attribute] = _value(
                    self._rng.choice(item["attributes"][attribute]))
                return self._event(instance.item_type, instance.item_id, resize["operation"],
                                   dict(instance.attributes), instance.requester,
                                   instance.account_id)
            operation = self._rng.choice(item.get("other") or [item["create"]])
            return self._event(instance.item_type, instance.item_id, operation,
                               dict(instance.attributes), instance.requester,
                               instance.account_id)
        names = list(items)
        item_type = self._rng.choices(names, weights=[items[n]["weight"] for n in names])[0]
        item = items[item_type]
        requester, account_id = self._who()
        instance = _Instance(item_type, self._item_id(item["id_prefix"]), requester,
                             self._pick_attributes(item["attributes"]), account_id)
        self._live.append(instance)
        return self._event(item_type, instance.item_id, item["create"],
                           dict(instance.attributes), requester, account_id)

    def _marketplace(self) -> UsageEvent:
        offer = self._rng.choice(self._spec["marketplace"])
        requester, account_id = self._who()
        return self._event(offer["type"], self._item_id(offer["product"]),
                           offer["operation"], self._pick_attributes(offer["attributes"]),
                           requester, account_id, offer["provider"], offer["product"])

    def _who(self) -> tuple[dict[str, str], str | None]:
        for project in self._spec.get("project_accounts", []):
            if self._rng.random() < project["share"]:
                return ({"name": project["requester"], "home_ou": project["home_ou"]},
                        project["account_id"])
        requesters = self._spec["requesters"]
        weights = [float(r.get("weight", 1.0)) for r in requesters]
        chosen = self._rng.choices(requesters, weights=weights)[0]
        return {"name": chosen["name"], "home_ou": chosen["home_ou"]}, None


def _value(raw: Any) -> int | str | Decimal:
    if isinstance(raw, bool):
        raise RatingError(f"workload: boolean attribute values are not supported ({raw})")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return Decimal(str(raw))
    return str(raw)


def load_workload(path: Path) -> dict[str, Any]:
    try:
        spec = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RatingError(f"{path}: cannot read the workload: {exc}") from None
    for key in ("requesters", "items"):
        if not spec or key not in spec:
            raise RatingError(f"{path}: the workload needs a {key!r} section")
    return dict(spec)


def id_scope_after(published_before: int) -> str:
    """The item id scope of a run after ``published_before`` records on the events topic:
    none on a fresh topic (the ids a seed always gave, so a first run is reproducible),
    else one no earlier run on this topic had (``r<count>-``)."""
    return "" if published_before == 0 else f"r{published_before}-"


def _published_before(connections: Connections, settings: Settings) -> int:
    try:
        return sum(end_offsets(connections, settings.topics.events.name).values())
    except RatingError:  # no such topic yet: nothing was published on it
        return 0


def run_simulation(connections: Connections, settings: Settings, *, events: int,
                   rate: float = 0.0, seed: int = 7, bad_fraction: float = 0.01,
                   show_progress: bool = True) -> SimulationReport:
    rng = random.Random(seed)
    # The seed decides the operations; the ids are new each run on the same topic
    # (Workload's id_scope), and the same on a fresh one.
    workload = Workload(load_workload(settings.workload_file), rng, datetime.now(UTC),
                        id_scope=id_scope_after(_published_before(connections, settings)))
    report = SimulationReport()
    progress = Progress("publishing", events) if show_progress else None
    started = time.monotonic()
    with UsagePublisher.connect(connections, settings.topics.events.name) as publisher:
        for index in range(events):
            if rate > 0:
                _pace(started, index, rate)
            if rng.random() < bad_fraction:
                if rng.random() < 0.5:
                    publisher.publish_raw(b"garbage", b"\x00\x00not avro at all")
                    report.garbage += 1
                else:
                    event = workload.unknown_item()
                    publisher.publish(event)
                    report.unknown_items += 1
                    report.event_ids.add(event.event_id)
            else:
                kind, event = workload.next_event()
                publisher.publish(event)
                report.event_ids.add(event.event_id)
                if kind == "duplicate":
                    report.duplicates += 1
                else:
                    report.by_type[kind] = report.by_type.get(kind, 0) + 1
            report.published += 1
            if progress is not None:
                progress.update(index + 1)
    report.seconds = time.monotonic() - started
    if progress is not None:
        progress.finish("delivered")
    return report


def _pace(started: float, index: int, rate: float) -> None:
    due = started + index / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
