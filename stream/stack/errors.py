"""The one exception the stack manager raises on purpose."""

from __future__ import annotations

from processors.errors import RatingError


class StackError(RatingError):
    """A local service could not be fetched, started, found or stopped.

    The message is meant for a person at a terminal: it names the tool, port or
    component involved and, when a process misbehaved, ends with its log tail.
    """
