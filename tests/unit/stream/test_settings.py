from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.settings import DEFAULT_SETTINGS_FILE, SettingsError, load_settings


def test_shipped_settings_load_with_every_topic() -> None:
    settings = load_settings(environ={})
    assert settings.topics.events.name == "usage.events"
    assert settings.topics.changelog.cleanup == "compact"
    assert settings.topics.catalog.partitions == 1
    assert settings.catalog_dir.is_dir()


def test_environment_overrides_win() -> None:
    settings = load_settings(environ={"RATING_TOPIC_SUFFIX": "-t1", "RATING_GROUP_ID": "g1",
                                      "RATING_BATCH_SIZE": "7", "RATING_LOG_LEVEL": "debug"})
    assert settings.topics.rated.name == "usage.rated-t1"
    assert settings.processor.group_id == "g1"
    assert settings.processor.batch_size == 7
    assert settings.log_level == "DEBUG"


def _write(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(DEFAULT_SETTINGS_FILE.read_text())
    assert callable(mutate)
    mutate(raw)
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_changelog_must_match_the_account_keyed_topic(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda raw: raw["topics"]["changelog"].update(partitions=2))
    with pytest.raises(SettingsError, match="changelog must have as many partitions"):
        load_settings(path, environ={})


def test_missing_topic_role_is_named_with_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda raw: raw["topics"].pop("dlq"))
    with pytest.raises(SettingsError, match=r"settings.yaml: topics: missing roles \['dlq'\]"):
        load_settings(path, environ={})


def test_bad_batch_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="batch_size"):
        load_settings(environ={"RATING_BATCH_SIZE": "0"})


def _with(tmp_path: Path, dotted: str, value: object) -> Path:
    """The shipped settings with one value set, e.g. ``topics.dlq.partitions``."""
    *sections, key = dotted.split(".")

    def set_value(raw: dict[str, Any]) -> None:
        for section in sections:
            raw = raw[section]
        raw[key] = value
    return _write(tmp_path, set_value)


@pytest.mark.parametrize(("dotted", "refused", "accepted"), [
    # 0 parks every out-of-order event as late, a negative window every event.
    ("processor.dedup_window_days", 0, 1),
    ("processor.dedup_window_days", -5, 1),
    ("processor.dedup_window_days", 367, 366),
    ("processor.dedup_memory_hours", 0, 1),
    ("processor.dedup_memory_hours", 366 * 24 + 1, 366 * 24),
    ("processor.transaction_timeout_ms", 999, 1_000),
    ("processor.transaction_timeout_ms", 900_001, 900_000),
    ("processor.batch_size", 1_000_001, 1_000_000),
    ("processor.batch_timeout_s", 0, 0.001),
    ("processor.batch_timeout_s", -0.2, 0.001),
    ("processor.batch_timeout_s", 10.5, 10),
    ("processor.batch_timeout_s", math.inf, 10),
    ("processor.batch_timeout_s", math.nan, 10),
    ("topics.dlq.retention_hours", 0, -1),
    ("topics.dlq.retention_hours", -5, 1),
])
def test_a_number_just_outside_its_range_is_refused_and_the_edge_loads(
        tmp_path: Path, dotted: str, refused: float, accepted: float) -> None:
    with pytest.raises(SettingsError, match=rf"settings.yaml: {re.escape(dotted)} must be "):
        load_settings(_with(tmp_path, dotted, refused), environ={})
    load_settings(_with(tmp_path, dotted, accepted), environ={})


@pytest.mark.parametrize(("dotted", "value"), [
    ("topics.dlq.partitions", 2.9),  # was truncated to 2
    ("topics.dlq.partitions", True),  # was 1
    ("topics.dlq.partitions", "3"),
    ("processor.batch_size", 1000.5),
    ("processor.transaction_timeout_ms", True),
    ("processor.batch_timeout_s", "fast"),  # the message did not name the key
    ("processor.batch_timeout_s", True),  # was 1.0 s
    ("api.port", "8080"),
    ("api.page_limit", True),
])
def test_a_value_of_the_wrong_type_is_refused_naming_file_and_key(
        tmp_path: Path, dotted: str, value: object) -> None:
    with pytest.raises(SettingsError,
                       match=rf"settings.yaml: {re.escape(dotted)} must be .*, got {value!r}"):
        load_settings(_with(tmp_path, dotted, value), environ={})


@pytest.mark.parametrize(("dotted", "value"), [
    ("topics.dlq.name", None),  # was the topic "None"
    ("topics.dlq.name", ""),
    ("processor.group_id", None),
])
def test_an_empty_name_is_refused(tmp_path: Path, dotted: str, value: object) -> None:
    with pytest.raises(SettingsError, match=rf"settings.yaml: {re.escape(dotted)} "):
        load_settings(_with(tmp_path, dotted, value), environ={})


def test_a_misspelt_processor_key_is_refused_not_ignored(tmp_path: Path) -> None:
    # The operator asks for quota enforcement; the typo silently left it at "allow".
    def typo(raw: dict[str, Any]) -> None:
        raw["processor"]["no_agreemnt"] = raw["processor"].pop("no_agreement")
    with pytest.raises(SettingsError, match=r"settings.yaml: processor: unknown key "
                                            r"'no_agreemnt' \(known: .*no_agreement"):
        load_settings(_write(tmp_path, typo), environ={})


@pytest.mark.parametrize(("section", "key"), [
    ("top level", "log_levl"),
    ("topics.dlq", "retention_hour"),
    ("sinks", "history-url"),
    ("api", "max_page_limt"),
])
def test_an_unknown_key_is_refused_in_every_section(tmp_path: Path, section: str,
                                                    key: str) -> None:
    dotted = key if section == "top level" else f"{section}.{key}"
    path = _with(tmp_path, dotted, "x")
    with pytest.raises(SettingsError,
                       match=rf"settings.yaml: {re.escape(section)}: unknown key '{key}' "
                             r"\(known: "):
        load_settings(path, environ={})


@pytest.mark.parametrize(("section", "key"), [("processor", "group_id"),
                                              ("topics.dlq", "partitions")])
def test_a_missing_key_is_named(tmp_path: Path, section: str, key: str) -> None:
    def drop(raw: dict[str, Any]) -> None:
        for part in section.split("."):
            raw = raw[part]
        del raw[key]
    with pytest.raises(SettingsError, match=rf"settings.yaml: {section}: missing key '{key}'"):
        load_settings(_write(tmp_path, drop), environ={})


@pytest.mark.parametrize("override", ["lots", "2.5", "1000001"])
def test_a_bad_batch_size_override_names_the_variable_and_the_key(override: str) -> None:
    with pytest.raises(SettingsError, match=r"processor.batch_size: RATING_BATCH_SIZE must be "
                                            rf"an integer in 1..1000000, got '{override}'"):
        load_settings(environ={"RATING_BATCH_SIZE": override})


def test_a_section_given_twice_is_refused_not_merged_away(tmp_path: Path) -> None:
    # yaml.safe_load kept the second `processor:` and dropped the first without a word.
    text = DEFAULT_SETTINGS_FILE.read_text() + "\nprocessor:\n  batch_size: 10\n"
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=r"settings.yaml: cannot read settings: line \d+, "
                                            r"column 1: the key 'processor' is given twice"):
        load_settings(path, environ={})


def test_unknown_instances_defaults_to_reject_and_takes_adopt(tmp_path: Path) -> None:
    assert load_settings(environ={}).processor.unknown_instances == "reject"
    adopt = _with(tmp_path, "processor.unknown_instances", "adopt")
    assert load_settings(adopt, environ={}).processor.unknown_instances == "adopt"
    with pytest.raises(SettingsError, match=r"settings.yaml: processor.unknown_instances "):
        load_settings(_with(tmp_path, "processor.unknown_instances", "bill"), environ={})


def test_dedup_memory_span_defaults_to_a_day_and_the_state_dir_to_none(tmp_path: Path) -> None:
    shipped = load_settings(environ={}).processor
    assert (shipped.dedup_memory_hours, shipped.state_dir) == (24, None)
    assert shipped.dedup_memory_span == timedelta(hours=24)
    given = load_settings(_with(tmp_path, "processor.state_dir", "/var/lib/rating"),
                          environ={"RATING_DEDUP_MEMORY_HOURS": "6"}).processor
    assert (given.dedup_memory_hours, given.state_dir) == (6, "/var/lib/rating")
    overridden = load_settings(environ={"RATING_STATE_DIR": str(tmp_path)}).processor
    assert overridden.state_dir == str(tmp_path)
    with pytest.raises(SettingsError, match=r"processor.dedup_memory_hours: "
                                            r"RATING_DEDUP_MEMORY_HOURS must be "):
        load_settings(environ={"RATING_DEDUP_MEMORY_HOURS": "0"})
    with pytest.raises(SettingsError, match=r"settings.yaml: processor.state_dir must be "):
        load_settings(_with(tmp_path, "processor.state_dir", ""), environ={})


def test_a_memory_span_as_long_as_the_window_keeps_every_id_in_memory(tmp_path: Path) -> None:
    window_long = load_settings(environ={"RATING_DEDUP_MEMORY_HOURS": str(35 * 24)}).processor
    assert window_long.dedup_memory_span is None
    just_shorter = load_settings(environ={"RATING_DEDUP_MEMORY_HOURS": str(35 * 24 - 1)})
    assert just_shorter.processor.dedup_memory_span == timedelta(hours=35 * 24 - 1)
