"""Errors of the Kafka edge that the loop treats specially."""

from processors.errors import RatingError


class TransientError(RatingError):
    """A dependency is briefly unavailable: abort the batch, back off, retry it. Never DLQ."""
