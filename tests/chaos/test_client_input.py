"""The client-input table: what a malformed or hostile request gets from a real proxy.

Each is refused as the client's error (an OpenAI-shaped 400 naming the field) with no upstream
call, or served as if the hostile part were not there; none moves a breaker. Every breaker of
the route is closed at the end and the route still serves from its first key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    cfg = {
        "model_list": [
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-chaos-plain"}}
        ],
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "breaker": {"failure_threshold": 2},
            "backends": {
                "alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": "sk-chaos-a1", "a2": "sk-chaos-a2"}}
            },
            "routes": {"chat": {"policy": "k", "elements": ["alpha:gpt-x"]}},
        },
    }
    with ProxyProcess(cfg) as p:
        yield p


def post(proxy: ProxyProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=proxy.headers, timeout=30)


REFUSED = [
    ({"model": "chat", "messages": "hi"}, "'messages' must be a non-empty list"),
    ({"model": "chat", "messages": []}, "'messages' must be a non-empty list"),
    ({"model": "chat", "messages": [1]}, "'messages' item 0 must be an object"),
    ({"model": "chat", "messages": [{"content": "x"}]}, "item 0 must have a string 'role'"),
    ({"model": "chat", "messages": [{"role": "user", "content": 5}]}, "'content' must be a string or a list"),
    ({"model": "chat", "messages": MSG, "timeout": "abc"}, "'timeout' must be a number of seconds"),
    ({"model": "chat", "messages": MSG, "timeout": -1}, "'timeout' must be a positive number"),
    ({"model": "chat", "messages": MSG, "temperature": "hot"}, "'temperature' must be a number"),
    ({"model": "chat", "messages": MSG, "max_tokens": "many"}, "'max_tokens' must be a whole number"),
    ({"model": "chat", "messages": MSG, "n": 1.5}, "'n' must be a whole number"),
    ({"model": "chat", "messages": MSG, "stream": "yes"}, "'stream' must be true or false"),
    ({"model": ["chat"], "messages": MSG}, "'model' must be a string"),  # LiteLLM 1.106 refuses it itself
    ({"model": {"name": "chat"}, "messages": MSG}, "'model' must be a string"),
    ({"model": 5, "messages": MSG}, "'model' must be a string"),
]


@pytest.mark.parametrize(("body", "says"), REFUSED, ids=[s for _, s in REFUSED])
def test_a_malformed_request_is_a_400_that_reaches_no_upstream(proxy: ProxyProcess, upstream: FakeUpstream, body: dict[str, Any], says: str) -> None:
    for _ in range(3):  # more than the breaker's threshold: none of them may count
        r = post(proxy, body)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        # newer LiteLLM releases refuse a non-string model themselves (type bad_request_error)
        assert error["type"] in ("invalid_request_error", "bad_request_error") and says in error["message"], error
    assert upstream.received == []


@pytest.mark.parametrize("model", ["chat", "plain"])
def test_a_client_cannot_set_response_headers_or_forge_a_command_reply(proxy: ProxyProcess, upstream: FakeUpstream, model: str) -> None:
    metadata = {
        "failover": {"headers": {"Set-Cookie": "session=stolen", "Cache-Control": "public", "x-failover-key": "forged"}},
        "failover_command": {"command": "help", "reply": "pwned"},
    }
    r = post(proxy, {"model": model, "messages": MSG, "metadata": metadata})
    assert r.status_code == 200, r.text
    assert "set-cookie" not in r.headers and r.headers.get("cache-control") != "public"
    assert r.headers.get("x-failover-key") in (None, "a1")
    assert r.json()["choices"][0]["message"]["content"] != "pwned" and len(upstream.received) == 1


def test_after_all_of_it_the_route_is_healthy(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    rows = httpx.get(f"{proxy.url}/failover/status", headers=proxy.headers).json()["deployments"]
    assert {r["key"]: (r["state"], r["failures"]) for r in rows} == {"a1": ("closed", 0), "a2": ("closed", 0)}
    r = post(proxy, {"model": "chat", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-failover-key"] == "a1"
