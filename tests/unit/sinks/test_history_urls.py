"""Billing-history URLs: in the settings (sinks.history_url) and when opening a store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sinks.history import HistoryError, open_history_store
from sinks.history.urls import redact, sqlite_path
from stream.settings import DEFAULT_SETTINGS_FILE, REPO_ROOT, SettingsError, load_settings


def _settings_file(tmp_path: Path, sinks: object) -> Path:
    raw = yaml.safe_load(DEFAULT_SETTINGS_FILE.read_text())
    if sinks is None:
        raw.pop("sinks", None)
    else:
        raw["sinks"] = sinks
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    path = project / "config" / "settings.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_default_is_an_sqlite_file_under_the_project_stack_folder() -> None:
    settings = load_settings(environ={})
    assert settings.sinks.history_url == f"sqlite:///{REPO_ROOT / '.stack/billing-history.db'}"


def test_relative_sqlite_paths_are_relative_to_the_project_root(tmp_path: Path) -> None:
    path = _settings_file(tmp_path, {"history_url": "sqlite:///data/h.db"})
    url = load_settings(path, environ={}).sinks.history_url
    assert url == f"sqlite:///{tmp_path / 'project' / 'data' / 'h.db'}"


def test_files_without_the_section_get_the_default(tmp_path: Path) -> None:
    path = _settings_file(tmp_path, None)
    url = load_settings(path, environ={}).sinks.history_url
    assert url == f"sqlite:///{tmp_path / 'project' / '.stack' / 'billing-history.db'}"


def test_the_environment_wins_and_other_urls_pass_unchanged(tmp_path: Path) -> None:
    path = _settings_file(tmp_path, {"history_url": "sqlite:///data/h.db"})
    dsn = "postgresql://rating:pw@db:5432/rating"
    assert load_settings(path, environ={"RATING_HISTORY_URL": dsn}).sinks.history_url == dsn
    memory = load_settings(path, environ={"RATING_HISTORY_URL": "sqlite:///:memory:"})
    assert memory.sinks.history_url == "sqlite:///:memory:"


def test_a_bad_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="'sinks' must be a mapping"):
        load_settings(_settings_file(tmp_path, ["x"]), environ={})


def test_sqlite_urls(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///rel/h.db", tmp_path) == str(tmp_path / "rel" / "h.db")
    assert sqlite_path("sqlite:////abs/h.db", tmp_path) == "/abs/h.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(HistoryError, match="names no file"):
        sqlite_path("sqlite:///")


def test_unknown_urls_are_refused_without_showing_passwords() -> None:
    with pytest.raises(HistoryError, match=r"unknown billing-history URL 'mysql://u:\*\*\*@h/d'"):
        open_history_store("mysql://u:secret@h/d")
    assert redact("postgresql://u:secret@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"


def test_relative_store_urls_open_relative_to_the_base_folder(tmp_path: Path) -> None:
    store = open_history_store("sqlite:///sub/h.db", tmp_path)
    store.close()
    assert (tmp_path / "sub" / "h.db").is_file()
