"""Attacks on the run-time surfaces (issue 19), by a caller with an ordinary valid key, on a real
proxy: the `!/` parser, sessions, route edits, names and the admin API's reads.

Every test is one attack (or one per parameter); each must hold: the caller gets a clear error
or what it could have had anyway, nothing changes, no key leaves for a host config.yaml did not
name, and the proxy keeps serving. The proxy starts with a state file an older version wrote,
holding runtime routes no edit may make now.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess
from tests.e2e.custom_auth import CHEAP_KEY, MASTER_KEY, TEAM_KEY, USER_KEY, VIEWER_KEY

pytestmark = pytest.mark.e2e
E2E = Path(__file__).parent.parent / "e2e"
LEGACY = {  # what an older version let into the state file
    "version": 3,
    "routes": {
        "legacy-good": {"policy": "m", "elements": ["alpha:legacy-model"]},
        "legacy\n": {"policy": "m", "elements": ["alpha:gpt-x"]},
        "legacy-element": {"policy": "m", "elements": ["alpha:gpt-x\n"]},
        "legacy-redirect": {"policy": "m", "elements": [{"element": "alpha:gpt-x", "litellm_params": {"api_base": "http://127.0.0.1:9/v1"}}]},
    },
}


@pytest.fixture(scope="module")
def listener() -> Iterator[FakeUpstream]:
    """A host of the attacker's: no key may ever arrive here."""
    with FakeUpstream("attacker") as u:
        yield u


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    directory = tmp_path_factory.mktemp("attacks")
    shutil.copy(E2E / "custom_auth.py", directory / "custom_auth.py")
    (directory / "shifty.json").write_text("[]")
    (directory / "config.failover-routes.json").write_text(json.dumps(LEGACY))
    cfg = {
        "model_list": [
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-att-plain"}},
        ],
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "general_settings": {"master_key": MASTER_KEY, "custom_auth": "custom_auth.user_api_key_auth"},
        "failover_settings": {
            "backends": {"alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": "sk-att-a1"}}},
            "routes": {
                "cheap": {"policy": "m", "elements": ["alpha:cheap-model"]},
                "premium": {"policy": "m", "elements": [{"element": "alpha:premium-model", "litellm_params": {"timeout": 30}}]},
            },
        },
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with ProxyProcess(path, master_key=MASTER_KEY) as p:
        yield p


def chat(proxy: ProxyProcess, messages: list[dict[str, Any]] | str, *, key: str = USER_KEY, model: str = "cheap", **headers: str) -> httpx.Response:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": model, "messages": messages},
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=60,
    )


def admin_api(proxy: ProxyProcess, method: str, path: str, *, key: str = MASTER_KEY, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{proxy.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30, **kw)


def command_reply(r: httpx.Response) -> str:
    assert r.status_code == 200 and r.headers.get("x-failover-command"), r.text
    return str(r.json()["choices"][0]["message"]["content"])


def refused(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(r.json()["error"]["message"])


# --- 1. one message must not freeze the proxy ---------------------------------------------------


@pytest.mark.parametrize("size", [40_000, 1_000_000], ids=["40k", "1MB"])
def test_a_backtracking_command_does_not_hold_the_event_loop(proxy: ProxyProcess, size: int) -> None:
    hostile = "!/route-list(name=a" + " " * size + "b)"
    probes: list[float] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        attack = pool.submit(chat, proxy, hostile)
        while not attack.done():
            t = time.monotonic()
            assert httpx.get(f"{proxy.url}/health/liveliness", timeout=10).status_code == 200
            probes.append(time.monotonic() - t)
        r = attack.result()
        took = time.monotonic() - started
    assert "too long" in refused(r, 400)
    assert took < 5.0, f"the hostile command took {took:.1f}s"  # 13 s (40k) and far more (1 MB) before
    assert max(probes, default=0.0) < 2.0, f"a liveness probe waited {max(probes):.1f}s"


# --- 2. `!/` text that is not a command belongs to the model ------------------------------------


@pytest.mark.parametrize("text", ["!/bin/bash is in my shebang, why?", "!/frobnicate", "!/help me read this"])
def test_text_starting_with_bang_slash_reaches_the_model(proxy: ProxyProcess, upstream: FakeUpstream, text: str) -> None:
    for model in ("cheap", "plain"):
        r = chat(proxy, text, model=model)
        assert r.status_code == 200 and "x-failover-command" not in r.headers, r.text
    assert [m.prompt for m in upstream.received] == [text, text]


# --- 3. sessions ----------------------------------------------------------------------------------


def test_another_key_cannot_ride_or_redirect_a_session_by_its_id(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    victim = {"x-session-id": "victim-session"}
    assert command_reply(chat(proxy, "!/set(model=premium)", key=MASTER_KEY, **victim))
    for key in (CHEAP_KEY, VIEWER_KEY):  # rides: the id is not theirs
        assert chat(proxy, "hi", key=key, **victim).headers["x-failover-route"] == "cheap"
        command_reply(chat(proxy, "!/set(model=cheap)", key=key, **victim))  # redirects: only their own
    assert chat(proxy, "hi", key=MASTER_KEY, **victim).headers["x-failover-route"] == "premium"
    assert [m.model for m in upstream.received] == ["cheap-model", "cheap-model", "premium-model"]


@pytest.mark.parametrize("key", [CHEAP_KEY, TEAM_KEY], ids=["key-limited", "team-limited"])
def test_a_limited_key_cannot_set_a_model_it_may_not_name(proxy: ProxyProcess, upstream: FakeUpstream, key: str) -> None:
    mine = {"x-session-id": f"escalate-{key}"}
    assert "may not use model 'premium'" in refused(chat(proxy, "!/set(model=premium)", key=key, **mine), 403)
    assert chat(proxy, "hi", key=key, **mine).headers["x-failover-route"] == "cheap"
    assert [m.model for m in upstream.received] == ["cheap-model"]


def test_a_chat_session_does_not_rewrite_embeddings(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    mine = {"x-session-id": "embed"}
    assert command_reply(chat(proxy, "!/set(model=premium)", **mine))
    r = httpx.post(
        f"{proxy.url}/v1/embeddings", json={"model": "plain", "input": "x"}, headers={"Authorization": f"Bearer {USER_KEY}", **mine}, timeout=30
    )
    assert r.status_code == 200 and "x-failover-route" not in r.headers and [m.model for m in upstream.received] == ["plain"]


def test_a_session_on_a_deleted_route_serves_the_model_asked_for(proxy: ProxyProcess) -> None:
    mine = {"x-session-id": "orphaned"}
    assert command_reply(chat(proxy, "!/create-failover-route(name=doomed,policy=m)", key=MASTER_KEY))
    assert command_reply(chat(proxy, "!/route-append(name=doomed,element=alpha:doomed-model)", key=MASTER_KEY))
    assert command_reply(chat(proxy, "!/set(model=doomed)", **mine))
    assert command_reply(chat(proxy, "!/delete-failover-route(name=doomed)", key=MASTER_KEY))
    r = chat(proxy, "hi", **mine)
    assert r.status_code == 200 and r.headers["x-failover-route"] == "cheap" and "no longer exists" in r.headers["x-failover-session-warning"]


# --- 4. a route edit cannot send a key anywhere ---------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"api_base": "{url}/v1"},
        {"base_url": "{url}/v1"},
        {"api_key": "sk-attacker"},
        {"extra_headers": {"X-Exfil": "1"}},
        {"headers": {"X-Exfil": "1"}},
        {"organization": "attacker-org"},
        {"custom_llm_provider": "azure", "api_base": "{url}"},
    ],
    ids=["api_base", "base_url", "api_key", "extra_headers", "headers", "organization", "custom_llm_provider"],
)
def test_a_route_edit_cannot_redirect_a_key(proxy: ProxyProcess, upstream: FakeUpstream, listener: FakeUpstream, params: dict[str, Any]) -> None:
    params = json.loads(json.dumps(params).replace("{url}", listener.url))
    for name in ("exfil", "cheap"):  # a new route, and over a config route
        body = {"policy": "m", "elements": [{"element": "alpha:cheap-model", "litellm_params": params}]}
        assert "cannot be set at run time" in refused(admin_api(proxy, "PUT", f"/failover/routes/{name}", json=body), 400)
    assert chat(proxy, "hi").headers["x-failover-route"] == "cheap"
    assert listener.received == [] and [m.key for m in upstream.received] == ["sk-att-a1"]


# --- 5. who may read what -------------------------------------------------------------------------


def test_a_non_admin_reads_no_parameters_and_only_its_routes(proxy: ProxyProcess) -> None:
    listed = admin_api(proxy, "GET", "/failover/routes", key=CHEAP_KEY).json()
    assert [r["name"] for r in listed["routes"]] == ["cheap"] and "timeout" not in json.dumps(listed)
    assert admin_api(proxy, "GET", "/failover/routes/premium", key=CHEAP_KEY).status_code == 404
    assert "premium" not in command_reply(chat(proxy, "!/list-failover-routes", key=CHEAP_KEY))


def test_a_non_admin_cannot_read_the_status(proxy: ProxyProcess) -> None:
    for key in (USER_KEY, CHEAP_KEY, VIEWER_KEY):
        r = admin_api(proxy, "GET", "/failover/status", key=key)
        assert r.status_code == 403 and "deployments" not in r.text


# --- 6. names that pass validation and break serving ----------------------------------------------


@pytest.mark.parametrize("name", ["chat%0A", "chat%0D%0A", "ch%00at", "chat%7F"])
def test_a_route_name_with_a_control_character_is_refused_by_the_api(proxy: ProxyProcess, name: str) -> None:
    body = {"policy": "m", "elements": ["alpha:cheap-model"]}
    assert "route name" in refused(admin_api(proxy, "PUT", f"/failover/routes/{name}", json=body), 400)


def test_an_element_with_a_control_character_is_refused_by_the_api(proxy: ProxyProcess) -> None:
    body = {"policy": "m", "elements": ["alpha:cheap-model\n"]}
    assert "control character" in refused(admin_api(proxy, "PUT", "/failover/routes/newline", json=body), 400)


def test_a_command_with_a_control_character_is_refused(proxy: ProxyProcess) -> None:
    r = chat(proxy, "!/create-failover-route(name=bad\x00name,policy=m)", key=MASTER_KEY)
    assert "control character" in refused(r, 400)


def test_bad_routes_an_older_version_stored_do_not_break_serving(proxy: ProxyProcess, upstream: FakeUpstream, listener: FakeUpstream) -> None:
    r = chat(proxy, "hi", model="legacy-good")  # the stored route that is fine still serves
    assert r.status_code == 200 and r.headers["x-failover-route"] == "legacy-good"
    listed = {x["name"] for x in admin_api(proxy, "GET", "/failover/routes").json()["routes"]}
    assert "legacy-good" in listed and not listed & {"legacy\n", "legacy-element", "legacy-redirect"}
    assert chat(proxy, "hi", model="legacy-redirect").status_code in (400, 404)
    assert listener.received == [] and "is not served" in proxy.log_text()


# --- 7. a resent conversation does not run its command again --------------------------------------


def test_a_resent_conversation_does_not_run_its_command_again(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    command = {"role": "user", "content": "!/create-failover-route(name=once,policy=m)"}
    first = command_reply(chat(proxy, [command], key=MASTER_KEY))
    turns = [command, {"role": "assistant", "content": first}]
    for extra in ([], [{"role": "assistant", "content": "thinking..."}]):  # agent-loop turns after the command
        r = chat(proxy, turns + extra, key=MASTER_KEY)
        assert r.status_code == 200 and "x-failover-command" not in r.headers, r.text
    assert len(upstream.received) == 2, "the conversation went to the model"
    assert command_reply(chat(proxy, "!/delete-failover-route(name=once)", key=MASTER_KEY))
