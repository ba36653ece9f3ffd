"""Local stack manager: Kafka, a schema registry, Redis (and optionally
PostgreSQL and Prometheus) as plain processes on 127.0.0.1, no Docker.

Used by `make up/run/test`, the test fixtures and `rating stack ...`::

    endpoints = up()                  # idempotent; writes .stack/env
    endpoints = resolve_endpoints()   # env vars win over .stack/env
    status(); down()

Nothing is persisted: each start gets fresh data dirs, the registry keeps
schemas in memory, and down() deletes the data.
"""

from stream.stack.downloads import APICURIO_VERSION, KAFKA_VERSION, cache_dir
from stream.stack.endpoints import (
    ENV_KEYS,
    Endpoints,
    env_file,
    env_text,
    read_env_file,
    resolve_endpoints,
)
from stream.stack.errors import StackError
from stream.stack.manager import (
    COMPONENTS,
    DEFAULT_COMPONENTS,
    ComponentStatus,
    down,
    is_running,
    status,
    status_lines,
    up,
)
from stream.stack.prometheus import targets_file, write_target_groups, write_targets
from stream.stack.provision import provide_endpoints
from stream.stack.state import state_dir

__all__ = [
    "APICURIO_VERSION",
    "COMPONENTS",
    "DEFAULT_COMPONENTS",
    "ENV_KEYS",
    "KAFKA_VERSION",
    "ComponentStatus",
    "Endpoints",
    "StackError",
    "cache_dir",
    "down",
    "env_file",
    "env_text",
    "is_running",
    "provide_endpoints",
    "read_env_file",
    "resolve_endpoints",
    "state_dir",
    "status",
    "status_lines",
    "targets_file",
    "up",
    "write_target_groups",
    "write_targets",
]
