"""One contender's measurement, and the checks that make it count."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Outputs whose count depends only on the input, never on the order the rater
# sees an account's events in; quota outcomes (rated, rejected, alerts) do.
EXACT_ROLES = ("by_account", "late", "dlq")


@dataclass(frozen=True)
class Result:
    contender: str
    events: int  # input records the contender was given (the rate's unit)
    seconds: float  # first record in hand -> everything committed (or the cap)
    complete: bool  # False: capped; the rate is then over what it did in ``seconds``
    processed: int  # input records known processed and committed within ``seconds``
    outputs: dict[str, int]  # topic role -> committed records found afterwards
    expected_outputs: dict[str, int]  # from the dry run (quota roles: in input order)
    rated_twice: int = 0  # event ids found more than once on the rated topic
    guarantee: str = "exactly_once"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    round: int = 1  # which round of the run (bench.harness: contenders repeat per round)

    @property
    def events_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def mismatches(self) -> list[str]:
        """Why the run does not count as exactly all input, exactly once; empty if it does."""
        problems = []
        if not self.complete or self.processed != self.events:
            problems.append(f"processed {self.processed} of {self.events}")
        for role in EXACT_ROLES:
            if role in self.expected_outputs and \
                    self.outputs.get(role) != self.expected_outputs[role]:
                problems.append(f"{role}: {self.outputs.get(role)} records, expected "
                                f"{self.expected_outputs[role]}")
        if self.rated_twice:
            problems.append(f"{self.rated_twice} event ids rated more than once")
        return problems

    @property
    def verified(self) -> bool:
        return not self.mismatches

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_s": round(self.events_per_s, 1),
                "verified": self.verified, "mismatches": self.mismatches}


def failed(contender: str, events: int, error: str, guarantee: str = "exactly_once") -> Result:
    """A contender that could not run at all; the error says why."""
    return Result(contender=contender, events=events, seconds=0.0, complete=False, processed=0,
                  outputs={}, expected_outputs={}, guarantee=guarantee, note=error)
