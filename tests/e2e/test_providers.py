"""Per-key endpoints and other providers through routes, on a real proxy: Azure keys with an
endpoint (and API version) each, an Anthropic backend, and an OpenAI one, in one route."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def regions() -> Iterator[tuple[FakeUpstream, FakeUpstream, FakeUpstream]]:
    with FakeUpstream("east") as east, FakeUpstream("west") as west, FakeUpstream("claude") as claude:
        yield east, west, claude


@pytest.fixture(scope="module")
def proxy(regions: tuple[FakeUpstream, FakeUpstream, FakeUpstream], upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    east, west, claude = regions
    cfg = {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {
                "azure": {
                    "provider": "azure",
                    "api_base": "http://127.0.0.1:9",  # no key uses it: each has its own region
                    "api_keys": {
                        "east": {"key": "sk-prov-east", "api_base": east.url.removesuffix("/v1"), "api_version": "2024-06-01"},
                        "west": {"key": "sk-prov-west", "api_base": west.url.removesuffix("/v1"), "api_version": "2024-10-21"},
                    },
                },
                "anthropic": {"provider": "anthropic", "api_base": claude.url.removesuffix("/v1"), "api_keys": {"c1": "sk-prov-c1"}},
                "openai": {"provider": "openai", "api_base": upstream.url, "api_keys": {"o1": "sk-prov-o1"}},
            },
            "routes": {"chat": {"policy": "km", "elements": ["azure:gpt-4o", "anthropic:claude-3-5-sonnet", "openai:gpt-4o-mini"]}},
        },
    }
    with ProxyProcess(cfg) as p:
        yield p
        logs = p.log_text()
    assert "sk-prov-" not in logs, "a key reached the proxy log"


def chat(proxy: ProxyProcess) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=proxy.headers, timeout=30)


def test_each_azure_key_calls_its_own_region_then_anthropic_then_openai(
    proxy: ProxyProcess, regions: tuple[FakeUpstream, FakeUpstream, FakeUpstream], upstream: FakeUpstream
) -> None:
    east, west, claude = regions
    for u in regions:
        u.reset()
    r = chat(proxy)
    assert r.status_code == 200 and r.headers["x-failover-key"] == "east", r.text
    assert [(x.key, x.model) for x in east.received] == [("sk-prov-east", "gpt-4o")] and west.received == []

    east.set(Behavior(503))
    r = chat(proxy)
    assert r.status_code == 200 and r.headers["x-failover-key"] == "west"
    assert [x.key for x in west.received] == ["sk-prov-west"]

    west.set(Behavior(503))
    r = chat(proxy)  # both regions down: Anthropic, in its own format
    assert r.status_code == 200 and r.headers["x-failover-backend"] == "anthropic", r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello from claude"
    assert [(x.key, x.model) for x in claude.received] == [("sk-prov-c1", "claude-3-5-sonnet")]

    claude.set(Behavior(529))
    r = chat(proxy)
    assert r.status_code == 200 and r.headers["x-failover-backend"] == "openai", r.text
    assert [x.key for x in upstream.received] == ["sk-prov-o1"]
