"""Sessions, route edits and the admin API against callers LiteLLM limits (issue 19), on a real
proxy whose `custom_auth` gives keys limited to model `cheap` (by the key, by its team), a
view-only key and a key whose models change while it runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess
from tests.e2e.custom_auth import CHEAP_KEY, MASTER_KEY, SHIFTY_KEY, TEAM_KEY, USER_KEY, VIEWER_KEY
from tests.e2e.test_commands import error, reply, send

pytestmark = pytest.mark.e2e


def write_config(directory: Path, upstream: FakeUpstream, *, litellm_checks: bool = True) -> Path:
    shutil.copy(Path(__file__).with_name("custom_auth.py"), directory / "custom_auth.py")
    (directory / "shifty.json").write_text(json.dumps(["cheap", "premium"]))
    cfg = {
        "model_list": [
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-plain"}},
        ],
        # LiteLLM checks a custom_auth key's models only when told to (and then lets no
        # non-admin reach /failover/*)
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin", "enable_post_custom_auth_checks": litellm_checks},
        "general_settings": {
            "master_key": MASTER_KEY,
            "custom_auth": "custom_auth.user_api_key_auth",
            "custom_auth_run_common_checks": litellm_checks,
        },
        "failover_settings": {
            "backends": {"alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": "sk-sec-a1"}}},
            "routes": {
                "cheap": {"policy": "m", "elements": ["alpha:cheap-model"]},
                "premium": {"policy": "m", "elements": [{"element": "alpha:premium-model", "litellm_params": {"timeout": 30}}]},
            },
        },
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("security")


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, proxy_dir: Path) -> Iterator[ProxyProcess]:
    with ProxyProcess(write_config(proxy_dir, upstream), master_key=MASTER_KEY) as p:
        yield p


def served_model(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return str(r.json()["model"])


def models_called(upstream: FakeUpstream) -> list[str]:
    return [r.model for r in upstream.received]


def test_litellm_limits_the_cheap_key_to_cheap(proxy: ProxyProcess) -> None:
    """The premise: naming `premium` directly is refused. (The team key's team is checked by
    LiteLLM at request time only with a database holding the team: its fallback check, which
    `!/set` asks, reads the team's models from the key when there is none.)"""
    assert send(proxy, "hi", key=CHEAP_KEY, model="cheap").status_code == 200
    assert send(proxy, "hi", key=CHEAP_KEY, model="premium").status_code in (401, 403)


def test_a_session_belongs_to_the_key_that_made_it(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    shared = {"x-session-id": "shared-session"}
    assert reply(send(proxy, "!/set(model=premium)", model="cheap", headers=shared))  # the admin's session
    for key in (CHEAP_KEY, USER_KEY, VIEWER_KEY):
        r = send(proxy, "hi", key=key, model="cheap", headers=shared)
        assert r.status_code == 200 and r.headers["x-failover-route"] == "cheap", r.headers
    assert models_called(upstream) == ["cheap-model"] * 3
    # and another key's !/set of the same id does not redirect the admin's session
    assert reply(send(proxy, "!/set(model=cheap)", key=USER_KEY, model="cheap", headers=shared))
    assert send(proxy, "hi", model="cheap", headers=shared).headers["x-failover-route"] == "premium"
    assert reply(send(proxy, "!/unset(model)", model="cheap", headers=shared))
    assert reply(send(proxy, "!/unset(model)", key=USER_KEY, model="cheap", headers=shared))


@pytest.mark.parametrize("key", [CHEAP_KEY, TEAM_KEY], ids=["key-models", "team-models"])
def test_set_checks_what_litellm_checks_for_the_model(proxy: ProxyProcess, upstream: FakeUpstream, key: str) -> None:
    mine = {"x-session-id": f"limited-{key}"}
    says = error(send(proxy, "!/set(model=premium)", key=key, model="cheap", headers=mine), 403, "failover_command_forbidden")
    assert "may not use model 'premium'" in says
    r = send(proxy, "hi", key=key, model="cheap", headers=mine)
    assert r.headers["x-failover-route"] == "cheap" and models_called(upstream) == ["cheap-model"]
    assert reply(send(proxy, "!/set(model=cheap)", key=key, model="cheap", headers=mine))  # its own model: fine


def test_a_session_is_checked_again_at_every_request(proxy: ProxyProcess, upstream: FakeUpstream, proxy_dir: Path) -> None:
    mine = {"x-session-id": "shifty"}
    try:
        assert reply(send(proxy, "!/set(model=premium)", key=SHIFTY_KEY, model="cheap", headers=mine))
        assert send(proxy, "hi", key=SHIFTY_KEY, model="cheap", headers=mine).headers["x-failover-route"] == "premium"
        (proxy_dir / "shifty.json").write_text(json.dumps(["cheap"]))  # the key lost premium
        r = send(proxy, "hi", key=SHIFTY_KEY, model="cheap", headers=mine)
        assert r.status_code == 200 and r.headers["x-failover-route"] == "cheap"
        assert "may not use this session's route 'premium'" in r.headers["x-failover-session-warning"]
        assert models_called(upstream) == ["premium-model", "cheap-model"]
    finally:
        (proxy_dir / "shifty.json").write_text(json.dumps(["cheap", "premium"]))


def test_a_session_applies_to_chat_only(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    mine = {"Authorization": f"Bearer {USER_KEY}", "x-session-id": "chat-only"}
    assert reply(send(proxy, "!/set(model=premium)", key=USER_KEY, model="plain", headers={"x-session-id": "chat-only"}))
    r = httpx.post(f"{proxy.url}/v1/embeddings", json={"model": "plain", "input": "hi"}, headers=mine, timeout=30)
    assert r.status_code == 200, r.text
    assert "x-failover-route" not in r.headers and models_called(upstream) == ["plain"]
    assert reply(send(proxy, "!/unset(model)", key=USER_KEY, model="plain", headers={"x-session-id": "chat-only"}))


def test_a_session_whose_route_was_deleted_falls_back_with_a_warning(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    mine = {"x-session-id": "orphan"}
    assert reply(send(proxy, "!/create-failover-route(name=temp,policy=m)"))
    assert reply(send(proxy, "!/route-append(name=temp,element=alpha:temp-model)"))
    assert reply(send(proxy, "!/set(model=temp)", key=USER_KEY, model="cheap", headers=mine))
    assert reply(send(proxy, "!/delete-failover-route(name=temp)"))
    r = send(proxy, "hi", key=USER_KEY, model="cheap", headers=mine)
    assert r.status_code == 200, r.text
    assert r.headers["x-failover-route"] == "cheap" and models_called(upstream) == ["cheap-model"]
    assert r.headers["x-failover-session-warning"] == "this session's route 'temp' no longer exists; served the model asked for"


@pytest.fixture(scope="module")
def open_proxy(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """LiteLLM's post-custom-auth checks off: every key reaches /failover/*, the plugin decides."""
    with ProxyProcess(write_config(tmp_path_factory.mktemp("open"), upstream, litellm_checks=False), master_key=MASTER_KEY) as p:
        yield p


def view(proxy: ProxyProcess, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{proxy.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_non_admins_see_the_routes_they_may_use_without_parameters(open_proxy: ProxyProcess) -> None:
    proxy = open_proxy
    admin = view(proxy, "/failover/routes", MASTER_KEY).json()
    assert {r["name"] for r in admin["routes"]} >= {"cheap", "premium"}
    premium = next(r for r in admin["routes"] if r["name"] == "premium")
    assert premium["route"]["elements"][0]["litellm_params"] == {"timeout": 30}, "admins see everything"
    for key, names in ((CHEAP_KEY, {"cheap"}), (TEAM_KEY, {"cheap"}), (USER_KEY, {"cheap", "premium"})):
        listed = view(proxy, "/failover/routes", key)
        assert listed.status_code == 200, listed.text
        routes: list[dict[str, Any]] = listed.json()["routes"]
        assert {r["name"] for r in routes} == names, key
        assert all(set(r) == {"name", "policy", "elements"} for r in routes), routes
        assert "store" not in listed.json() and "deleted" not in listed.json()
    assert view(proxy, "/failover/routes/premium", CHEAP_KEY).status_code == 404
    assert set(view(proxy, "/failover/routes/cheap", CHEAP_KEY).json()) == {"name", "policy", "elements"}
    assert "premium" not in reply(send(proxy, "!/list-failover-routes", key=CHEAP_KEY, model="cheap"))
    assert "does not exist" in error(send(proxy, "!/route-list(name=premium)", key=CHEAP_KEY, model="cheap"), 400)


def test_status_is_for_admins_only(open_proxy: ProxyProcess) -> None:
    proxy = open_proxy
    assert view(proxy, "/failover/status", MASTER_KEY).status_code == 200
    for key in (USER_KEY, CHEAP_KEY, VIEWER_KEY):
        r = view(proxy, "/failover/status", key)
        assert r.status_code == 403 and r.json()["error"]["type"] == "failover_command_forbidden", r.text
    anonymous = httpx.get(f"{proxy.url}/failover/status", timeout=30)  # LiteLLM's auth answers it (its own status)
    assert anonymous.status_code != 200 and "deployments" not in anonymous.text


@pytest.mark.parametrize("ask", ["litellm", "older-litellm"])
def test_model_access_asks_litellm_for_key_and_team_limits(ask: str) -> None:
    """In process: what `!/set` asks, through LiteLLM's fallback check and, for LiteLLMs without
    it, through its key and team checks."""
    import asyncio

    from litellm import Router
    from litellm.proxy._types import UserAPIKeyAuth

    from litellm_failover_plugin.litellm import model_access

    router = Router(model_list=[{"model_name": n, "litellm_params": {"model": f"openai/{n}", "api_key": "sk-x"}} for n in ("cheap", "premium")])
    keys = {
        "key": UserAPIKeyAuth(api_key="sk-limited-key", models=["cheap"]),
        "team": UserAPIKeyAuth(api_key="sk-limited-team", team_id="t", team_models=["cheap"]),
        "free": UserAPIKeyAuth(api_key="sk-free"),
    }

    async def answers() -> dict[str, tuple[bool, bool]]:
        out = {}
        for name, user in keys.items():
            if ask == "litellm":
                out[name] = (await model_access.may_use(user, "cheap", router), await model_access.may_use(user, "premium", router))
            else:
                check = model_access._key_and_team
                out[name] = (
                    await check(model="cheap", valid_token=user, llm_router=router),
                    await check(model="premium", valid_token=user, llm_router=router),
                )
        return out

    assert asyncio.run(answers()) == {"key": (True, False), "team": (True, False), "free": (True, True)}


def test_sessions_in_memory_are_capped_least_recently_used_first() -> None:
    """In process: a flood of new session ids keeps at most commands.max_sessions, and the one
    forgotten is the least recently used."""
    import asyncio

    from litellm_failover_plugin.litellm.live import LiveRoutes
    from litellm_failover_plugin.state.routes import MemoryRouteStore

    section = {
        "backends": {"alpha": {"provider": "openai", "api_keys": {"a1": "sk-x"}}},
        "routes": {"r": {"elements": ["alpha:m"]}},
        "commands": {"max_sessions": 3},
    }
    live = LiveRoutes(section, MemoryRouteStore(), clock=lambda: 1000.0)

    async def main() -> None:
        for sid in ("a", "b", "c"):
            await live.set_session(sid, "r")
        assert live.session_route("a") == "r"  # a used: b is now the least recently used
        await live.set_session("d", "r")
        assert list(live.sessions) == ["c", "a", "d"]
        for i in range(10_000):
            await live.set_session(f"flood-{i}", "r")
        assert list(live.sessions) == ["flood-9997", "flood-9998", "flood-9999"]

    asyncio.run(main())


def test_a_session_id_is_scoped_by_the_caller() -> None:
    """In process: the id a session is kept under."""
    from types import SimpleNamespace

    from litellm_failover_plugin.litellm.live import session_id

    header = {"X-Session-Id": "shared"}
    alice, bob = SimpleNamespace(token="hash-a"), SimpleNamespace(token="hash-b")
    assert session_id(header, alice) != session_id(header, bob)
    assert session_id(header, alice) == session_id({"x-session-id": "shared"}, alice)
    assert session_id({}, alice) != session_id({}, bob) and session_id({}, alice) is not None
    # no key at all (e.g. an auth that gives none): the user it names, else the header alone
    assert session_id(header, SimpleNamespace(user_id="u1")) != session_id(header, SimpleNamespace(user_id="u2"))
    assert session_id({}, SimpleNamespace()) is None and session_id(header, SimpleNamespace()) is not None
    assert "shared" not in str(session_id(header, alice)) and "hash-a" not in str(session_id({}, alice))
