"""The shipped Grafana dashboard queries only metrics the plugin exports, with their labels."""

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from litellm_failover_plugin.litellm.metrics import PrometheusHook

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana-dashboard.json"


def test_every_dashboard_query_names_an_exported_metric_and_label() -> None:
    registry = CollectorRegistry()
    hook = PrometheusHook(registry)
    labels = {
        "failover_attempts": hook.attempts,
        "failover_requests": hook.requests,
        "failover_breaker_state": hook.breaker,
        "failover_queue_length": hook.queue_length,
        "failover_queue_wait_seconds": hook.queue_wait,
        "failover_retry_budget_denied": hook.budget_denied,
        "failover_upstream_latency_seconds": hook.latency,
    }
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        for name in re.findall(r"failover_[a-z_]+", expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in labels, f"{name} in {expr!r} is not exported"
            known = set(labels[base]._labelnames) | {"le"}
            for label in re.findall(r"by \(([^)]*)\)", expr):
                assert {x.strip() for x in label.split(",")} <= known, expr
