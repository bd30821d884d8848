"""`attach(router, settings)` on a plain litellm.Router, against fake upstreams on 127.0.0.1."""

from typing import Any

import litellm
import pytest

from litellm_failover_plugin import FailoverExhausted, attach
from litellm_failover_plugin.routing import front_id, keys_group
from litellm_failover_plugin.testing import Behavior, FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]
KEYS = {"a1": "sk-test-a1", "a2": "sk-test-a2", "b1": "sk-test-b1", "b2": "sk-test-b2"}
NAME_OF = {v: k for k, v in KEYS.items()}




def settings(upstream: FakeUpstream, **route: Any) -> dict[str, Any]:
    route.setdefault("elements", ["alpha:gpt-x", "beta:gpt-y"])
    return {
        "backends": {
            "alpha": {
                "provider": "openai",
                "api_base": upstream.url,
                "api_keys": {"a1": KEYS["a1"], "a2": KEYS["a2"]},
                "litellm_params": {"timeout": 2},
            },
            "beta": {
                "provider": "openai",
                "api_base": upstream.url,
                "api_keys": {"b1": KEYS["b1"], "b2": KEYS["b2"]},
            },
        },
        "routes": {"chat": route},
    }


def make_router(upstream: FakeUpstream, router_settings: dict[str, Any] | None = None, **route: Any) -> litellm.Router:
    router = litellm.Router(
        model_list=[
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-plain"}}
        ],
        **(router_settings or {"disable_cooldowns": True}),
    )
    attach(router, settings(upstream, **route))
    return router


def called(upstream: FakeUpstream) -> list[str]:
    return [f"{NAME_OF.get(r.key, r.key)}:{r.model}" for r in upstream.received]


async def test_success_reports_who_served(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="mk")
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello from shared"
    headers = response._hidden_params["additional_headers"]
    assert headers["x-failover-backend"] == "beta" and headers["x-failover-key"] == "b1"
    assert headers["x-failover-attempts"] == "2"
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]


@pytest.mark.parametrize(
    ("policy", "order"),
    [
        ("k", ["a1:gpt-x", "a2:gpt-x"]),
        ("m", ["a1:gpt-x", "b1:gpt-y"]),
        ("km", ["a1:gpt-x", "a2:gpt-x", "b1:gpt-y", "b2:gpt-y"]),
        ("mk", ["a1:gpt-x", "b1:gpt-y", "a2:gpt-x", "b2:gpt-y"]),
    ],
)
async def test_policy_order_until_exhausted(upstream: FakeUpstream, policy: str, order: list[str]) -> None:
    router = make_router(upstream, policy=policy)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted) as info:
        await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == order
    assert info.value.status_code == 503
    assert [a.candidate.key for a in info.value.attempts] == [o.split(":")[0] for o in order]


async def test_unlisted_error_returns_untouched_with_no_further_call(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="km")
    upstream.set(Behavior(400, message="bad request, really"))
    with pytest.raises(litellm.BadRequestError) as info:
        await router.acompletion(model="chat", messages=MESSAGES)
    assert info.value.status_code == 400
    assert "bad request, really" in str(info.value)
    assert called(upstream) == ["a1:gpt-x"]


async def test_route_status_list_overrides_defaults(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="km", fallback_status_codes=[429])
    upstream.set(**{KEYS["a1"]: Behavior(429), KEYS["a2"]: Behavior(503)})
    with pytest.raises(litellm.ServiceUnavailableError):
        await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "a2:gpt-x"]


async def test_connection_refused_falls_over() -> None:
    dead = FakeUpstream("dead").start()
    dead.down()
    with FakeUpstream("live") as live:
        router = litellm.Router(model_list=[], disable_cooldowns=True)
        attach(
            router,
            {
                "backends": {
                    "dead": {"provider": "openai", "api_base": dead.url, "api_keys": {"d1": "sk-d1"}},
                    "live": {"provider": "openai", "api_base": live.url, "api_keys": {"l1": "sk-l1"}},
                },
                "routes": {"chat": {"policy": "m", "elements": ["dead:m", "live:m"], "fallback_status_codes": [429]}},
            },
        )
        response = await router.acompletion(model="chat", messages=MESSAGES)
        assert response._hidden_params["additional_headers"]["x-failover-backend"] == "live"
        assert len(live.received) == 1
    dead.stop()


async def test_timeout_falls_over(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    upstream.set(**{KEYS["a1"]: Behavior(delay_s=5)})  # alpha's timeout is 2 s
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "b1"


async def test_one_upstream_call_per_attempt(upstream: FakeUpstream) -> None:
    """Neither the SDK's retries nor LiteLLM's num_retries multiply an attempt."""
    router = make_router(upstream, {"disable_cooldowns": True, "num_retries": 3}, policy="m")
    upstream.set(Behavior(500))
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]


async def test_stream_fails_over_before_the_first_chunk(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    stream = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "Hello from shared"
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]
    assert stream._hidden_params["additional_headers"]["x-failover-key"] == "b1"


async def test_cooled_down_deployment_is_skipped_and_listed(upstream: FakeUpstream) -> None:
    router = make_router(upstream, {"allowed_fails": 0, "cooldown_time": 60}, policy="m")
    upstream.set(**{KEYS["a1"]: Behavior(429)})
    await router.acompletion(model="chat", messages=MESSAGES)  # a1 fails (429) and cools down
    upstream.reset()
    for _ in range(50):  # LiteLLM records the cooldown from a background task
        cooling = await router.cooldown_cache.async_get_active_cooldowns(["chat/alpha:gpt-x/a1"], None)
        if cooling:
            break
        import asyncio

        await asyncio.sleep(0.02)
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["b1:gpt-y"]
    assert response._hidden_params["additional_headers"]["x-failover-attempts"] == "1"


async def test_plain_models_keep_working(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    response = await router.acompletion(model="plain", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello from shared"
    assert called(upstream) == ["sk-plain:plain"]


async def test_a_route_is_one_deployment_under_its_name_whatever_its_size(upstream: FakeUpstream) -> None:
    """The proxy reads a model's deployments several times per request (access, guardrails,
    limits): under a route's name there is only its front; the keys sit in the route's keys group
    (LiteLLM sees the route's size there, for its cooldown rules), which clients never see."""
    router = make_router(upstream, policy="km")
    [front] = router.get_model_list(model_name="chat") or []
    assert front["model_info"]["id"] == front_id("chat")
    keys = router.get_model_list(model_name=keys_group("chat")) or []
    assert len(keys) == 4 and {d["model_info"]["failover_key"] for d in keys} == {"a1", "a2", "b1", "b2"}
    assert len(router.get_model_group(id=keys[0]["model_info"]["id"]) or []) == 4
    assert sorted(set(router.get_model_names())) == ["chat", "plain"]
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "a1"
    assert called(upstream) == ["a1:gpt-x"]


def test_a_routes_front_carries_its_keys_guardrails(upstream: FakeUpstream) -> None:
    """The proxy applies the guardrails of a model's deployments before routing (the union of the
    group's): a route's front carries every key's, so none is dropped."""
    elements = [{"element": "alpha:gpt-x", "litellm_params": {"guardrails": ["pii"]}}, "beta:gpt-y"]
    router = make_router(upstream, policy="m", elements=elements)
    [front] = router.get_model_list(model_name="chat") or []
    assert front["litellm_params"]["guardrails"] == ["pii"]


async def test_sync_call_of_a_route_fails_loudly(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    with pytest.raises(NotImplementedError, match="async-only"):
        router.completion(model="chat", messages=MESSAGES)
    assert called(upstream) == []


async def test_route_name_clashing_with_model_list_is_refused(upstream: FakeUpstream) -> None:
    router = litellm.Router(
        model_list=[{"model_name": "chat", "litellm_params": {"model": "openai/x", "api_key": "sk-x"}}]
    )
    with pytest.raises(ValueError, match="also a model_name"):
        attach(router, settings(upstream, policy="m"))


async def test_stream_that_breaks_before_its_first_chunk_fails_over(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    upstream.set(**{KEYS["a1"]: Behavior(break_stream=True)})
    stream = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "Hello from shared"
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]


async def test_a_rebuilt_proxy_router_gets_the_routes_back(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm.proxy import proxy_server

    from litellm_failover_plugin.config import parse_settings
    from litellm_failover_plugin.litellm import FailoverPlugin

    plugin = FailoverPlugin(parse_settings(settings(upstream, policy="m")))
    first = litellm.Router(model_list=[], disable_cooldowns=True)
    monkeypatch.setattr(proxy_server, "llm_router", first)
    data = {"model": "chat", "messages": MESSAGES}  # every proxy request passes the pre-call hook
    await plugin.async_pre_call_hook(None, None, data, "acompletion")
    assert "chat" in first.model_names
    first.update_settings(num_retries=2)  # LiteLLM's admin path: the routes stay
    assert (await first.acompletion(**data)).choices[0].message.content

    rebuilt = litellm.Router(model_list=[], disable_cooldowns=True)  # e.g. config reloaded
    monkeypatch.setattr(proxy_server, "llm_router", rebuilt)
    assert "chat" not in rebuilt.model_names
    data = {"model": "chat", "messages": MESSAGES}
    await plugin.async_pre_call_hook(None, None, data, "acompletion")
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    response = await rebuilt.acompletion(**data)
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "b1"


async def test_a_new_model_list_does_not_lose_the_routes(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    router.set_model_list(
        [{"model_name": "other", "litellm_params": {"model": "openai/other", "api_base": upstream.url, "api_key": "sk-o"}}]
    )
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "a1"


def test_attach_works_when_the_router_class_was_patched_with_a_plain_callable(upstream: FakeUpstream) -> None:
    class Patched(litellm.Router):
        pass

    calls: list[str] = []
    Patched.function_with_fallbacks = lambda *a, **kw: calls.append(kw.get("model"))  # type: ignore[method-assign,assignment]
    router = Patched(model_list=[])
    attach(router, settings(upstream))
    router.function_with_fallbacks(model="plain")
    assert calls == ["plain"]
    with pytest.raises(NotImplementedError):
        router.function_with_fallbacks(model="chat")


def test_redaction_replaces_whole_keys_only() -> None:
    from litellm_failover_plugin.litellm.translate import Redactor

    redact = Redactor(["x", "sk-live-123"])
    assert redact("OpenAIException: bad key x; Bearer sk-live-123.") == "OpenAIException: bad key ***; Bearer ***."
    assert redact("key=sk-live-1234") == "key=sk-live-1234"  # another, longer key: not this one


async def test_a_rebuilt_proxy_router_keeps_what_the_process_knew_of_the_keys(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scores, suspects (health checks probe them first), the herd's failing keys and the queues
    are this process's own: a rebuilt router's runner starts from them, not from nothing."""
    from litellm.proxy import proxy_server

    from litellm_failover_plugin.config import parse_settings
    from litellm_failover_plugin.litellm import FailoverPlugin

    plugin = FailoverPlugin(parse_settings({**settings(upstream, policy="m"), "queue": {"max_wait_s": 5}}))
    monkeypatch.setattr(proxy_server, "llm_router", litellm.Router(model_list=[], disable_cooldowns=True))
    data = {"model": "chat", "messages": MESSAGES}
    await plugin.async_pre_call_hook(None, None, data, "acompletion")
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    assert (await proxy_server.llm_router.acompletion(**data))._hidden_params["additional_headers"]["x-failover-key"] == "b1"
    first = plugin.runner
    assert first is not None
    a1 = next(c.health_id for c in first.plans["chat"].candidates if c.key == "a1")

    monkeypatch.setattr(proxy_server, "llm_router", litellm.Router(model_list=[], disable_cooldowns=True))
    await plugin.async_pre_call_hook(None, None, {"model": "chat", "messages": MESSAGES}, "acompletion")
    rebuilt = plugin.runner
    assert rebuilt is not None and rebuilt is not first
    assert rebuilt.stats == first.stats and rebuilt.stats[a1].success_rate == 0.0
    assert a1 in rebuilt.suspects and a1 in rebuilt.herd.failing
    assert rebuilt.waiters["chat"] is first.waiters["chat"]  # requests waiting in it are released by either

