"""The breaker inside the attempt loop, on a plain litellm.Router, with a fake clock.

Upstreams are real HTTP servers on 127.0.0.1; time is a number the test moves.
"""

import asyncio
from typing import Any

import litellm
import pytest

from litellm_failover_plugin import FailoverExhausted, attach, compile_routes
from litellm_failover_plugin.config import HealthCheckSettings
from litellm_failover_plugin.litellm.health import HealthChecker
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.litellm.status import status_rows
from litellm_failover_plugin.scoring import Stats
from litellm_failover_plugin.state import MemoryStore
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now




def make(upstream: FakeUpstream, policy: str = "m", **breaker: Any) -> tuple[litellm.Router, FailoverRunner, Clock]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    runner = attach(
        router,
        {
            "backends": backends(upstream, alpha=("a1", "a2")),
            "routes": {"chat": {"policy": policy, "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
            "breaker": {"failure_threshold": 3, "cooldown_s": 10, **breaker},
        },
    )
    clock = Clock()
    runner.clock = clock
    return router, runner, clock


def keys(upstream: FakeUpstream) -> list[str]:
    return [r.key for r in upstream.received]


async def served_by(router: litellm.Router) -> str:
    response = await router.acompletion(model="chat", messages=MESSAGES)
    return str(response._hidden_params["additional_headers"]["x-failover-key"])


async def test_open_breaker_sends_the_dead_primary_nothing(upstream: FakeUpstream) -> None:
    router, runner, clock = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(3):
        assert await served_by(router) == "b1"
    assert keys(upstream) == ["sk-a1", "sk-b1"] * 3
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(5):
        clock.now += 1
        assert await served_by(router) == "b1"
    assert keys(upstream) == ["sk-b1"] * 5
    [row] = [r for r in await status_rows(runner) if r["key"] == "a1"]
    assert row["state"] == "open" and row["failures"] == 3


async def test_exactly_one_half_open_probe_then_back_to_primary(upstream: FakeUpstream) -> None:
    router, _runner, clock = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(3):
        await served_by(router)
    upstream.reset()  # the primary is back, but the breaker does not know yet
    upstream.set(**{"sk-a1": Behavior(delay_s=0.3)})  # a slow probe, so the others overlap it
    clock.now += 10
    served = await asyncio.gather(*(served_by(router) for _ in range(6)))
    assert keys(upstream).count("sk-a1") == 1  # one probe; the other five skipped it
    assert sorted(served) == ["a1"] + ["b1"] * 5
    upstream.reset()
    assert await served_by(router) == "a1"  # closed again
    assert keys(upstream) == ["sk-a1"]


async def test_failed_probe_reopens_with_a_longer_cooldown(upstream: FakeUpstream) -> None:
    router, _runner, clock = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(3):
        await served_by(router)
    clock.now += 10
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(503)})
    await served_by(router)  # the probe fails
    assert keys(upstream) == ["sk-a1", "sk-b1"]
    clock.now += 15  # the cooldown is now 20 s
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(503)})
    await served_by(router)
    assert keys(upstream) == ["sk-b1"]


async def test_auth_failure_disables_that_key_only_and_the_next_key_serves(upstream: FakeUpstream) -> None:
    router, _runner, _clock = make(upstream, policy="mk", failure_threshold=5)
    upstream.set(**{"sk-a1": Behavior(401, message="invalid key")})
    # 401 is not listed: not a reason to fail the request while a2 is healthy, nor to leave alpha
    assert await served_by(router) == "a2"
    assert keys(upstream) == ["sk-a1", "sk-a2"]  # beta's b1 (next in mk order) is not for a revoked key
    upstream.reset()
    assert await served_by(router) == "b1"  # a1 is disabled at once: skipped, the walk goes on in mk order
    assert keys(upstream) == ["sk-b1"]


async def test_auth_failure_of_every_key_of_the_element_goes_back_as_is(upstream: FakeUpstream) -> None:
    router, _runner, _clock = make(upstream, policy="km", failure_threshold=5)
    upstream.set(**{"sk-a1": Behavior(401, message="invalid key"), "sk-a2": Behavior(403, message="forbidden")})
    with pytest.raises(litellm.APIError) as info:  # as LiteLLM raises an upstream's 403
        await router.acompletion(model="chat", messages=MESSAGES)
    assert info.value.status_code == 403
    assert keys(upstream) == ["sk-a1", "sk-a2"]


async def test_client_errors_do_not_count(upstream: FakeUpstream) -> None:
    router, runner, _clock = make(upstream)
    upstream.set(Behavior(400))
    for _ in range(5):
        with pytest.raises(litellm.BadRequestError):
            await router.acompletion(model="chat", messages=MESSAGES)
    assert all(r["state"] == "closed" and r["failures"] == 0 for r in await status_rows(runner))


async def test_health_check_closes_the_breaker_without_a_user_request(upstream: FakeUpstream) -> None:
    router, runner, clock = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(3):
        await served_by(router)
    checker = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2))
    clock.now += 1  # well inside the 10 s cooldown
    assert await checker.tick() == ["alpha:gpt-x/a1"]  # still down: stays open
    upstream.reset()  # the primary is back
    clock.now += 1
    assert await checker.tick() == ["alpha:gpt-x/a1"]
    assert keys(upstream) == ["sk-a1"]  # the health check's own call
    assert await checker.tick() == []  # closed: nothing to check
    upstream.reset()
    assert await served_by(router) == "a1"


async def test_disabled_breaker_keeps_calling(upstream: FakeUpstream) -> None:
    router, _runner, _clock = make(upstream, enabled=False)
    upstream.set(**{"sk-a1": Behavior(503)})
    for _ in range(5):
        await served_by(router)
    assert keys(upstream).count("sk-a1") == 5


async def test_litellm_cooldown_is_adopted_and_a_health_check_ends_it(upstream: FakeUpstream) -> None:
    import time

    router = litellm.Router(model_list=[], allowed_fails=0, cooldown_time=60)
    runner = attach(
        router,
        {
            "backends": backends(upstream),
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
            "breaker": {"failure_threshold": 5},
        },
    )
    clock = Clock()
    clock.now = time.time()  # LiteLLM's cooldown timestamps are real time
    runner.clock = clock
    upstream.set(**{"sk-a1": Behavior(429)})  # LiteLLM cools a1 down for 60 s at once
    assert await served_by(router) == "b1"
    for _ in range(50):  # LiteLLM records the cooldown from a background task
        if await runner.cooling_down(["chat/alpha:gpt-x/a1"]):
            break
        await asyncio.sleep(0.02)
    upstream.reset()  # a1 is fine again, but LiteLLM would keep it out for a minute
    assert await served_by(router) == "b1"
    [row] = [r for r in await status_rows(runner) if r["key"] == "a1"]
    assert row["state"] == "open" and "LiteLLM cooldown" in row["reason"] and row["litellm_cooldown"]
    checker = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2))
    assert await checker.tick() == ["alpha:gpt-x/a1"]
    assert not await runner.cooling_down(["chat/alpha:gpt-x/a1"])  # cleared with the breaker
    assert await served_by(router) == "a1"


def scored(upstream: FakeUpstream, beta_priority: int) -> tuple[litellm.Router, FailoverRunner]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    runner = attach(
        router,
        {
            "backends": backends(upstream),
            "routes": {
                "chat": {
                    "policy": "scored",
                    "elements": ["alpha:gpt-x", {"element": "beta:gpt-y", "priority": beta_priority}],
                }
            },
        },
    )
    return router, runner


class CallClock:
    """Time that passes only in upstream calls: each call received costs its key's duration. The
    runner times a call as the clock after it minus the clock before it, so a1 takes 200 ms and b1
    10 ms whatever the machine's load (a real 0.2 s delay lost to a slow first b1 call in CI)."""

    def __init__(self, upstream: FakeUpstream, seconds: dict[str, float]) -> None:
        self.upstream, self.seconds = upstream, seconds

    def __call__(self) -> float:
        return 1000.0 + sum(self.seconds[r.key] for r in self.upstream.received)


async def test_scored_route_moves_to_the_faster_candidate(upstream: FakeUpstream) -> None:
    router, runner = scored(upstream, beta_priority=0)
    runner.clock = CallClock(upstream, {"sk-a1": 0.2, "sk-b1": 0.01})
    served = [await served_by(router) for _ in range(5)]
    assert served[:2] == ["a1", "b1"]  # written order first; an unknown candidate gets its chance
    assert served[2:] == ["b1", "b1", "b1"]  # then the faster one
    rows = {r["key"]: r for r in await status_rows(runner)}
    assert rows["a1"]["latency_ms"] > rows["b1"]["latency_ms"]


async def test_scored_route_keeps_priority_over_speed(upstream: FakeUpstream) -> None:
    router, _runner = scored(upstream, beta_priority=1)
    upstream.set(**{"sk-a1": Behavior(delay_s=0.2)})
    assert [await served_by(router) for _ in range(4)] == ["a1"] * 4
    upstream.set(**{"sk-a1": Behavior(503)})
    assert await served_by(router) == "b1"  # and still fails over in that order


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    async def update(self, id: str, fn: Any) -> Any:
        self.writes += 1
        return await super().update(id, fn)


async def test_a_close_by_another_worker_beats_this_workers_older_litellm_cooldown(upstream: FakeUpstream) -> None:
    """Two workers: one shared breaker store, a router (and LiteLLM cooldown memory) each. B's
    LiteLLM cooldown from the outage must not re-open the breaker A's probe closed (it did: the
    breaker flapped with --num_workers 2)."""
    store = CountingStore()
    settings = {
        "backends": backends(upstream),
        "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
        "breaker": {"failure_threshold": 5},
    }
    router_a, router_b = (litellm.Router(model_list=[], allowed_fails=0, cooldown_time=60) for _ in range(2))
    runner_a, runner_b = (attach(r, settings, store=store) for r in (router_a, router_b))
    upstream.set(**{"sk-a1": Behavior(429)})  # B's LiteLLM cools a1 down for 60 s at once; B's breaker adopts it
    assert await served_by(router_b) == "b1"
    for _ in range(50):  # LiteLLM records the cooldown from a background task
        if await runner_b.cooling_down(["chat/alpha:gpt-x/a1"]):
            break
        await asyncio.sleep(0.02)
    assert await served_by(router_b) == "b1"
    [b] = await store.get_many(["alpha:gpt-x/a1"])
    assert b.state.value == "open" and "LiteLLM cooldown" in b.reason
    upstream.reset()
    assert await HealthChecker(runner_a, HealthCheckSettings(interval_s=1, timeout_s=2)).tick() == ["alpha:gpt-x/a1"]
    assert await served_by(router_b) == "a1"  # B's cooldown is older than A's close: cleared, not adopted
    assert not await runner_b.cooling_down(["chat/alpha:gpt-x/a1"])
    [b] = await store.get_many(["alpha:gpt-x/a1"])
    assert b.state.value == "closed" and b.closed_at > 0
    writes = store.writes
    assert [await served_by(r) for r in (router_a, router_b, router_a)] == ["a1"] * 3
    assert store.writes == writes, "a success on a closed key costs no store write, closed_at or not"


class Ticking:
    """A clock that moves 1 ms each time it is read: ranking a route "takes" 1 ms."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


async def test_a_scored_route_is_ranked_again_only_when_its_ranking_is_stale(upstream: FakeUpstream) -> None:
    """Ranking a big route costs milliseconds: it serves 50 times what it took (scoring.ranking_fresh),
    then the next request ranks afresh; a reload ranks its new plan at once."""
    router, runner = scored(upstream, beta_priority=0)
    runner.clock = clock = Ticking()
    plan = runner.plans["chat"]
    first = runner.ranked(plan)
    assert [c.key for c in first.candidates] == ["a1", "b1"]
    a1, b1 = (c.health_id for c in plan.candidates)
    runner.stats[a1], runner.stats[b1] = Stats(1, 900.0, 1.0), Stats(1, 10.0, 1.0)  # b1 turns out faster
    assert runner.ranked(plan) is first  # 2 ms old: still fresh (kept 50 ms)
    clock.now += 0.05
    second = runner.ranked(plan)
    assert [c.key for c in second.candidates] == ["b1", "a1"]
    runner.update(runner.settings, compile_routes(runner.settings))  # a reload: the same routes, new plans
    reloaded = runner.ranked(runner.plans["chat"])
    assert reloaded is not second and [c.key for c in reloaded.candidates] == ["b1", "a1"]
    assert await served_by(router) == "b1"


async def test_an_unlisted_429_goes_back_and_never_adopts_litellms_cooldown(upstream: FakeUpstream) -> None:
    """The README's Configure example: alpha:gpt-x falls over on [500, 503] only. A 429 from it
    goes back to the client as is, and LiteLLM's cooldown after it does not open the key's
    breaker (it did: `closed -> open reason=LiteLLM cooldown`, on every route of the key)."""
    import time

    router = litellm.Router(model_list=[], allowed_fails=0, cooldown_time=60)
    runner = attach(
        router,
        {
            "backends": backends(upstream),
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
            "model_fallback_status_codes": {"alpha:gpt-x": [500, 503]},
            "breaker": {"failure_threshold": 1},
        },
    )
    clock = Clock()
    clock.now = time.time()  # LiteLLM's cooldown timestamps are real time
    runner.clock = clock
    upstream.set(**{"sk-a1": Behavior(429)})
    with pytest.raises(litellm.RateLimitError):
        await router.acompletion(model="chat", messages=MESSAGES)
    assert keys(upstream) == ["sk-a1"]  # handed back: beta was not called
    cooldown = runner.router.cooldown_cache
    for _ in range(50):  # LiteLLM records its cooldown from a background task
        if await cooldown.async_get_active_cooldowns(model_ids=["chat/alpha:gpt-x/a1"], parent_otel_span=None):
            break
        await asyncio.sleep(0.02)
    upstream.reset()
    assert await served_by(router) == "a1"  # not skipped: the 429 was not a failure of this deployment
    [row] = [r for r in await status_rows(runner) if r["key"] == "a1"]
    assert row["state"] == "closed" and not row["litellm_cooldown"]


async def test_every_breaker_open_and_no_queue_says_when_the_first_probe_is_due(upstream: FakeUpstream) -> None:
    router, _runner, clock = make(upstream, failure_threshold=1, cooldown_s=10)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="chat", messages=MESSAGES)  # a1 and b1 open for 10 s
    clock.now += 3
    with pytest.raises(FailoverExhausted) as info:
        await router.acompletion(model="chat", messages=MESSAGES)  # no call: every candidate is open
    assert info.value.status_code == 503
    assert info.value.failover_headers["retry-after"] == "7"  # type: ignore[attr-defined]
