"""`/v1/messages` (Anthropic format) and `/v1/responses` streams on a route, through a real
`litellm --config` proxy: a late first token or a silent upstream falls over after
`first_chunk_s`, like a chat stream. (On an openai backend LiteLLM serves both through the
upstream's /v1/responses, which the fake upstream streams.)

After the first chunk, a gap over `between_chunks_s` or a cut ends the stream with an error in
its own format (an Anthropic `error` event; a Responses `response.failed`), counted against the
deployment. Not continued.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e

A1, B1 = "sk-other-a1-91f0", "sk-other-b1-91f0"
CASES = {"late": Behavior(first_chunk_delay_s=20), "silent": Behavior(silent=True, stall_s=20)}
MID = {
    "stall": Behavior(fault="stall", fault_after=2, stall_s=20, text=["One ", "two ", "three "]),
    "cut": Behavior(fault="cut", fault_after=2, text=["One ", "two ", "three "]),
}
PATHS = {
    "messages": ("/v1/messages", {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "stream": True}),
    "responses": ("/v1/responses", {"input": "hi", "stream": True}),
}


def _name(case: str, api: str) -> str:
    return f"{api}-{case}"


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    routes = {
        _name(c, a): {"policy": "m", "elements": [f"alpha:{_name(c, a)}", f"beta:{_name(c, a)}"]}
        for c in [*CASES, *MID]
        for a in PATHS
    }
    config = {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "defaults": {"stream_timeouts": {"first_chunk_s": 1, "between_chunks_s": 1}},
            "backends": {
                "alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": A1}},
                "beta": {"provider": "openai", "api_base": upstream.url, "api_keys": {"b1": B1}},
            },
            "routes": routes,
        },
    }
    with ProxyProcess(config) as p:
        yield p


@pytest.mark.parametrize("api", list(PATHS))
@pytest.mark.parametrize("case", list(CASES))
def test_a_late_or_silent_first_chunk_falls_over_after_first_chunk_s(
    proxy: ProxyProcess, upstream: FakeUpstream, case: str, api: str
) -> None:
    upstream.set(**{A1: CASES[case], B1: Behavior(text=["from ", "the backup"])})
    path, body = PATHS[api]
    t0 = time.monotonic()
    payload: dict[str, Any] = {"model": _name(case, api), **body}
    with httpx.stream("POST", proxy.url + path, json=payload, headers=proxy.headers, timeout=60) as s:
        text = "".join(s.iter_text())
    took = time.monotonic() - t0
    print(f"\n{api}, first chunk {case}: {s.status_code}, served by {s.headers.get('x-failover-key')} after {took:.2f}s")
    assert s.status_code == 200 and s.headers["x-failover-key"] == "b1"
    assert "the backup" in text
    assert [r.key for r in upstream.received] == [A1, B1]
    assert took < 10  # first_chunk_s is 1 s; the upstream would hold on for 20


def deployment(proxy: ProxyProcess, id: str) -> dict[str, Any]:
    r = httpx.get(f"{proxy.url}/failover/status", headers=proxy.headers, timeout=10)
    return next(d for d in r.json()["deployments"] if d["deployment"] == id)


@pytest.mark.parametrize("api", list(PATHS))
@pytest.mark.parametrize("case", list(MID))
def test_a_stall_or_cut_after_the_first_chunk_ends_with_an_error_in_the_apis_format(
    proxy: ProxyProcess, upstream: FakeUpstream, case: str, api: str
) -> None:
    upstream.set(**{A1: MID[case]})
    path, body = PATHS[api]
    route = _name(case, api)
    t0 = time.monotonic()
    with httpx.stream("POST", proxy.url + path, json={"model": route, **body}, headers=proxy.headers, timeout=60) as s:
        text = "".join(s.iter_text())
    took = time.monotonic() - t0
    print(f"\n{api}, {case} after 2 chunks: ended after {took:.2f}s; last event: {text.strip().splitlines()[-1][:160]}")
    assert "One " in text  # what the client had is kept
    if api == "messages":
        assert "event: error" in text and "failover_stream_interrupted" in text
    else:
        assert "response.failed" in text
    assert "stream of route" in text and "interrupted" in text
    assert took < 10  # between_chunks_s is 1 s; the stall would last 20
    assert [r.key for r in upstream.received] == [A1]  # not continued
    d = deployment(proxy, f"{route}/alpha:{route}/a1")
    assert (d["failures"], d["success_rate"]) == (1, 0.0)
