"""LiteLLM's fallbacks around routes, on a plain litellm.Router with `attach`, against a fake
upstream on 127.0.0.1: a route as the source and as the target of `fallbacks`."""

from typing import Any

import litellm
import pytest

from litellm_failover_plugin import FailoverExhausted, attach
from litellm_failover_plugin.testing import Behavior, FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]
KEYS = {"a1": "sk-fb-a1", "b1": "sk-fb-b1", "c1": "sk-fb-c1"}
NAME_OF = {v: k for k, v in KEYS.items()}
CONTEXT_WINDOW = Behavior(400, message="This model's maximum context length is 8192 tokens.", error_type="invalid_request_error")


def make_router(upstream: FakeUpstream, **router_settings: Any) -> litellm.Router:
    def plain(name: str) -> dict[str, Any]:
        params = {"model": f"openai/{name}", "api_base": upstream.url, "api_key": f"sk-{name}"}
        return {"model_name": name, "litellm_params": params}

    router = litellm.Router(
        model_list=[plain("plain"), plain("other"), plain("big")],
        **{"disable_cooldowns": True, **router_settings},
    )

    def backend(key: str) -> dict[str, Any]:
        return {"provider": "openai", "api_base": upstream.url, "api_keys": {key: KEYS[key]}}

    attach(
        router,
        {
            "backends": {"alpha": backend("a1"), "beta": backend("b1"), "gamma": backend("c1")},
            "routes": {
                "chat": {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]},
                "spare": {"policy": "m", "elements": ["gamma:gpt-z"]},
            },
        },
    )
    return router


def called(upstream: FakeUpstream) -> list[str]:
    return [f"{NAME_OF.get(r.key, r.key)}:{r.model}" for r in upstream.received]


def headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response._hidden_params["additional_headers"].items() if k.startswith("x-failover-")}


async def test_route_exhausted_falls_back_to_a_model(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}], num_retries=2)
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(503)})
    metadata: dict[str, Any] = {}
    response = await router.acompletion(model="chat", messages=MESSAGES, metadata=metadata)
    # each route attempt one call (no LiteLLM retries on top), then the fallback
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y", "sk-plain:plain"]
    assert headers(response) == {
        "x-failover-route": "chat",
        "x-failover-backend": "beta",  # the route's last attempt
        "x-failover-model": "gpt-y",
        "x-failover-key": "b1",
        "x-failover-attempts": "2",
        "x-failover-fallback": "plain",
    }
    assert response._hidden_params["additional_headers"]["x-litellm-attempted-fallbacks"] == 1
    info = metadata["failover"]  # where the proxy's hooks and callbacks read it
    assert [(a["key"], a["outcome"]) for a in info["attempts"]] == [("a1", "failed_over"), ("b1", "failed_over")]
    assert info["fallback"] == {"served": "plain", "failed": []}
    assert info["headers"]["x-failover-fallback"] == "plain"


async def test_disable_fallbacks_and_no_fallback_configured(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}])
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(503)})
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="chat", messages=MESSAGES, disable_fallbacks=True)
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]
    upstream.reset()
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="spare", messages=MESSAGES)  # no fallback names it
    assert called(upstream) == ["c1:gpt-z"]


async def test_request_level_and_generic_fallbacks(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"*": ["other"]}])
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(503)})
    response = await router.acompletion(model="chat", messages=MESSAGES, fallbacks=["plain"])
    assert called(upstream)[-1] == "sk-plain:plain"
    assert headers(response)["x-failover-fallback"] == "plain"
    upstream.reset()
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(503)})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream)[-1] == "sk-other:other"
    assert headers(response)["x-failover-fallback"] == "other"


async def test_max_fallbacks_zero_runs_none(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}], max_fallbacks=0)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]


async def test_context_window_error_goes_to_context_window_fallbacks(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}], context_window_fallbacks=[{"chat": ["big"]}])
    upstream.set(**{KEYS["a1"]: CONTEXT_WINDOW})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    # a 400 goes back as is (no further route attempt); LiteLLM's rule picks the bigger model
    assert called(upstream) == ["a1:gpt-x", "sk-big:big"]
    assert headers(response)["x-failover-fallback"] == "big"
    assert headers(response)["x-failover-key"] == "a1"


async def test_content_policy_error_goes_to_content_policy_fallbacks(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}], content_policy_fallbacks=[{"chat": ["other"]}])
    # OpenAI's wording, which every supported LiteLLM maps to ContentPolicyViolationError (1.109 no
    # longer sees the error's type, `invalid_request_error` + `content_policy_violation`, in it)
    refused = Behavior(
        400, message="Invalid prompt: your prompt was flagged as violating our usage policy", error_type="invalid_request_error"
    )
    upstream.set(**{KEYS["a1"]: refused})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "sk-other:other"]
    assert headers(response)["x-failover-fallback"] == "other"


async def test_fallback_that_fails_too_keeps_the_routes_error(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["plain", "other"]}])
    upstream.set(Behavior(503), **{"sk-other": Behavior(429)})
    with pytest.raises(FailoverExhausted) as info:
        await router.acompletion(model="chat", messages=MESSAGES)
    error = info.value
    assert error.route == "chat" and error.status_code == 503
    assert [a.candidate.key for a in error.attempts] == ["a1", "b1"]  # the route's, not the fallbacks'
    assert "LiteLLM fallbacks failed too: plain=503, other=429" in error.message
    assert error.failover_headers["x-failover-fallback-failed"] == "plain,other"  # type: ignore[attr-defined]
    assert error.failover_headers["x-failover-key"] == "b1"  # type: ignore[attr-defined]
    assert "x-failover-fallback" not in error.failover_headers  # type: ignore[attr-defined]


async def test_a_model_falls_back_to_a_route(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"plain": ["chat"]}], num_retries=0)
    upstream.set(**{"sk-plain": Behavior(503), KEYS["a1"]: Behavior(503)})
    response = await router.acompletion(model="plain", messages=MESSAGES)
    assert called(upstream) == ["sk-plain:plain", "a1:gpt-x", "b1:gpt-y"]
    assert headers(response)["x-failover-route"] == "chat"
    assert headers(response)["x-failover-key"] == "b1"


async def test_a_route_falls_back_to_a_route_and_on(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["spare"]}, {"spare": ["other"]}])
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(503)})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y", "c1:gpt-z"]
    assert headers(response)["x-failover-fallback"] == "spare"
    assert headers(response)["x-failover-route"] == "chat"
    upstream.reset()
    upstream.set(Behavior(503), **{"sk-other": Behavior()})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    # chat, then spare (a route as the target, itself exhausted), then spare's own fallback
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y", "c1:gpt-z", "sk-other:other"]
    assert headers(response)["x-failover-fallback"] == "other"
    assert headers(response)["x-failover-fallback-failed"] == "spare"


async def test_stream_through_a_fallback(upstream: FakeUpstream) -> None:
    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}])
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(break_stream=True)})
    stream = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "Hello from shared"
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y", "sk-plain:plain"]
    assert headers(stream)["x-failover-fallback"] == "plain"


async def test_client_fallback_names_are_not_echoed_raw(upstream: FakeUpstream) -> None:
    router = make_router(upstream)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted) as info:
        await router.acompletion(model="chat", messages=MESSAGES, fallbacks=["no such\r\nx-evil: 1"])
    assert info.value.failover_headers["x-failover-fallback-failed"] == "no_such__x-evil:_1"  # type: ignore[attr-defined]


async def test_weighted_failover_does_not_walk_a_route_again(upstream: FakeUpstream) -> None:
    """LiteLLM's weighted failover picks again inside the group that failed: a route's walk did."""
    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}], enable_weighted_failover=True)
    upstream.set(**{KEYS["a1"]: Behavior(400, message="bad")})  # handed back as is, with its deployment id
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "sk-plain:plain"]
    assert headers(response)["x-failover-fallback"] == "plain"
    assert "x-failover-fallback-failed" not in headers(response)


async def test_order_based_fallbacks_do_not_walk_a_route_again(upstream: FakeUpstream) -> None:
    """Deployments with an `order` make LiteLLM try the group's next order level first."""
    router = litellm.Router(
        model_list=[{"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-plain"}}],
        disable_cooldowns=True,
        fallbacks=[{"chat": ["plain"]}],
    )
    backend = {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": KEYS["a1"]}}
    elements = [{"element": "alpha:gpt-x", "litellm_params": {"order": 1}}, {"element": "alpha:gpt-y", "litellm_params": {"order": 2}}]
    attach(router, {"backends": {"alpha": backend}, "routes": {"chat": {"policy": "m", "elements": elements}}})
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "a1:gpt-y", "sk-plain:plain"]
    assert headers(response)["x-failover-fallback"] == "plain"


async def test_requests_served_by_a_fallback_are_counted_apart(upstream: FakeUpstream) -> None:
    from litellm_failover_plugin.instrumentation import Event, RequestDone
    from litellm_failover_plugin.litellm.install import installed_runner

    router = make_router(upstream, fallbacks=[{"chat": ["plain"]}, {"spare": ["other"]}])
    runner = installed_runner(router)
    assert runner is not None
    events: list[Event] = []
    runner.hooks = (events.append,)
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(503)})
    await router.acompletion(model="chat", messages=MESSAGES)  # served by plain
    upstream.set(Behavior(503), **{"sk-other": Behavior()})
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="chat", messages=MESSAGES)  # plain is down too: the route's error
    await router.acompletion(model="spare", messages=MESSAGES)  # served by other
    assert [e for e in events if isinstance(e, RequestDone)] == [
        RequestDone("chat", "fallback"),
        RequestDone("chat", "exhausted"),
        RequestDone("spare", "fallback"),
    ]
