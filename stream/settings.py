"""Typed settings, read once at start-up from a YAML file plus environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from processors.errors import RatingError

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
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read settings: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    settings = Settings(
        topics=_topics(raw.get("topics"), path),
        processor=_processor(raw.get("processor"), path, env),
        catalog_dir=_resolve(path, str(raw.get("catalog_dir", "config/catalog"))),
        workload_file=_resolve(path, str(raw.get("workload_file", "config/workload.yaml"))),
        log_level=str(env.get("RATING_LOG_LEVEL", raw.get("log_level", "INFO"))).upper(),
        sinks=_sinks(raw.get("sinks"), path, env),
        api=_api(raw.get("api"), path, env),
    )
    suffix = env.get("RATING_TOPIC_SUFFIX", "")
    return settings.with_topic_suffix(suffix) if suffix else settings


def _resolve(settings_file: Path, value: str) -> Path:
    candidate = Path(value)
    if candidate.is_absolute():
        return candidate
    # Relative paths are relative to the folder that holds config/ (the project root),
    # wherever the project is installed or mounted.
    return (settings_file.resolve().parent.parent / candidate).resolve()


def _sinks(raw: Any, path: Path, env: dict[str, str]) -> SinkSettings:
    """The optional ``sinks`` section; a relative sqlite path is relative to the project root."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: 'sinks' must be a mapping")
    url = str(env.get("RATING_HISTORY_URL") or raw.get("history_url") or DEFAULT_HISTORY_URL)
    sqlite_prefix = "sqlite:///"
    if url.startswith(sqlite_prefix) and url != "sqlite:///:memory:":
        file = url[len(sqlite_prefix):]
        if not file:
            raise SettingsError(f"{path}: sinks.history_url {url!r} names no file")
        url = sqlite_prefix + str(_resolve(path, file))
    return SinkSettings(history_url=url)


def _api(raw: Any, path: Path, env: dict[str, str]) -> ApiSettings:
    """The optional ``api`` section; a relative tokens_file is relative to the project root."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: 'api' must be a mapping")
    default = ApiSettings()
    tokens = env.get("RATING_API_TOKENS_FILE") or raw.get("tokens_file")
    try:
        api = ApiSettings(
            host=str(raw.get("host", default.host)), port=int(raw.get("port", default.port)),
            tokens_file=_resolve(path, str(tokens)) if tokens else default.tokens_file,
            page_limit=int(raw.get("page_limit", default.page_limit)),
            max_page_limit=int(raw.get("max_page_limit", default.max_page_limit)))
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{path}: api: bad field: {exc}") from None
    if not 0 <= api.port < 65536 or not 1 <= api.page_limit <= api.max_page_limit:
        raise SettingsError(f"{path}: api: port must be 0-65535 and 1 <= page_limit <= "
                            f"max_page_limit, got {raw}")
    return api


def _topics(raw: Any, path: Path) -> Topics:
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: 'topics' must be a mapping of role -> topic spec")
    missing = [role for role in TOPIC_ROLES if role not in raw]
    unknown = [role for role in raw if role not in TOPIC_ROLES]
    if missing or unknown:
        raise SettingsError(f"{path}: topics: missing roles {missing}, unknown roles {unknown}")
    specs: dict[str, TopicSpec] = {}
    for role in TOPIC_ROLES:
        entry = raw[role]
        try:
            spec = TopicSpec(name=str(entry["name"]), partitions=int(entry["partitions"]),
                             cleanup=str(entry["cleanup"]),
                             retention_hours=int(entry["retention_hours"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"{path}: topics.{role}: bad or missing field {exc}") from None
        if spec.partitions < 1 or spec.cleanup not in ("delete", "compact"):
            raise SettingsError(f"{path}: topics.{role}: partitions must be >= 1 and cleanup "
                                f"'delete' or 'compact', got {entry}")
        specs[role] = spec
    if specs["changelog"].partitions != specs["by_account"].partitions:
        # State for input partition p lives in changelog partition p.
        raise SettingsError(f"{path}: topics.changelog must have as many partitions as "
                            "topics.by_account")
    if specs["subscriptions_changelog"].partitions != specs["subscriptions"].partitions:
        raise SettingsError(f"{path}: topics.subscriptions_changelog must have as many "
                            "partitions as topics.subscriptions")
    return Topics(**specs)


def _processor(raw: Any, path: Path, env: dict[str, str]) -> ProcessorSettings:
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: 'processor' must be a mapping")
    try:
        settings = ProcessorSettings(
            group_id=str(env.get("RATING_GROUP_ID", raw["group_id"])),
            batch_size=int(env.get("RATING_BATCH_SIZE") or raw["batch_size"]),
            batch_timeout_s=float(raw["batch_timeout_s"]),
            transaction_timeout_ms=int(raw["transaction_timeout_ms"]),
            dedup_window_days=int(raw["dedup_window_days"]),
            no_agreement=str(raw.get("no_agreement", "allow")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"{path}: processor: bad or missing field {exc}") from None
    if settings.no_agreement not in ("allow", "reject"):
        raise SettingsError(f"{path}: processor.no_agreement must be 'allow' or 'reject', "
                            f"got {settings.no_agreement!r}")
    if settings.batch_size < 1:
        raise SettingsError(f"{path}: processor.batch_size must be >= 1")
    return settings


def connections_from_env(environ: dict[str, str] | None = None) -> Connections:
    """Connection details: user's environment first, then the local stack's env file."""
    # local import: the stack is optional at runtime
    from stream.stack.endpoints import REQUIRED, resolve_endpoints

    # Kafka, the registry and Redis only: a dead Prometheus or PostgreSQL is not ours.
    endpoints = resolve_endpoints(environ, needed=REQUIRED)
    return Connections(kafka_bootstrap=endpoints.kafka_bootstrap,
                       schema_registry_url=endpoints.schema_registry_url,
                       redis_url=endpoints.redis_url)
