"""The catalog feed and publishing with an in-memory catalog topic: what a processor takes."""

from __future__ import annotations

import logging

import pytest

from processors.catalog import load_catalog_dir
from processors.errors import RatingError
from stream.catalog_feed import CatalogFeed, publish_catalog
from tests.unit.stream.catalog_topic import (
    EXAMPLE_CATALOG,
    CatalogTopic,
    catalog_record,
    example_sources,
)

TOPIC = "rating.catalog"


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_publish_catalog_fails_when_kafka_does_not_confirm_the_version() -> None:
    topic = CatalogTopic(confirms=False)
    with pytest.raises(RatingError, match="not confirmed by Kafka"):
        publish_catalog(topic.producer(), TOPIC, load_catalog_dir(EXAMPLE_CATALOG),
                        example_sources())


def test_a_running_feed_keeps_its_version_when_other_content_arrives_under_its_name(
        caplog: pytest.LogCaptureFixture) -> None:
    sources = example_sources()
    # A comment changes no price: the same content again is not an error.
    commented = {name: f"# reviewed\n{text}" for name, text in sources.items()}
    # The same `version:`, another rate: published by someone who forgot to bump it.
    changed = dict(sources)
    assert '"0.045"' in changed["rates-standard.yaml"]
    changed["rates-standard.yaml"] = changed["rates-standard.yaml"].replace(
        '"0.045"', '"0.046"', 1)
    topic = CatalogTopic(catalog_record(sources))
    feed = CatalogFeed(topic.consumer(), TOPIC)
    feed.refresh()
    in_use = feed.current
    topic.values += [catalog_record(commented), catalog_record(changed)]
    with caplog.at_level(logging.ERROR, logger="stream.catalog_feed"):
        assert not feed.refresh()
    assert feed.current is in_use
    [error] = _errors(caplog)  # the changed content only
    assert in_use.version in error.getMessage()
    assert "differs" in error.getMessage()
    assert f"{TOPIC} partition 0 offset 2" in error.getMessage()


@pytest.mark.parametrize(("what", "value"), [
    ("a source that is null", b'{"sources": {"a.yaml": null}}'),
    ("a source that is a number", b'{"sources": {"a.yaml": 5}}'),
    ("a source that is a list", b'{"sources": {"a.yaml": ["version: 2"]}}'),
    ("sources that are a list", b'{"sources": ["a.yaml"]}'),
    ("no sources", b'{"version": "v2"}'),
    ("a number", b"42"),
    ("a list", b"[]"),
    ("not JSON", b"\xff not json"),
    ("YAML nested deeper than the recursion limit",
     catalog_record({"a.yaml": "rate_tables: " + "[" * 5000 + "]" * 5000})),
    ("a catalog that does not load", catalog_record({"a.yaml": "no_such_section: []"})),
])
def test_a_malformed_record_is_logged_and_the_version_in_use_kept(
        what: str, value: bytes, caplog: pytest.LogCaptureFixture) -> None:
    # "A bad version must not stop billing": a processor that crashed here would crash
    # again on every restart, reading the same record.
    topic = CatalogTopic(catalog_record(example_sources()), value)
    feed = CatalogFeed(topic.consumer(), TOPIC)
    with caplog.at_level(logging.ERROR, logger="stream.catalog_feed"):
        feed.refresh()
    assert feed.current.version == load_catalog_dir(EXAMPLE_CATALOG).version, what
    [error] = _errors(caplog)
    assert f"ignoring unreadable catalog version at {TOPIC} partition 0 offset 1" in (
        error.getMessage())
