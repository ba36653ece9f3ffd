"""Process logging: human text on a terminal, one JSON object per line otherwise.

JSON lines carry ``timestamp`` (UTC, ISO 8601 with milliseconds), ``level``,
``logger`` and ``message``, plus the context fields a call passes with
``extra=`` (``event_id``, ``topic``, ``partition``, ``offset``, ``stage``,
``reason``) when given. A record logged with an exception gets an ``exception``
field (the traceback as one string): still one line per record. Routine
rejections (dead letters) are logged without a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from processors.errors import RatingError

LOG_FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Context fields copied from ``extra=`` when present, in this order.
CONTEXT_FIELDS = ("event_id", "topic", "partition", "offset", "stage", "reason", "unlogged")
# Libraries that log every request at INFO: routine traffic stays quiet.
QUIET_LOGGERS = ("httpx", "httpx2")


class LoggingConfigError(RatingError):
    """An unknown log level or format."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def default_format(stream: TextIO) -> str:
    """``text`` on a terminal, ``json`` otherwise (containers, files, pipes)."""
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # closed or odd streams
        return "json"


def configure_logging(level: str | int = "INFO", log_format: str | None = None,
                      stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one on ``stream`` (default stderr)."""
    stream = stream or sys.stderr
    chosen = log_format or default_format(stream)
    if chosen not in LOG_FORMATS:
        raise LoggingConfigError(f"log format {chosen!r}: choose from {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(level))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    named = logging.getLevelNamesMapping().get(level.strip().upper())
    if named is None:
        raise LoggingConfigError(f"log level {level!r} (log_level in the settings or "
                                 "RATING_LOG_LEVEL): choose from DEBUG, INFO, WARNING, ERROR")
    return named
