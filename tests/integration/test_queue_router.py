"""The request queue inside the attempt loop: requests wait while every candidate is down."""

import asyncio
from typing import Any

import litellm
import pytest

from litellm_failover_plugin import FailoverExhausted, attach
from litellm_failover_plugin.config import HealthCheckSettings
from litellm_failover_plugin.litellm.health import HealthChecker
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]




def make(upstream: FakeUpstream, cooldown_s: float = 0.3, **queue: Any) -> tuple[litellm.Router, FailoverRunner]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    runner = attach(
        router,
        {
            "backends": backends(upstream),
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
            "breaker": {"failure_threshold": 1, "cooldown_s": cooldown_s},
            "queue": {"max_size": 50, "max_wait_s": 10, "release_concurrency": 2, "recheck_s": 0.1, **queue},
        },
    )
    return router, runner


async def ask(router: litellm.Router, prompt: str = "hi", **kw: Any) -> str:
    response = await router.acompletion(model="chat", messages=[{"role": "user", "content": prompt}], **kw)
    return str(response._hidden_params["additional_headers"]["x-failover-key"])


async def until(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def until_queued(runner: FailoverRunner, n: int) -> None:
    await until(lambda: len(runner.waiters["chat"].queue) == n)


async def test_waits_while_everything_is_down_then_succeeds(upstream: FakeUpstream) -> None:
    router, runner = make(upstream)
    upstream.set(Behavior(503))
    task = asyncio.create_task(ask(router))
    await until(lambda: len(runner.waiters["chat"].queue) == 1)
    upstream.reset()  # back; the breakers' 0.3 s cooldown runs out, the queue retries
    assert await asyncio.wait_for(task, 10) in ("a1", "b1")
    assert len(runner.waiters["chat"].queue) == 0 and runner.waiters["chat"].queue.released == 0
    assert len(upstream.received) == 1  # after recovery: exactly one upstream call


async def test_a_recovery_notice_wakes_the_queue_before_any_cooldown_ends(upstream: FakeUpstream) -> None:
    router, runner = make(upstream, cooldown_s=60)
    upstream.set(Behavior(503))
    task = asyncio.create_task(ask(router))
    await until(lambda: len(runner.waiters["chat"].queue) == 1)
    upstream.reset()
    await HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2)).tick()  # closes the breakers
    assert await asyncio.wait_for(task, 10) == "a1"  # long before the 60 s cooldown


async def test_full_queue_answers_503_at_once(upstream: FakeUpstream) -> None:
    router, runner = make(upstream, cooldown_s=60, max_size=1)
    upstream.set(Behavior(503))
    first = asyncio.create_task(ask(router))
    await until(lambda: len(runner.waiters["chat"].queue) == 1)
    with pytest.raises(FailoverExhausted) as info:
        await ask(router)
    assert info.value.status_code == 503
    assert "queue of route 'chat' is full (1 waiting)" in info.value.message
    assert int(info.value.failover_headers["retry-after"]) >= 1  # type: ignore[attr-defined]
    first.cancel()


async def test_max_wait_ends_with_503_saying_how_long(upstream: FakeUpstream) -> None:
    router, runner = make(upstream, cooldown_s=60, max_wait_s=0.4)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted) as info:
        await ask(router)
    assert info.value.status_code == 503
    assert "in the queue (max_wait_s); every candidate still down" in info.value.message
    assert "retry-after" in info.value.failover_headers  # type: ignore[attr-defined]
    assert len(runner.waiters["chat"].queue) == 0


async def test_never_waits_past_the_requests_own_timeout(upstream: FakeUpstream) -> None:
    router, _runner = make(upstream, cooldown_s=60)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted) as info:
        await ask(router, timeout=0.3)
    assert "in the queue (the request's timeout)" in info.value.message


async def test_a_cancelled_request_leaves_the_queue_and_calls_nothing(upstream: FakeUpstream) -> None:
    router, runner = make(upstream, cooldown_s=0.5)
    upstream.set(Behavior(503))
    task = asyncio.create_task(ask(router))
    await until(lambda: len(runner.waiters["chat"].queue) == 1)
    upstream.reset()
    task.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(runner.waiters["chat"].queue) == 0
    await asyncio.sleep(0.8)  # past the cooldown: nobody is left to call the upstream
    assert upstream.received == []


async def test_priority_then_arrival(upstream: FakeUpstream) -> None:
    router, runner = make(upstream, cooldown_s=60, release_concurrency=1)
    upstream.set(Behavior(503))
    tasks = []
    for prompt, priority in [("prio-5", 5), ("prio-1", 1), ("prio-3", 3), ("prio-1-later", 1)]:
        tasks.append(asyncio.create_task(ask(router, prompt=prompt, metadata={"failover_priority": priority})))
        await until_queued(runner, len(tasks))
    upstream.reset()
    await HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2)).tick()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    served = [r.prompt for r in upstream.received if r.prompt.startswith("prio-")]
    assert served == ["prio-1", "prio-1-later", "prio-3", "prio-5"]


async def test_release_is_paced(upstream: FakeUpstream) -> None:
    router, runner = make(upstream, cooldown_s=60, release_concurrency=2)
    upstream.set(Behavior(503))
    tasks = [asyncio.create_task(ask(router)) for _ in range(8)]
    await until(lambda: len(runner.waiters["chat"].queue) == 8)
    upstream.reset()
    upstream.set(Behavior(delay_s=0.1))
    await HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2)).tick()  # its ping ends first
    assert len(await asyncio.wait_for(asyncio.gather(*tasks), 20)) == 8
    assert upstream.max_in_flight <= 2
    assert [r.prompt for r in upstream.received].count("hi") == 8  # each exactly once


async def test_a_recovery_seen_by_one_replica_wakes_the_queue_of_another(upstream: FakeUpstream) -> None:
    """Two routers in one process stand in for two proxy replicas sharing Redis."""
    from litellm_failover_plugin.state.redis import RedisStore
    from litellm_failover_plugin.testing import free_port
    from tests.redis_server import RedisServer

    server = RedisServer(free_port()).start()
    try:
        replicas = []
        for _ in range(2):
            router = litellm.Router(model_list=[], disable_cooldowns=True)
            store = RedisStore.from_url(server.url, prefix="test:wake:")
            runner = attach(
                router,
                {
                    "backends": backends(upstream, beta=()),
                    "routes": {"chat": {"policy": "k", "elements": ["alpha:gpt-x"]}},
                    "breaker": {"failure_threshold": 1, "cooldown_s": 60},
                    "queue": {"max_wait_s": 20},
                },
                store=store,
            )
            replicas.append((router, runner, store))
        (_router_a, runner_a, _), (router_b, runner_b, store_b) = replicas

        async def listen() -> None:  # what the proxy plugin runs on replica B
            async for id in store_b.recoveries():
                await runner_b.recovered(id, tell_others=False)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.2)
        upstream.set(Behavior(503))
        waiting = asyncio.create_task(router_b.acompletion(model="chat", messages=MESSAGES))
        await until(lambda: len(runner_b.waiters["chat"].queue) == 1)
        upstream.reset()
        await HealthChecker(runner_a, HealthCheckSettings(interval_s=1, timeout_s=2)).tick()  # replica A sees it
        response = await asyncio.wait_for(waiting, 5)  # B's breaker cooldown is 60 s: the notice woke it
        assert response.choices[0].message.content == "Hello from shared"
        listener.cancel()
        for _, _, store in replicas:
            await store.aclose()
    finally:
        server.close()


async def test_the_attempts_header_counts_every_call_across_queue_passes(upstream: FakeUpstream) -> None:
    router, runner = make(upstream)
    upstream.set(Behavior(503))
    task = asyncio.create_task(router.acompletion(model="chat", messages=MESSAGES))
    await until(lambda: len(runner.waiters["chat"].queue) == 1)
    await until(lambda: len(upstream.received) >= 3)  # a probe after the 0.3 s cooldown failed too
    failed = len(upstream.received)
    upstream.reset()
    response = await asyncio.wait_for(task, 10)
    headers = response._hidden_params["additional_headers"]
    assert int(headers["x-failover-attempts"]) >= failed + len(upstream.received) >= 4  # it used to say 1


async def test_after_a_queue_wait_the_error_lists_every_attempt_of_every_pass(upstream: FakeUpstream) -> None:
    """It said "after 0 upstream call(s)", listed the last pass only and x-failover-backend: none,
    while x-failover-attempts and the upstream counted every call."""
    router, _runner = make(upstream, cooldown_s=0.2, max_wait_s=1.0)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted) as info:
        await ask(router)
    e = info.value
    calls = len(upstream.received)
    assert calls >= 4  # a1 and b1 in the first pass, then their probes after each cooldown
    headers = e.failover_headers  # type: ignore[attr-defined]
    assert headers["x-failover-attempts"] == str(calls)
    assert f"after {calls} upstream call(s)" in e.message
    called = [a for a in e.attempts if a.outcome.called]
    assert [a.candidate.key for a in called] == [r.key.removeprefix("sk-") for r in upstream.received]
    assert headers["x-failover-backend"] == called[-1].candidate.backend != "none"
    assert sum(1 for a in e.to_openai_error()["error"]["attempts"] if a["status"] == 503) == calls  # type: ignore[index]
