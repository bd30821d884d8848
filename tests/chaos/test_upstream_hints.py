"""What an upstream says about itself must not take a key out for longer than it should: a
Retry-After of years (or `inf`) is capped at `breaker.max_cooldown_s`, an unusable one is
ignored, a sane one is passed on to the client; a client error (404) never takes a key out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
A1, A2 = "sk-hint-a1", "sk-hint-a2"
MAX_COOLDOWN_S = 3.0


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    def k(name: str) -> dict[str, Any]:
        # a model of the route's own: keys' breakers are shared by the routes using the same
        # backend, model and key, and each test here parks or checks keys of its own
        return {"policy": "k", "elements": [f"alpha:gpt-x-{name}"]}

    cfg = {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "breaker": {"failure_threshold": 1, "cooldown_s": 1, "max_cooldown_s": MAX_COOLDOWN_S},
            "backends": {"alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": A1, "a2": A2}}},
            "routes": {
                "years": k("years"),
                "forever": k("forever"),
                "queued": {**k("queued"), "queue": {"max_wait_s": 1, "recheck_s": 0.2}},
                "passed-on": k("passed-on"),
                "notfound": k("notfound"),
            },
        },
    }
    with ProxyProcess(cfg) as p:
        yield p


def chat(proxy: ProxyProcess, route: str) -> httpx.Response:
    body = {"model": route, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=proxy.headers, timeout=30)


def state(proxy: ProxyProcess, route: str, key: str) -> dict[str, Any]:
    rows = httpx.get(f"{proxy.url}/failover/status", headers=proxy.headers).json()["deployments"]
    return next(r for r in rows if r["route"] == route and r["key"] == key)


@pytest.mark.parametrize(("route", "retry_after"), [("years", 99999999.0), ("forever", float("inf"))])
def test_a_retry_after_of_years_parks_a_key_for_max_cooldown_s_at_most(
    proxy: ProxyProcess, upstream: FakeUpstream, route: str, retry_after: float
) -> None:
    upstream.set(**{A1: Behavior(429, retry_after_s=retry_after)})
    r = chat(proxy, route)
    assert r.status_code == 200 and r.headers["x-failover-key"] == "a2"
    a1 = state(proxy, route, "a1")
    assert a1["state"] == "open" and a1["open_for_s"] <= MAX_COOLDOWN_S
    upstream.reset()  # a1 is back
    deadline = time.monotonic() + MAX_COOLDOWN_S + 10
    served = ""
    while served != "a1" and time.monotonic() < deadline:
        time.sleep(0.3)
        served = chat(proxy, route).headers["x-failover-key"]
    assert served == "a1", f"a1 still parked after {MAX_COOLDOWN_S}s + 10s: {state(proxy, route, 'a1')}"


def test_a_queue_in_front_of_an_endless_retry_after_answers_503(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    upstream.set(Behavior(429, retry_after_s=float("inf")))
    for _ in range(2):  # both keys parked "forever": each request waits in the queue, then gives up
        r = chat(proxy, "queued")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["type"] == "failover_exhausted"
        assert 1 <= int(r.headers["retry-after"]) <= MAX_COOLDOWN_S


def test_an_upstreams_retry_after_is_passed_on(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    upstream.set(Behavior(429, retry_after_s=2))
    r = chat(proxy, "passed-on")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"


def test_a_client_error_never_takes_a_key_out(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    """LiteLLM cools a deployment down after a 404; the breaker used to adopt that cooldown."""
    upstream.set(**{A1: Behavior(404, message="no such endpoint")})
    for _ in range(3):
        assert chat(proxy, "notfound").status_code == 404  # returned as it is, no failover
    upstream.reset()
    r = chat(proxy, "notfound")
    assert r.status_code == 200 and r.headers["x-failover-key"] == "a1", r.json()
    assert state(proxy, "notfound", "a1")["state"] == "closed"
