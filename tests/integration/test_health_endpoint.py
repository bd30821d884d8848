"""What GET /failover/health answers, from a runner on a plain Router (a fake clock, no sleeping)."""

from types import SimpleNamespace
from typing import Any

import litellm
import pytest

from litellm_failover_plugin import attach
from litellm_failover_plugin.litellm.health_endpoint import health_answer
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(upstream: FakeUpstream, **routes: Any) -> tuple[litellm.Router, FailoverRunner, Clock]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    runner = attach(
        router,
        {
            "backends": backends(upstream, alpha=("a1",), beta=("b1",)),
            "routes": routes or {"main": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}, "solo": {"elements": ["beta:gpt-y"]}},
            "breaker": {"failure_threshold": 1, "cooldown_s": 30},
        },
    )
    clock = Clock()
    runner.clock = clock
    return router, runner, clock


def plugin(runner: FailoverRunner | None) -> Any:
    return SimpleNamespace(ensure_installed=lambda: None, runner=runner)


async def test_200_while_every_route_has_a_callable_candidate(upstream: FakeUpstream) -> None:
    _router, runner, _clock = make(upstream)
    status, body = await health_answer(plugin(runner))
    assert status == 200 and body["status"] == "ok" and body["unavailable_routes"] == []
    assert body["routes"]["main"]["callable"] == ["alpha:gpt-x/a1", "beta:gpt-y/b1"]
    assert isinstance(body["worker"], int)


async def test_503_names_the_route_whose_candidates_are_all_open_until_a_probe_is_due(upstream: FakeUpstream) -> None:
    router, runner, clock = make(upstream)
    upstream.set(**{"sk-b1": Behavior(503)})
    with pytest.raises(Exception):  # noqa: B017 - solo's only candidate fails: its breaker opens
        await router.acompletion(model="solo", messages=MESSAGES)
    status, body = await health_answer(plugin(runner))
    assert status == 503 and body["unavailable_routes"] == ["solo"]
    assert body["routes"]["solo"]["unavailable"] == {"beta:gpt-y/b1": "skipped_open"}
    assert body["routes"]["main"]["ok"] is True  # its beta:gpt-y/b1 is a deployment of its own, closed

    clock.now += 31  # the cooldown is over: its probe is due, so the route may be called again
    status, body = await health_answer(plugin(runner))
    assert status == 200
    assert body["routes"]["solo"]["probe_due"] == ["beta:gpt-y/b1"]
    assert body["routes"]["solo"]["callable"] == ["beta:gpt-y/b1"]


async def test_a_route_with_no_elements_has_no_candidate(upstream: FakeUpstream) -> None:
    _router, runner, _clock = make(upstream, empty={"elements": []}, main={"elements": ["alpha:gpt-x"]})
    status, body = await health_answer(plugin(runner))
    assert status == 503 and body["unavailable_routes"] == ["empty"]
    assert body["routes"]["empty"]["candidates"] == 0


async def test_503_before_the_routes_are_installed() -> None:
    status, body = await health_answer(plugin(None))
    assert status == 503 and "not installed" in body["reason"]
