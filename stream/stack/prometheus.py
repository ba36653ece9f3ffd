"""Prometheus from the Debian package, scraping whatever targets.json lists.

Targets go through file-based service discovery so that processes started after
Prometheus (the rating app under `make run`) can be added without a restart:
Prometheus re-reads the file on change. The alert rules of
``deploy/prometheus/alerts.yml`` are loaded when the file is there (a checkout), so
the local Prometheus evaluates the same alerts as docker-compose's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from stream.stack import procs
from stream.stack.downloads import debian_binary
from stream.stack.ports import LOOPBACK, http_ok
from stream.stack.service import Context, PortPicker, Record, Service

SCRAPE_JOB = "usage-rating"
TARGETS_FILE = "targets.json"
ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def targets_file(state_dir: Path) -> Path:
    return state_dir / "prometheus" / TARGETS_FILE


def write_targets(path: Path, targets: Sequence[str], labels: dict[str, str] | None = None) -> None:
    """Replace the scrape targets (``host:port`` strings) atomically."""
    write_target_groups(path, [(targets, labels or {})])


def write_target_groups(path: Path,
                        groups: Sequence[tuple[Sequence[str], Mapping[str, str]]]) -> None:
    """Replace the scrape targets with ``groups`` of (``host:port`` strings, labels their
    series get), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": list(targets), "labels": dict(labels)}
                               for targets, labels in groups], indent=2))
    # Prometheus watches the file; a half-written one would be logged as an error.
    os.replace(tmp, path)


def prometheus_answers(url: str, timeout: float = 2.0) -> bool:
    return http_ok(f"{url}/-/ready", timeout)


class PrometheusService(Service):
    name: ClassVar[str] = "prometheus"
    env_key: ClassVar[str] = "PROMETHEUS_URL"
    ready_timeout: ClassVar[float] = 60.0

    def _binary(self, ctx: Context) -> str:
        return debian_binary(ctx, "prometheus", "prometheus", "/usr/bin/prometheus")

    def prepare(self, ctx: Context) -> None:
        self._binary(ctx)

    def launch(self, ctx: Context, port: int, pick_port: PortPicker) -> Record:
        home = ctx.data_dir(self.name)
        home.mkdir(parents=True, exist_ok=True)
        targets = targets_file(ctx.state_dir)
        if not targets.exists():
            write_targets(targets, [])
        config = home / "prometheus.yml"
        # JSON is valid YAML: no YAML writer needed.
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
                    "rule_files": [str(ALERT_RULES)] if ALERT_RULES.is_file() else [],
                    "scrape_configs": [
                        {
                            "job_name": SCRAPE_JOB,
                            "file_sd_configs": [
                                {"files": [str(targets)], "refresh_interval": "5s"}
                            ],
                        }
                    ],
                },
                indent=2,
            )
        )
        log_path = ctx.log_path(self.name)
        ref = procs.spawn(
            [
                self._binary(ctx),
                f"--config.file={config}",
                f"--web.listen-address={LOOPBACK}:{port}",
                f"--storage.tsdb.path={home / 'data'}",
            ],
            log_path=log_path,
            cwd=home,
        )
        return Record(
            component=self.name,
            pid=ref.pid,
            start_ticks=ref.start_ticks,
            port=port,
            endpoint=f"http://{LOOPBACK}:{port}",
            data_dir=str(home),
            log=str(log_path),
        )

    def probe(self, record: Record) -> bool:
        return prometheus_answers(record.endpoint)
