"""The registered Avro contracts of every topic, and the encoders/decoders built from them."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.schema_registry import SchemaRegistryClient

from stream.serde import SCHEMA_FILES, AvroDecoder, AvroEncoder, register
from stream.settings import Topics

# Topics whose schema is not in serde.SCHEMA_FILES (the licence issue's own contract).
EXTRA_SCHEMA_FILES = {"subscriptions": "subscription_event.avsc"}


@dataclass(frozen=True)
class Codecs:
    event_encoder: AvroEncoder
    event_decoder: AvroDecoder
    rated_encoder: AvroEncoder
    rated_decoder: AvroDecoder
    dead_letter_encoder: AvroEncoder
    rejected_encoder: AvroEncoder
    late_encoder: AvroEncoder
    dead_letter_decoder: AvroDecoder
    alert_encoder: AvroEncoder
    alert_decoder: AvroDecoder


def register_all(client: SchemaRegistryClient, topics: Topics) -> dict[str, int]:
    """Register every topic's value schema with its compatibility rule; subject -> id."""
    ids = {}
    for role, file_name in {**SCHEMA_FILES, **EXTRA_SCHEMA_FILES}.items():
        topic = getattr(topics, role).name
        ids[f"{topic}-value"] = register(client, topic, file_name)
    return ids


def build_codecs(client: SchemaRegistryClient, topics: Topics) -> Codecs:
    ids = register_all(client, topics)

    def encoder(role: str) -> AvroEncoder:
        return AvroEncoder(ids[f"{getattr(topics, role).name}-value"], SCHEMA_FILES[role])

    def decoder(role: str, *topic_roles: str) -> AvroDecoder:
        decoder = AvroDecoder(client, SCHEMA_FILES[role])
        for topic_role in (role, *topic_roles):
            decoder.remember(ids[f"{getattr(topics, topic_role).name}-value"],
                             SCHEMA_FILES[topic_role])
        return decoder

    return Codecs(
        event_encoder=encoder("events"),
        event_decoder=decoder("events", "by_account"),
        rated_encoder=encoder("rated"),
        rated_decoder=decoder("rated"),
        dead_letter_encoder=encoder("dlq"),
        rejected_encoder=encoder("rejected"),
        late_encoder=encoder("late"),
        dead_letter_decoder=decoder("dlq", "rejected", "late"),
        alert_encoder=encoder("quota_alerts"),
        alert_decoder=decoder("quota_alerts"),
    )
