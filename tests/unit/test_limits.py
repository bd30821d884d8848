"""Rate limits known in advance: the windows and decisions (limits.py), what a walk makes of
them (decisions.Snapshot.limited, routing), and how they are configured (backends.py)."""

from dataclasses import replace
from typing import Any

import pytest

from litellm_failover_plugin.breaker import Cooldown
from litellm_failover_plugin.conditions import Failure
from litellm_failover_plugin.config import ConfigError, parse_settings
from litellm_failover_plugin.decisions import Snapshot
from litellm_failover_plugin.limits import (
    Limits,
    Usage,
    admitted,
    at_limit,
    counter_keys,
    describe,
    ttl_s,
    window_end,
    window_of,
)
from litellm_failover_plugin.routing import FailoverRun, Outcome, compile_routes

T0 = 1_800_000_000.0  # a window's start (a multiple of 60)


def test_windows_are_fixed_minutes_of_the_epoch() -> None:
    w = window_of(T0)
    assert window_of(T0 + 59.999) == w and window_of(T0 + 60) == w + 1 and window_of(T0 - 0.001) == w - 1
    assert window_end(w) == T0 + 60
    assert counter_keys("alpha:m/a1", w) != counter_keys("alpha:m/a1", w + 1)
    assert counter_keys("alpha:m/a1", w) != counter_keys("alpha:m/a2", w)
    assert ttl_s() > 60  # a window's counters outlive it (status; replicas' clocks differ a little)


@pytest.mark.parametrize(
    ("limits", "used", "full"),
    [
        (Limits(rpm=2), Usage(1, 0), False),
        (Limits(rpm=2), Usage(2, 0), True),
        (Limits(tpm=100), Usage(50, 99), False),
        (Limits(tpm=100), Usage(0, 100), True),
        (Limits(rpm=5, tpm=100), Usage(5, 0), True),
        (Limits(rpm=5, tpm=100), Usage(4, 120), True),
        (Limits(), Usage(10**6, 10**9), False),
    ],
)
def test_at_limit(limits: Limits, used: Usage, full: bool) -> None:
    assert at_limit(limits, used) is full


def test_a_reservation_is_admitted_within_rpm_and_under_tpm() -> None:
    assert admitted(Limits(rpm=2), 1, 0) and admitted(Limits(rpm=2), 2, 0)
    assert not admitted(Limits(rpm=2), 3, 0)  # its own call made it the 3rd
    assert admitted(Limits(rpm=2, tpm=10), 1, 9) and not admitted(Limits(rpm=2, tpm=10), 1, 10)
    assert not Limits() and Limits(rpm=1) and Limits(tpm=1)


def test_describe() -> None:
    assert describe(Limits(rpm=2), Usage(2, 0)) == "rpm 2/2"
    assert describe(Limits(rpm=2, tpm=1000), Usage(3, 150)) == "rpm 2/2 tpm 150/1000"  # a refused reservation in flight


def settings(alpha: dict[str, Any], beta_params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "backends": {
            "alpha": {"provider": "openai", "api_keys": {"a1": {"key": "sk-a1", **alpha}, "a2": "sk-a2"}},
            "beta": {"provider": "openai", "api_keys": {"b1": "sk-b1"}, "litellm_params": beta_params or {}},
        },
        "routes": {"chat": {"policy": "km", "elements": ["alpha:m", "beta:m"]}, **extra},
    }


def limits_of(section: dict[str, Any]) -> dict[str, Limits]:
    return {c.key: c.limits for c in compile_routes(parse_settings(section))["chat"].candidates}


def test_a_key_carries_its_limits_and_a_backends_apply_to_each_key() -> None:
    got = limits_of(settings({"rpm": 60, "tpm": 100_000}, {"rpm": 10}))
    assert got == {"a1": Limits(60, 100_000), "a2": Limits(), "b1": Limits(10, None)}
    # the key's litellm_params are read too; a key's own limit beats its backend's, per limit
    section = settings({"litellm_params": {"rpm": 3}})
    section["backends"]["alpha"]["litellm_params"] = {"rpm": 100, "tpm": 5000}
    assert limits_of(section) == {"a1": Limits(3, 5000), "a2": Limits(100, 5000), "b1": Limits()}


def test_limits_are_not_left_in_litellm_params() -> None:
    s = parse_settings(settings({"litellm_params": {"tpm": 7, "timeout": 5}}, {"rpm": 10, "timeout": 9}))
    assert s.backends["beta"].litellm_params == {"timeout": 9}
    assert s.backends["alpha"].key_endpoints["a1"].litellm_params == {"timeout": 5}
    again = parse_settings(s.model_dump())  # settings dumped and read again keep their limits
    assert again.backends["beta"].limits("b1") == Limits(10, None)
    assert again.backends["alpha"].limits("a1") == Limits(None, 7)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        (settings({"rpm": 0}), "api_keys.a1.rpm"),
        (settings({"tpm": 1.5}), "api_keys.a1.tpm"),
        (settings({"rpm": True}), "api_keys.a1.rpm"),
        (settings({"rpm": "60"}), "api_keys.a1.rpm"),
        (settings({"litellm_params": {"rpm": -1}}), "api_keys.a1.litellm_params.rpm"),
        (settings({}, {"tpm": 0}), "litellm_params.tpm"),
        (settings({"rpm": 2, "litellm_params": {"rpm": 3}}), "api_keys.a1.rpm is given twice"),
    ],
)
def test_bad_limits_name_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(section)
    assert field in str(info.value)
    assert "sk-a1" not in str(info.value)


def test_an_elements_litellm_params_may_not_carry_a_limit() -> None:
    section = settings({})
    section["routes"]["chat"]["elements"] = [{"element": "alpha:m", "litellm_params": {"rpm": 5}}]
    with pytest.raises(ConfigError) as info:
        parse_settings(section)
    assert "routes.chat.elements.0.litellm_params" in str(info.value) and "a key's limit" in str(info.value)


def test_a_key_at_its_limit_is_skipped_until_the_next_window() -> None:
    plan = compile_routes(parse_settings(settings({"rpm": 2}, {"tpm": 100})))["chat"]
    a1, _a2, b1 = plan.candidates
    snap = Snapshot()
    snap.learn(plan.candidates, {}, None, now=T0 + 10)
    snap.limited([a1, b1], [Usage(2, 0), Usage(0, 99)], window_end=T0 + 60)
    assert snap.unavailable == {a1.deployment_id: Outcome.SKIPPED_LIMIT}
    assert snap.next_due == T0 + 60
    snap.limited([b1], [Usage(0, 100)], window_end=T0 + 60)
    run = FailoverRun(plan, snap.unavailable)
    assert [c.key for c in run.candidates()] == ["a2"]
    assert [(a.candidate.key, a.outcome) for a in run.attempts] == [("a1", Outcome.SKIPPED_LIMIT), ("b1", Outcome.SKIPPED_LIMIT)]


def test_a_cooldown_or_an_open_breaker_says_more_than_a_limit() -> None:
    plan = compile_routes(parse_settings(settings({"rpm": 2})))["chat"]
    a1 = plan.candidates[0]
    snap = Snapshot()
    snap.learn([a1], {a1.health_id: Cooldown(T0, T0 + 30)}, None, now=T0)
    snap.limited([a1], [Usage(2, 0)], window_end=T0 + 60)
    assert snap.unavailable == {a1.deployment_id: Outcome.SKIPPED_COOLDOWN}


def test_every_key_skipped_for_its_limit_is_a_429_and_a_failed_call_keeps_its_status() -> None:
    plan = compile_routes(parse_settings(settings({"rpm": 1})))["chat"]
    a1, a2, b1 = plan.candidates
    skips = {a1.deployment_id: Outcome.SKIPPED_LIMIT, a2.deployment_id: Outcome.SKIPPED_OPEN}
    run = FailoverRun(plan, skips)
    assert [c.key for c in run.candidates()] == ["b1"]
    run.skipped(b1, Outcome.SKIPPED_LIMIT)  # its slot was taken meanwhile
    assert run.limited and run.exhausted_status() == 429 and run.calls == 0
    only_open = FailoverRun(plan, {c.deployment_id: Outcome.SKIPPED_OPEN for c in plan.candidates})
    assert list(only_open.candidates()) == []
    assert not only_open.limited and only_open.exhausted_status() == 503
    failed = FailoverRun(plan, skips)
    for c in failed.candidates():
        failed.failed(c, Failure(500, None, "boom"))
    assert failed.limited and failed.exhausted_status() == 500


def test_a_skip_for_a_limit_is_no_call() -> None:
    assert not Outcome.SKIPPED_LIMIT.called
    plan = compile_routes(parse_settings(settings({"rpm": 1})))["chat"]
    c = replace(plan.candidates[0])
    run = FailoverRun(plan)
    run.skipped(c, Outcome.SKIPPED_LIMIT)
    assert run.calls == 0 and run.last_failure is None
