"""Herd control in the attempt loop: 200 requests arriving together at a primary that just died.

The primary answers 503 after 0.2 s, so every call it gets overlaps the others; the fake
upstream counts them. A real litellm.Router, real HTTP on 127.0.0.1, no clock needed.
"""

import asyncio
from typing import Any

import litellm

from litellm_failover_plugin import attach
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]
HERD = 200


def make(upstream: FakeUpstream, **breaker: Any) -> tuple[litellm.Router, FailoverRunner]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    settings = {
        "backends": backends(upstream),
        "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
        "breaker": {"failure_threshold": 3, **breaker},
    }
    return router, attach(router, settings)


async def herd(router: litellm.Router) -> list[dict[str, Any]]:
    """HERD requests at once; each one's attempts."""
    responses = await asyncio.gather(*(router.acompletion(model="chat", messages=MESSAGES) for _ in range(HERD)))
    keys = [r._hidden_params["additional_headers"]["x-failover-key"] for r in responses]
    assert keys == ["b1"] * HERD  # every request is served, by the backup
    return [r for r in responses]


def calls_to(upstream: FakeUpstream, key: str) -> int:
    return sum(1 for r in upstream.received if r.key == key)


async def test_a_herd_at_a_primary_that_just_failed_costs_a_few_calls(upstream: FakeUpstream) -> None:
    router, _runner = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503, delay_s=0.2)})
    await router.acompletion(model="chat", messages=MESSAGES)  # the primary's first failure
    assert calls_to(upstream, "sk-a1") == 1
    await herd(router)
    failed = calls_to(upstream, "sk-a1")
    print(f"herd_failed_calls={failed} for {HERD} requests (the first failure included)")
    assert failed <= 3  # the first failure, then at most 2 in flight (the default) until it opened


async def test_skipped_requests_say_so(upstream: FakeUpstream) -> None:
    router, _runner = make(upstream, max_in_flight_while_failing=1)
    upstream.set(**{"sk-a1": Behavior(503, delay_s=0.2)})
    await router.acompletion(model="chat", messages=MESSAGES)
    metadata: list[dict[str, Any]] = [{} for _ in range(20)]
    await asyncio.gather(*(router.acompletion(model="chat", messages=MESSAGES, metadata=md) for md in metadata))
    outcomes = [md["failover"]["attempts"][0]["outcome"] for md in metadata]
    assert outcomes.count("failed_over") == 1 and outcomes.count("skipped_busy") == 19
    assert calls_to(upstream, "sk-a1") == 2


async def test_a_success_ends_the_limit(upstream: FakeUpstream) -> None:
    router, _runner = make(upstream, failure_threshold=100)
    upstream.set(**{"sk-a1": Behavior(503)})
    await router.acompletion(model="chat", messages=MESSAGES)
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(delay_s=0.1)})  # back; one request finds out
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "a1"
    responses = await asyncio.gather(*(router.acompletion(model="chat", messages=MESSAGES) for _ in range(20)))
    assert [r._hidden_params["additional_headers"]["x-failover-key"] for r in responses] == ["a1"] * 20
    assert upstream.max_in_flight >= 10  # in good standing again: not limited


async def test_zero_turns_herd_control_off(upstream: FakeUpstream) -> None:
    router, _runner = make(upstream, max_in_flight_while_failing=0, failure_threshold=1000)
    upstream.set(**{"sk-a1": Behavior(503, delay_s=0.1)})
    await router.acompletion(model="chat", messages=MESSAGES)
    await asyncio.gather(*(router.acompletion(model="chat", messages=MESSAGES) for _ in range(20)))
    assert calls_to(upstream, "sk-a1") == 21
