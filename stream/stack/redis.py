"""Redis from the Debian package, ephemeral: no RDB snapshots, no AOF."""

from __future__ import annotations

from typing import ClassVar

import redis as redis_client

from stream.stack import procs
from stream.stack.downloads import debian_binary
from stream.stack.ports import LOOPBACK
from stream.stack.service import Context, PortPicker, Record, Service


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        client = redis_client.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis_client.RedisError, OSError):
        return False


class RedisService(Service):
    name: ClassVar[str] = "redis"
    env_key: ClassVar[str] = "REDIS_URL"
    ready_timeout: ClassVar[float] = 20.0

    def _binary(self, ctx: Context) -> str:
        return debian_binary(ctx, "redis-server", "redis-server", "/usr/bin/redis-server")

    def prepare(self, ctx: Context) -> None:
        self._binary(ctx)

    def launch(self, ctx: Context, port: int, pick_port: PortPicker) -> Record:
        home = ctx.data_dir(self.name)
        home.mkdir(parents=True, exist_ok=True)
        log_path = ctx.log_path(self.name)
        ref = procs.spawn(
            [
                self._binary(ctx),
                "--port", str(port),
                "--bind", LOOPBACK,
                # State dies with the process: tests and `make run` start clean.
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", str(home),
                "--logfile", "",
            ],
            log_path=log_path,
            cwd=home,
        )  # fmt: skip
        return Record(
            component=self.name,
            pid=ref.pid,
            start_ticks=ref.start_ticks,
            port=port,
            endpoint=f"redis://{LOOPBACK}:{port}/0",
            data_dir=str(home),
            log=str(log_path),
        )

    def probe(self, record: Record) -> bool:
        return redis_answers(record.endpoint)
