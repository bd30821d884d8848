"""One breaker and one stats record per (backend, model, key), shared by every route using it.

Two routes over the same keys, on a plain litellm.Router; upstreams are real HTTP servers on
127.0.0.1, time is a number the test moves.
"""

import asyncio
import time
from pathlib import Path
from typing import Any

import litellm
import pytest
import yaml

from litellm_failover_plugin import attach
from litellm_failover_plugin.__main__ import status_from_store
from litellm_failover_plugin.breaker import Breaker, State
from litellm_failover_plugin.config import HealthCheckSettings
from litellm_failover_plugin.litellm.health import HealthChecker
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.litellm.status import status_rows
from litellm_failover_plugin.state.redis import RedisStore
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends
from tests.redis_server import RedisServer

MESSAGES = [{"role": "user", "content": "hi"}]
A1 = "alpha:gpt-x/a1"  # the key's health id
ROUTES = {
    "chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]},
    "chat-2": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]},
}


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(upstream: FakeUpstream, router: litellm.Router | None = None, **breaker: Any) -> tuple[litellm.Router, FailoverRunner]:
    router = router or litellm.Router(model_list=[], disable_cooldowns=True)
    settings = {"backends": backends(upstream), "routes": ROUTES, "breaker": {"failure_threshold": 3, **breaker}}
    return router, attach(router, settings)


async def served_by(router: litellm.Router, route: str) -> str:
    response = await router.acompletion(model=route, messages=MESSAGES)
    return str(response._hidden_params["additional_headers"]["x-failover-key"])


def keys(upstream: FakeUpstream) -> list[str]:
    return [r.key for r in upstream.received]


async def test_a_key_opened_in_one_route_is_open_in_every_route(upstream: FakeUpstream) -> None:
    router, runner = make(upstream)
    runner.clock = Clock()
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(3):
        assert await served_by(router, "chat") == "b1"
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(3):
        assert await served_by(router, "chat-2") == "b1"
    assert keys(upstream) == ["sk-b1"] * 3, "the other route skips the key the first one found dead"
    rows = {r["deployment"]: r for r in await status_rows(runner)}
    for id in ("chat/alpha:gpt-x/a1", "chat-2/alpha:gpt-x/a1"):  # every deployment, one shared breaker
        assert rows[id]["state"] == "open" and rows[id]["failures"] == 3
        assert rows[id]["health"] == A1 and rows[id]["shared_by"] == ["chat", "chat-2"]
    assert set(runner.stats) == {A1, "beta:gpt-y/b1"}  # one stats record per key
    assert runner.stats[A1].calls == 3 and runner.stats["beta:gpt-y/b1"].calls == 6
    assert set(await runner.store.items()) == {A1}


async def test_failures_through_two_routes_add_up_on_the_key(upstream: FakeUpstream) -> None:
    router, runner = make(upstream)
    runner.clock = Clock()
    upstream.set(**{"sk-a1": Behavior(503)})
    for route in ("chat", "chat-2", "chat"):  # 3 failures of the one key, whichever route made them
        assert await served_by(router, route) == "b1"
    upstream.reset()
    assert await served_by(router, "chat-2") == "b1"
    assert keys(upstream) == ["sk-b1"]


async def test_one_probe_for_the_key_and_recovery_in_every_route(upstream: FakeUpstream) -> None:
    router, runner = make(upstream, cooldown_s=10)
    clock = Clock()
    runner.clock = clock
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(3):
        await served_by(router, "chat")
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(delay_s=0.3)})  # back, slowly: the probe overlaps the others
    clock.now += 10
    served = await asyncio.gather(*(served_by(router, r) for r in ["chat", "chat-2"] * 3))
    assert keys(upstream).count("sk-a1") == 1  # one probe for the key, whichever route took it
    assert sorted(served) == ["a1"] + ["b1"] * 5
    upstream.reset()
    assert [await served_by(router, "chat"), await served_by(router, "chat-2")] == ["a1", "a1"]


async def test_litellm_cooldown_of_one_deployment_takes_the_key_out_and_recovery_clears_all(
    upstream: FakeUpstream,
) -> None:
    router = litellm.Router(model_list=[], allowed_fails=0, cooldown_time=60)
    router, runner = make(upstream, router, failure_threshold=5)
    runner.clock = Clock(time.time())  # LiteLLM's cooldown timestamps are real time
    upstream.set(**{"sk-a1": Behavior(429)})  # LiteLLM cools chat's deployment of a1 down at once
    assert await served_by(router, "chat") == "b1"
    for _ in range(50):  # LiteLLM records the cooldown from a background task
        if await runner.cooling_down(["chat/alpha:gpt-x/a1"]):
            break
        await asyncio.sleep(0.02)
    # LiteLLM also cools the other route's deployment of the key (as a worker that saw it would)
    router.cooldown_cache.add_deployment_to_cooldown(
        model_id="chat-2/alpha:gpt-x/a1", original_exception=Exception("429"), exception_status=429, cooldown_time=30
    )
    upstream.reset()  # a1 is fine again
    assert await served_by(router, "chat-2") == "b1"  # the key is out, in every route
    assert keys(upstream) == ["sk-b1"]
    [b] = await runner.store.get_many([A1])
    assert b.state is State.OPEN and "LiteLLM cooldown" in b.reason
    assert b.open_until >= runner.clock() + 55  # the longest cooldown of the key's deployments
    checker = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2))
    assert await checker.tick() == [A1]
    assert not await runner.cooling_down(["chat/alpha:gpt-x/a1", "chat-2/alpha:gpt-x/a1"])  # both cleared
    assert [await served_by(router, "chat"), await served_by(router, "chat-2")] == ["a1", "a1"]


async def test_a_recovery_wakes_the_queues_of_every_route_using_the_key(upstream: FakeUpstream) -> None:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    routes = {"q1": {"policy": "k", "elements": ["alpha:gpt-x"]}, "q2": {"policy": "k", "elements": ["alpha:gpt-x"]}}
    runner = attach(
        router,
        {
            "backends": backends(upstream, beta=()),
            "routes": routes,
            "breaker": {"failure_threshold": 1, "cooldown_s": 60},
            "queue": {"max_wait_s": 20},
        },
    )
    upstream.set(Behavior(503))
    waiting = [asyncio.create_task(router.acompletion(model=r, messages=MESSAGES)) for r in ("q1", "q2")]
    for _ in range(200):
        if all(len(runner.waiters[r].queue) == 1 for r in ("q1", "q2")):
            break
        await asyncio.sleep(0.01)
    upstream.reset()
    assert await HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2)).tick() == [A1]
    done = await asyncio.wait_for(asyncio.gather(*waiting), 5)  # cooldown 60 s: the recovery woke both
    assert [r.choices[0].message.content for r in done] == ["Hello from shared"] * 2


def pool_route(upstream: FakeUpstream, n: int) -> tuple[dict[str, str], litellm.Router, FailoverRunner]:
    """A route `pool` over n keys a0.. of one backend (values sk-a0..), a breaker that opens at the
    first failure for 60 s, and a clock the test moves."""
    pool = {f"a{i}": f"sk-a{i}" for i in range(n)}
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    runner = attach(
        router,
        {
            "backends": {"alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": pool}},
            "routes": {"pool": {"policy": "k", "elements": ["alpha:gpt-x"]}},
            "breaker": {"failure_threshold": 1, "cooldown_s": 60},
        },
    )
    runner.clock = Clock()
    return pool, router, runner


async def test_a_health_round_over_many_keys_reads_a_slice_and_every_key_this_process_saw_fail(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round's store read does not grow with the number of keys: it reads SCAN_PER_INTERVAL
    keys in rotation plus the keys this process saw fail or read open. A key opened elsewhere
    (another replica, here: written to the store directly) is found by the rotation; one this
    process saw fail is probed at the next round."""
    monkeypatch.setattr("litellm_failover_plugin.litellm.health.SCAN_PER_INTERVAL", 8, raising=False)
    _, router, runner = pool_route(upstream, 40)
    reads: list[int] = []
    get_many = runner.store.get_many

    async def counted(ids: list[str]) -> list[Breaker]:
        reads.append(len(ids))
        return await get_many(ids)

    monkeypatch.setattr(runner.store, "get_many", counted)
    checker = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2))
    upstream.set(**{"sk-a0": Behavior(503)})
    assert (await router.acompletion(model="pool", messages=MESSAGES)).choices[0].message.content == "Hello from shared"
    assert [r.key for r in upstream.received] == ["sk-a0", "sk-a1"]  # a0 failed here and opened
    far = "alpha:gpt-x/a30"  # opened by another replica: this one never called it
    opened = Breaker(state=State.OPEN, failures=1, open_until=runner.clock.now - 1, cooldown_s=60, reason="elsewhere")
    await runner.store.update(far, lambda b: opened)
    upstream.reset()
    reads.clear()
    probed = [await checker.tick() for _ in range(5)]  # 40 keys, 8 a round: every key within 5 rounds
    assert probed[0] == ["alpha:gpt-x/a0"], "the key this process saw fail, at the very next round"
    assert [far] in probed[1:], "the key opened elsewhere, found by the rotation"
    assert reads and max(reads) <= 8 + 2, "a round reads its slice and the suspects, not all 40 keys"
    [a0, a30] = await runner.store.get_many(["alpha:gpt-x/a0", far])
    assert a0.state is State.CLOSED and a30.state is State.CLOSED  # both probed and found well


async def test_keys_that_stay_dead_do_not_take_every_probe(upstream: FakeUpstream) -> None:
    """8 keys open, every probe failing, 3 probes a round: the rounds take turns over the keys
    (before, the first 3 keys in the config took every round's probes; the others waited)."""
    pool, _, runner = pool_route(upstream, 8)
    opened = Breaker(state=State.OPEN, failures=1, open_until=runner.clock.now + 60, cooldown_s=60, reason="test")
    for key in pool:
        await runner.store.update(f"alpha:gpt-x/{key}", lambda b: opened)
    upstream.set(**{value: Behavior(503) for value in pool.values()})
    checker = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2, max_per_interval=3))
    rounds = []
    for _ in range(3):
        rounds.append(await checker.tick())
        runner.clock.now += 1
    assert [len(r) for r in rounds] == [3, 3, 3]
    assert {k for r in rounds[:3] for k in r} == {f"alpha:gpt-x/{key}" for key in pool}, "every key probed within 3 rounds"
    assert rounds[1] == ["alpha:gpt-x/a3", "alpha:gpt-x/a4", "alpha:gpt-x/a5"]
    assert rounds[2] == ["alpha:gpt-x/a6", "alpha:gpt-x/a7", "alpha:gpt-x/a0"]  # then the one probed longest ago
    assert sorted(r.key for r in upstream.received) == sorted([f"sk-a{i}" for i in range(8)] + ["sk-a0"])


async def test_status_from_redis_shows_every_deployment_and_the_shared_key(
    upstream: FakeUpstream, redis_server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"redis_url": redis_server.url, "backends": backends(upstream), "routes": ROUTES}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"failover_settings": settings}))
    store = RedisStore.from_url(redis_server.url)
    await store.update(A1, lambda b: Breaker(state=State.OPEN, failures=3, open_until=2e9, reason="3 consecutive failures"))
    await store.aclose()
    monkeypatch.setenv("COLUMNS", "250")
    assert await asyncio.to_thread(status_from_store, str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    a1 = [line for line in lines if "/alpha:gpt-x/a1" in line]
    assert len(a1) == 2 and all("open" in line for line in a1), lines
    shared = [line for line in lines if "3 consecutive failures (key shared by chat, chat-2)" in line]
    assert len(shared) == 2, lines  # each of the key's rows says which routes share its breaker
    b1 = [line for line in lines if "/beta:gpt-y/b1" in line]
    assert len(b1) == 2 and all("closed" in line for line in b1), lines
