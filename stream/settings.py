"""Typed settings, read once at start-up from a YAML file plus environment overrides."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from processors.errors import RatingError
from stream.strict_yaml import load_yaml, yaml_error_text

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_settings_file() -> Path:
    """$RATING_SETTINGS, else ./config/settings.yaml, else the one in this source tree."""
    explicit = os.environ.get("RATING_SETTINGS")
    if explicit:
        return Path(explicit)
    here = Path.cwd() / "config" / "settings.yaml"
    return here if here.is_file() else REPO_ROOT / "config" / "settings.yaml"


DEFAULT_SETTINGS_FILE = default_settings_file()
TOPIC_ROLES = ("events", "by_account", "rated", "rejected", "dlq", "late", "quota_alerts",
               "catalog", "changelog", "subscriptions", "subscriptions_changelog", "licence_runs")


class SettingsError(RatingError):
    """The settings file or an override is wrong; the message names which and where."""


@dataclass(frozen=True)
class IntRange:
    """The integers a setting may take: ``low`` up to ``high`` (None: no limit), or ``also``."""

    low: int
    high: int | None = None
    also: int | None = None  # one value outside the bounds with a meaning of its own

    def __contains__(self, value: int) -> bool:
        within = self.low <= value and (self.high is None or value <= self.high)
        return within or value == self.also

    def describe(self) -> str:
        bounds = f"in {self.low}..{self.high}" if self.high is not None else f">= {self.low}"
        within = f"an integer {bounds}"
        return within if self.also is None else f"{self.also} or {within}"


# What each number may be, and why; anything else is refused at start-up, naming the key.
PARTITIONS = IntRange(1)
KEEP_FOREVER = -1  # retention_hours: Kafka's retention.ms -1
RETENTION_HOURS = IntRange(1, also=KEEP_FOREVER)  # 0 would delete every record at once
# confluent-kafka's consume() takes at most 1,000,000 messages a call.
BATCH_SIZE = IntRange(1, 1_000_000)
# How long consume() waits to fill a batch. It must be > 0: 0 spins on an idle topic, and
# finite: infinity never returns. The loop sees a stop only between batches and /healthz
# reports a loop idle for 60 s as stuck, so seconds at most; more is milliseconds misread.
MAX_BATCH_TIMEOUT_S = 10.0
# librdkafka refuses less than 1 s; the broker refuses more than its
# transaction.max.timeout.ms (15 min by default) at init_transactions. A restore waits this
# long and a minute more for a crashed owner's open transaction to be aborted
# (stream/state_store.py, undecided_timeout_s).
TRANSACTION_TIMEOUT_MS = IntRange(1_000, 900_000)
# 0 parks every out-of-order event as late, a negative window every event. The window's
# ids are held in memory (README, Known limits): more than a year is a unit mistake.
DEDUP_WINDOW_DAYS = IntRange(1, 366)
# The ids of the last this many hours of event time stay in memory, older ones go to a
# file in state_dir (stream/seen_ids_on_disk.py); a span as long as the window or longer
# keeps them all in memory.
DEDUP_MEMORY_HOURS = IntRange(1, 366 * 24)
DEFAULT_DEDUP_MEMORY_HOURS = 24
PORT = IntRange(0, 65_535)  # 0: any free port
PAGE_LIMIT = IntRange(1)  # and page_limit <= max_page_limit

TOP_LEVEL_KEYS = ("topics", "processor", "catalog_dir", "workload_file", "log_level", "sinks",
                  "api")
TOPIC_SPEC_KEYS = ("name", "partitions", "cleanup", "retention_hours")
PROCESSOR_KEYS = ("group_id", "batch_size", "batch_timeout_s", "transaction_timeout_ms",
                  "dedup_window_days", "no_agreement", "unknown_instances",
                  "dedup_memory_hours", "state_dir")
OPTIONAL_PROCESSOR_KEYS = ("no_agreement", "unknown_instances", "dedup_memory_hours",
                           "state_dir")
SINKS_KEYS = ("history_url",)
API_KEYS = ("host", "port", "tokens_file", "page_limit", "max_page_limit")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    cleanup: str  # "delete" | "compact"
    retention_hours: int  # -1 keeps forever


@dataclass(frozen=True)
class Topics:
    events: TopicSpec
    by_account: TopicSpec
    rated: TopicSpec
    rejected: TopicSpec
    dlq: TopicSpec
    late: TopicSpec
    quota_alerts: TopicSpec
    catalog: TopicSpec
    changelog: TopicSpec
    subscriptions: TopicSpec  # licence changes and billing-run requests (docs/licences.md)
    subscriptions_changelog: TopicSpec
    licence_runs: TopicSpec  # one report per billing run and partition

    def all(self) -> list[TopicSpec]:
        return [getattr(self, role) for role in TOPIC_ROLES]

    def with_suffix(self, suffix: str) -> Topics:
        """Every topic renamed ``<name><suffix>``: isolates test runs on one broker."""
        renamed = {role: replace(getattr(self, role), name=getattr(self, role).name + suffix)
                   for role in TOPIC_ROLES}
        return Topics(**renamed)


@dataclass(frozen=True)
class ProcessorSettings:
    group_id: str
    batch_size: int
    batch_timeout_s: float
    transaction_timeout_ms: int
    dedup_window_days: int
    no_agreement: str  # "allow" | "reject"
    unknown_instances: str = "reject"  # "reject" | "adopt" (processors/quota/model.py)
    dedup_memory_hours: int = DEFAULT_DEDUP_MEMORY_HOURS
    state_dir: str | None = None  # None: the system's temporary directory

    @property
    def dedup_memory_span(self) -> timedelta | None:
        """How much event time of seen ids memory holds; None: the whole window."""
        span = timedelta(hours=self.dedup_memory_hours)
        return span if span < timedelta(days=self.dedup_window_days) else None


@dataclass(frozen=True)
class Connections:
    kafka_bootstrap: str
    schema_registry_url: str
    redis_url: str


DEFAULT_HISTORY_URL = "sqlite:///.stack/billing-history.db"  # relative to the project root


@dataclass(frozen=True)
class SinkSettings:
    # Billing history store (sinks/history/urls.py): sqlite:///PATH (a relative PATH is
    # resolved against the project root here) or postgresql://...; RATING_HISTORY_URL wins.
    history_url: str = f"sqlite:///{REPO_ROOT / '.stack' / 'billing-history.db'}"


@dataclass(frozen=True)
class ApiSettings:
    """The REST API (`rating api`, api/): where it listens, its tokens, page sizes."""

    host: str = "127.0.0.1"
    port: int = 8080
    tokens_file: Path = REPO_ROOT / "config" / "api-tokens.yaml"  # RATING_API_TOKENS_FILE wins
    page_limit: int = 100  # history rows per page by default
    max_page_limit: int = 1000


@dataclass(frozen=True)
class Settings:
    topics: Topics
    processor: ProcessorSettings
    catalog_dir: Path
    workload_file: Path
    log_level: str
    sinks: SinkSettings = field(default_factory=SinkSettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    def with_topic_suffix(self, suffix: str) -> Settings:
        return replace(self, topics=self.topics.with_suffix(suffix))


def load_settings(path: Path = DEFAULT_SETTINGS_FILE,
                  environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError) as exc:  # ValueError: not UTF-8
        raise SettingsError(f"{path}: cannot read settings: {yaml_error_text(exc)}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    top = _Section.read(path, "", raw, TOP_LEVEL_KEYS, required=("topics", "processor"))
    settings = Settings(
        topics=_topics(raw["topics"], path),
        processor=_processor(raw["processor"], path, env),
        catalog_dir=_resolve(path, top.text("catalog_dir", "config/catalog")),
        workload_file=_resolve(path, top.text("workload_file", "config/workload.yaml")),
        log_level=env.get("RATING_LOG_LEVEL", top.text("log_level", "INFO")).upper(),
        sinks=_sinks(raw.get("sinks"), path, env),
        api=_api(raw.get("api"), path, env),
    )
    suffix = env.get("RATING_TOPIC_SUFFIX", "")
    return settings.with_topic_suffix(suffix) if suffix else settings


@dataclass(frozen=True)
class _Section:
    """One mapping of the settings file whose keys were checked: its errors name the file,
    the section and the key, and each value is converted on its own."""

    path: Path
    name: str  # "processor", "topics.dlq"; "" at the top level
    values: Mapping[Any, Any]

    @classmethod
    def read(cls, path: Path, name: str, raw: Any, known: Collection[str],
             required: Collection[str] = ()) -> _Section:
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: '{name}' must be a mapping")
        place = name or "top level"
        # A misspelt key would leave its setting at the default without a word.
        unknown = [key for key in raw if key not in known]
        if unknown:
            listed = ", ".join(repr(key) for key in unknown)
            raise SettingsError(f"{path}: {place}: unknown key{'s' if len(unknown) > 1 else ''} "
                                f"{listed} (known: {', '.join(sorted(known))})")
        missing = [key for key in required if key not in raw]
        if missing:
            raise SettingsError(f"{path}: {place}: missing key {missing[0]!r}")
        return cls(path, name, raw)

    def key(self, key: str) -> str:
        """``file: section.key``, how errors name a value."""
        return f"{self.path}: {self.name}.{key}" if self.name else f"{self.path}: {key}"

    def _get(self, key: str, default: object) -> object:
        value = self.values.get(key, default)
        if value is None:
            raise SettingsError(f"{self.key(key)} is missing or empty")
        return value

    def integer(self, key: str, allowed: IntRange, default: int | None = None) -> int:
        """A YAML integer: not 2.9, "2" or true (bool is an int to Python)."""
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise SettingsError(f"{self.key(key)} must be {allowed.describe()}, got {value!r}")
        return value

    def seconds(self, key: str, maximum: float) -> float:
        """A YAML number of seconds, > 0 and <= ``maximum`` (so neither NaN nor infinity)."""
        value = self._get(key, None)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not 0 < value <= maximum):
            raise SettingsError(f"{self.key(key)} must be a number of seconds > 0 and "
                                f"<= {maximum:g}, got {value!r}")
        return float(value)

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value:
            raise SettingsError(f"{self.key(key)} must be a non-empty string, got {value!r}")
        return value

    def choice(self, key: str, options: Collection[str], default: str | None = None) -> str:
        value = self._get(key, default)
        if value not in options:
            quoted = " or ".join(repr(option) for option in options)
            raise SettingsError(f"{self.key(key)} must be {quoted}, got {value!r}")
        return str(value)


def _env_integer(env: Mapping[str, str], variable: str, section: _Section, key: str,
                 allowed: IntRange, default: int | None = None) -> int:
    """``section.key``, overridden by the environment variable when it is set."""
    in_file = section.integer(key, allowed, default)  # checked even when overridden
    text = env.get(variable)
    if not text:
        return in_file
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value not in allowed:
        raise SettingsError(f"{section.key(key)}: {variable} must be {allowed.describe()}, "
                            f"got {text!r}")
    return value


def _resolve(settings_file: Path, value: str) -> Path:
    candidate = Path(value)
    if candidate.is_absolute():
        return candidate
    # Relative paths are relative to the folder that holds config/ (the project root),
    # wherever the project is installed or mounted.
    return (settings_file.resolve().parent.parent / candidate).resolve()


def _sinks(raw: Any, path: Path, env: dict[str, str]) -> SinkSettings:
    """The optional ``sinks`` section; a relative sqlite path is relative to the project root."""
    section = _Section.read(path, "sinks", {} if raw is None else raw, SINKS_KEYS)
    url = str(env.get("RATING_HISTORY_URL") or section.values.get("history_url")
              or DEFAULT_HISTORY_URL)
    sqlite_prefix = "sqlite:///"
    if url.startswith(sqlite_prefix) and url != "sqlite:///:memory:":
        file = url[len(sqlite_prefix):]
        if not file:
            raise SettingsError(f"{path}: sinks.history_url {url!r} names no file")
        url = sqlite_prefix + str(_resolve(path, file))
    return SinkSettings(history_url=url)


def _api(raw: Any, path: Path, env: dict[str, str]) -> ApiSettings:
    """The optional ``api`` section; a relative tokens_file is relative to the project root."""
    section = _Section.read(path, "api", {} if raw is None else raw, API_KEYS)
    default = ApiSettings()
    tokens = env.get("RATING_API_TOKENS_FILE") or section.values.get("tokens_file")
    api = ApiSettings(
        host=section.text("host", default.host),
        port=section.integer("port", PORT, default.port),
        tokens_file=_resolve(path, str(tokens)) if tokens else default.tokens_file,
        page_limit=section.integer("page_limit", PAGE_LIMIT, default.page_limit),
        max_page_limit=section.integer("max_page_limit", PAGE_LIMIT, default.max_page_limit))
    if api.page_limit > api.max_page_limit:
        raise SettingsError(f"{section.key('page_limit')} must be <= api.max_page_limit "
                            f"({api.max_page_limit}), got {api.page_limit}")
    return api


def _topics(raw: Any, path: Path) -> Topics:
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: 'topics' must be a mapping of role -> topic spec")
    # Keyed by role, but the roles are fixed (TOPIC_ROLES): none is open-ended.
    missing = [role for role in TOPIC_ROLES if role not in raw]
    unknown = [role for role in raw if role not in TOPIC_ROLES]
    if missing or unknown:
        raise SettingsError(f"{path}: topics: missing roles {missing}, unknown roles {unknown}")
    specs = {role: _topic_spec(raw[role], path, role) for role in TOPIC_ROLES}
    if specs["changelog"].partitions != specs["by_account"].partitions:
        # State for input partition p lives in changelog partition p.
        raise SettingsError(f"{path}: topics.changelog must have as many partitions as "
                            "topics.by_account")
    if specs["subscriptions_changelog"].partitions != specs["subscriptions"].partitions:
        raise SettingsError(f"{path}: topics.subscriptions_changelog must have as many "
                            "partitions as topics.subscriptions")
    return Topics(**specs)


def _topic_spec(raw: Any, path: Path, role: str) -> TopicSpec:
    spec = _Section.read(path, f"topics.{role}", raw, TOPIC_SPEC_KEYS, required=TOPIC_SPEC_KEYS)
    return TopicSpec(name=spec.text("name"),
                     partitions=spec.integer("partitions", PARTITIONS),
                     cleanup=spec.choice("cleanup", ("delete", "compact")),
                     retention_hours=spec.integer("retention_hours", RETENTION_HOURS))


def _processor(raw: Any, path: Path, env: dict[str, str]) -> ProcessorSettings:
    # no_agreement defaults to allow, unknown_instances to reject
    required = [key for key in PROCESSOR_KEYS if key not in OPTIONAL_PROCESSOR_KEYS]
    section = _Section.read(path, "processor", raw, PROCESSOR_KEYS, required)
    group_id = section.text("group_id")
    return ProcessorSettings(
        group_id=env.get("RATING_GROUP_ID", group_id),
        batch_size=_env_integer(env, "RATING_BATCH_SIZE", section, "batch_size", BATCH_SIZE),
        batch_timeout_s=section.seconds("batch_timeout_s", MAX_BATCH_TIMEOUT_S),
        transaction_timeout_ms=section.integer("transaction_timeout_ms",
                                               TRANSACTION_TIMEOUT_MS),
        dedup_window_days=section.integer("dedup_window_days", DEDUP_WINDOW_DAYS),
        no_agreement=section.choice("no_agreement", ("allow", "reject"), "allow"),
        unknown_instances=section.choice("unknown_instances", ("reject", "adopt"), "reject"),
        dedup_memory_hours=_env_integer(env, "RATING_DEDUP_MEMORY_HOURS", section,
                                        "dedup_memory_hours", DEDUP_MEMORY_HOURS,
                                        DEFAULT_DEDUP_MEMORY_HOURS),
        state_dir=env.get("RATING_STATE_DIR") or (
            section.text("state_dir") if "state_dir" in section.values else None),
    )


KAFKA_ONLY = ("kafka", "registry")
WITH_REDIS = ("kafka", "registry", "redis")


def connections_from_env(environ: dict[str, str] | None = None,
                         needed: Collection[str] = KAFKA_ONLY) -> Connections:
    """Connection details: user's environment first, then the local stack's env file.

    ``needed``: the local stack's components the command uses (``WITH_REDIS`` for the
    Redis sinks and the REST API); one of them found dead is an error that says what to
    do. The others are not looked at: a dead Redis, Prometheus or PostgreSQL of the local
    stack stops no command that does not use it."""
    # local import: the stack is optional at runtime
    from stream.stack.endpoints import resolve_endpoints

    endpoints = resolve_endpoints(environ, needed=needed)
    return Connections(kafka_bootstrap=endpoints.kafka_bootstrap,
                       schema_registry_url=endpoints.schema_registry_url,
                       redis_url=endpoints.redis_url)
