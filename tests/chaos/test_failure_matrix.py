"""The failure matrix, non-streamed (streams: tests/e2e/test_streams.py): every way an upstream
can fail is replaced by the next candidate with exactly one call to each, the client gets the
backup's answer, and the failed deployment's breaker counts it, as the README promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
A1, B1 = "sk-matrix-a1", "sk-matrix-b1"

FAULTS: dict[str, Behavior] = {
    "503": Behavior(503),
    "500": Behavior(500),
    "502 html": Behavior(502, body="<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "504": Behavior(504),
    "429 retry-after": Behavior(429, retry_after_s=1),
    "408": Behavior(408),
    "malformed 200": Behavior(200, body="{this is not json"),
    "empty 200": Behavior(200, body=""),
    "html 200": Behavior(200, body="<html>maintenance</html>"),
    "dropped connection": Behavior(drop=True),
    "hang past the timeout": Behavior(delay_s=10),
}


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    # a route each, over models of its own: a key's breaker is shared by the routes using the same
    # backend, model and key, so this keeps one fault's failure off the next fault's counts
    routes = {f"r{i}": {"policy": "m", "elements": [f"alpha:gpt-x-{i}", f"beta:gpt-y-{i}"]} for i in range(len(FAULTS))}
    cfg = {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "breaker": {"failure_threshold": 5},
            "backends": {
                "alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": A1}, "litellm_params": {"timeout": 2}},
                "beta": {"provider": "openai", "api_base": upstream.url, "api_keys": {"b1": B1}},
            },
            "routes": routes,
        },
    }
    with ProxyProcess(cfg) as p:
        yield p
        logs = p.log_text()
    assert "sk-matrix" not in logs, "a key reached the proxy log"


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_upstream_fault_is_replaced_with_one_call_each(proxy: ProxyProcess, upstream: FakeUpstream, fault: str) -> None:
    route = f"r{list(FAULTS).index(fault)}"  # a route each: its own deployments, keys and breakers
    upstream.set(**{A1: FAULTS[fault]})
    body: dict[str, Any] = {"model": route, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=proxy.headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-failover-backend"] == "beta" and r.headers["x-failover-attempts"] == "2"
    assert r.json()["choices"][0]["message"]["content"]
    assert [x.key for x in upstream.received] == [A1, B1], "one call to each, no SDK retry"
    rows = httpx.get(f"{proxy.url}/failover/status", headers=proxy.headers).json()["deployments"]
    a1 = next(x for x in rows if x["route"] == route and x["key"] == "a1")
    assert (a1["failures"], a1["calls"]) == (1, 1), a1


def test_an_embedding_fails_over_with_one_call_each(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    """LiteLLM's embedding handler retried inside an attempt (three calls): one, as for chat."""
    upstream.set(**{A1: Behavior(503)})
    r = httpx.post(f"{proxy.url}/v1/embeddings", json={"model": "r0", "input": ["hi"]}, headers=proxy.headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-failover-backend"] == "beta" and len(r.json()["data"]) == 1
    assert [x.key for x in upstream.received] == [A1, B1]
