from __future__ import annotations

from pathlib import Path

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
