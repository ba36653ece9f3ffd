"""Apicurio Registry: a Confluent-compatible schema registry that runs on Java 17.

Storage is Apicurio's default in-memory database: every schema registered is
lost when the process stops (``down`` or a crash). The Kafka data dir is reset
on each start for the same reason, so no topic outlives the schema ids in it.
"""

from __future__ import annotations

from typing import ClassVar

from stream.stack import procs
from stream.stack.downloads import apicurio_jar
from stream.stack.ports import LOOPBACK, http_ok
from stream.stack.service import Context, PortPicker, Record, Service, require_java

CCOMPAT_PATH = "/apis/ccompat/v7"


def registry_answers(url: str, timeout: float = 2.0) -> bool:
    """True when the Confluent-compatible API at ``url`` lists subjects."""
    return http_ok(f"{url}/subjects", timeout)


class RegistryService(Service):
    name: ClassVar[str] = "registry"
    env_key: ClassVar[str] = "SCHEMA_REGISTRY_URL"
    ready_timeout: ClassVar[float] = 90.0

    def prepare(self, ctx: Context) -> None:
        require_java()
        apicurio_jar(ctx)

    def launch(self, ctx: Context, port: int, pick_port: PortPicker) -> Record:
        java = require_java()
        jar = apicurio_jar(ctx)
        # Quarkus may open a management interface (default 9000, shared with
        # anything else on the machine); pin it to a free loopback port too.
        management_port = pick_port()
        home = ctx.data_dir(self.name)
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        log_path = ctx.log_path(self.name)
        ref = procs.spawn(
            [
                java,
                "-Xmx512m",
                f"-Djava.io.tmpdir={home / 'tmp'}",
                f"-Dquarkus.http.port={port}",
                f"-Dquarkus.http.host={LOOPBACK}",
                f"-Dquarkus.management.port={management_port}",
                f"-Dquarkus.management.host={LOOPBACK}",
                "-jar",
                str(jar),
            ],
            log_path=log_path,
            cwd=home,
        )
        return Record(
            component=self.name,
            pid=ref.pid,
            start_ticks=ref.start_ticks,
            port=port,
            endpoint=f"http://{LOOPBACK}:{port}{CCOMPAT_PATH}",
            data_dir=str(home),
            log=str(log_path),
            extra_ports={"management": management_port},
        )

    def probe(self, record: Record) -> bool:
        return registry_answers(record.endpoint)
