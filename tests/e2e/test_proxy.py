"""A real `litellm --config` proxy process with the plugin, against a fake upstream on 127.0.0.1.

One upstream serves every backend, so the order of `upstream.received` is the order of the
attempts. Each test uses its own route: LiteLLM's cooldowns are per deployment, and a route's
deployments are its own, so tests do not see each other's cooldowns.
"""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from litellm_failover_plugin.routing import KEYS_GROUP_PREFIX, keys_group
from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e

KEYS = {"a1": "sk-e2e-a1-7f3a9c", "a2": "sk-e2e-a2-7f3a9c", "b1": "sk-e2e-b1-7f3a9c", "b2": "sk-e2e-b2-7f3a9c"}
NAME_OF = {v: k for k, v in KEYS.items()}
BODY = {"messages": [{"role": "user", "content": "hi"}]}
ROUTES = {
    **{f"order-{p}": {"policy": p} for p in ("k", "m", "km", "mk")},
    "passthrough": {"policy": "km"},
    "element-list": {"policy": "km"},
    "served": {"policy": "mk"},
    "limited": {"policy": "km", "fallback_status_codes": [429]},
    "per-model": {"policy": "m"},
    "stream": {"policy": "m"},
    "cooldown": {"policy": "m"},
    "catch": {"policy": "m", "elements": ["alpha:gpt-x", {"element": "beta:gpt-y", "catch": ["rate_limit"]}]},
    "off": {"policy": "km", "enabled": False},
}


def _own(element: Any, route: str) -> Any:
    """The element with a model of the route's own (`gpt-x@route`): a key's breaker and
    LiteLLM's cooldowns are shared by every route using the same backend, model and key, and
    each test here must start with healthy keys whatever the tests before it did to theirs.
    The helpers below read `gpt-x@route` as `gpt-x`."""
    if isinstance(element, dict):
        return {**element, "element": _own(element["element"], route)}
    return f"{element}@{route}"


def model(name: str) -> str:
    return name.split("@")[0]


def config(upstream: FakeUpstream) -> dict[str, Any]:
    routes = {
        name: {**r, "elements": [_own(e, name) for e in r.get("elements", ["alpha:gpt-x", "beta:gpt-y"])]}
        for name, r in ROUTES.items()
    }
    return {
        "model_list": [
            {
                "model_name": "plain",
                "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-plain"},
            }
        ],
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {
                "alpha": {
                    "provider": "openai",
                    "api_base": upstream.url,
                    "api_keys": {"a1": "os.environ/E2E_A1", "a2": "os.environ/E2E_A2"},
                },
                "beta": {
                    "provider": "openai",
                    "api_base": upstream.url,
                    "api_keys": {"b1": KEYS["b1"], "b2": KEYS["b2"]},
                },
            },
            "routes": routes,
            "model_fallback_status_codes": {f"alpha:gpt-x@{name}": [500, 503, 429] for name in ROUTES},
        },
    }


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    env = {"E2E_A1": KEYS["a1"], "E2E_A2": KEYS["a2"]}
    with ProxyProcess(config(upstream), env=env) as p:
        yield p
        log = p.log_text()
    for value in KEYS.values():
        assert value not in log, "an API key reached the proxy log"


@pytest.fixture
def client(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30, headers=proxy.headers) as c:
        yield c


def chat(client: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, **BODY, **extra})


def called(upstream: FakeUpstream) -> list[str]:
    return [f"{NAME_OF.get(r.key, r.key)}:{model(r.model)}" for r in upstream.received]


def failover_headers(response: httpx.Response) -> dict[str, str]:
    return {k: model(v) if k == "x-failover-model" else v for k, v in response.headers.items() if k.startswith("x-failover-")}


@pytest.mark.parametrize(
    ("policy", "order"),
    [
        ("k", ["a1:gpt-x", "a2:gpt-x"]),
        ("m", ["a1:gpt-x", "b1:gpt-y"]),
        ("km", ["a1:gpt-x", "a2:gpt-x", "b1:gpt-y", "b2:gpt-y"]),
        ("mk", ["a1:gpt-x", "b1:gpt-y", "a2:gpt-x", "b2:gpt-y"]),
    ],
)
def test_policy_order_and_exhausted_error(
    client: httpx.Client, upstream: FakeUpstream, policy: str, order: list[str]
) -> None:
    upstream.set(Behavior(503))
    r = chat(client, f"order-{policy}")
    assert called(upstream) == order
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["type"] == "failover_exhausted"
    assert error["code"] == "503"
    assert [(a["backend"], model(a["model"]), a["key"], a["status"]) for a in error["attempts"]] == [
        ("alpha" if o.startswith("a") else "beta", o.split(":")[1], o.split(":")[0], 503) for o in order
    ]
    last = order[-1].split(":")
    assert failover_headers(r) == {
        "x-failover-route": f"order-{policy}",
        "x-failover-backend": "alpha" if last[0].startswith("a") else "beta",
        "x-failover-model": last[1],
        "x-failover-key": last[0],
        "x-failover-attempts": str(len(order)),
    }
    assert not any(v in r.text for v in KEYS.values())


def test_exhausted_status_is_the_last_attempts(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set(Behavior(503), **{KEYS["b1"]: Behavior(429)})
    r = chat(client, "per-model")  # m: a1 then b1
    assert r.status_code == 429
    assert [a["status"] for a in r.json()["error"]["attempts"]] == [503, 429]


def test_unlisted_status_returned_untouched_with_no_further_call(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set(Behavior(400, message="your request is malformed", error_type="invalid_request_error"))
    r = chat(client, "passthrough")
    assert r.status_code == 400
    assert "your request is malformed" in r.json()["error"]["message"]
    assert called(upstream) == ["a1:gpt-x"]
    assert failover_headers(r)["x-failover-attempts"] == "1"
    assert failover_headers(r)["x-failover-key"] == "a1"


def test_401_is_returned_as_401(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set(Behavior(401, message="bad key", error_type="invalid_api_key"))
    r = chat(client, "passthrough")
    assert r.status_code == 401
    # each key of alpha is tried (a revoked key is that key's failure), never beta: 401 is not listed
    assert called(upstream) == ["a1:gpt-x", "a2:gpt-x"]


def test_success_after_failover_says_who_served(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set(**{KEYS["a1"]: Behavior(500)})
    r = chat(client, "served")
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Hello from shared"
    assert failover_headers(r) == {
        "x-failover-route": "served",
        "x-failover-backend": "beta",
        "x-failover-model": "gpt-y",
        "x-failover-key": "b1",
        "x-failover-attempts": "2",
    }
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]


def test_route_list_limits_what_falls_over(client: httpx.Client, upstream: FakeUpstream) -> None:
    # the route says [429], but alpha:gpt-x has its own list [500, 503, 429]; beta falls back to the route's
    upstream.set(**{KEYS["a1"]: Behavior(503), KEYS["a2"]: Behavior(429), KEYS["b1"]: Behavior(503)})
    r = chat(client, "limited")
    assert r.status_code == 503
    assert r.json()["error"]["type"] != "failover_exhausted"
    assert called(upstream) == ["a1:gpt-x", "a2:gpt-x", "b1:gpt-y"]


def test_catch_skips_an_element_for_other_failures(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    r = chat(client, "catch")
    assert r.status_code == 503
    assert [a["outcome"] for a in r.json()["error"]["attempts"]] == ["failed_over", "skipped_catch"]
    assert called(upstream) == ["a1:gpt-x"]


def test_disabled_route_makes_one_attempt(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set(Behavior(503))
    r = chat(client, "off")
    assert r.status_code == 503
    assert called(upstream) == ["a1:gpt-x"]


def test_stream_fails_over_before_the_first_chunk(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="stream", stream=True, **BODY)  # type: ignore[call-overload]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == "Hello from shared"
    assert raw.headers["x-failover-key"] == "b1"
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]


def test_element_list_overrides_the_default(client: httpx.Client, upstream: FakeUpstream) -> None:
    # alpha:gpt-x falls over only on [500, 503, 429]: a 502 from it goes straight back
    upstream.set(Behavior(502))
    r = chat(client, "element-list")
    assert r.status_code == 502
    assert called(upstream) == ["a1:gpt-x"]


def test_openai_sdk_sees_an_openai_error(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    upstream.set(Behavior(429))
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="order-m", **BODY)
    assert info.value.status_code == 429
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "failover_exhausted"


def test_cooled_down_deployment_is_skipped(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set(**{KEYS["a1"]: Behavior(429)})  # LiteLLM cools a deployment down on a 429
    assert chat(client, "cooldown").status_code == 200
    deadline = time.monotonic() + 10
    while True:  # the cooldown is recorded by a background task: wait for it to show
        upstream.reset()
        r = chat(client, "cooldown")
        if called(upstream) == ["b1:gpt-y"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert called(upstream) == ["b1:gpt-y"]
    assert failover_headers(r)["x-failover-attempts"] == "1"
    upstream.set(Behavior(503))
    r = chat(client, "cooldown")
    assert [a["outcome"] for a in r.json()["error"]["attempts"]] == ["skipped_cooldown", "failed_over"]


def test_plain_model_list_entries_keep_working(client: httpx.Client, upstream: FakeUpstream) -> None:
    r = chat(client, "plain")
    assert r.status_code == 200
    assert called(upstream) == ["sk-plain:plain"]
    assert "x-failover-route" not in r.headers


def test_the_proxy_runs_with_a_master_key_of_its_own(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    """Whatever a LiteLLM release assumes about keys, the tests bring their own: without it,
    nothing is served (LiteLLM answers 400 to 500 there, not always 401)."""
    body = {"model": "served", "messages": [{"role": "user", "content": "no key"}]}
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=30).status_code >= 400
    assert httpx.get(f"{proxy.url}/failover/status", timeout=30).status_code >= 400
    assert called(upstream) == []


def test_routes_are_listed_as_models(client: httpx.Client, upstream: FakeUpstream) -> None:
    ids = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert {"plain", "order-mk", "served"} <= ids
    assert not [i for i in ids if i.startswith(KEYS_GROUP_PREFIX)]  # the groups of keys behind routes are not models
    r = chat(client, keys_group("served"))  # nor can a client ask for one: LiteLLM would shuffle the keys
    assert r.status_code in (400, 404) and "error" in r.json()
    assert called(upstream) == []


@pytest.mark.skipif(
    not hasattr(__import__("litellm.integrations.custom_logger", fromlist=["CustomLogger"]).CustomLogger, "async_filter_listed_models"),
    reason="this LiteLLM has no hook to filter /model/info's rows (1.102.4): its keys groups stay listed there (README)",
)
def test_model_info_lists_routes_never_their_keys_groups(client: httpx.Client) -> None:
    rows = client.get("/model/info").json()["data"]
    names = [r["model_name"] for r in rows]
    assert "served" in names and "plain" in names
    assert not [n for n in names if n.startswith(KEYS_GROUP_PREFIX)], names  # one row per key, each a keys group


def test_unknown_model_is_an_openai_error(client: httpx.Client, upstream: FakeUpstream) -> None:
    r = chat(client, "no-such-route")
    assert r.status_code in (400, 404)
    assert "error" in r.json()
    assert called(upstream) == []


def test_bad_config_stops_startup_naming_the_field(upstream: FakeUpstream) -> None:
    cfg = config(upstream)
    cfg["failover_settings"]["routes"]["order-k"]["policy"] = "zz"
    cfg["failover_settings"]["backends"]["alpha"]["api_keys"]["a1"] = "os.environ/E2E_UNSET_VAR"
    proxy = ProxyProcess(cfg, env={"E2E_A2": KEYS["a2"]})
    try:
        with pytest.raises(RuntimeError, match="proxy exited") as info:
            proxy.start(timeout_s=60)
        assert "failover_settings.routes.order-k.policy: unknown policy 'zz'" in str(info.value)
        assert "environment variable E2E_UNSET_VAR is not set" in str(info.value)
    finally:
        proxy.close()
