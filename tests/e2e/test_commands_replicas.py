"""Route changes across two real proxy replicas sharing one real redis-server.

A change made on replica A is stored in Redis and pushed to B; A answers only once B has
applied it, so B serves by the change at its very next request.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
MASTER_KEY = "sk-master-replicas"
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


def config(upstream: FakeUpstream, redis_url: str) -> dict[str, Any]:
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "general_settings": {"master_key": MASTER_KEY},  # LiteLLM's own master key: a proxy admin
        "failover_settings": {
            "redis_url": redis_url,
            "backends": {
                "alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": "sk-rep-a1"}},
                "beta": {"provider": "openai", "api_base": upstream.url, "api_keys": {"b1": "sk-rep-b1"}},
            },
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x"]}},
        },
    }


@pytest.fixture(scope="module")
def replicas(upstream: FakeUpstream, redis_server: RedisServer) -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    cfg = config(upstream, redis_server.url)
    with ProxyProcess(cfg, master_key=MASTER_KEY) as a, ProxyProcess(cfg, master_key=MASTER_KEY) as b:
        yield a, b
        logs = a.log_text() + b.log_text()
    assert "sk-rep-" not in logs and MASTER_KEY not in logs, "a key reached a proxy log"


def send(proxy: ProxyProcess, content: str, model: str = "chat", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={**ADMIN, **(headers or {})}, timeout=30)


def ok(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


def test_a_change_on_one_replica_serves_on_the_other_at_its_next_request(
    replicas: tuple[ProxyProcess, ProxyProcess], upstream: FakeUpstream
) -> None:
    a, b = replicas
    replies_ms = []
    for i in range(10):
        name = f"fresh-{i}"
        t0 = time.perf_counter()
        ok(send(a, f"!/create-failover-route(name={name},policy=m)"))
        ok(send(a, f"!/route-append(name={name},element=beta:gpt-y)"))
        replies_ms.append((time.perf_counter() - t0) * 1000 / 2)
        r = send(b, "hi", model=name)  # B's very next request
        assert r.status_code == 200, r.text
        assert r.headers["x-failover-route"] == name and r.headers["x-failover-backend"] == "beta"
        ok(send(b, f"!/delete-failover-route(name={name})"))
        assert send(a, "hi", model=name).status_code in (400, 404), "deleted on B: gone on A at once"
    print(f"command reply on A (B acknowledged) p50 {statistics.median(replies_ms):.1f} ms, max {max(replies_ms):.1f} ms")
    listing = ok(send(b, "!/list-failover-routes"))
    assert listing.splitlines()[0] == "Failover routes: chat:m"


def test_concurrent_appends_on_both_replicas_lose_none(replicas: tuple[ProxyProcess, ProxyProcess]) -> None:
    a, b = replicas
    ok(send(a, "!/create-failover-route(name=shared,policy=km)"))

    def append(i: int) -> int:
        return send(a if i % 2 else b, f"!/route-append(name=shared,element=alpha:m-{i})").status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(append, range(50))) == [200] * 50
    for proxy in (a, b):
        listed = ok(send(proxy, "!/route-list(name=shared)")).split("elements: ")[1].split(", ")
        assert sorted(listed) == sorted(f"alpha:m-{i}" for i in range(50))
    ok(send(a, "!/delete-failover-route(name=shared)"))


def test_a_session_set_on_one_replica_holds_on_the_other(replicas: tuple[ProxyProcess, ProxyProcess]) -> None:
    a, b = replicas
    ok(send(a, "!/create-failover-route(name=sess,policy=m)"))
    ok(send(a, "!/route-append(name=sess,element=beta:gpt-y)"))
    mine = {"x-session-id": "replica-session"}
    ok(send(a, "!/set(model=sess)", headers=mine))
    assert send(b, "hi", headers=mine).headers["x-failover-route"] == "sess"
    ok(send(b, "!/unset(model)", headers=mine))
    assert send(a, "hi", headers=mine).headers["x-failover-route"] == "chat"
    ok(send(a, "!/delete-failover-route(name=sess)"))


def test_the_admin_api_on_one_replica_serves_on_the_other(replicas: tuple[ProxyProcess, ProxyProcess]) -> None:
    a, b = replicas
    r = httpx.put(f"{a.url}/failover/routes/api", json={"policy": "m", "elements": ["beta:gpt-y"]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    listed = httpx.get(f"{b.url}/failover/routes", headers=ADMIN).json()
    assert listed["store"] == "redis"
    assert {x["name"]: x["elements"] for x in listed["routes"]}["api"] == ["beta:gpt-y"]
    assert send(b, "hi", model="api").headers["x-failover-backend"] == "beta"
    assert httpx.delete(f"{b.url}/failover/routes/api", headers=ADMIN).status_code == 200
    assert send(a, "hi", model="api").status_code in (400, 404)


def test_a_reload_on_one_replica_reloads_every_replica(replicas: tuple[ProxyProcess, ProxyProcess]) -> None:
    """Like a ConfigMap update: every replica's file changed, one reload request, all serve it."""
    import yaml

    a, b = replicas
    originals = {p: p.config_path.read_text() for p in (a, b)}
    try:
        for p in (a, b):
            cfg = yaml.safe_load(originals[p])
            cfg["failover_settings"]["routes"]["from-file"] = {"policy": "m", "elements": ["beta:gpt-y"]}
            p.config_path.write_text(yaml.safe_dump(cfg))
        r = httpx.post(f"{a.url}/failover/reload", headers=ADMIN, timeout=30)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 5
        while send(b, "hi", model="from-file").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert send(b, "hi", model="from-file").headers["x-failover-backend"] == "beta"
    finally:
        for p, text in originals.items():
            p.config_path.write_text(text)
        assert httpx.post(f"{a.url}/failover/reload", headers=ADMIN, timeout=30).status_code == 200
