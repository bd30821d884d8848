"""`/v1/messages` (Anthropic format) and `/v1/responses` streams on a route, through a real
`litellm --config` proxy: a late first token or a silent upstream falls over after
`first_chunk_s`, like a chat stream. (On an openai backend LiteLLM serves both through the
upstream's /v1/responses, which the fake upstream streams.)

Mid-stream failures of these streams (between_chunks_s, accounting, continuation) are not
handled by the plugin yet: LiteLLM ends them with its own error event.
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
        for c in CASES
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
