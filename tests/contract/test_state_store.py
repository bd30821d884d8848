"""One contract, every store: the same tests on the memory store and on a real redis-server."""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from litellm_failover_plugin.breaker import CLOSED, Access, Breaker, BreakerConfig, State, access, start_probe
from litellm_failover_plugin.state import MemoryStore, StateStore
from litellm_failover_plugin.state.redis import RedisStore
from litellm_failover_plugin.state.resilient import ResilientStore
from litellm_failover_plugin.testing import free_port
from tests.redis_server import RedisServer

CFG = BreakerConfig(probe_timeout_s=30)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port()).start()
    yield server
    server.close()


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[list[StateStore]]:
    """Two handles on one store: for Redis, two clients, as two proxy replicas would have."""
    if request.param == "memory":
        one = MemoryStore()
        yield [one, one]
        return
    prefix = "test:" + "".join(c if c.isalnum() else "_" for c in request.node.name) + ":"
    made = [RedisStore.from_url(redis_server.url, prefix=prefix, usage_prefix="usage:" + prefix) for _ in range(2)]
    yield list(made)
    for s in made:
        await s.aclose()


def opened(until: float) -> Breaker:
    return Breaker(state=State.OPEN, failures=3, open_until=until, cooldown_s=10, reason="test")


async def test_missing_is_closed(stores: list[StateStore]) -> None:
    assert await stores[0].get_many(["a", "b"]) == [CLOSED, CLOSED]
    assert await stores[0].get_many([]) == []


async def test_update_returns_old_and_new_and_persists(stores: list[StateStore]) -> None:
    old, new = await stores[0].update("a", lambda b: opened(50.0))
    assert old == CLOSED and new == opened(50.0)
    assert await stores[1].get_many(["x", "a"]) == [CLOSED, opened(50.0)]
    assert (await stores[1].items()) == {"a": opened(50.0)}


async def test_a_clean_breaker_is_not_stored(stores: list[StateStore]) -> None:
    await stores[0].update("a", lambda b: opened(50.0))
    await stores[0].update("a", lambda b: CLOSED)
    assert await stores[1].items() == {}
    assert await stores[1].get_many(["a"]) == [CLOSED]


async def test_a_breaker_a_success_closed_is_kept_for_its_close_time(stores: list[StateStore]) -> None:
    """Every process reads when the key last closed: its LiteLLM cooldowns from before are stale."""
    await stores[0].update("a", lambda b: replace(CLOSED, closed_at=70.0))
    assert await stores[1].get_many(["a"]) == [replace(CLOSED, closed_at=70.0)]


async def test_concurrent_updates_lose_nothing(stores: list[StateStore]) -> None:
    def bump(b: Breaker) -> Breaker:
        return replace(b, failures=b.failures + 1)

    await asyncio.gather(*(stores[i % 2].update("n", bump) for i in range(60)))
    [b] = await stores[0].get_many(["n"])
    assert b.failures == 60


async def test_only_one_replica_gets_the_half_open_probe(stores: list[StateStore]) -> None:
    await stores[0].update("p", lambda b: opened(10.0))
    now = 11.0

    def take(b: Breaker) -> Breaker:
        return start_probe(b, now, CFG) if access(b, now) is Access.PROBE else b

    results = await asyncio.gather(*(stores[i % 2].update("p", take) for i in range(20)))
    winners = [new for old, new in results if old.state is State.OPEN and new.state is State.HALF_OPEN]
    assert len(winners) == 1
    [b] = await stores[1].get_many(["p"])
    assert b.state is State.HALF_OPEN and access(b, now + 1) is Access.SKIP


async def test_redis_down_serves_locally_warns_once_and_resyncs(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = "test:resilient:"
    store = ResilientStore(RedisStore.from_url(redis_server.url, prefix=prefix, timeout_s=0.2))
    await store.update("before", lambda b: opened(5.0))
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="litellm_failover_plugin"):
            assert await store.get_many(["before"]) == [CLOSED]  # local view: this replica knows nothing
            await store.update("during", lambda b: opened(99.0))
            assert await store.get_many(["during"]) == [opened(99.0)]
            await store.update("during", lambda b: replace(b, failures=4))
        assert store.down
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        redis_server.start()
    with caplog.at_level(logging.WARNING, logger="litellm_failover_plugin"):
        # requests never wait on Redis while it is down: the reconnect runs in the background
        # when its time comes (unit-tested with a fake clock); here it is asked for at once
        assert await store.reconnect()
        # the restarted server kept nothing ("before" is gone); what this replica learned is written back
        assert await store.get_many(["during", "before"]) == [replace(opened(99.0), failures=4), CLOSED]
    assert not store.down
    assert any("is back" in r.getMessage() for r in caplog.records)
    other = RedisStore.from_url(redis_server.url, prefix=prefix)
    assert await other.get_many(["during"]) == [replace(opened(99.0), failures=4)]
    await other.aclose()
    await store.aclose()


async def test_redis_recovery_notices_reach_other_replicas(redis_server: RedisServer) -> None:
    a = RedisStore.from_url(redis_server.url, prefix="test:pubsub:")
    b = RedisStore.from_url(redis_server.url, prefix="test:pubsub:")
    heard: list[str] = []

    async def listen() -> None:
        async for id in b.recoveries():
            heard.append(id)
            return

    listener = asyncio.create_task(listen())
    for _ in range(100):  # until b's subscription is in place
        await a.publish_recovery("chat/alpha:m/k1")
        if heard:
            break
        await asyncio.sleep(0.05)
    await asyncio.wait_for(listener, 5)
    assert heard == ["chat/alpha:m/k1"]
    await a.aclose()
    await b.aclose()


async def test_a_frozen_redis_costs_one_bounded_wait_then_none(redis_server: RedisServer) -> None:
    """SIGSTOP: connections are accepted, nothing answers. The calls in flight give up after the
    store's timeout (together, not one after another), later calls do not wait at all, and the
    store is back with what it learned once Redis answers again. Bounds are generous: before,
    every call waited for the socket timeout and redis-py's retries (seconds each)."""
    prefix = "test:frozen:"
    store = ResilientStore(RedisStore.from_url(redis_server.url, prefix=prefix, timeout_s=0.1), timeout_s=0.2)
    await store.update("x", lambda b: opened(5.0))
    loop = asyncio.get_running_loop()
    redis_server.freeze()
    try:
        t0 = loop.time()
        results = await asyncio.gather(*(store.update("x", lambda b: opened(7.0)) for _ in range(10)))
        in_flight_s = loop.time() - t0
        assert store.down
        t0 = loop.time()
        for _ in range(50):
            await store.get_many(["x"])
            await store.update("y", lambda b: replace(b, failures=b.failures + 1))
        later_s = loop.time() - t0
    finally:
        redis_server.thaw()
    assert in_flight_s < 1.0, in_flight_s
    assert later_s < 0.5, later_s
    assert [new for _, new in results] == [opened(7.0)] * 10
    assert await store.reconnect()
    other = RedisStore.from_url(redis_server.url, prefix=prefix)
    assert await other.get_many(["x", "y"]) == [opened(7.0), replace(CLOSED, failures=50)]
    await other.aclose()
    await store.aclose()


async def test_counters_add_in_one_step_and_read_back(stores: list[StateStore]) -> None:
    """Rate limits' counters (limits.py): INCRBY-like adds, shared by every handle; a missing
    counter is 0; a counter never shows up as a breaker."""
    assert await stores[0].counts(["a:1:rpm", "a:1:tpm"]) == [0, 0]
    assert await stores[0].add([("a:1:rpm", 1), ("a:1:tpm", 0)], 120) == [1, 0]
    assert await stores[1].add([("a:1:rpm", 1), ("a:1:tpm", 8)], 120) == [2, 8]
    assert await stores[0].add([("a:1:rpm", -1)], 120) == [1]
    assert await stores[1].counts(["a:1:rpm", "x", "a:1:tpm"]) == [1, 0, 8]
    assert await stores[0].add([], 120) == [] and await stores[0].counts([]) == []
    assert await stores[1].items() == {}


async def test_concurrent_reservations_are_counted_once_each(stores: list[StateStore]) -> None:
    got = await asyncio.gather(*(stores[i % 2].add([("k:rpm", 1)], 120) for i in range(50)))
    assert sorted(v for [v] in got) == list(range(1, 51))


async def test_counters_expire(redis_server: RedisServer) -> None:
    now = [100.0]
    memory = MemoryStore(clock=lambda: now[0])
    await memory.add([("k", 3)], 120)
    now[0] += 119
    assert await memory.counts(["k"]) == [3]
    now[0] += 1
    assert await memory.counts(["k"]) == [0]
    assert await memory.add([("k", 1)], 120) == [1]
    redis = RedisStore.from_url(redis_server.url, usage_prefix="test:expire:")
    try:
        await redis.add([("k", 3)], 120)
        assert 0 < await redis._redis.ttl("test:expire:k") <= 120
    finally:
        await redis.aclose()


async def test_counters_while_redis_is_down_are_this_replicas(redis_server: RedisServer) -> None:
    store = ResilientStore(RedisStore.from_url(redis_server.url, usage_prefix="test:down:", timeout_s=0.2))
    assert await store.add([("k", 2)], 120) == [2]
    redis_server.stop()
    try:
        assert await store.add([("k", 1)], 120) == [1]  # counted locally: the shared count is out of reach
        assert await store.counts(["k"]) == [1]
    finally:
        redis_server.start()
        await store.aclose()
