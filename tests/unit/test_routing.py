from typing import Any

import pytest

from litellm_failover_plugin.conditions import Failure, Kind
from litellm_failover_plugin.config import parse_settings
from litellm_failover_plugin.errors import FailoverExhausted
from litellm_failover_plugin.routing import FailoverRun, Outcome, RoutePlan, Verdict, compile_routes


def plan_for(route: dict[str, Any], **extra: Any) -> RoutePlan:
    section = {
        "backends": {
            "alpha": {"provider": "openai", "api_keys": {"a1": "sk-a1", "a2": "sk-a2"}},
            "beta": {"provider": "openai", "api_keys": {"b1": "sk-b1", "b2": "sk-b2"}},
        },
        "routes": {"chat": route},
        **extra,
    }
    return compile_routes(parse_settings(section))["chat"]


def walk(run: FailoverRun, outcomes: dict[str, Failure | None]) -> list[str]:
    """Drive a run: each called candidate (by key name) fails as given, or succeeds."""
    called = []
    for c in run.candidates():
        called.append(c.key)
        failure = outcomes.get(c.key)
        if failure is None:
            run.succeeded(c)
        else:
            run.failed(c, failure)
    return called


def test_plan_ids_are_stable_and_name_the_key() -> None:
    plan = plan_for({"policy": "mk", "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    assert plan.deployment_ids == (
        "chat/alpha:gpt-x/a1",
        "chat/beta:gpt-y/b1",
        "chat/alpha:gpt-x/a2",
        "chat/beta:gpt-y/b2",
    )


def test_first_success_ends_the_walk() -> None:
    run = FailoverRun(plan_for({"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}))
    assert walk(run, {"a1": Failure(503), "a2": Failure(429)}) == ["a1", "a2", "b1"]
    assert [a.outcome for a in run.attempts] == [Outcome.FAILED_OVER, Outcome.FAILED_OVER, Outcome.SUCCESS]
    assert run.calls == 3


def test_unlisted_status_returns_at_once() -> None:
    run = FailoverRun(plan_for({"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}))
    assert walk(run, {"a1": Failure(400)}) == ["a1"]
    assert run.attempts[-1].outcome is Outcome.RETURNED


def test_verdicts() -> None:
    plan = plan_for({"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"], "fallback_status_codes": [429]})
    run = FailoverRun(plan)
    first = next(run.candidates())
    assert run.failed(first, Failure(429)) is Verdict.NEXT
    run = FailoverRun(plan)
    first = next(run.candidates())
    assert run.failed(first, Failure(503)) is Verdict.RETURN


def test_unavailable_candidates_are_skipped_and_listed() -> None:
    plan = plan_for({"policy": "mk", "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    run = FailoverRun(
        plan, unavailable={"chat/alpha:gpt-x/a1": Outcome.SKIPPED_COOLDOWN, "chat/beta:gpt-y/b1": Outcome.SKIPPED_OPEN}
    )
    assert walk(run, {}) == ["a2"]
    assert [a.outcome for a in run.attempts] == [Outcome.SKIPPED_COOLDOWN, Outcome.SKIPPED_OPEN, Outcome.SUCCESS]
    assert run.calls == 1


def test_a_candidate_can_be_skipped_after_it_was_offered() -> None:
    plan = plan_for({"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    run = FailoverRun(plan)
    called = []
    for c in run.candidates():
        called.append(c.key)
        if c.key == "a1":
            run.skipped(c, Outcome.SKIPPED_OPEN)  # lost the half-open probe to another caller
        else:
            run.succeeded(c)
    assert called == ["a1", "b1"] and run.calls == 1
    assert [a.outcome for a in run.attempts] == [Outcome.SKIPPED_OPEN, Outcome.SUCCESS]


def test_catch_skips_an_element_the_failure_does_not_name() -> None:
    plan = plan_for(
        {
            "policy": "m",
            "elements": [
                "alpha:gpt-x",
                {"element": "beta:gpt-y", "catch": ["rate_limit"]},
            ],
        }
    )
    run = FailoverRun(plan)
    assert walk(run, {"a1": Failure(503)}) == ["a1"]
    assert run.attempts[-1].outcome is Outcome.SKIPPED_CATCH
    run = FailoverRun(plan)
    assert walk(run, {"a1": Failure(429)}) == ["a1", "b1"]


def test_catch_all_catches_anything_listed_to_fall_over() -> None:
    plan = plan_for({"policy": "m", "elements": ["alpha:gpt-x", {"element": "beta:gpt-y", "catch": ["all"]}]})
    run = FailoverRun(plan)
    assert walk(run, {"a1": Failure(None, Kind.NETWORK)}) == ["a1", "b1"]


def test_disabled_route_makes_only_the_first_attempt() -> None:
    plan = plan_for({"policy": "km", "enabled": False, "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    run = FailoverRun(plan)
    assert walk(run, {"a1": Failure(503)}) == ["a1"]
    assert run.exhausted_status() == 503


def test_disabled_route_first_attempt_is_the_first_available() -> None:
    plan = plan_for({"policy": "km", "enabled": False, "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    run = FailoverRun(plan, unavailable={"chat/alpha:gpt-x/a1": Outcome.SKIPPED_OPEN})
    assert walk(run, {"a2": Failure(503)}) == ["a2"]


@pytest.mark.parametrize(
    ("last", "status"),
    [(Failure(429), 429), (Failure(502), 502), (Failure(None, Kind.TIMEOUT), 503)],
)
def test_exhausted_status_is_the_last_attempts(last: Failure, status: int) -> None:
    run = FailoverRun(plan_for({"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}))
    assert walk(run, {"a1": Failure(500), "b1": last}) == ["a1", "b1"]
    assert run.exhausted_status() == status


def test_nothing_callable_is_a_503() -> None:
    plan = plan_for({"policy": "k", "elements": ["alpha:gpt-x"]})
    run = FailoverRun(plan, unavailable=dict.fromkeys(plan.deployment_ids, Outcome.SKIPPED_COOLDOWN))
    assert walk(run, {}) == []
    assert run.exhausted_status() == 503 and run.calls == 0


def test_exhausted_error_lists_every_attempt_without_secrets() -> None:
    plan = plan_for({"policy": "mk", "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    run = FailoverRun(plan, unavailable={"chat/beta:gpt-y/b1": Outcome.SKIPPED_COOLDOWN})
    walk(run, {"a1": Failure(503, reason="down"), "a2": Failure(429), "b2": Failure(None, Kind.TIMEOUT)})
    err = FailoverExhausted("chat", run.attempts, run.exhausted_status())
    body = err.to_openai_error()["error"]
    assert isinstance(body, dict)
    assert body["type"] == "failover_exhausted" and body["code"] == "503"
    assert [(a["key"], a["status"], a["outcome"]) for a in body["attempts"]] == [
        ("a1", 503, "failed_over"),
        ("b1", None, "skipped_cooldown"),
        ("a2", 429, "failed_over"),
        ("b2", None, "failed_over"),
    ]
    assert body["attempts"][0]["reason"] == "down"
    assert "3 upstream call(s)" in err.message
    assert "sk-" not in repr(body) and "sk-" not in err.message


def test_the_walk_pauses_where_the_state_is_not_known_yet() -> None:
    plan = plan_for({"policy": "mk", "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    unavailable: dict[str, Outcome] = {}
    run = FailoverRun(plan, unavailable, known=0)
    assert list(run.candidates()) == [] and run.paused and run.attempts == []
    unavailable["chat/alpha:gpt-x/a1"] = Outcome.SKIPPED_OPEN  # what the caller read of the first one
    run.learned(1)
    assert list(run.candidates()) == [] and run.paused  # a1 skipped; b1 not known yet
    run.learned(3)  # nothing else unavailable
    assert walk(run, {"b1": Failure(503)}) == ["b1", "a2"] and not run.paused
    assert [a.outcome for a in run.attempts] == [Outcome.SKIPPED_OPEN, Outcome.FAILED_OVER, Outcome.SUCCESS]


def test_reread_forgets_what_was_known_beyond_the_walk() -> None:
    plan = plan_for({"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    run = FailoverRun(plan, known=2)
    next(run.candidates())
    run.reread()
    assert run.known == 1 == run.position


def test_an_unlisted_401_moves_on_to_the_same_elements_next_key_only() -> None:
    run = FailoverRun(plan_for({"policy": "mk", "elements": ["alpha:gpt-x", "beta:gpt-y"]}))
    # a1 refused: its element's a2 is next; beta's b1 is not for this failure (401 is not listed)
    assert walk(run, {"a1": Failure(401)}) == ["a1", "a2"]
    assert [a.outcome for a in run.attempts] == [Outcome.FAILED_OVER, Outcome.SUCCESS]


def test_an_unlisted_403_goes_back_as_is_when_the_element_has_no_other_key() -> None:
    run = FailoverRun(plan_for({"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}))
    assert walk(run, {"a1": Failure(403), "a2": Failure(401)}) == ["a1", "a2"]
    assert [a.outcome for a in run.attempts] == [Outcome.FAILED_OVER, Outcome.RETURNED]


def test_a_refused_key_whose_element_has_no_callable_key_left_stops_the_walk() -> None:
    plan = plan_for({"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]})
    run = FailoverRun(plan, {"chat/alpha:gpt-x/a2": Outcome.SKIPPED_OPEN})
    assert walk(run, {"a1": Failure(401)}) == ["a1"]  # a2 is known down: the 401 goes back
    assert run.attempts[-1].outcome is Outcome.RETURNED
    run = FailoverRun(plan, known=1)  # a2's state is not read yet: the walk goes on, then finds it down
    assert walk(run, {"a1": Failure(401)}) == ["a1"] and run.paused
    run.unavailable = {"chat/alpha:gpt-x/a2": Outcome.SKIPPED_OPEN}
    run.learned(3)
    assert walk(run, {}) == []
    assert "no other key of alpha:gpt-x" in run.stopped and run.exhausted_status() == 401


def test_a_listed_401_falls_over_to_any_element() -> None:
    run = FailoverRun(plan_for({"policy": "mk", "elements": ["alpha:gpt-x", "beta:gpt-y"], "fallback_status_codes": ["auth"]}))
    assert walk(run, {"a1": Failure(401)}) == ["a1", "b1"]
