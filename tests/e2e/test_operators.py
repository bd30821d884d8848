"""The operators' view on a real proxy: /metrics after a failover, /failover/health for load
balancers, and `status --json`.

The proxy runs LiteLLM's own `prometheus` callback beside the plugin: the plugin's metrics
appear on LiteLLM's /metrics (the default prometheus_client registry). A second proxy, without
that callback, serves them because of `failover_settings.metrics: true`.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e

KEYS = {"a1": "sk-ops-a1-5d1e", "a2": "sk-ops-a2-5d1e", "b1": "sk-ops-b1-5d1e", "g1": "sk-ops-g1-5d1e"}
BODY = {"messages": [{"role": "user", "content": "hi"}]}


def config(upstream: FakeUpstream, *, callbacks: list[str], metrics: bool = False, **extra: Any) -> dict[str, Any]:
    def backend(*keys: str) -> dict[str, Any]:
        return {"provider": "openai", "api_base": upstream.url, "api_keys": {k: KEYS[k] for k in keys}}

    return {
        "model_list": [
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-x"}}
        ],
        "litellm_settings": {"callbacks": callbacks},
        "failover_settings": {
            "backends": {"alpha": backend("a1", "a2"), "beta": backend("b1"), "gamma": backend("g1")},
            "routes": {
                "main": {"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]},
                "solo": {"policy": "m", "elements": ["gamma:gpt-z"]},
            },
            # one failure opens a breaker; short cooldowns so a recovered upstream is probed soon
            "breaker": {"failure_threshold": 1, "cooldown_s": 2, "max_cooldown_s": 8},
            "metrics": metrics,
            **extra,
        },
    }


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    with ProxyProcess(config(upstream, callbacks=["prometheus", "litellm_failover_plugin.plugin"])) as p:
        yield p
        log = p.log_text()
    for value in KEYS.values():
        assert value not in log, "an API key reached the proxy log"


@pytest.fixture
def client(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30, headers=proxy.headers) as c:
        yield c


def chat(client: httpx.Client, model: str) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, **BODY})


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` whose labels include `labels`, else None."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        body = line[len(name) + 1 : line.rindex("}")]
        got = dict(part.split("=", 1) for part in body.split(",") if "=" in part)
        if all(got.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_after_a_failover_show_attempts_by_outcome_and_the_breakers(
    client: httpx.Client, upstream: FakeUpstream
) -> None:
    upstream.set(**{KEYS["a1"]: Behavior(status=500), KEYS["a2"]: Behavior(status=503)})
    r = chat(client, "main")
    assert r.status_code == 200, r.text
    assert [x.key for x in upstream.received] == [KEYS["a1"], KEYS["a2"], KEYS["b1"]]

    m = client.get("/metrics/")
    assert m.status_code == 200
    text = m.text
    assert "litellm_" in text  # LiteLLM's own metrics, on the same page
    attempts = "failover_attempts_total"
    assert sample(text, attempts, route="main", backend="alpha", key="a1", outcome="failed_over") == 1.0
    assert sample(text, attempts, route="main", backend="alpha", key="a2", outcome="failed_over") == 1.0
    assert sample(text, attempts, route="main", backend="beta", key="b1", outcome="success") == 1.0
    assert sample(text, "failover_requests_total", route="main", result="success") == 1.0
    assert sample(text, "failover_breaker_state", route="main", key="a1") == 2.0  # open
    assert sample(text, "failover_breaker_state", route="main", key="b1") == 0.0  # closed
    assert sample(text, "failover_upstream_latency_seconds_count", route="main", key="b1", stream="false") == 1.0
    for value in KEYS.values():
        assert value not in text


def test_health_stays_ready_while_one_route_is_down_and_its_route_probe_answers_503_then_200_again(
    client: httpx.Client, upstream: FakeUpstream, proxy: ProxyProcess
) -> None:
    anonymous = httpx.Client(base_url=proxy.url, timeout=30)  # a load balancer has no key
    # every route servable (main's alpha keys may still be open from another test: beta is not)
    ok = anonymous.get("/failover/health", params={"route": "solo"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "ok" and ok.json()["routes"]["solo"]["callable"] == 1
    assert "gamma" not in ok.text and "g1" not in ok.text  # no details for a caller without an admin key

    upstream.set(**{KEYS["g1"]: Behavior(status=500)})
    down = None
    for _ in range(20):  # each failed call opens the breaker again, for longer: until health sees it
        chat(client, "solo")
        down = anonymous.get("/failover/health", params={"route": "solo"})
        if down.status_code == 503:
            break
    assert down is not None and down.status_code == 503, down.text if down is not None else ""
    ready = anonymous.get("/failover/health")  # the process still serves its other routes
    assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
    assert ready.json()["unavailable_routes"] == ["solo"] and ready.json()["routes"]["main"]["ok"] is True
    admin = client.get("/failover/health", params={"route": "solo"})  # a proxy admin's key sees which keys
    assert admin.json()["routes"]["solo"]["keys"]["callable"] == []
    assert admin.json()["routes"]["solo"]["keys"]["unavailable"]["gamma:gpt-z/g1"] in ("skipped_open", "skipped_cooldown")

    upstream.set(**{KEYS["g1"]: Behavior()})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the breaker's cooldown ends: its probe is due, callable again
        back = anonymous.get("/failover/health", params={"route": "solo"})
        if back.status_code == 200:
            break
        time.sleep(0.2)
    assert back.status_code == 200, back.text
    assert chat(client, "solo").status_code == 200
    assert anonymous.get("/failover/health", params={"route": "nope"}).status_code == 404
    anonymous.close()


def test_a_route_with_no_elements_leaves_the_proxy_ready(client: httpx.Client, proxy: ProxyProcess) -> None:
    r = client.put("/failover/routes/empty", json={"elements": []})
    assert r.status_code == 200, r.text
    try:
        h = httpx.get(f"{proxy.url}/failover/health", timeout=30)
        assert h.status_code == 200, h.text
        assert "empty" in h.json()["unavailable_routes"]
        assert h.json()["routes"]["empty"] == {"ok": False, "candidates": 0, "callable": 0, "probe_due": 0}
        assert httpx.get(f"{proxy.url}/failover/health?route=empty", timeout=30).status_code == 503
    finally:
        assert client.delete("/failover/routes/empty").status_code == 200
    assert "empty" not in httpx.get(f"{proxy.url}/failover/health", timeout=30).json()["routes"]


def test_status_json_names_the_worker_and_filters_by_route(client: httpx.Client, proxy: ProxyProcess) -> None:
    assert chat(client, "solo").status_code in (200, 500, 503)  # the route has been used
    cmd = [sys.executable, "-m", "litellm_failover_plugin", "status", "--proxy-url", proxy.url, "--api-key", proxy.master_key]
    out = subprocess.run([*cmd, "--json", "--route", "solo"], capture_output=True, text=True, timeout=60, check=True)
    body = json.loads(out.stdout)
    assert isinstance(body["worker"], int)
    assert [d["deployment"] for d in body["deployments"]] == ["solo/gamma:gpt-z/g1"]
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True, env={**os.environ, "COLUMNS": "80"})
    assert f"answered by worker pid {body['worker']}" in " ".join(table.stdout.split())
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "solo/gamma:gpt-z/g1" in "".join(table.stdout.split())
    nope = subprocess.run([*cmd, "--route", "nope"], capture_output=True, text=True, timeout=60)
    assert nope.returncode == 2 and "no route 'nope'" in nope.stderr and "solo" in nope.stderr and nope.stdout == ""


def test_metrics_true_serves_them_without_litellms_prometheus_callback_and_health_may_need_a_key(
    upstream: FakeUpstream,
) -> None:
    cfg = config(upstream, callbacks=["litellm_failover_plugin.plugin"], metrics=True, health_endpoint={"auth": True})
    with ProxyProcess(cfg) as p, httpx.Client(base_url=p.url, timeout=30, headers=p.headers) as c:
        assert chat(c, "main").status_code == 200
        text = c.get("/metrics/").text
        # refused without a key, as /failover/status is (how depends on LiteLLM: 401, or 400/500 with no db)
        refused = httpx.get(f"{p.url}/failover/health", timeout=30)
        assert refused.status_code >= 400 and "routes" not in refused.text
        assert c.get("/failover/health").status_code == 200
    assert sample(text, "failover_requests_total", route="main", result="success") == 1.0
    assert sample(text, "failover_attempts_total", route="main", key="a1", outcome="success") == 1.0
