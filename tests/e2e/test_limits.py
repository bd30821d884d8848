"""Rate limits known in advance on a real proxy, under LiteLLM's usage-based-routing-v2 (the
strategy that used to turn a key at its limit into a 429 failure, see issue #13).

A key with `rpm: 2` serves the first two requests of a minute; the third goes to the next key
without calling it (the fake upstream counts each key's calls), and no breaker opens. The
limits count per minute of the clock: a scenario that a minute's end cut in two (each request's
minute is checked) is run again on a route of its own model, whose counters start at zero.
"""

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
KEYS = {"k1": "sk-limits-k1-7a0c", "k2": "sk-limits-k2-7a0c", "s1": "sk-limits-s1-7a0c"}
TRIES = ("a", "b")  # a route per try: a window's end can cut one scenario, never two in a row


def config(upstream: FakeUpstream) -> dict[str, Any]:
    def route(backend: str, t: str) -> dict[str, Any]:
        return {"policy": "k", "elements": [f"{backend}:model-{t}"]}

    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "router_settings": {"routing_strategy": "usage-based-routing-v2"},
        "failover_settings": {
            "metrics": True,
            "backends": {
                "pair": {
                    "provider": "openai",
                    "api_base": upstream.url,
                    "api_keys": {"k1": {"key": KEYS["k1"], "rpm": 2}, "k2": KEYS["k2"]},
                },
                "solo": {
                    "provider": "openai",
                    "api_base": upstream.url,
                    "api_keys": {"s1": KEYS["s1"]},
                    "litellm_params": {"rpm": 1},
                },
            },
            "routes": {
                **{f"pair-{t}": route("pair", t) for t in TRIES},
                **{f"solo-{t}": route("solo", t) for t in TRIES},
            },
        },
    }


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    with ProxyProcess(config(upstream)) as p:
        yield p
        log = p.log_text()
    for value in KEYS.values():
        assert value not in log, "an API key reached the proxy log"


@pytest.fixture
def client(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30, headers=proxy.headers) as c:
        yield c


def chat(client: httpx.Client, route: str) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": route, "messages": [{"role": "user", "content": "hi"}]})


def in_one_minute(scenario: Callable[[str], Any]) -> Any:
    """Run `scenario(try)` until a run's requests all fell in one minute; its result."""
    for t in TRIES:
        minute = math.floor(time.time() / 60)
        result = scenario(t)
        if math.floor(time.time() / 60) == minute:
            return result
    raise AssertionError("two scenarios in a row were cut by a minute's end")


def calls(upstream: FakeUpstream, key: str, t: str) -> int:
    return sum(1 for r in upstream.received if r.key == KEYS[key] and r.model == f"model-{t}")


def test_the_third_request_of_a_minute_goes_to_the_next_key_without_calling_the_first(
    client: httpx.Client, upstream: FakeUpstream
) -> None:
    def scenario(t: str) -> tuple[str, list[tuple[str, str]]]:
        served = []
        for _ in range(3):
            r = chat(client, f"pair-{t}")
            assert r.status_code == 200, r.text
            served.append((r.headers["x-failover-key"], r.headers["x-failover-attempts"]))
        return t, served

    t, served = in_one_minute(scenario)
    assert served == [("k1", "1"), ("k1", "1"), ("k2", "1")]  # one upstream call each
    assert (calls(upstream, "k1", t), calls(upstream, "k2", t)) == (2, 1)
    rows = {r["key"]: r for r in client.get("/failover/status").json()["deployments"] if r["route"] == f"pair-{t}"}
    assert rows["k1"]["state"] == rows["k2"]["state"] == "closed"  # a limit is no failure
    assert rows["k1"]["failures"] == 0
    if math.floor(time.time() / 60) == math.floor(upstream.received[-1].at / 60):
        assert rows["k1"]["limits"] == "rpm 2/2"
    assert rows["k2"]["limits"] is None
    metrics = client.get("/metrics/").text
    assert f'route="pair-{t}"' in metrics and 'outcome="skipped_limit"' in metrics


def test_a_key_at_its_limit_without_a_queue_is_429_with_retry_after_to_the_next_minute(
    client: httpx.Client, upstream: FakeUpstream
) -> None:
    def scenario(t: str) -> tuple[str, httpx.Response, httpx.Response, float]:
        first = chat(client, f"solo-{t}")
        second = chat(client, f"solo-{t}")
        return t, first, second, time.time()

    t, first, second, at = in_one_minute(scenario)
    assert first.status_code == 200, first.text
    assert second.status_code == 429, second.text
    error = second.json()["error"]
    assert error["type"] == "failover_exhausted" and "skipped_limit" in error["message"]
    assert second.headers["x-failover-attempts"] == "0"
    left = (math.floor(at / 60) + 1) * 60 - at
    assert abs(int(second.headers["retry-after"]) - left) <= 2  # seconds to the next minute
    assert calls(upstream, "s1", t) == 1
