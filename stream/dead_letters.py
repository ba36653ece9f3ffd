"""Dead-letter records: the reason, the original bytes and where they came from."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from confluent_kafka import Message

from stream import metrics
from stream.codec import rejection_to_bytes
from stream.messages import Output, origin_of
from stream.serde import AvroEncoder

log = logging.getLogger(__name__)


def dead_letter(encoder: AvroEncoder, topic: str, *, stage: str, message: Message,
                reason: str, text: str, event_id: str | None, now: datetime,
                details: Mapping[str, str] | None = None) -> Output:
    """One dead-letter Output for ``message``, logged once without a stack trace."""
    origin = origin_of(message)
    timestamp_type, timestamp_ms = message.timestamp()
    log.warning("dead-letter %s at %s[%d]@%d event=%s: %s", reason, origin.topic,
                origin.partition, origin.offset, event_id, text,
                extra={"event_id": event_id, "topic": origin.topic,
                       "partition": origin.partition, "offset": origin.offset,
                       "stage": stage, "reason": reason})
    metrics.EVENTS_DEAD_LETTERED.labels(stage=stage, reason=reason).inc()
    value = rejection_to_bytes(
        encoder, reason=reason, message=text, stage=stage, origin=origin, key=message.key(),
        value=message.value(), event_id=event_id,
        source_timestamp_ms=timestamp_ms if timestamp_type else None,
        details=details or {}, rejected_at=now)
    return Output(topic=topic, key=message.key(), value=value)
