"""Rate limits known in advance (limits.py) in the attempt loop, on a real litellm.Router.

The runner's clock is a fake one (the counting windows follow it), except for the queue test,
whose clock is the real one shifted to just before a window's end (the queue waits in real
time). The fake upstream counts the calls each key received.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import litellm
import pytest

from litellm_failover_plugin import FailoverExhausted, attach
from litellm_failover_plugin.breaker import Breaker, State
from litellm_failover_plugin.config import HealthCheckSettings
from litellm_failover_plugin.limits import counter_keys, window_of
from litellm_failover_plugin.litellm.health import HealthChecker
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.state import MemoryStore
from litellm_failover_plugin.testing import Behavior, FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]
T0 = 1_800_000_000.0  # a window's start (a multiple of 60)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def backends(upstream: FakeUpstream, alpha: dict[str, Any], beta_params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": {"key": "sk-a1", **alpha}}},
        "beta": {
            "provider": "openai",
            "api_base": upstream.url,
            "api_keys": {"b1": "sk-b1", "b2": "sk-b2"},
            "litellm_params": beta_params or {},
        },
    }


def make(
    upstream: FakeUpstream,
    alpha: dict[str, Any],
    beta_params: dict[str, Any] | None = None,
    strategy: str | None = None,
    clock: Any = None,
    **extra: Any,
) -> tuple[litellm.Router, FailoverRunner]:
    router = litellm.Router(model_list=[], disable_cooldowns=True, **({"routing_strategy": strategy} if strategy else {}))
    settings = {
        "backends": backends(upstream, alpha, beta_params),
        "routes": {"chat": {"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
        "breaker": {"failure_threshold": 1},
        **extra,
    }
    runner = attach(router, settings)
    runner.clock = clock if clock is not None else Clock()
    return router, runner


async def ask(router: litellm.Router, **kw: Any) -> tuple[str, list[dict[str, Any]]]:
    md: dict[str, Any] = {}
    response = await router.acompletion(model="chat", messages=MESSAGES, metadata=md, **kw)
    return str(response._hidden_params["additional_headers"]["x-failover-key"]), md["failover"]["attempts"]


def calls(upstream: FakeUpstream, key: str) -> int:
    return sum(1 for r in upstream.received if r.key == f"sk-{key}")


def outcomes(attempts: list[dict[str, Any]]) -> list[str]:
    return [f"{a['key']}={a['outcome']}" for a in attempts]


@pytest.mark.parametrize("strategy", [None, "usage-based-routing", "usage-based-routing-v2"])
async def test_a_key_at_its_rpm_is_skipped_without_a_call(upstream: FakeUpstream, strategy: str | None) -> None:
    """The issue's case, with and without LiteLLM's usage-based routing: the 3rd request of a
    minute goes to the next key without calling the first; no breaker opens; the next minute
    the key serves again."""
    router, runner = make(upstream, {"rpm": 2}, strategy=strategy)
    assert [(await ask(router))[0] for _ in range(2)] == ["a1", "a1"]
    key, attempts = await ask(router)
    assert key == "b1" and outcomes(attempts) == ["a1=skipped_limit", "b1=success"]
    assert (calls(upstream, "a1"), calls(upstream, "b1")) == (2, 1)
    assert await runner.store.items() == {}  # no breaker moved
    assert not runner.herd.failing
    runner.clock.now += 60  # type: ignore[attr-defined]
    assert (await ask(router))[0] == "a1"


async def test_litellm_is_not_given_the_limits(upstream: FakeUpstream) -> None:
    """LiteLLM's usage-based routing would refuse a call at a limit with a 429 (a failure to
    the plugin): the deployments carry none, whichever way the limit was written."""
    router, runner = make(upstream, {"rpm": 2, "litellm_params": {"tpm": 10}}, beta_params={"rpm": 5, "timeout": 30})
    for d in router.get_model_list() or []:
        params = d["litellm_params"]
        assert params.get("rpm") is None and params.get("tpm") is None, d["model_info"]["id"]
    limits = {c.key: c.limits for c in runner.plans["chat"].candidates}
    assert (limits["a1"].rpm, limits["a1"].tpm, limits["b1"].rpm, limits["b2"].rpm) == (2, 10, 5, 5)


async def test_backend_limits_apply_to_each_key(upstream: FakeUpstream) -> None:
    router, _ = make(upstream, {"rpm": 1}, beta_params={"rpm": 1})
    keys = [(await ask(router))[0] for _ in range(3)]
    assert keys == ["a1", "b1", "b2"]
    with pytest.raises(FailoverExhausted):
        await ask(router)
    assert len(upstream.received) == 3


async def test_every_key_at_its_limit_without_a_queue_is_429_until_the_next_minute(upstream: FakeUpstream) -> None:
    router, _runner = make(upstream, {"rpm": 1}, beta_params={"rpm": 1}, clock=Clock(T0 + 45))
    for _ in range(3):
        await ask(router)
    with pytest.raises(FailoverExhausted) as info:
        await ask(router)
    assert info.value.status_code == 429
    assert info.value.failover_headers["retry-after"] == "15"  # type: ignore[attr-defined]
    assert [a.outcome.value for a in info.value.attempts] == ["skipped_limit"] * 3
    assert len(upstream.received) == 3


async def test_concurrent_requests_never_overshoot(upstream: FakeUpstream) -> None:
    """Each call reserves its slot before it is made: 20 requests at once, rpm 3, 3 calls."""
    router, _ = make(upstream, {"rpm": 3})
    upstream.set(**{"sk-a1": Behavior(200, delay_s=0.1)})
    keys = await asyncio.gather(*(ask(router) for _ in range(20)))
    assert sum(1 for k, _ in keys if k == "a1") == 3
    assert calls(upstream, "a1") == 3


async def test_a_failed_call_counts_and_a_retry_takes_a_slot(upstream: FakeUpstream) -> None:
    """Providers count attempts: a failed call keeps its slot; a same-key retry needs one more."""
    router, runner = make(upstream, {"rpm": 2}, defaults={"max_retries_per_element": 5}, breaker={"enabled": False})
    runner.sleep = lambda s: asyncio.sleep(0)  # type: ignore[method-assign]
    upstream.set(**{"sk-a1": Behavior(500)})
    key, attempts = await ask(router)
    assert key == "b1"
    assert outcomes(attempts) == ["a1=retried", "a1=retried", "a1=skipped_limit", "b1=success"]
    assert calls(upstream, "a1") == 2


async def test_tpm_counts_the_answers_tokens(upstream: FakeUpstream) -> None:
    """The fake upstream's answers use 8 tokens: with tpm 10, the 3rd request of a minute moves on."""
    router, _ = make(upstream, {"tpm": 10})
    assert [(await ask(router))[0] for _ in range(3)] == ["a1", "a1", "b1"]


async def test_tpm_counts_a_streams_tokens(upstream: FakeUpstream) -> None:
    router, _ = make(upstream, {"tpm": 1})
    response = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    async for _ in response:
        pass
    assert (await ask(router))[0] == "b1"


async def test_a_queue_waits_for_the_next_minute(upstream: FakeUpstream) -> None:
    """Every key at its limit: a route with a queue holds the request until the next window
    (the runner's clock is the real one shifted: the window ends 0.3 s after the last key's
    limit is reached; the queue waits in real time)."""
    window = T0 // 60
    shift = [T0 + 1 - time.time()]
    router, _ = make(
        upstream,
        {"rpm": 1},
        beta_params={"rpm": 1},
        clock=lambda: time.time() + shift[0],
        queue={"max_wait_s": 10, "recheck_s": 5},
    )
    for _ in range(3):
        await ask(router)
    shift[0] = T0 + 59.7 - time.time()  # later in the same window
    started = time.time()
    key, attempts = await asyncio.wait_for(ask(router), 5)
    assert key == "a1" and outcomes(attempts)[-1] == "a1=success"
    assert time.time() - started >= 0.25  # it waited for the next window (not for recheck_s: 5 s)
    assert [r.at + shift[0] >= (window + 1) * 60 for r in upstream.received] == [False] * 3 + [True]


async def test_the_issues_case_two_keys_of_a_backend_with_rpm_under_usage_based_routing(upstream: FakeUpstream) -> None:
    """Issue #13: rpm 2 on two keys (the backend's litellm_params), usage-based-routing-v2. The
    3rd request used to report 2 upstream calls where 1 was made and open both breakers; the
    4th got a 503 with 0 calls although the second key had room."""
    router = litellm.Router(model_list=[], disable_cooldowns=True, routing_strategy="usage-based-routing-v2")
    keys = {"k1": "sk-k1", "k2": "sk-k2"}
    backend = {"provider": "openai", "api_base": upstream.url, "api_keys": keys, "litellm_params": {"rpm": 2}}
    runner = attach(router, {"backends": {"one": backend}, "routes": {"chat": {"policy": "k", "elements": ["one:m"]}}})
    runner.clock = Clock()
    served = []
    for _ in range(4):
        response = await router.acompletion(model="chat", messages=MESSAGES)
        headers = response._hidden_params["additional_headers"]
        served.append((headers["x-failover-key"], headers["x-failover-attempts"]))
    assert served == [("k1", "1"), ("k1", "1"), ("k2", "1"), ("k2", "1")]
    assert (calls(upstream, "k1"), calls(upstream, "k2")) == (2, 2)
    assert await runner.store.items() == {}


class CountingStore(MemoryStore):
    """Counts the store's round trips by kind (with Redis, each is one)."""

    def __init__(self) -> None:
        super().__init__()
        self.trips: Counter[str] = Counter()

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        self.trips["breakers"] += 1
        return await super().get_many(ids)

    async def counts(self, keys: Sequence[str]) -> list[int]:
        self.trips["counts"] += 1
        return await super().counts(keys)

    async def add(self, counts: Sequence[tuple[str, int]], ttl_s: int) -> list[int]:
        self.trips["add"] += 1
        return await super().add(counts, ttl_s)


@pytest.mark.parametrize("size", [3, 60])
async def test_the_store_round_trips_of_a_healthy_request(upstream: FakeUpstream, size: int) -> None:
    """Keys without limits cost nothing more; a key with rpm and tpm: one read, one reservation,
    one add of its tokens; none of it grows with the route's size."""
    store = CountingStore()
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    keys: dict[str, Any] = {f"k{i}": f"sk-k{i}" for i in range(size)}
    limited = {"key": "sk-k0", "rpm": 100, "tpm": 10_000}
    routes = {"free": {"policy": "k", "elements": ["free:m"]}, "limited": {"policy": "k", "elements": ["limited:m"]}}
    backends = {
        "free": {"provider": "openai", "api_base": upstream.url, "api_keys": keys},
        "limited": {"provider": "openai", "api_base": upstream.url, "api_keys": {**keys, "k0": limited}},
    }
    runner = attach(router, {"backends": backends, "routes": routes}, store=store)
    runner.clock = Clock()
    await router.acompletion(model="free", messages=MESSAGES)
    assert store.trips == {"breakers": 1}
    store.trips.clear()
    await router.acompletion(model="limited", messages=MESSAGES)
    assert store.trips == {"breakers": 1, "counts": 1, "add": 2}


async def test_a_health_check_takes_a_slot_and_waits_when_the_key_is_at_its_limit(upstream: FakeUpstream) -> None:
    """A background probe is a call to the key too: it reserves a slot; at the limit, no call."""
    router, runner = make(upstream, {"rpm": 2}, breaker={"failure_threshold": 1, "cooldown_s": 1})
    upstream.set(**{"sk-a1": Behavior(503)})
    assert (await ask(router))[0] == "b1"  # a1's failure (slot 1) opens its breaker
    upstream.reset()
    checker = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2))
    runner.clock.now += 2  # type: ignore[attr-defined]
    await runner.store.add([(counter_keys("alpha:gpt-x/a1", window_of(runner.clock()))[0], 1)], 120)  # slot 2: another replica's
    assert await checker.tick() == ["alpha:gpt-x/a1"]
    assert upstream.received == []  # at its limit: not called
    [b] = await runner.store.get_many(["alpha:gpt-x/a1"])
    assert b.state is State.OPEN and b.probe_until <= runner.clock()  # the probe slot is free again
    runner.clock.now += 60  # type: ignore[attr-defined]
    assert await checker.tick() == ["alpha:gpt-x/a1"]
    assert [r.key for r in upstream.received] == ["sk-a1"]
    [b] = await runner.store.get_many(["alpha:gpt-x/a1"])
    assert b.state is State.CLOSED
