"""Apache Kafka in KRaft mode: one JVM that is both broker and controller."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path
from typing import ClassVar

from confluent_kafka.admin import AdminClient

from stream.stack import procs
from stream.stack.downloads import kafka_libs
from stream.stack.errors import StackError
from stream.stack.ports import LOOPBACK, accepts_connections
from stream.stack.service import Context, PortPicker, Record, Service, require_java

_HEAP = ["-Xms256m", "-Xmx1g"]
# The flags bin/kafka-run-class.sh uses; G1 with short pauses keeps latency
# measurements in bench/ comparable with a packaged Kafka.
_GC = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
# Per-request and per-partition chatter drowns the lines that explain a failure.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
"""


def _server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{LOOPBACK}:{controller_port}
listeners=PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}
advertised.listeners=PLAINTEXT://{LOOPBACK}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.partitions=3
# Topics are created on purpose (by the app or tests), never by a typo.
auto.create.topics.enable=false
# One broker: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# 50 partitions each (the default) make the first consumer group or
# transaction wait seconds on 2 cores; a single broker gains nothing from them.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
"""


def _cluster_id() -> str:
    # What `StorageTool random-uuid` prints, without starting a JVM for it. Like
    # Kafka's Uuid.randomUuid(), never start with "-": the CLI would read an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def bootstrap_answers(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a metadata request to ``bootstrap`` lists at least one broker."""
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # any failure means "not ready yet"
        return False
    return bool(metadata.brokers)


class KafkaService(Service):
    name: ClassVar[str] = "kafka"
    env_key: ClassVar[str] = "KAFKA_BOOTSTRAP_SERVERS"
    # Formatting plus broker start on 2 busy cores can take tens of seconds.
    ready_timeout: ClassVar[float] = 90.0

    def prepare(self, ctx: Context) -> None:
        require_java()
        kafka_libs(ctx)

    def launch(self, ctx: Context, port: int, pick_port: PortPicker) -> Record:
        java = require_java()
        libs = kafka_libs(ctx)
        controller_port = pick_port()
        home = ctx.data_dir(self.name)
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(_server_properties(port, controller_port, home / "data"))
        log4j = home / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        log_path = ctx.log_path(self.name)
        base = [
            java,
            *_HEAP,
            # zstd/snappy unpack native libraries here; keeps /tmp clean and
            # lets down() remove them with the data.
            f"-Djava.io.tmpdir={home / 'tmp'}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]
        # A fresh data dir every start: the registry keeps schemas in memory, so
        # old topics would hold schema ids that no longer resolve.
        fmt = subprocess.run(
            [*base, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(props)],
            check=False,
            cwd=home,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        if fmt.returncode != 0:
            lines = (fmt.stdout + fmt.stderr).strip().splitlines()[-procs.TAIL_LINES :]
            raise StackError(
                f"kafka: formatting the storage in {home / 'data'} failed "
                f"(exit {fmt.returncode}):\n" + "\n".join(lines)
            )
        ref = procs.spawn([*base, *_GC, "kafka.Kafka", str(props)], log_path=log_path, cwd=home)
        return Record(
            component=self.name,
            pid=ref.pid,
            start_ticks=ref.start_ticks,
            port=port,
            endpoint=f"{LOOPBACK}:{port}",
            data_dir=str(home),
            log=str(log_path),
            extra_ports={"controller": controller_port},
        )

    def probe(self, record: Record) -> bool:
        # A plain TCP check first: librdkafka would log "connection refused"
        # noise on stderr for every poll while the JVM is still booting.
        return accepts_connections(record.port) and bootstrap_answers(record.endpoint)
