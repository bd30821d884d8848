"""What GET /failover/health answers, from a runner on a plain Router (a fake clock, no sleeping)."""

from types import SimpleNamespace
from typing import Any

import litellm
import pytest

from litellm_failover_plugin import attach
from litellm_failover_plugin.litellm import selfcheck
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
    status, body = await health_answer(plugin(runner), details=True)
    assert status == 200 and body["status"] == "ok" and body["ready"] is True and body["unavailable_routes"] == []
    assert body["routes"]["main"]["keys"]["callable"] == ["alpha:gpt-x/a1", "beta:gpt-y/b1"]
    assert body["routes"]["main"]["callable"] == 2
    assert isinstance(body["worker"], int)


async def test_a_route_whose_candidates_are_all_open_leaves_the_process_ready_and_its_own_probe_503(
    upstream: FakeUpstream,
) -> None:
    router, runner, clock = make(upstream)
    upstream.set(**{"sk-b1": Behavior(503)})
    with pytest.raises(Exception):  # noqa: B017 - solo's only candidate fails: its breaker opens
        await router.acompletion(model="solo", messages=MESSAGES)
    status, body = await health_answer(plugin(runner), details=True)
    # one provider's outage is no reason to pull this replica: every other replica sees it too
    assert status == 200 and body["ready"] is True and body["unavailable_routes"] == ["solo"]
    assert body["routes"]["solo"]["ok"] is False
    assert body["routes"]["solo"]["keys"]["unavailable"] == {"beta:gpt-y/b1": "skipped_open"}
    assert body["routes"]["main"]["ok"] is True  # its beta:gpt-y/b1 is a deployment of its own, closed

    status, body = await health_answer(plugin(runner), route="solo")
    assert status == 503 and body["route"] == "solo" and body["ready"] is False
    assert list(body["routes"]) == ["solo"]
    assert (await health_answer(plugin(runner), route="main"))[0] == 200

    clock.now += 31  # the cooldown is over: its probe is due, so the route may be called again
    status, body = await health_answer(plugin(runner), route="solo", details=True)
    assert status == 200
    assert body["routes"]["solo"]["keys"]["probe_due"] == ["beta:gpt-y/b1"]
    assert body["routes"]["solo"]["keys"]["callable"] == ["beta:gpt-y/b1"]


async def test_a_route_with_no_elements_has_no_candidate_but_the_process_stays_ready(upstream: FakeUpstream) -> None:
    _router, runner, _clock = make(upstream, empty={"elements": []}, main={"elements": ["alpha:gpt-x"]})
    status, body = await health_answer(plugin(runner))
    assert status == 200 and body["unavailable_routes"] == ["empty"]
    assert body["routes"]["empty"] == {"ok": False, "candidates": 0, "callable": 0, "probe_due": 0}
    assert (await health_answer(plugin(runner), route="empty"))[0] == 503


async def test_without_details_no_backend_model_or_key_is_named(upstream: FakeUpstream) -> None:
    _router, runner, _clock = make(upstream)
    status, body = await health_answer(plugin(runner))
    assert status == 200
    for word in ("alpha", "beta", "gpt-x", "gpt-y", "a1", "b1"):
        assert word not in str(body)


async def test_an_unknown_route_is_404(upstream: FakeUpstream) -> None:
    _router, runner, _clock = make(upstream)
    status, body = await health_answer(plugin(runner), route="nope")
    assert status == 404 and "nope" in body["error"]["message"]


async def test_503_before_the_routes_are_installed() -> None:
    status, body = await health_answer(plugin(None))
    assert status == 503 and "not installed" in body["reason"] and body["ready"] is False


async def test_503_once_a_hook_was_found_broken(upstream: FakeUpstream) -> None:
    _router, runner, _clock = make(upstream)
    selfcheck.found(selfcheck.PRE_CALL, "a test says so")
    try:
        status, body = await health_answer(plugin(runner))
    finally:
        selfcheck.reset()
    assert status == 503 and selfcheck.PRE_CALL in body["reason"]
