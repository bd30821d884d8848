"""`litellm --num_workers 2`. Without Redis each worker warns at start-up that breaker state is
its own, and the status view says which worker (pid) answered. With Redis both workers share one
breaker per key, and LiteLLM's own cooldowns (in each worker's memory, or in Redis too) never
re-open a breaker that a probe closed: a dead primary costs THRESHOLD failed calls plus one per
failed probe, and it recovers once."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
WARNING = "worker processes (--num_workers) and no Redis: breaker state, stats and queues are per worker"


def config(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {"alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": "sk-workers-a1"}}},
            "routes": {"chat": {"policy": "k", "elements": ["alpha:gpt-x"]}},
        },
    }


def test_workers_without_redis_warn_and_status_names_the_worker(upstream: FakeUpstream, tmp_path: Path) -> None:
    with ProxyProcess(config(upstream), workers=2) as proxy:
        pids = set()
        for _ in range(20):  # a new connection each time: either worker may answer
            with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=30) as client:
                body = client.get("/failover/status").json()
            assert isinstance(body["worker"], int) and [r["key"] for r in body["deployments"]] == ["a1"]
            pids.add(body["worker"])
        deadline = time.monotonic() + 20  # both workers are up once both answered or the time ran out
        while proxy.log_text().count(WARNING) < len(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        log = proxy.log_text()
    assert 1 <= log.count(WARNING) <= 2, "once per worker, at start-up"
    assert all(f"worker pid {pid}" in log for pid in pids), "each worker that answered had warned"
    assert "sk-workers" not in log


def test_one_worker_does_not_warn(upstream: FakeUpstream) -> None:
    with ProxyProcess(config(upstream)) as proxy:
        with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=30) as client:
            assert isinstance(client.get("/failover/status").json()["worker"], int)
        assert WARNING not in proxy.log_text()


# --- with Redis: two workers share one breaker, and LiteLLM's own cooldowns never fight it ------

THRESHOLD = 2
LITELLM_COOLDOWN_S = 30  # LiteLLM's cooldown outlasts the breaker's (1 s) by far: a stale one would show
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
NEW_CONNECTION = {"Connection": "close"}  # each request a new connection: either worker may take it
OPENED = "closed -> open"
CLOSED = "-> closed"
PROBE_FAILED = "half_open -> open"


def shared_config(primary: FakeUpstream, backup: FakeUpstream, server: RedisServer, litellm_redis: bool) -> dict[str, Any]:
    # LiteLLM cools a deployment down in a worker at its THRESHOLD-th failure there (allowed_fails),
    # never before the breaker opens: each failed probe then leaves a LiteLLM cooldown in the
    # worker that made it
    router: dict[str, Any] = {"allowed_fails": THRESHOLD - 1, "cooldown_time": LITELLM_COOLDOWN_S}
    failover: dict[str, Any] = {
        "breaker": {"failure_threshold": THRESHOLD, "cooldown_s": 1, "cooldown_multiplier": 1, "probe_timeout_s": 10},
        "backends": {
            "primary": {"provider": "openai", "api_base": primary.url, "api_keys": {"p1": "sk-workers-p1"}},
            "backup": {"provider": "openai", "api_base": backup.url, "api_keys": {"b1": "sk-workers-b1"}},
        },
        "routes": {"chat": {"policy": "m", "elements": ["primary:model", "backup:model"]}},
    }
    if litellm_redis:  # LiteLLM's cooldown cache in Redis too; the plugin takes the same Redis
        router.update(redis_host="127.0.0.1", redis_port=server.port)
    else:
        failover["redis_url"] = server.url
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "router_settings": router,
        "failover_settings": failover,
    }


def chat(client: httpx.Client) -> str:
    r = client.post("/v1/chat/completions", json=BODY, headers=NEW_CONNECTION)
    assert r.status_code == 200, r.text
    return r.headers["x-failover-backend"]


def primary_row(client: httpx.Client, seen: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The primary's row in the status view of the worker that answered, also kept in `seen` by
    worker pid."""
    body = client.get("/failover/status", headers=NEW_CONNECTION).json()
    row: dict[str, Any] = next(r for r in body["deployments"] if r["backend"] == "primary")
    seen[body["worker"]] = row
    return row


def until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not after {timeout_s}s: {what}"


def count(log: str, what: str) -> int:
    return sum(1 for line in log.splitlines() if "failover breaker key=primary:model/p1" in line and what in line)


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server


@pytest.mark.parametrize("litellm_redis", [False, True], ids=["plugin-redis", "litellm-redis-too"])
def test_two_workers_share_the_breaker_and_recover_once(
    upstreams: tuple[FakeUpstream, FakeUpstream], fresh_redis: RedisServer, litellm_redis: bool
) -> None:
    primary, backup = upstreams
    primary.reset()
    backup.reset()
    with (
        ProxyProcess(shared_config(primary, backup, fresh_redis, litellm_redis), workers=2) as proxy,
        httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=30) as client,
    ):
        up: dict[int, dict[str, Any]] = {}
        until(lambda: bool(primary_row(client, up)) and len(up) == 2, 60, "both workers answer")

        # the primary dies: THRESHOLD failed calls in all open its one breaker (one request at a time)
        primary.set(Behavior(503))
        until(lambda: chat(client) == "backup" and primary_row(client, {})["state"] != "closed", 30, "the breaker opens")
        assert len(primary.received) == THRESHOLD
        assert count(proxy.log_text(), OPENED) == 1

        # the outage goes on; half-open probes fail (one call each, in whichever worker takes the
        # probe) until both workers hold a LiteLLM cooldown of the primary
        views: dict[int, dict[str, Any]] = {}

        def both_cooling() -> bool:
            assert chat(client) == "backup"
            primary_row(client, views)
            return len(views) == 2 and all(row["litellm_cooldown"] for row in views.values())

        until(both_cooling, 30, "both workers have the primary in a LiteLLM cooldown")
        log = proxy.log_text()
        failed_calls, probes = len(primary.received), count(log, PROBE_FAILED)
        assert count(log, OPENED) == 1, "opened once: failed probes re-open it, nothing else"
        assert len(primary.received) == THRESHOLD + count(log, PROBE_FAILED), "after the threshold, only probes"

        # the primary is back: the next probe closes the breaker, once, for both workers
        primary.reset()
        until(lambda: chat(client) == "primary", 10, "a probe closes the breaker")
        served = [chat(client) for _ in range(40)]  # a few seconds of traffic through both workers
        after: dict[int, dict[str, Any]] = {}
        until(lambda: bool(primary_row(client, after)) and len(after) == 2, 30, "both workers answer")
        log = proxy.log_text()
    transitions = "\n".join(line for line in log.splitlines() if "failover breaker key=primary" in line)
    assert served == ["primary"] * len(served), f"stays closed: no worker re-opens it from a stale LiteLLM cooldown\n{transitions}"
    assert count(log, CLOSED) == 1 and count(log, OPENED) == 1, f"recovered once, no flapping\n{transitions}"
    for row in after.values():  # each worker served the primary again, and holds no cooldown of it
        assert row["state"] == "closed" and not row["litellm_cooldown"] and row["latency_ms"] is not None
    print(f"failed calls to the dead primary: {failed_calls} ({THRESHOLD} + {probes} failed probes); opened 1, closed 1")
    assert "sk-workers" not in log
