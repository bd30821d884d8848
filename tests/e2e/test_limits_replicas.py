"""A key's rate limit shared by two real proxy replicas through one real redis-server.

k1 has `rpm: 2`: two requests of a minute (one per replica) take its two calls; the third, on
either replica, goes to k2 without calling k1 (the fake upstream counts each key's calls). The
counters are per minute of the clock: a scenario a minute's end cut in two (each request's
minute is checked) runs again on a route of its own model, whose counters start at zero.
"""

import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
KEYS = {"k1": "sk-shared-limit-k1-93e1", "k2": "sk-shared-limit-k2-93e1"}
TRIES = ("a", "b")


def config(upstream: FakeUpstream, redis_url: str) -> dict[str, Any]:
    keys = {"k1": {"key": KEYS["k1"], "rpm": 2}, "k2": KEYS["k2"]}
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "redis_url": redis_url,
            "backends": {"pair": {"provider": "openai", "api_base": upstream.url, "api_keys": keys}},
            "routes": {f"pair-{t}": {"policy": "k", "elements": [f"pair:model-{t}"]} for t in TRIES},
        },
    }


@pytest.fixture(scope="module")
def replicas(upstream: FakeUpstream, redis_server: RedisServer) -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    cfg = config(upstream, redis_server.url)
    with ProxyProcess(cfg) as a, ProxyProcess(cfg) as b:
        yield a, b
        logs = a.log_text() + b.log_text()
    for value in KEYS.values():
        assert value not in logs, "an API key reached a proxy log"


def served_by(client: httpx.Client, route: str) -> str:
    r = client.post("/v1/chat/completions", json={"model": route, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-failover-attempts"] == "1"
    return r.headers["x-failover-key"]


def test_two_replicas_share_a_keys_rpm(replicas: tuple[ProxyProcess, ProxyProcess], upstream: FakeUpstream) -> None:
    a_proxy, b_proxy = replicas
    with (
        httpx.Client(base_url=a_proxy.url, headers=a_proxy.headers, timeout=30) as a,
        httpx.Client(base_url=b_proxy.url, headers=b_proxy.headers, timeout=30) as b,
    ):
        for t in TRIES:
            minute = math.floor(time.time() / 60)
            keys = [served_by(a, f"pair-{t}"), served_by(b, f"pair-{t}"), served_by(a, f"pair-{t}"), served_by(b, f"pair-{t}")]
            if math.floor(time.time() / 60) == minute:
                break
        else:
            raise AssertionError("two scenarios in a row were cut by a minute's end")
        assert keys == ["k1", "k1", "k2", "k2"]
        called = [r.key for r in upstream.received if r.model == f"model-{t}"]
        assert called == [KEYS["k1"], KEYS["k1"], KEYS["k2"], KEYS["k2"]]
        for client in (a, b):  # both replicas see the shared count; no breaker moved
            rows = {r["key"]: r for r in client.get("/failover/status").json()["deployments"] if r["route"] == f"pair-{t}"}
            assert rows["k1"]["state"] == "closed" and rows["k1"]["failures"] == 0
            if math.floor(time.time() / 60) == minute:
                assert rows["k1"]["limits"] == "rpm 2/2"
