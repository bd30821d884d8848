"""The pure decisions about streams: what a fault counts as, when to continue, what to send."""

from typing import Any

import pytest

from litellm_failover_plugin.breaker import CLOSED, BreakerConfig, Signal, State, record, signal_of
from litellm_failover_plugin.conditions import Conditions, Failure, Kind, falls_over
from litellm_failover_plugin.config import ConfigError, parse_settings
from litellm_failover_plugin.continuation import CONTINUE_INSTRUCTION, continuation_messages
from litellm_failover_plugin.routing import FailoverRun, Outcome, compile_routes
from litellm_failover_plugin.streaming import (
    Action,
    Fault,
    Part,
    Progress,
    Timeouts,
    Usage,
    after_failure,
    continuation_form,
    counts_against,
    fault_of,
    interrupted_message,
    mid_stream_for,
    served_by,
    stream_failure,
    timeouts_for,
)


def settings(route: dict[str, Any] | None = None, **defaults: Any) -> Any:
    return parse_settings(
        {
            "defaults": defaults,
            "backends": {
                "alpha": {"provider": "openai", "api_keys": {"a1": "sk-a1"}},
                "beta": {"provider": "anthropic", "api_keys": {"b1": "sk-b1"}},
            },
            "routes": {"chat": {"elements": ["alpha:gpt-x", "beta:claude"], **(route or {})}},
        }
    )


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.FIRST_CHUNK_TIMEOUT, Kind.TIMEOUT),
        (Fault.STALL, Kind.TIMEOUT),
        (Fault.CUT, Kind.NETWORK),
        (Fault.EMPTY, Kind.STREAM),
        (Fault.MALFORMED, Kind.STREAM),
        (Fault.UNFINISHED, Kind.STREAM),
        (Fault.ERROR_EVENT, Kind.STREAM),
    ],
)
def test_each_fault_counts_as_a_failure_that_falls_over_whatever_the_list(fault: Fault, kind: Kind) -> None:
    f = stream_failure(fault, 3, after_s=1.5)
    assert (f.status, f.kind) == (None, kind)
    assert falls_over(f, Conditions.parse([429]))  # no answer to hand back: the list does not matter
    assert counts_against(f)
    assert signal_of(f, counted=True) is Signal.FAILURE
    assert fault.value in f.reason


def test_reasons_say_how_long_and_after_how_many_chunks() -> None:
    assert stream_failure(Fault.STALL, 3, after_s=1.5).reason == "stream stall after 3 chunk(s): no chunk for 1.5s"
    first = stream_failure(Fault.FIRST_CHUNK_TIMEOUT, 0, after_s=2)
    assert first.reason == "stream first_chunk_timeout before any content: no first chunk within 2s"


def test_an_error_event_keeps_the_status_it_carries() -> None:
    f = stream_failure(Fault.ERROR_EVENT, 2, Failure(429, None, "slow down"))
    assert (f.status, f.label) == (429, "429")
    assert signal_of(f, counted=True) is Signal.FAILURE
    client_error = stream_failure(Fault.ERROR_EVENT, 2, Failure(400, None, "bad"))
    assert not counts_against(client_error)  # the deployment is alive: a client error


def test_fault_of_looks_at_what_happened_before_how_litellm_wrapped_it() -> None:
    network = Failure(None, Kind.NETWORK, "APIConnectionError")
    assert fault_of(network, malformed=True, error_event=False) is Fault.MALFORMED
    assert fault_of(network, malformed=False, error_event=True) is Fault.ERROR_EVENT
    assert fault_of(network, malformed=False, error_event=False) is Fault.CUT
    assert fault_of(Failure(None, Kind.TIMEOUT), malformed=False, error_event=False) is Fault.STALL
    assert fault_of(Failure(500), malformed=False, error_event=False) is Fault.ERROR


def test_mid_stream_failures_open_the_breaker_like_any_other() -> None:
    cfg, now, b = BreakerConfig(failure_threshold=3), 1000.0, CLOSED
    for i in range(3):
        f = stream_failure(Fault.CUT, 2)
        b, t = record(b, signal_of(f, counts_against(f)), now + i, cfg)
    assert b.state is State.OPEN and t is not None and t.reason == "3 consecutive failures"


def test_progress_content_is_text_reasoning_or_a_tool_call() -> None:
    p = Progress()
    p.see("", False, False, None)  # a role-only chunk
    assert not p.has_content
    p.see("", False, False, "stop")
    assert not p.has_content and p.finished  # empty: falls over
    for args in [("x", False, False, None), ("", True, False, None), ("", False, True, None)]:
        q = Progress()
        q.see(*args)
        assert q.has_content


def test_next_wait_uses_the_applicable_timeout_never_past_the_deadline() -> None:
    t = Timeouts(first_chunk_s=5, between_chunks_s=1)
    assert t.next_wait(started=False) == 5
    assert t.next_wait(started=True) == 1
    assert t.next_wait(started=False, left_s=2.5) == 2.5  # the request's own timeout comes first
    assert Timeouts().next_wait(started=True) is None
    assert Timeouts().next_wait(started=True, left_s=7) == 7


def test_timeouts_merge_field_by_field_element_route_defaults() -> None:
    s = settings(
        {
            "stream_timeouts": {"between_chunks_s": 2},
            "elements": [{"element": "alpha:gpt-x", "stream_timeouts": {"first_chunk_s": 0}}, "beta:claude"],
        },
        stream_timeouts={"first_chunk_s": 10, "between_chunks_s": 30},
    )
    assert timeouts_for(s, "chat", 0) == Timeouts(None, 2)  # 0 switches the defaults' off
    assert timeouts_for(s, "chat", 1) == Timeouts(10, 2)
    assert timeouts_for(settings(), "chat", 0) == Timeouts(None, None)  # unset: off


def test_mid_stream_mode_defaults_to_error_and_one_continuation() -> None:
    assert mid_stream_for(settings(), "chat") == ("error", 1)
    assert mid_stream_for(settings(mid_stream="continue", max_continuations=2), "chat") == ("continue", 2)
    assert mid_stream_for(settings({"mid_stream": "error"}, mid_stream="continue"), "chat") == ("error", 1)


@pytest.mark.parametrize(
    "bad",
    [{"mid_stream": "retry"}, {"stream_timeouts": {"first_chunk_s": -1}}, {"max_continuations": -1}, {"stream_timeouts": {"x": 1}}],
)
def test_bad_stream_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"failover_settings\.routes\.chat"):
        settings(bad)


def test_after_failure_decides() -> None:
    f, p = stream_failure(Fault.CUT, 2), Progress(chunks=2, text="One two ")
    assert after_failure("error", f, p, True, 0, 1) == (Action.ERROR, "mid_stream: error")
    assert after_failure("continue", f, p, True, 0, 1) == (Action.CONTINUE, "")
    assert after_failure("continue", f, p, True, 1, 1) == (Action.ERROR, "max_continuations (1) reached")
    assert after_failure("continue", f, p, False, 0, 1)[0] is Action.ERROR
    tools = Progress(chunks=2, tool_calls=True)
    assert after_failure("continue", f, tools, True, 0, 1) == (
        Action.ERROR,
        "the stream was producing tool calls (not continued)",
    )


def test_a_stream_of_several_choices_is_not_continued() -> None:
    f, p = stream_failure(Fault.CUT, 2), Progress(chunks=2, text="One two ")
    action, why = after_failure("continue", f, p, True, 0, 1, choices=2)
    assert action is Action.ERROR and "n=2" in why


def test_continuation_form_prefill_only_where_the_element_says_and_the_instruction_configurable() -> None:
    s = settings({"continue_instruction": "go on", "elements": [{"element": "alpha:gpt-x", "prefill": True}, "beta:claude"]})
    assert continuation_form(s, "chat", 0) == (True, "go on")
    assert continuation_form(s, "chat", 1) == (False, "go on")
    plain = settings({})
    assert continuation_form(plain, "chat", 0) == (False, CONTINUE_INSTRUCTION)


def test_continuation_messages_prefill_or_instruct_and_leave_the_request_alone() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "count"}]
    assert continuation_messages(messages, "One two ", prefill=True) == [
        *messages,
        {"role": "assistant", "content": "One two "},
    ]
    instructed = continuation_messages(messages, "One two ", prefill=False)
    assert instructed[-2:] == [
        {"role": "assistant", "content": "One two "},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    assert len(messages) == 2


def test_usage_adds_the_parts_and_served_by_names_the_last() -> None:
    assert Usage(5, 2) + Usage(13, 3) == Usage(18, 5)
    assert (Usage(5, 2) + Usage(13, 3)).total_tokens == 23
    parts = [Part("alpha", "gpt-x", "a1", 2, "cut"), Part("beta", "claude", "b1", 4, "complete")]
    field = served_by("chat", parts)
    assert (field["backend"], field["key"], field["continuations"]) == ("beta", "b1", 1)
    assert field["parts"][0] == {"backend": "alpha", "model": "gpt-x", "key": "a1", "chunks": 2, "outcome": "cut"}


def test_an_interrupted_attempt_replaces_its_success_and_the_walk_goes_on() -> None:
    plan = compile_routes(settings({"policy": "m"}))["chat"]
    run = FailoverRun(plan)
    first = next(iter(run.candidates()))
    run.succeeded(first)
    f = stream_failure(Fault.CUT, 2)
    run.interrupted(first, f)
    assert [(a.outcome, a.failure) for a in run.attempts] == [(Outcome.INTERRUPTED, f)]
    assert run.calls == 1
    assert [c.key for c in run.candidates()] == ["b1"]  # the continuation walks on from there
    message = interrupted_message("chat", "alpha:gpt-x/a1", f, "mid_stream: error", "alpha:gpt-x/a1=network")
    assert message.startswith("stream of route 'chat' interrupted: alpha:gpt-x/a1 failed mid-stream (network: ")
