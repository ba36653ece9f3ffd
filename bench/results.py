"""One contender's measurement, and the checks that make it count."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Result:
    contender: str
    events: int  # input records the contender was given (the rate's unit)
    seconds: float  # first record in hand -> everything committed (or the cap)
    complete: bool  # False: capped; the rate is then over what it did in ``seconds``
    processed: int  # input records known processed and committed within ``seconds``
    outputs: dict[str, int]  # topic role -> committed records found afterwards
    expected_outputs: dict[str, int]
    guarantee: str = "exactly_once"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def verified(self) -> bool:
        """Every input record processed once: exact counts on every output topic."""
        return self.complete and self.processed == self.events and \
            self.outputs == self.expected_outputs

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_s": round(self.events_per_s, 1),
                "verified": self.verified}


def failed(contender: str, events: int, error: str, guarantee: str = "exactly_once") -> Result:
    """A contender that could not run at all; the error says why."""
    return Result(contender=contender, events=events, seconds=0.0, complete=False, processed=0,
                  outputs={}, expected_outputs={}, guarantee=guarantee, note=error)
