"""Structured logs: one JSON object per line, context fields from ``extra=``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from stream.logs import LoggingConfigError, configure_logging, default_format


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_context_fields() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    logging.getLogger("stream.dead_letters").warning(
        "dead-letter %s", "NO_ACCOUNT",
        extra={"event_id": "e-1", "topic": "usage.events", "partition": 2, "offset": 41,
               "stage": "router", "reason": "NO_ACCOUNT"})
    logging.getLogger("x").debug("not at INFO")
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "stream.dead_letters"
    assert entry["message"] == "dead-letter NO_ACCOUNT"
    assert entry["timestamp"].endswith("Z")
    assert (entry["event_id"], entry["topic"], entry["partition"], entry["offset"]) == (
        "e-1", "usage.events", 2, 41)


def test_fields_not_given_are_left_out_and_exceptions_stay_on_one_line() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "json", out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("y").exception("failed")
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert "event_id" not in entry
    assert "RuntimeError: boom" in entry["exception"]


def test_text_format_and_default_by_terminal() -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", out)
    logging.getLogger("z").info("hello %s", "world")
    assert out.getvalue().rstrip().endswith("INFO z: hello world")
    assert default_format(io.StringIO()) == "json"


def test_bad_level_is_a_clear_error() -> None:
    with pytest.raises(LoggingConfigError, match="RATING_LOG_LEVEL"):
        configure_logging("LOUD", "json", io.StringIO())
