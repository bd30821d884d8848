"""The resilient store's logic with a fake primary and a fake clock (no Redis, no sleeping).

The link decision (state/link.py) is a pure function of (link, now); the store applies it:
while the primary is down no request touches it, the reconnect runs in the background, and
each update is applied exactly once, to one store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from litellm_failover_plugin.breaker import CLOSED, Access, Breaker, BreakerConfig, State, access, start_probe
from litellm_failover_plugin.state import MemoryStore
from litellm_failover_plugin.state.base import Update
from litellm_failover_plugin.state.link import UP, Link, LinkConfig, Use, failed, reconnect_failed, reconnecting, use
from litellm_failover_plugin.state.resilient import ResilientStore

CFG = LinkConfig(retry_s=0.5, max_retry_s=4.0)
BREAKER = BreakerConfig(probe_timeout_s=30)


# --- the decision -------------------------------------------------------------------------


def test_up_uses_the_primary() -> None:
    assert use(UP, 0.0) is Use.PRIMARY


def test_a_failure_serves_locally_until_the_retry_time() -> None:
    down = failed(UP, 10.0, CFG)
    assert not down.up
    assert use(down, 10.0) is Use.LOCAL
    assert use(down, 10.49) is Use.LOCAL
    assert use(down, 10.5) is Use.RECONNECT


def test_failures_of_calls_in_flight_do_not_push_the_retry_back() -> None:
    down = failed(UP, 10.0, CFG)
    assert failed(down, 10.3, CFG) == down


def test_one_reconnect_at_a_time_and_backoff_doubles_up_to_the_max() -> None:
    link = reconnecting(failed(UP, 0.0, CFG))
    assert use(link, 100.0) is Use.LOCAL  # one attempt runs: no second one
    waits = []
    now = 0.0
    for _ in range(6):
        link = reconnect_failed(link, now, CFG)
        waits.append(link.retry_at - now)
        assert use(link, now) is Use.LOCAL and use(link, link.retry_at) is Use.RECONNECT
        link = reconnecting(link)
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_link_config_is_checked() -> None:
    with pytest.raises(ValueError):
        LinkConfig(retry_s=0)
    with pytest.raises(ValueError):
        LinkConfig(retry_s=2, max_retry_s=1)


# --- the store ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePrimary:
    """A memory store that can be down, and whose updates can be held at a gate."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.fail = False
        self.calls = 0
        self.gate: asyncio.Event | None = None

    def _check(self) -> None:
        self.calls += 1
        if self.fail:
            raise RedisConnectionError("down")

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        self._check()
        return await self.store.get_many(ids)

    async def update(self, id: str, fn: Update) -> tuple[Breaker, Breaker]:
        self._check()
        if self.gate is not None:
            await self.gate.wait()
        return await self.store.update(id, fn)

    async def items(self) -> dict[str, Breaker]:
        self._check()
        return await self.store.items()

    async def ping(self) -> None:
        self._check()

    async def aclose(self) -> None:
        return None


def opened(until: float, failures: int = 3) -> Breaker:
    return Breaker(state=State.OPEN, failures=failures, open_until=until, cooldown_s=10, reason="test")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def primary() -> FakePrimary:
    return FakePrimary()


@pytest.fixture
def store(primary: FakePrimary, clock: Clock) -> ResilientStore:
    return ResilientStore(primary, link=CFG, clock=clock)


async def go_down(store: ResilientStore, primary: FakePrimary) -> None:
    primary.fail = True
    await store.get_many(["x"])
    assert store.down


async def test_while_down_no_call_reaches_the_primary_until_a_reconnect_is_due(
    store: ResilientStore, primary: FakePrimary, clock: Clock
) -> None:
    await go_down(store, primary)
    calls = primary.calls
    for _ in range(50):  # a hung Redis is never waited on again per request
        await store.get_many(["a"])
        await store.update("a", lambda b: replace(b, failures=b.failures + 1))
    assert primary.calls == calls
    assert await store.get_many(["a"]) == [replace(CLOSED, failures=50)]
    assert store.reconnect_task is None


async def test_the_reconnect_runs_in_the_background_and_writes_back(
    store: ResilientStore, primary: FakePrimary, clock: Clock
) -> None:
    await go_down(store, primary)
    await store.update("a", lambda b: opened(2000.0))
    primary.fail = False  # back, but nobody knows yet
    assert await store.get_many(["a"]) == [opened(2000.0)]  # local, at once
    clock.now += CFG.retry_s
    assert await store.get_many(["a"]) == [opened(2000.0)]  # the reconnect is only started
    assert store.down and store.reconnect_task is not None
    assert await store.reconnect_task
    assert not store.down
    assert await primary.store.get_many(["a"]) == [opened(2000.0)]
    assert await store.get_many(["a"]) == [opened(2000.0)]  # from the primary now


async def test_a_failed_reconnect_waits_longer(store: ResilientStore, primary: FakePrimary, clock: Clock) -> None:
    await go_down(store, primary)
    clock.now += CFG.retry_s
    await store.get_many(["a"])
    assert store.reconnect_task is not None and not await store.reconnect_task
    first = store.reconnect_task
    clock.now += CFG.retry_s  # the second wait is twice as long
    await store.get_many(["a"])
    assert store.reconnect_task is first
    clock.now += CFG.retry_s
    await store.get_many(["a"])
    assert store.reconnect_task is not first


async def test_a_probe_is_applied_once_when_the_primary_returns(
    store: ResilientStore, primary: FakePrimary, clock: Clock
) -> None:
    """Before: the update that found Redis back was applied to Redis, then again after the
    write-back; the second application saw the probe already taken, so nobody probed until
    `probe_timeout_s` ran out."""
    await primary.store.update("p", lambda b: opened(clock.now - 1))  # its cooldown is over
    applied = 0

    def take(b: Breaker) -> Breaker:
        nonlocal applied
        applied += 1
        return start_probe(b, clock.now, BREAKER) if access(b, clock.now) is Access.PROBE else b

    await go_down(store, primary)
    await store.update("p", lambda b: opened(clock.now - 1))  # this replica saw it fail too
    primary.fail = False
    clock.now += CFG.retry_s  # due: this very update starts the reconnect
    old, new = await store.update("p", take)
    assert applied == 1
    assert old.state is State.OPEN and new.state is State.HALF_OPEN  # taken: this request probes
    assert store.reconnect_task is not None and await store.reconnect_task
    [b] = await primary.store.get_many(["p"])
    assert b == new  # the probe, written back, is in the shared state: no other replica takes it
    old, again = await store.update("p", take)
    assert applied == 2 and again == new  # a second request does not get a probe


async def test_changes_made_during_the_write_back_are_written_too(
    store: ResilientStore, primary: FakePrimary, clock: Clock
) -> None:
    """Before: requests that found Redis back each wrote back, and one's `clear()` broke the
    other's loop: 500 "Set changed size during iteration"."""
    await go_down(store, primary)
    for id in ("a", "b", "c"):
        await store.update(id, lambda b: opened(2000.0))
    primary.fail = False
    primary.gate = asyncio.Event()
    clock.now += CFG.retry_s
    await store.get_many(["a"])
    task = store.reconnect_task
    assert task is not None
    await asyncio.sleep(0)  # the write-back waits at the gate on its first breaker
    asked = asyncio.create_task(store.reconnect())  # asked for at once too: the same attempt
    # requests go on meanwhile, on local state
    await asyncio.gather(
        store.update("a", lambda b: replace(b, failures=9)),
        store.update("d", lambda b: opened(3000.0)),
        *(store.get_many(["a", "b", "c", "d"]) for _ in range(10)),
    )
    assert store.down and store.reconnect_task is task
    primary.gate.set()
    assert await task and await asked and not store.down
    assert await primary.store.get_many(["a", "b", "c", "d"]) == [
        opened(2000.0, failures=9),
        opened(2000.0),
        opened(2000.0),
        opened(3000.0),
    ]


async def test_warns_once_per_outage(
    store: ResilientStore, primary: FakePrimary, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="litellm_failover_plugin"):
        for _ in range(2):
            await go_down(store, primary)
            for _ in range(5):  # failed reconnects
                clock.now += CFG.max_retry_s
                await store.get_many(["a"])
                assert store.reconnect_task is not None and not await store.reconnect_task
            primary.fail = False
            assert await store.reconnect()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 2
    assert sum("is back:" in m for m in messages) == 2


async def test_a_call_that_hangs_is_bounded(primary: FakePrimary, clock: Clock) -> None:
    """A primary that never answers: the call gives up after `timeout_s` and serves locally."""
    store = ResilientStore(primary, link=CFG, clock=clock, timeout_s=0.0)
    primary.gate = asyncio.Event()  # never set
    assert await store.update("a", lambda b: opened(5.0)) == (CLOSED, opened(5.0))
    assert store.down
    assert store.link == Link(up=False, failures=1, retry_at=clock.now + CFG.retry_s)


async def test_an_unexpected_error_during_the_reconnect_is_retried_later(
    store: ResilientStore, primary: FakePrimary, clock: Clock
) -> None:
    await go_down(store, primary)
    await store.update("a", lambda b: opened(2000.0))
    primary.fail = False

    async def contention(id: str, fn: Update) -> tuple[Breaker, Breaker]:
        raise RuntimeError("too much contention")

    primary.update = contention  # type: ignore[method-assign]
    assert not await store.reconnect()
    assert store.down and use(store.link, clock.now) is Use.LOCAL  # not stuck "reconnecting"
    del primary.update  # the class's again
    clock.now += CFG.max_retry_s
    await store.get_many(["a"])
    assert store.reconnect_task is not None and await store.reconnect_task
    assert await primary.store.get_many(["a"]) == [opened(2000.0)]
