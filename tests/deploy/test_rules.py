"""Alert rules and the Grafana dashboard, checked against Prometheus and stream/metrics.py.

`promtool` comes with Debian's prometheus package, installed the way the local
stack installs Prometheus (stream.stack.downloads.debian_binary) when missing.
Dashboards and rules may only use metric names that stream/metrics.py defines,
so a renamed metric fails here instead of going blank in production.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from api import metrics as api_metrics
from sinks import runner as sink_metrics
from stream import metrics
from stream.stack.downloads import cache_dir, debian_binary
from stream.stack.prometheus import SCRAPE_JOB
from stream.stack.service import Context
from stream.stack.state import state_dir

ROOT = Path(__file__).resolve().parents[2]
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST_FILE = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "rating-dashboard.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
METRIC_NAME = re.compile(r"\brating_[a-z0-9_]+")
# Series names a metric of each type exposes, from its base name.
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created")}


@pytest.fixture(scope="module")
def promtool() -> str:
    ctx = Context(state_dir(), cache_dir(), quiet=True)
    return debian_binary(ctx, "promtool", "prometheus", "/usr/bin/promtool")


def _promtool(binary: str, *args: str) -> None:
    done = subprocess.run([binary, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def defined_series() -> set[str]:
    """Every series name stream/metrics.py, the sink runner and the REST API expose."""
    names: set[str] = set()
    for value in [*vars(metrics).values(), *vars(sink_metrics).values(),
                  *vars(api_metrics).values()]:
        if isinstance(value, MetricWrapperBase):
            for described in value.describe():
                names.update(described.name + suffix for suffix in SUFFIXES[described.type])
    return names


def _alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS_FILE.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _dashboard_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str | dict):
                query = value if isinstance(value, str) else value.get("query", "")
                if isinstance(query, str):
                    yield query
            else:
                yield from _dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_exprs(item)


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    _promtool(promtool, "check", "rules", str(ALERTS_FILE))


def test_every_alert_fires_in_the_promtool_rule_tests(promtool: str) -> None:
    """alerts.test.yml shows each rule firing on a synthetic series (and silent on a
    healthy one); a rule without a firing case is untested."""
    _promtool(promtool, "test", "rules", str(ALERTS_TEST_FILE))
    cases = yaml.safe_load(ALERTS_TEST_FILE.read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"]
             if check["exp_alerts"]}
    assert {rule["alert"] for rule in _alert_rules()} - fired == set()


def test_promtool_accepts_the_prometheus_config_with_its_rules(promtool: str) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    assert ALERTS_FILE.name in config.get("rule_files", [])
    _promtool(promtool, "check", "config", str(PROMETHEUS_FILE))


def test_the_metrics_module_defines_what_the_operations_issue_promised() -> None:
    series = defined_series()
    for name in ("rating_consumer_lag_records", "rating_end_to_end_seconds_bucket",
                 "rating_events_rated_total", "rating_events_dead_lettered_total",
                 "rating_amount_rated_total", "rating_transactions_total"):
        assert name in series, name


def test_alert_rules_use_only_defined_metrics_and_say_what_to_do() -> None:
    series = defined_series()
    rules = _alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "RatingConsumerLagGrowing", "RatingDeadLetterRateHigh", "RatingNoCommits",
        "RatingQuotaBlocksSpike", "RatingSinkStoreDown"}
    for rule in rules:
        used = set(METRIC_NAME.findall(rule["expr"]))
        assert used - series == set(), f"{rule['alert']}: unknown metrics {used - series}"
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule.get("for"), f"{rule['alert']}: fires on a single evaluation"
    jobs = re.findall(r'job="([^"]+)"', ALERTS_FILE.read_text())
    assert set(jobs) <= {SCRAPE_JOB}


def test_dashboard_parses_and_uses_only_defined_metrics() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    exprs = list(_dashboard_exprs(dashboard))
    assert len(panels) >= 6
    assert all(panel.get("targets") for panel in panels), "a panel without a query"
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    unknown = used - defined_series()
    assert unknown == set(), f"{DASHBOARD_FILE.name}: metrics not in stream/metrics.py: {unknown}"
    # What the operations issue asked the dashboard to show.
    for needed in ("rating_events_rated_total", "rating_consumer_lag_records",
                   "rating_end_to_end_seconds_bucket", "rating_events_dead_lettered_total",
                   "rating_quota_alerts_total", "rating_amount_rated_total"):
        assert needed in used, needed
    assert any("histogram_quantile" in expr for expr in exprs)
    assert any("by (provider" in expr for expr in exprs if "rating_amount_rated_total" in expr)
    job = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    assert job["query"] == SCRAPE_JOB


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "rating.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
