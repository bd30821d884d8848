"""A real proxy's own traffic passes the live checks of the hooks (selfcheck.py).

The first route response is the one checked for the response headers hook: here an Anthropic
`/v1/messages` call (the endpoint furthest from chat completions); then chat, a stream and
embeddings, whose pre-call and deployment-call checks run on every request. None is refused.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    cfg: dict[str, Any] = {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {
                "openai": {"provider": "openai", "api_base": upstream.url, "api_keys": {"o1": "sk-check-o1"}},
                "claude": {
                    "provider": "anthropic",
                    "api_base": upstream.url.removesuffix("/v1"),
                    "api_keys": {"c1": "sk-check-c1"},
                },
            },
            "routes": {
                "messages": {"policy": "m", "elements": ["claude:claude-3-5-sonnet"]},
                "chat": {"policy": "m", "elements": ["openai:gpt-x"]},
            },
        },
    }
    with ProxyProcess(cfg) as p:
        yield p


def test_every_endpoint_passes_the_checks(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=30) as client:
        for _ in range(2):
            r = client.post("/v1/messages", json={"model": "messages", "max_tokens": 10, "messages": HI})
            assert r.status_code == 200, r.text
            assert r.headers["x-failover-route"] == "messages"
            r = client.post("/v1/chat/completions", json={"model": "chat", "messages": HI})
            assert r.status_code == 200 and r.headers["x-failover-route"] == "chat", r.text
            with client.stream("POST", "/v1/chat/completions", json={"model": "chat", "messages": HI, "stream": True}) as s:
                assert s.status_code == 200
                assert "from shared" in "".join(s.iter_lines())
            r = client.post("/v1/embeddings", json={"model": "chat", "input": ["hi"]})
            assert r.status_code == 200, r.text
    assert len(upstream.received) == 8  # each request one upstream call
    log = proxy.log_text()
    assert "not doing what the plugin relies on" not in log and "failover_unavailable" not in log
