"""Two real proxy replicas sharing breaker state through one real redis-server.

The primary answers 503 (so each call it gets is counted at the fake upstream). Once replica A
has opened the primary's breaker, replica B sends it nothing but the single shared half-open
probe; when the primary is back, both replicas return to it.
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
COOLDOWN_S = 3


def config(primary: FakeUpstream, backup: FakeUpstream, redis_url: str) -> dict[str, Any]:
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "router_settings": {"disable_cooldowns": True},  # the breaker alone decides here
        "failover_settings": {
            "redis_url": redis_url,
            "breaker": {"failure_threshold": 2, "cooldown_s": COOLDOWN_S, "probe_timeout_s": 10},
            "backends": {
                "primary": {"provider": "openai", "api_base": primary.url, "api_keys": {"p1": "sk-replica-p1"}},
                "backup": {"provider": "openai", "api_base": backup.url, "api_keys": {"b1": "sk-replica-b1"}},
            },
            "routes": {"chat": {"policy": "m", "elements": ["primary:model", "backup:model"]}},
        },
    }


@pytest.fixture(scope="module")
def replicas(
    upstreams: tuple[FakeUpstream, FakeUpstream], redis_server: RedisServer
) -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    cfg = config(*upstreams, redis_server.url)
    with ProxyProcess(cfg) as a, ProxyProcess(cfg) as b:
        yield a, b
        logs = a.log_text() + b.log_text()
    assert "sk-replica" not in logs, "an API key reached a proxy log"


def backend(client: httpx.Client) -> str:
    r = client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, r.text
    return r.headers["x-failover-backend"]


def breaker_state(client: httpx.Client) -> str:
    rows = client.get("/failover/status").json()["deployments"]
    return next(r["state"] for r in rows if r["backend"] == "primary")


def test_replica_b_honours_the_breaker_replica_a_opened(
    replicas: tuple[ProxyProcess, ProxyProcess], upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, _backup = upstreams
    a_proxy, b_proxy = replicas
    with (
        httpx.Client(base_url=a_proxy.url, headers=a_proxy.headers, timeout=30) as a,
        httpx.Client(base_url=b_proxy.url, headers=b_proxy.headers, timeout=30) as b,
    ):
        assert backend(a) == "primary" and backend(b) == "primary"
        assert breaker_state(a) == breaker_state(b) == "closed"

        primary.set(Behavior(503))
        assert [backend(a) for _ in range(2)] == ["backup", "backup"]  # two failures: open
        assert breaker_state(a) == "open"
        assert breaker_state(b) == "open"  # B reads the same state from Redis

        primary.reset()
        primary.set(Behavior(503))
        assert [backend(b) for _ in range(10)] == ["backup"] * 10
        assert [backend(a) for _ in range(10)] == ["backup"] * 10
        assert len(primary.received) == 0  # after the breaker opened, neither replica called it

        primary.reset()  # the primary is back (slowly); let the cooldown run out
        primary.set(Behavior(delay_s=1.0))
        time.sleep(COOLDOWN_S + 0.5)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:  # both replicas at once, while the probe is in flight
            served = list(pool.map(backend, [a, b] * 4))
        assert len(primary.received) == 1  # one half-open probe for both replicas
        assert sorted(served) == ["backup"] * 7 + ["primary"]
        primary.reset()
        assert [backend(a), backend(b)] == ["primary", "primary"]  # both back on the primary
        recovered_s = time.monotonic() - t0
        assert breaker_state(a) == breaker_state(b) == "closed"
        print(f"recovery after the cooldown: {recovered_s:.2f}s; calls to the dead primary after open: 0 (A), 0 (B)")


def test_redis_down_keeps_serving_and_warns_once(
    replicas: tuple[ProxyProcess, ProxyProcess],
    upstreams: tuple[FakeUpstream, FakeUpstream],
    redis_server: RedisServer,
) -> None:
    primary, _ = upstreams
    a_proxy, _ = replicas
    primary.reset()
    redis_server.stop()
    try:
        with httpx.Client(base_url=a_proxy.url, headers=a_proxy.headers, timeout=30) as a:
            assert [backend(a) for _ in range(5)] == ["primary"] * 5
            primary.set(Behavior(503))
            assert [backend(a) for _ in range(5)] == ["backup"] * 5  # the local breaker still works
            assert a.get("/failover/status").json()["store"] == "redis (down: local state)"
    finally:
        redis_server.start()
    log = a_proxy.log_text()
    assert log.count("failover state store redis unreachable") == 1  # the breakers' store: once per outage
    assert log.count("failover routes: route store unreachable") <= 1  # the route listener: at most once
    with httpx.Client(base_url=a_proxy.url, headers=a_proxy.headers, timeout=30) as a:
        # requests never wait on Redis while it is down: a background reconnect (at most every
        # 2 s) finds it back, then the replica serves from it again
        deadline = time.monotonic() + 10
        while True:
            backend(a)
            store = a.get("/failover/status").json()["store"]
            if store == "redis" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert store == "redis"
    assert "is back" in a_proxy.log_text()
    primary.reset()


def test_status_command_shows_both_views(
    replicas: tuple[ProxyProcess, ProxyProcess],
    upstreams: tuple[FakeUpstream, FakeUpstream],
    redis_server: RedisServer,
    tmp_path: Any,
) -> None:
    import subprocess
    import sys

    import yaml

    primary, _ = upstreams
    a_proxy, _ = replicas
    primary.set(Behavior(503))
    with httpx.Client(base_url=a_proxy.url, headers=a_proxy.headers, timeout=30) as a:
        for _ in range(2):
            backend(a)
    cmd = [sys.executable, "-m", "litellm_failover_plugin", "status"]
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    ask = [*cmd, "--proxy-url", a_proxy.url, "--api-key", a_proxy.master_key]
    out = subprocess.run(ask, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "chat/primary:model/p1" in out.stdout and "open" in out.stdout and "(state store: redis)" in out.stdout
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config(*upstreams, redis_server.url)))
    out = subprocess.run([*cmd, "--config", str(cfg)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "chat/primary:model/p1" in out.stdout and "open" in out.stdout
    assert "sk-replica" not in out.stdout + out.stderr
    primary.reset()
