"""When the pytest-xdist controller provides the services (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import only_unit_tests

ROOT = Path(__file__).resolve().parents[2]


def _under_root(*paths: str) -> list[str]:
    return [str(ROOT / path) for path in paths]  # whatever directory pytest runs in


def test_unit_tests_alone_need_no_services() -> None:
    assert only_unit_tests(_under_root("tests/unit"))
    assert only_unit_tests(_under_root(
        "tests/unit/stream",
        "tests/unit/stream/test_loop.py::test_a_fatal_commit_error_stops_the_loop"))


def test_anything_else_does() -> None:
    assert not only_unit_tests([])  # pytest's default: the whole suite
    assert not only_unit_tests(_under_root("."))
    assert not only_unit_tests(_under_root("tests"))
    assert not only_unit_tests(_under_root("tests/unit", "tests/integration/test_exactly_once.py"))
    assert not only_unit_tests(_under_root("tests/unit_like_but_not"))
