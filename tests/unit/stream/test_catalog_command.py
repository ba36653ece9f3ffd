"""`rating catalog validate|load` end to end, with the catalog topic in memory."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.catalog import load_catalog_dir, load_catalog_sources
from stream import commands
from stream.cli import main
from stream.settings import Connections
from tests.unit.stream.catalog_topic import EXAMPLE_CATALOG, CatalogTopic, catalog_record


@pytest.fixture(autouse=True)
def _root_logger_kept() -> Iterator[None]:
    """``main`` points the root logger at this test's captured stderr: put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> CatalogTopic:
    """The catalog topic the command reads and publishes to; no broker, no stack."""
    topic = CatalogTopic()
    monkeypatch.setattr(commands, "connections_from_env",
                        lambda: Connections("kafka:9092", "http://registry", "redis://redis"))
    monkeypatch.setattr(commands, "admin_client", lambda connections: None)
    monkeypatch.setattr(commands, "ensure_topics", lambda admin, topics: [])
    monkeypatch.setattr(commands, "reading_consumer", topic.consumer)
    monkeypatch.setattr(commands, "idempotent_producer", topic.producer)
    return topic


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the example catalog, to edit."""
    return Path(shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog"))


def _published_sources(topic: CatalogTopic) -> dict[str, str]:
    sources: dict[str, str] = json.loads(topic.values[-1])["sources"]
    return sources


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The command's error: the last line on stderr (logs come before it)."""
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_load_publishes_the_yml_files_that_validate_reads(
        topic: CatalogTopic, folder: Path) -> None:
    (folder / "rates-marketplace.yaml").rename(folder / "rates-marketplace.yml")
    assert main(["catalog", "load", "--dir", str(folder)]) == 0
    published = _published_sources(topic)
    assert "rates-marketplace.yml" in published
    # What processors load from the topic is the catalog that was validated.
    assert load_catalog_sources(published).rate_tables == load_catalog_dir(folder).rate_tables


def test_load_publishes_one_content_per_version(
        topic: CatalogTopic, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "load", "--dir", str(folder)]) == 0
    assert main(["catalog", "load", "--dir", str(folder)]) == 0  # the same again: fine
    assert len(topic.values) == 2
    rates = folder / "rates-standard.yaml"
    rates.write_text(rates.read_text().replace('"0.045"', '"0.046"', 1))
    capsys.readouterr()

    assert main(["catalog", "load", "--dir", str(folder)]) == 2
    error = _error_line(capsys)
    assert error.startswith("rating catalog: catalog version 2026.11-demo.1 is already "
                            "published on rating.catalog with other content")
    assert "set a new `version:`" in error
    assert len(topic.values) == 2  # nothing published

    catalog_yaml = folder / "catalog.yaml"
    catalog_yaml.write_text(catalog_yaml.read_text().replace(
        'version: "2026.11-demo.1"', 'version: "2026.11-demo.2"', 1))
    assert main(["catalog", "load", "--dir", str(folder)]) == 0
    assert load_catalog_sources(_published_sources(topic)).version == "2026.11-demo.2"
    assert all(consumer.closed for consumer in topic.consumers)


def test_load_publishes_nothing_when_the_catalog_topic_cannot_be_read(
        topic: CatalogTopic, folder: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without reading the topic there is no knowing whether the version is already there.
    monkeypatch.setattr(commands, "CATALOG_READ_TIMEOUT_S", 0.05)
    topic.values.append(catalog_record({"a.yaml": "version: other"}))
    topic.readable = False
    assert main(["catalog", "load", "--dir", str(folder)]) == 2
    assert "is Kafka reachable?" in _error_line(capsys)
    assert len(topic.values) == 1


def test_load_fails_when_kafka_does_not_confirm_the_version(
        topic: CatalogTopic, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic.confirms = False
    assert main(["catalog", "load", "--dir", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert "published" not in out
    assert "not confirmed by Kafka" in err


@pytest.mark.parametrize("problem", ["missing", "a file", "not UTF-8"])
def test_validate_names_an_unreadable_catalog_in_one_line(
        problem: str, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    named = {"missing": folder / "missing", "a file": folder / "catalog.yaml",
             "not UTF-8": folder / "providers.yaml"}[problem]
    if problem == "not UTF-8":
        named.write_bytes("# Zürich\n".encode("latin-1") + named.read_bytes())
    directory = folder if problem == "not UTF-8" else named
    assert main(["catalog", "validate", "--dir", str(directory)]) == 2
    [error] = capsys.readouterr().err.strip().splitlines()
    assert error.startswith(f"rating catalog: {named}:")
