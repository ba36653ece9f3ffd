"""One base exception for the whole project, and the domain's reason codes."""

from __future__ import annotations

from enum import StrEnum


class RatingError(Exception):
    """Base of every error this project raises on purpose."""


class ReasonCode(StrEnum):
    """Why an event was not rated. Stable strings: they are on the wire."""

    UNDECODABLE = "UNDECODABLE"
    INVALID_EVENT = "INVALID_EVENT"
    UNKNOWN_SERVICE_ITEM = "UNKNOWN_SERVICE_ITEM"
    UNKNOWN_OPERATION = "UNKNOWN_OPERATION"
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    NO_ACCOUNT = "NO_ACCOUNT"
    NO_RATE_GROUP = "NO_RATE_GROUP"
    NO_RATE_TABLE = "NO_RATE_TABLE"
    NO_RATE_ROW = "NO_RATE_ROW"
    BAD_ATTRIBUTE = "BAD_ATTRIBUTE"
    NEGATIVE_QUANTITY = "NEGATIVE_QUANTITY"
    DUPLICATE_CONFLICT = "DUPLICATE_CONFLICT"
    LATE = "LATE"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    NO_AGREEMENT = "NO_AGREEMENT"
    NO_QUOTA = "NO_QUOTA"
    UNKNOWN_INSTANCE = "UNKNOWN_INSTANCE"
    BLOCKED_INSTANCE = "BLOCKED_INSTANCE"
    RELEASED_INSTANCE = "RELEASED_INSTANCE"


class EventRejected(RatingError):
    """An event cannot be processed; carries the reason code for the DLQ."""

    def __init__(self, reason: ReasonCode, message: str, details: dict[str, str] | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.details = details or {}
