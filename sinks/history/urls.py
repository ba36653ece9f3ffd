"""Store URLs: which backend and where (``open_history_store``).

- ``sqlite:///relative/path.db`` -- relative to ``base_dir`` (default: the
  current directory); ``sqlite:////abs/path.db`` -- absolute (four slashes);
  ``sqlite:///:memory:`` -- a private in-memory database (tests).
- ``postgresql://user:password@host:port/db?options=...`` (or ``postgres://``)
  -- a libpq URL, passed to psycopg as it is.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sinks.history.model import BillingHistoryStore, HistoryError

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")


def sqlite_path(url: str, base_dir: Path | None = None) -> str:
    """The file (or ``:memory:``) of a ``sqlite:///`` URL, absolute."""
    if not url.startswith(SQLITE_PREFIX):
        raise HistoryError(f"not an SQLite URL: {redact(url)!r} (expected sqlite:///PATH)")
    raw = url[len(SQLITE_PREFIX):]
    if not raw:
        raise HistoryError(f"SQLite URL {url!r} names no file")
    if raw == ":memory:":
        return raw
    path = Path(raw)
    return str(path if path.is_absolute() else (base_dir or Path.cwd()) / path)


def open_history_store(url: str, base_dir: Path | None = None, *,
                       must_exist: bool = False) -> BillingHistoryStore:
    """The store behind ``url``, its schema created if missing (idempotent).

    ``must_exist`` (readers: reports, the API): an SQLite file that does not exist
    is an error rather than a new, empty history -- a mistyped path must not give
    an empty report whose control check passes.

    Raises HistoryError for a URL of no known kind (or a missing file with
    ``must_exist``), HistoryStoreUnavailable when the database cannot be reached.
    """
    check_history_url(url)
    if urlsplit(url).scheme == "sqlite":
        from sinks.history.sqlite import SqliteHistoryStore

        path = sqlite_path(url, base_dir)
        if must_exist and path != ":memory:" and not Path(path).is_file():
            raise HistoryError(f"no billing history at {path}: check the URL, or start "
                               "`rating sink billing-history` to create it")
        return SqliteHistoryStore(path)
    from sinks.history.postgres import PostgresHistoryStore  # psycopg only when used

    return PostgresHistoryStore(url)


def check_history_url(url: str) -> None:
    """HistoryError unless ``url`` names a store of a known kind (connects to nothing)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        sqlite_path(url)
    elif scheme not in POSTGRES_SCHEMES:
        raise HistoryError(f"unknown billing-history URL {redact(url)!r}: use sqlite:///PATH, "
                           "sqlite:///:memory: or postgresql://USER@HOST:PORT/DB")


def redact(url: str) -> str:
    """``url`` without its password (safe for logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
