"""LiteLLM's fallbacks and routes on a real proxy: a route as the source of `router_settings`
fallbacks (router-level, request-level, context-window) and as the target of a `model_list`
model's; a fallback that fails too; a stream; a queue that gives up before the fallback runs.

Routes call the primary upstream, `model_list` models the backup, so which upstream answered
says who served. Each route has models of its own (`m-<route>`): a key's breaker is per
backend, model and key, so no test sees another's failures.
"""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e

KEYS = {"a1": "sk-fb-a1-91c2", "b1": "sk-fb-b1-91c2"}
BODY = {"messages": [{"role": "user", "content": "hi"}]}
DOWN = {KEYS["a1"]: Behavior(503), KEYS["b1"]: Behavior(503)}
ROUTES = ("r-model", "r-target", "r-request", "r-context", "r-fails", "r-stream", "r-queue")


def config(primary: FakeUpstream, backup: FakeUpstream) -> dict[str, Any]:
    def model(name: str, upstream: FakeUpstream) -> dict[str, Any]:
        params = {"model": f"openai/{name}", "api_base": upstream.url, "api_key": f"sk-{name}"}
        return {"model_name": name, "litellm_params": params}

    def route(name: str) -> dict[str, Any]:
        return {"policy": "m", "elements": [f"alpha:m-{name}", f"beta:m-{name}"]}

    routes = {name: route(name) for name in ROUTES}
    routes["r-queue"]["queue"] = {"max_wait_s": 1.0, "recheck_s": 0.3}
    return {
        "model_list": [model("fb-plain", backup), model("fb-other", backup), model("fb-big", backup),
                       model("fb-dead", backup), model("fb-broken", primary)],
        "router_settings": {
            "num_retries": 1,  # LiteLLM's retries: never on top of a route's attempts
            "fallbacks": [
                {"r-model": ["fb-plain"]},
                {"fb-broken": ["r-target"]},
                {"r-fails": ["fb-dead"]},
                {"r-stream": ["fb-plain"]},
                {"r-queue": ["fb-plain"]},
            ],
            "context_window_fallbacks": [{"r-context": ["fb-big"]}],
        },
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {
                "alpha": {"provider": "openai", "api_base": primary.url, "api_keys": {"a1": KEYS["a1"]}},
                "beta": {"provider": "openai", "api_base": primary.url, "api_keys": {"b1": KEYS["b1"]}},
            },
            "routes": routes,
        },
    }


@pytest.fixture(scope="module")
def proxy(upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[ProxyProcess]:
    with ProxyProcess(config(*upstreams)) as p:
        yield p
        log = p.log_text()
    for value in KEYS.values():
        assert value not in log, "an API key reached the proxy log"


@pytest.fixture
def client(proxy: ProxyProcess, upstreams: tuple[FakeUpstream, FakeUpstream]) -> Iterator[httpx.Client]:
    for u in upstreams:
        u.reset()
    with httpx.Client(base_url=proxy.url, timeout=30, headers=proxy.headers) as c:
        yield c


def chat(client: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, **BODY, **extra})


def calls(upstream: FakeUpstream) -> list[str]:
    name = {v: k for k, v in KEYS.items()}
    return [f"{name.get(r.key, r.key)}:{r.model}" for r in upstream.received]


def failover(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("x-failover-")}


def test_route_exhausted_falls_back_to_a_model(client: httpx.Client, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    primary, backup = upstreams
    primary.set(**DOWN)
    r = chat(client, "r-model")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello from backup"
    # the route's two attempts, one upstream call each (num_retries: 1 adds none), then the fallback
    assert calls(primary) == ["a1:m-r-model", "b1:m-r-model"]
    assert calls(backup) == ["sk-fb-plain:fb-plain"]
    assert failover(r) == {
        "x-failover-route": "r-model",
        "x-failover-backend": "beta",
        "x-failover-model": "m-r-model",
        "x-failover-key": "b1",
        "x-failover-attempts": "2",
        "x-failover-fallback": "fb-plain",
    }
    assert r.headers["x-litellm-attempted-fallbacks"] == "1"


def test_a_failing_model_falls_back_to_a_route(client: httpx.Client, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    primary, backup = upstreams
    primary.set(**{"sk-fb-broken": Behavior(503), KEYS["a1"]: Behavior(503)})
    r = chat(client, "fb-broken")
    assert r.status_code == 200, r.text
    # fb-broken (LiteLLM retries it once: its own setting), then the route: a1 fails over, b1 serves
    assert calls(primary) == ["sk-fb-broken:fb-broken", "sk-fb-broken:fb-broken", "a1:m-r-target", "b1:m-r-target"]
    assert calls(backup) == []
    assert failover(r)["x-failover-route"] == "r-target"
    assert failover(r)["x-failover-key"] == "b1"
    assert failover(r)["x-failover-attempts"] == "2"


def test_request_level_fallbacks(client: httpx.Client, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    primary, backup = upstreams
    primary.set(**DOWN)
    r = chat(client, "r-request", fallbacks=["fb-other"])
    assert r.status_code == 200, r.text
    assert calls(primary) == ["a1:m-r-request", "b1:m-r-request"]
    assert calls(backup) == ["sk-fb-other:fb-other"]
    assert failover(r)["x-failover-fallback"] == "fb-other"
    primary.reset()
    backup.reset()
    primary.set(**DOWN)
    r = chat(client, "r-request", fallbacks=["fb-other"], disable_fallbacks=True)
    assert r.status_code == 503 and r.json()["error"]["type"] == "failover_exhausted"
    assert calls(backup) == []


def test_context_window_error_goes_to_context_window_fallbacks(
    client: httpx.Client, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, backup = upstreams
    too_long = Behavior(400, message="This model's maximum context length is 8192 tokens.", error_type="invalid_request_error")
    primary.set(**{KEYS["a1"]: too_long})
    r = chat(client, "r-context")
    assert r.status_code == 200, r.text
    assert calls(primary) == ["a1:m-r-context"]  # a 400 is not a route failure: no other key is tried
    assert calls(backup) == ["sk-fb-big:fb-big"]
    assert failover(r)["x-failover-fallback"] == "fb-big"
    assert failover(r)["x-failover-key"] == "a1"


def test_fallback_that_fails_too(client: httpx.Client, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    primary, backup = upstreams
    primary.set(**DOWN)
    backup.set(**{"sk-fb-dead": Behavior(429, message="backup busy")})
    r = chat(client, "r-fails")
    # the route's own error: its status, its attempts, its last key; the fallback named as failed
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["type"] == "failover_exhausted"
    assert [a["key"] for a in error["attempts"]] == ["a1", "b1"]
    assert "LiteLLM fallbacks failed too: fb-dead=429" in error["message"]
    assert failover(r)["x-failover-key"] == "b1"
    assert failover(r)["x-failover-fallback-failed"] == "fb-dead"
    assert "x-failover-fallback" not in failover(r)
    assert calls(backup)[0] == "sk-fb-dead:fb-dead"


def test_stream_through_a_fallback(proxy: ProxyProcess, client: httpx.Client, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    primary, backup = upstreams
    primary.set(**DOWN)
    sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="r-stream", stream=True, **BODY)  # type: ignore[call-overload]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == "Hello from backup"
    assert raw.headers["x-failover-fallback"] == "fb-plain"
    assert raw.headers["x-failover-route"] == "r-stream"
    assert calls(primary) == ["a1:m-r-stream", "b1:m-r-stream"]
    assert [r.stream for r in backup.received] == [True]


def test_queue_waits_first_then_the_fallback(client: httpx.Client, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    primary, backup = upstreams
    primary.set(**DOWN)
    started = time.monotonic()
    r = chat(client, "r-queue")
    waited = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert waited >= 1.0  # the route's queue held the request for its max_wait_s first
    assert len(calls(primary)) >= 2 and set(calls(primary)) <= {"a1:m-r-queue", "b1:m-r-queue"}
    assert calls(backup) == ["sk-fb-plain:fb-plain"]
    assert failover(r)["x-failover-fallback"] == "fb-plain"
