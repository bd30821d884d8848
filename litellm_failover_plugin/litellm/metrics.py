"""The plugin's Prometheus metrics: a hook (instrumentation.py) that updates prometheus_client
metrics in the default registry, the one LiteLLM's `prometheus` callback serves on /metrics.

    failover_attempts_total{route,backend,model,key,outcome}     counter
    failover_requests_total{route,result}                        counter
    failover_breaker_state{route,backend,model,key}              gauge: 0 closed, 1 half-open, 2 open
    failover_queue_length{route}                                 gauge
    failover_queue_wait_seconds{route}                           histogram
    failover_retry_budget_denied_total{route}                    counter
    failover_upstream_latency_seconds{route,backend,model,key,stream}  histogram (streams: first chunk)

Imported only when metrics are on (LiteLLM's prometheus callback, or failover_settings.metrics).
`key` is the key's name in failover_settings, never its value. With PROMETHEUS_MULTIPROC_DIR (as
LiteLLM uses it for several workers) the gauges add up (queues) or take the worst (breakers)
over live workers.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ..instrumentation import (
    AttemptMade,
    BreakerSeen,
    BudgetDenied,
    Event,
    QueueChanged,
    RequestDone,
    RoutesServed,
    UpstreamLatency,
)
from . import adapter

log = logging.getLogger("litellm_failover_plugin")

BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
DEPLOYMENT = ("route", "backend", "model", "key")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class PrometheusHook:
    """Updates the metrics from the runner's events; one per registry (a process has one)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.attempts = Counter(
            "failover_attempts", "Attempts of failover routes, by candidate and outcome", [*DEPLOYMENT, "outcome"], registry=r
        )
        self.requests = Counter("failover_requests", "Requests for failover routes, by result", ["route", "result"], registry=r)
        self.breaker = Gauge(
            "failover_breaker_state",
            "Circuit breaker of a route's deployment: 0 closed, 1 half-open, 2 open",
            DEPLOYMENT,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_length = Gauge(
            "failover_queue_length", "Requests waiting in a route's queue", ["route"], registry=r, multiprocess_mode="livesum"
        )
        self.queue_wait = Histogram(
            "failover_queue_wait_seconds", "Time requests spent in a route's queue", ["route"], registry=r, buckets=WAIT_BUCKETS
        )
        self.budget_denied = Counter(
            "failover_retry_budget_denied", "Extra upstream calls the retry budget refused", ["route"], registry=r
        )
        self.latency = Histogram(
            "failover_upstream_latency_seconds",
            "Successful upstream calls of failover routes: to the response, or to a stream's first chunk",
            [*DEPLOYMENT, "stream"],
            registry=r,
            buckets=LATENCY_BUCKETS,
        )

    def __call__(self, event: Event) -> None:
        match event:
            case AttemptMade(route, backend, model, key, outcome):
                self.attempts.labels(route, backend, model, key, outcome).inc()
            case RequestDone(route, result):
                self.requests.labels(route, result).inc()
            case BreakerSeen(route, backend, model, key, state):
                self.breaker.labels(route, backend, model, key).set(BREAKER_VALUE.get(state, 0))
            case QueueChanged(route, length, waited_s):
                self.queue_length.labels(route).set(length)
                if waited_s is not None:
                    self.queue_wait.labels(route).observe(waited_s)
            case BudgetDenied(route):
                self.budget_denied.labels(route).inc()
            case UpstreamLatency(route, backend, model, key, seconds, stream):
                self.latency.labels(route, backend, model, key, "true" if stream else "false").observe(seconds)
            case RoutesServed(routes, deployments):
                self.forget(routes, deployments)

    def forget(self, routes: frozenset[str], deployments: frozenset[tuple[str, str, str, str]]) -> None:
        """Remove the series of routes no longer served, and of deployments (route, backend,
        model, key) no longer in them: created and deleted routes must not pile up series."""
        by_route = (self.requests, self.queue_length, self.queue_wait, self.budget_denied)
        for metric in (*by_route, self.attempts, self.breaker, self.latency):
            names = metric._labelnames  # prometheus_client keeps no public list of a metric's children
            for values in _children(metric):
                labels = dict(zip(names, values, strict=True))
                deployment = tuple(labels.get(n, "") for n in DEPLOYMENT)
                if labels["route"] not in routes or (metric not in by_route and deployment not in deployments):
                    metric.remove(*values)


def _children(metric: Any) -> list[tuple[str, ...]]:
    """The label values of every series a labelled metric has (a copy: safe to remove from)."""
    with metric._lock:
        return list(metric._metrics)


@functools.cache
def process_hook() -> PrometheusHook:
    """The hook on the default registry: created once per process (a metric registers once)."""
    return PrometheusHook()


def serve_metrics() -> None:
    """GET /metrics on the proxy, unless something (LiteLLM's prometheus callback) serves it
    already. Like LiteLLM's own: the default registry, or the multiprocess files of
    PROMETHEUS_MULTIPROC_DIR, behind LiteLLM's metrics auth middleware where it has one."""
    from prometheus_client import make_asgi_app

    app, _ = adapter.proxy_app()
    if any(getattr(r, "path", None) == "/metrics" for r in app.routes):
        return
    registry: Any = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    app.mount("/metrics", make_asgi_app(registry))
    log.info("failover metrics: serving /metrics (failover_settings.metrics)")
