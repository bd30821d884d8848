"""The runner's instrumentation events and the Prometheus hook, on a plain Router (fake upstream,
waits recorded, never slept)."""

import asyncio
from typing import Any

import litellm
import pytest
from prometheus_client import CollectorRegistry

from litellm_failover_plugin import FailoverExhausted, attach
from litellm_failover_plugin.config import HealthCheckSettings
from litellm_failover_plugin.instrumentation import (
    AttemptMade,
    BreakerSeen,
    BudgetDenied,
    Event,
    QueueChanged,
    RequestDone,
    UpstreamLatency,
)
from litellm_failover_plugin.litellm.health import HealthChecker
from litellm_failover_plugin.litellm.metrics import PrometheusHook
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]


def make(upstream: FakeUpstream, **extra: Any) -> tuple[litellm.Router, FailoverRunner, list[Event], CollectorRegistry]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    runner = attach(
        router,
        {
            "backends": backends(upstream, alpha=("a1", "a2"), beta=("b1",)),
            "routes": {"chat": {"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
            "breaker": {"failure_threshold": 1},
            **extra,
        },
    )
    events: list[Event] = []
    registry = CollectorRegistry()
    runner.hooks = (events.append, PrometheusHook(registry))

    async def sleep(s: float) -> None:
        pass

    runner.sleep = sleep
    return router, runner, events, registry


async def test_a_failover_tells_the_hooks_every_attempt_the_breakers_and_the_result(upstream: FakeUpstream) -> None:
    router, _runner, events, registry = make(upstream)
    upstream.set(**{"sk-a1": Behavior(500), "sk-a2": Behavior(503)})
    await router.acompletion(model="chat", messages=MESSAGES)

    attempts = [(e.key, e.outcome) for e in events if isinstance(e, AttemptMade)]
    assert attempts == [("a1", "failed_over"), ("a2", "failed_over"), ("b1", "success")]
    assert [e for e in events if isinstance(e, RequestDone)] == [RequestDone("chat", "success")]
    opened = {e.key for e in events if isinstance(e, BreakerSeen) and e.state == "open"}
    assert opened == {"a1", "a2"}
    (latency,) = [e for e in events if isinstance(e, UpstreamLatency)]
    assert latency.key == "b1" and latency.seconds >= 0 and not latency.stream

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    deployment = {"route": "chat", "backend": "alpha", "model": "gpt-x"}
    assert value("failover_attempts_total", **deployment, key="a1", outcome="failed_over") == 1.0
    assert value("failover_requests_total", route="chat", result="success") == 1.0
    assert value("failover_breaker_state", **deployment, key="a2") == 2.0

    # the next request reads the open breakers: skipped, and the gauges follow what it read
    upstream.reset()
    await router.acompletion(model="chat", messages=MESSAGES)
    assert value("failover_attempts_total", **deployment, key="a1", outcome="skipped_open") == 1.0
    assert value("failover_breaker_state", route="chat", backend="beta", model="gpt-y", key="b1") == 0.0
    labels = {"route": "chat", "backend": "beta", "model": "gpt-y", "key": "b1", "stream": "false"}
    assert value("failover_upstream_latency_seconds_count", **labels) == 2.0


async def test_exhausted_and_budget_denied_are_counted(upstream: FakeUpstream) -> None:
    router, _runner, events, registry = make(upstream, retry_budget={"ratio": 0, "min_per_s": 0, "ttl_s": 10})
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="chat", messages=MESSAGES)
    assert [e for e in events if isinstance(e, BudgetDenied)] == [BudgetDenied("chat")]
    assert registry.get_sample_value("failover_retry_budget_denied_total", {"route": "chat"}) == 1.0
    assert registry.get_sample_value("failover_requests_total", {"route": "chat", "result": "exhausted"}) == 1.0


async def test_a_hook_that_raises_never_fails_the_request(upstream: FakeUpstream) -> None:
    router, runner, _events, _registry = make(upstream)

    def broken(event: Event) -> None:
        raise RuntimeError("a broken hook")

    runner.hooks = (broken,)
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content


async def test_without_hooks_no_event_is_built(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    router, runner, _events, _registry = make(upstream)
    runner.hooks = ()

    def built(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an event was built with no hook")

    where = {"runner": (AttemptMade, RequestDone), "attempts": (UpstreamLatency,), "keyhealth": (BreakerSeen,)}
    for module, classes in where.items():  # each event class where it is built
        for cls in classes:
            monkeypatch.setattr(f"litellm_failover_plugin.litellm.{module}.{cls.__name__}", built)
    upstream.set(**{"sk-a1": Behavior(500)})
    await router.acompletion(model="chat", messages=MESSAGES)


async def test_a_queued_request_reports_the_queue_and_every_walk(upstream: FakeUpstream) -> None:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    runner = attach(
        router,
        {
            "backends": backends(upstream),
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
            "breaker": {"failure_threshold": 1, "cooldown_s": 60},
            "queue": {"max_size": 5, "max_wait_s": 10, "recheck_s": 0.1},
        },
    )
    events: list[Event] = []
    registry = CollectorRegistry()
    runner.hooks = (events.append, PrometheusHook(registry))
    upstream.set(Behavior(503))
    task = asyncio.create_task(router.acompletion(model="chat", messages=MESSAGES))
    for _ in range(500):  # until it waits in the queue
        if QueueChanged("chat", 1) in events:
            break
        await asyncio.sleep(0.02)
    assert registry.get_sample_value("failover_queue_length", {"route": "chat"}) == 1.0
    upstream.reset()
    await HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2)).tick()  # closes the breakers
    await asyncio.wait_for(task, 10)

    attempts = [(e.key, e.outcome) for e in events if isinstance(e, AttemptMade)]
    assert attempts[:2] == [("a1", "failed_over"), ("b1", "failed_over")]  # the walk before it queued
    assert attempts[-1] == ("a1", "success")
    left = [e for e in events if isinstance(e, QueueChanged) and e.waited_s is not None]
    assert len(left) == 1 and left[0].length == 0 and left[0].waited_s >= 0
    assert registry.get_sample_value("failover_queue_length", {"route": "chat"}) == 0.0
    assert registry.get_sample_value("failover_queue_wait_seconds_count", {"route": "chat"}) == 1.0


async def test_series_of_a_deleted_route_and_of_a_removed_key_go(upstream: FakeUpstream) -> None:
    """60 routes created and deleted at run time left 1,260 series behind."""
    from litellm_failover_plugin.config import parse_settings
    from litellm_failover_plugin.litellm.install import update

    router, runner, _events, registry = make(
        upstream, routes={"chat": {"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}, "gone": {"elements": ["beta:gpt-y"]}}
    )
    await router.acompletion(model="chat", messages=MESSAGES)
    await router.acompletion(model="gone", messages=MESSAGES)

    def series(route: str) -> int:
        return sum(1 for m in registry.collect() for s in m.samples if s.labels.get("route") == route)

    assert series("gone") > 0 and series("chat") > 0
    section = {
        "backends": backends(upstream, alpha=("a2",), beta=("b1",)),  # a1 removed from alpha
        "routes": {"chat": {"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},  # gone deleted
        "breaker": {"failure_threshold": 1},
    }
    update(router, runner, parse_settings(section))
    assert series("gone") == 0
    keys = {s.labels.get("key") for m in registry.collect() for s in m.samples if s.labels.get("route") == "chat"}
    assert "a1" not in keys
    assert registry.get_sample_value("failover_requests_total", {"route": "chat", "result": "success"}) == 1.0  # kept
