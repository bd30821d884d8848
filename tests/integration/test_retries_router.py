"""Same-candidate retries and the retry budget inside the attempt loop (waits recorded, not slept)."""

import time
from typing import Any

import litellm
import pytest

from litellm_failover_plugin import FailoverExhausted, attach
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]




def make(upstream: FakeUpstream, **extra: Any) -> tuple[litellm.Router, FailoverRunner, list[float]]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    route = {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"], "max_retries_per_element": 2}
    route.update(extra.pop("route", {}))
    runner = attach(
        router,
        {
            "backends": backends(upstream),
            "routes": {"chat": route},
            "breaker": {"failure_threshold": 50},
            "retries": {"base_s": 0.5, "max_wait_s": 4, "max_total_s": 10},
            **extra,
        },
    )
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    runner.sleep = sleep
    runner.rng = lambda: 1.0  # the top of the jitter range: waits are exact
    return router, runner, waits


def keys(upstream: FakeUpstream) -> list[str]:
    return [r.key for r in upstream.received]


async def test_retries_the_same_candidate_with_backoff_then_moves_on(upstream: FakeUpstream) -> None:
    router, _runner, waits = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503)})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert keys(upstream) == ["sk-a1", "sk-a1", "sk-a1", "sk-b1"]
    assert waits == [0.5, 1.0]
    assert response._hidden_params["additional_headers"]["x-failover-attempts"] == "4"


async def test_a_retry_that_succeeds_stays_on_the_candidate(upstream: FakeUpstream) -> None:
    router, runner, waits = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503)})

    async def heal(s: float) -> None:
        waits.append(s)
        upstream.set(**{"sk-a1": Behavior()})

    runner.sleep = heal
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert keys(upstream) == ["sk-a1", "sk-a1"]
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "a1"


async def test_retry_after_is_honoured(upstream: FakeUpstream) -> None:
    router, _runner, waits = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503, retry_after_s=3)})
    await router.acompletion(model="chat", messages=MESSAGES)
    assert waits == [3.0, 3.0]


async def test_retry_after_longer_than_a_wait_falls_over_at_once(upstream: FakeUpstream) -> None:
    router, _runner, waits = make(upstream)
    upstream.set(**{"sk-a1": Behavior(429, retry_after_s=60)})
    await router.acompletion(model="chat", messages=MESSAGES)
    assert waits == [] and keys(upstream) == ["sk-a1", "sk-b1"]


async def test_no_retry_past_the_clients_timeout(upstream: FakeUpstream) -> None:
    router, _runner, waits = make(upstream)
    upstream.set(**{"sk-a1": Behavior(503)})
    await router.acompletion(model="chat", messages=MESSAGES, timeout=0.8)
    assert waits == [0.5]  # the second wait (1.0 s) would outlast the 0.8 s timeout
    assert keys(upstream) == ["sk-a1", "sk-a1", "sk-b1"]


@pytest.mark.parametrize("status", [400, 401])
async def test_failures_that_do_not_fall_over_are_not_retried(upstream: FakeUpstream, status: int) -> None:
    router, _runner, waits = make(upstream)
    upstream.set(**{"sk-a1": Behavior(status)})
    with pytest.raises((litellm.BadRequestError, litellm.AuthenticationError)):
        await router.acompletion(model="chat", messages=MESSAGES)
    assert waits == [] and keys(upstream) == ["sk-a1"]


async def test_budget_stops_extra_calls_and_says_why(upstream: FakeUpstream) -> None:
    router, _runner, _waits = make(
        upstream, route={"max_retries_per_element": 0}, retry_budget={"ratio": 0, "min_per_s": 0.1, "ttl_s": 10}
    )
    upstream.set(**{"sk-a1": Behavior(503)})
    await router.acompletion(model="chat", messages=MESSAGES)  # the one extra call of the window
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(503)})
    with pytest.raises(FailoverExhausted) as info:
        await router.acompletion(model="chat", messages=MESSAGES)
    assert keys(upstream) == ["sk-a1"]
    assert "retry budget exhausted" in info.value.message
    assert info.value.status_code == 503


async def test_a_retry_spends_the_budget_like_any_extra_call(upstream: FakeUpstream) -> None:
    """The budget was checked before the failed call was recorded: each request's first retry was free."""
    router, _runner, _waits = make(
        upstream, route={"max_retries_per_element": 1}, retry_budget={"ratio": 0, "min_per_s": 0, "ttl_s": 10}
    )
    upstream.set(Behavior(503))
    for _ in range(3):
        with pytest.raises(FailoverExhausted) as info:
            await router.acompletion(model="chat", messages=MESSAGES)
        assert "retry budget exhausted" in info.value.message
    assert keys(upstream) == ["sk-a1"] * 3, "no budget: one upstream call per request, no retry, no failover"


async def _stream_text(router: litellm.Router, model: str = "chat") -> str:
    response = await router.acompletion(model=model, messages=MESSAGES, stream=True)
    text = ""
    async for chunk in response:
        text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    return text


async def test_a_late_first_chunk_is_not_retried_on_the_same_key(upstream: FakeUpstream) -> None:
    """max_retries_per_element: 2 used to retry a first_chunk_s timeout twice on the same key."""
    router, _runner, waits = make(upstream, defaults={"stream_timeouts": {"first_chunk_s": 0.3}})
    upstream.set(**{"sk-a1": Behavior(first_chunk_delay_s=5)})
    assert await _stream_text(router) == "Hello from shared"
    assert keys(upstream) == ["sk-a1", "sk-b1"] and waits == []


async def test_a_timeout_is_not_retried_on_the_same_key(upstream: FakeUpstream) -> None:
    router, _runner, waits = make(upstream, route={"elements": [{"element": "alpha:gpt-x", "litellm_params": {"timeout": 0.3}}, "beta:gpt-y"]})
    upstream.set(**{"sk-a1": Behavior(delay_s=3)})
    await router.acompletion(model="chat", messages=MESSAGES)
    assert keys(upstream) == ["sk-a1", "sk-b1"] and waits == []


async def test_retry_on_names_the_failures_retried_per_element_route_defaults(upstream: FakeUpstream) -> None:
    route = {"retry_on": ["timeout", 503], "elements": [{"element": "alpha:gpt-x", "retry_on": [502]}, "beta:gpt-y"]}
    router, _runner, waits = make(upstream, route=route, defaults={"stream_timeouts": {"first_chunk_s": 0.3}})
    upstream.set(**{"sk-a1": Behavior(503)})  # the element retries 502 only
    await router.acompletion(model="chat", messages=MESSAGES)
    assert keys(upstream) == ["sk-a1", "sk-b1"] and waits == []
    upstream.reset()
    upstream.set(**{"sk-a1": Behavior(502), "sk-b1": Behavior(503)})
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="chat", messages=MESSAGES)
    # a1 retries its 502 twice; b1 takes the route's list: its 503 retried twice too
    assert keys(upstream) == ["sk-a1"] * 3 + ["sk-b1"] * 3
    upstream.reset()
    upstream.set(**{"sk-b1": Behavior(first_chunk_delay_s=5)}, **{"sk-a1": Behavior(500)})
    with pytest.raises(FailoverExhausted):
        await _stream_text(router)
    assert keys(upstream) == ["sk-a1", "sk-b1", "sk-b1", "sk-b1"]  # the route retries a timeout


async def test_silent_upstream_falls_over_after_first_chunk_s(upstream: FakeUpstream) -> None:
    """An upstream that accepts the connection and never sends headers: first_chunk_s runs from
    the call (it used to wait for the client's own timeout)."""
    router, _runner, _ = make(upstream, defaults={"stream_timeouts": {"first_chunk_s": 0.5}})
    upstream.set(**{"sk-a1": Behavior(silent=True)})
    t0 = time.monotonic()
    assert await _stream_text(router) == "Hello from shared"
    assert time.monotonic() - t0 < 3
    assert keys(upstream) == ["sk-a1", "sk-b1"]
