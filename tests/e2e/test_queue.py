"""The request queue on a real proxy: a total outage shorter than max_wait costs no request.

Both upstreams stop listening (connection refused) for a few seconds; requests sent meanwhile
wait in the route's queue and are served once a health check finds the upstreams back. Each
reaches an upstream exactly once after recovery (counted at the fake upstreams).
"""

import asyncio
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
OUTAGE_S = 5.0


@pytest.fixture(autouse=True)
def up(upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[None]:
    for u in upstreams:
        u.up()
        u.reset()
    yield
    for u in upstreams:
        u.up()


def config(upstreams: tuple[FakeUpstream, FakeUpstream]) -> dict[str, Any]:
    primary, backup = upstreams
    elements = ["primary:model", "backup:model"]
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {
                "primary": {"provider": "openai", "api_base": primary.url, "api_keys": {"p1": "sk-queue-p1"}},
                "backup": {"provider": "openai", "api_base": backup.url, "api_keys": {"b1": "sk-queue-b1"}},
            },
            "breaker": {"failure_threshold": 2, "cooldown_s": 30},  # recovery is found by health checks
            "health_checks": {"interval_s": 0.5, "timeout_s": 2},
            "queue": {"max_size": 500, "max_wait_s": 20, "release_concurrency": 8},
            "routes": {
                "chat": {"policy": "m", "elements": elements},
                "ordered": {"policy": "m", "elements": elements, "queue": {"release_concurrency": 1}},
                "tiny": {"policy": "m", "elements": elements, "queue": {"max_size": 1, "max_wait_s": 10}},
                "short": {"policy": "m", "elements": elements, "queue": {"max_wait_s": 1}},
            },
        },
    }


@pytest.fixture(scope="module")
def proxy(upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[ProxyProcess]:
    with ProxyProcess(config(upstreams)) as p:
        yield p
        log = p.log_text()
    assert "sk-queue" not in log


@pytest.fixture(scope="module")
def no_cancel_proxy(upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[ProxyProcess]:
    """An operator turned the proxy's own cancel_on_disconnect off (the plugin leaves it off)."""
    with ProxyProcess({**config(upstreams), "general_settings": {"cancel_on_disconnect": False}}) as p:
        yield p


def body(route: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": route, "messages": [{"role": "user", "content": prompt}], **extra}


def prompts(upstreams: tuple[FakeUpstream, FakeUpstream]) -> list[str]:
    """The prompts the upstreams received, in the order they arrived at either of them (a
    health check may close the backup's breaker before the primary's: the first request
    released is then served by the backup)."""
    received = sorted((r for u in upstreams for r in u.received), key=lambda r: r.at)
    return [r.prompt for r in received if r.prompt != "ping"]


async def queue_length(client: httpx.AsyncClient, route: str) -> int:
    return int((await client.get("/failover/status")).json()["queues"][route]["length"])


async def until_queued(client: httpx.AsyncClient, route: str, n: int) -> None:
    for _ in range(500):
        if await queue_length(client, route) >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{route}: {n} requests never queued")


def down(upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    for u in upstreams:
        u.down()


def back(upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    for u in upstreams:
        u.up()


async def test_200_requests_through_a_total_outage_all_succeed_once(
    proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    """200 requests arrive over the first second of a 5 s outage of every upstream: the first
    ones find the upstreams dead (and open their breakers), the rest queue; all are served once
    the health checks see the upstreams back."""
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=60, limits=limits) as client:
        down(upstreams)
        started = time.monotonic()

        async def one(i: int) -> tuple[int, float]:
            await asyncio.sleep(i * 0.005)
            t0 = time.monotonic()
            r = await client.post("/v1/chat/completions", json=body("chat", f"load-{i}"))
            return r.status_code, time.monotonic() - t0

        tasks = [asyncio.create_task(one(i)) for i in range(200)]
        await asyncio.sleep(OUTAGE_S - (time.monotonic() - started))
        back(upstreams)
        results = await asyncio.gather(*tasks)
        queue = (await client.get("/failover/status")).json()["queues"]["chat"]
    statuses = [s for s, _ in results]
    waits = sorted(w for _, w in results)
    q = statistics.quantiles(waits, n=100, method="inclusive")
    print(
        f"\n200 requests over a {OUTAGE_S:.0f} s total outage: success {statuses.count(200) / 200:.0%}; "
        f"client latency p50 {q[49]:.2f}s p99 {q[98]:.2f}s; queued {queue['waits_done']}, "
        f"queue wait p50 {queue['wait_p50_s']}s p99 {queue['wait_p99_s']}s"
    )
    assert statuses == [200] * 200
    assert queue["waits_done"] > 0 and queue["length"] == 0
    served = prompts(upstreams)
    assert sorted(served) == sorted(f"load-{i}" for i in range(200))  # each exactly once


async def test_priority_order_on_release(proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=60) as client:
        down(upstreams)
        tasks = []
        for n, (prompt, priority) in enumerate([("prio-9", 9), ("prio-1", 1), ("prio-5", 5)]):
            payload = body("ordered", prompt, priority=priority)
            tasks.append(asyncio.create_task(client.post("/v1/chat/completions", json=payload)))
            await until_queued(client, "ordered", n + 1)
        back(upstreams)
        assert [r.status_code for r in await asyncio.gather(*tasks)] == [200, 200, 200]
    assert prompts(upstreams) == ["prio-1", "prio-5", "prio-9"]


async def test_full_queue_and_max_wait(proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=60) as client:
        down(upstreams)
        waiting = asyncio.create_task(client.post("/v1/chat/completions", json=body("tiny", "tiny-1")))
        await until_queued(client, "tiny", 1)
        full = await client.post("/v1/chat/completions", json=body("tiny", "tiny-2"))
        assert full.status_code == 503
        assert "queue of route 'tiny' is full" in full.json()["error"]["message"]
        assert int(full.headers["retry-after"]) >= 1

        t0 = time.monotonic()
        expired = await client.post("/v1/chat/completions", json=body("short", "short-1"))
        assert expired.status_code == 503
        assert "in the queue (max_wait_s); every candidate still down" in expired.json()["error"]["message"]
        assert "retry-after" in expired.headers
        assert time.monotonic() - t0 >= 1.0
        back(upstreams)
        assert (await waiting).status_code == 200
    assert "tiny-2" not in prompts(upstreams) and "short-1" not in prompts(upstreams)


async def test_a_client_that_leaves_leaves_the_queue(
    proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=60) as client:
        down(upstreams)
        async with httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=1.0) as impatient:
            with pytest.raises(httpx.TimeoutException):
                await impatient.post("/v1/chat/completions", json=body("chat", "gone"))
        for _ in range(100):
            if await queue_length(client, "chat") == 0:
                break
            await asyncio.sleep(0.05)
        assert await queue_length(client, "chat") == 0
        back(upstreams)
        r = await client.post("/v1/chat/completions", json=body("chat", "after"))
        assert r.status_code == 200
    assert prompts(upstreams) == ["after"]  # the one that left caused no upstream call


async def test_a_stream_waits_the_same_way(proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=60) as client:
        down(upstreams)

        async def stream() -> str:
            text = ""
            async with client.stream("POST", "/v1/chat/completions", json=body("chat", "streamed", stream=True)) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: {"):
                        import json

                        delta = json.loads(line[6:])["choices"][0]["delta"]
                        text += delta.get("content") or ""
            return text

        task = asyncio.create_task(stream())
        await until_queued(client, "chat", 1)
        back(upstreams)
        assert (await task).endswith("from primary")
    assert prompts(upstreams) == ["streamed"]


async def some_leave(proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream], n: int, leave: set[int]) -> None:
    """n clients queue on `chat`, each on its own connection; those in `leave` close theirs
    while every upstream is down; then the upstreams come back. Each client still there gets
    its answer, and the upstreams see exactly their calls: none from a client that left."""
    clients = [httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=60) for _ in range(n)]
    async with httpx.AsyncClient(base_url=proxy.url, headers=proxy.headers, timeout=60) as status:
        try:
            down(upstreams)
            tasks = []
            for i, c in enumerate(clients):
                tasks.append(asyncio.create_task(c.post("/v1/chat/completions", json=body("chat", f"client-{i}"))))
                await until_queued(status, "chat", i + 1)
            for i in sorted(leave):
                tasks[i].cancel()  # the request is abandoned: httpx closes its connection
                await clients[i].aclose()
            await asyncio.sleep(1.0)  # let the proxy see the connections go
            back(upstreams)
            stayed = [t for i, t in enumerate(tasks) if i not in leave]
            assert [r.status_code for r in await asyncio.gather(*stayed)] == [200] * len(stayed)
            for _ in range(100):  # a released client that left is dropped at its turn
                if await queue_length(status, "chat") == 0:
                    break
                await asyncio.sleep(0.05)
            assert await queue_length(status, "chat") == 0
        finally:
            for c in clients:
                await c.aclose()
    assert sorted(prompts(upstreams)) == sorted(f"client-{i}" for i in range(n) if i not in leave)


async def test_clients_that_left_cost_no_call(proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    await some_leave(proxy, upstreams, 12, {1, 2, 4, 7, 10, 11})


async def test_clients_that_left_cost_no_call_without_cancel_on_disconnect(
    no_cancel_proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    """The proxy does not cancel the call of a client that left: the queue still asks, at the
    request's turn, whether its client is there."""
    await some_leave(no_cancel_proxy, upstreams, 8, {0, 3, 5, 6})
