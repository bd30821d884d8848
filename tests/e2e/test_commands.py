"""`!/` route commands, the admin REST API and reload, on a real proxy with a master key and a
`custom_auth` that makes a second key an ordinary (non-admin) user.

Runtime changes are kept in the file store beside config.yaml. The fake upstream shows what a
route change does to real traffic: which key and model it receives, in which order.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess
from tests.e2e.custom_auth import MASTER_KEY, USER_KEY

pytestmark = pytest.mark.e2e
KEYS = {"sk-cmd-a1": "a1", "sk-cmd-a2": "a2", "sk-cmd-b1": "b1"}


def write_config(directory: Path, upstream: FakeUpstream, **failover: Any) -> Path:
    shutil.copy(Path(__file__).with_name("custom_auth.py"), directory / "custom_auth.py")
    cfg = {
        "model_list": [
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-plain"}}
        ],
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "general_settings": {"master_key": MASTER_KEY, "custom_auth": "custom_auth.user_api_key_auth"},
        "failover_settings": {
            "backends": {
                "alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": "sk-cmd-a1", "a2": "sk-cmd-a2"}},
                "beta": {"provider": "openai", "api_base": upstream.url, "api_keys": {"b1": "sk-cmd-b1"}},
            },
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x"]}},
            **failover,
        },
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    path = write_config(tmp_path_factory.mktemp("commands"), upstream)
    with ProxyProcess(path, master_key=MASTER_KEY) as p:
        yield p
        logs = p.log_text()
    assert not any(k in logs for k in KEYS), "an API key reached the proxy log"


def send(proxy: ProxyProcess, content: str, *, key: str = MASTER_KEY, model: str = "chat", **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **extra.pop("headers", {})}
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def reply(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    assert r.headers.get("x-failover-command"), "a command reply carries x-failover-command"
    return str(r.json()["choices"][0]["message"]["content"])


def error(r: httpx.Response, status: int, type_: str = "failover_command_error") -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["type"] == type_, body
    return str(body["message"])


def calls(upstream: FakeUpstream) -> list[tuple[str, str]]:
    return [(KEYS.get(r.key, r.key), r.model) for r in upstream.received]


def test_a_command_session_builds_a_route_that_serves_in_policy_order(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    assert reply(send(proxy, "!/create-failover-route(name=smart,policy=KM)")) == "Failover route 'smart' created with policy 'km'"
    assert reply(send(proxy, "!/route-append(name=smart,element=beta:gpt-y)")) == "Element 'beta:gpt-y' appended to failover route 'smart'"
    assert reply(send(proxy, "!/route-prepend(name=smart,element=alpha:gpt-x)")) == "Element 'alpha:gpt-x' prepended to failover route 'smart'"
    assert reply(send(proxy, "!/route-list(name=smart)")) == "Failover route 'smart' (policy: km) elements: alpha:gpt-x, beta:gpt-y"
    listing = reply(send(proxy, "!/list-failover-routes"))
    assert listing.splitlines()[0] == "Failover routes: chat:m, smart:km"
    assert "Failover route 'smart' (policy: km) elements: alpha:gpt-x, beta:gpt-y" in listing
    assert upstream.received == [], "a command never reaches an upstream"
    assert "failover route change by=user_id:ops action=prepend route=smart" in proxy.log_text()
    assert "before=km[beta:gpt-y] after=km[alpha:gpt-x,beta:gpt-y]" in proxy.log_text()

    # the new route serves: km over alpha (a1, a2) then beta (b1); every one failing shows the order
    upstream.set(Behavior(status=503))
    r = send(proxy, "hi", model="smart")
    assert r.status_code == 503 and r.json()["error"]["type"] == "failover_exhausted"
    assert calls(upstream) == [("a1", "gpt-x"), ("a2", "gpt-x"), ("b1", "gpt-y")]
    upstream.reset()
    upstream.set(Behavior(status=503), **{"sk-cmd-a1": Behavior(status=503), "sk-cmd-a2": Behavior(status=503), "sk-cmd-b1": Behavior()})
    r = send(proxy, "hi", model="smart")
    assert r.status_code == 200 and r.headers["x-failover-backend"] == "beta" and r.headers["x-failover-key"] == "b1"

    upstream.reset()
    assert reply(send(proxy, "!/route-clear(name=smart)")) == "All elements cleared from failover route 'smart'"
    r = send(proxy, "hi", model="smart")  # a route with no elements answers like an exhausted one
    assert r.status_code == 503 and r.json()["error"]["type"] == "failover_exhausted"
    assert r.json()["error"]["attempts"] == [] and upstream.received == []
    assert (r.headers["x-failover-backend"], r.headers["x-failover-key"], r.headers["x-failover-attempts"]) == ("none", "none", "0")
    assert reply(send(proxy, "!/delete-failover-route(name=smart)")) == "Failover route 'smart' deleted"
    assert send(proxy, "hi", model="smart").status_code in (400, 404)  # LiteLLM: no such model
    assert "smart" not in reply(send(proxy, "!/list-failover-routes"))


def test_a_reply_streams_when_the_request_streams(proxy: ProxyProcess) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="chat", stream=True, messages=[{"role": "user", "content": "!/route-list(name=chat)"}]
    ) as response:
        assert response.headers.get("x-failover-command") == "route-list"
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "Failover route 'chat' (policy: m) elements: alpha:gpt-x"


def test_writes_need_an_admin_and_change_nothing_otherwise(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    before = reply(send(proxy, "!/list-failover-routes", key=USER_KEY))  # reads: anyone
    for command in (
        "!/create-failover-route(name=mine,policy=k)",
        "!/route-append(name=chat,element=beta:gpt-y)",
        "!/route-prepend(name=chat,element=beta:gpt-y)",
        "!/route-clear(name=chat)",
        "!/delete-failover-route(name=chat)",
        "!/route-reset(name=chat)",
    ):
        message = error(send(proxy, command, key=USER_KEY), 403, "failover_command_forbidden")
        assert "proxy admin" in message
    assert reply(send(proxy, "!/list-failover-routes", key=USER_KEY)) == before
    assert reply(send(proxy, "!/help", key=USER_KEY)).startswith("Failover route commands:")
    r = httpx.put(f"{proxy.url}/failover/routes/mine", json={"elements": ["alpha:gpt-x"]}, headers={"Authorization": f"Bearer {USER_KEY}"})
    error(r, 403, "failover_command_forbidden")
    assert upstream.received == []


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("!/route-list(name=chat", "malformed command"),
        ("!/route-append(name=chat)", "requires name and element"),
        ("!/route-append(name=chat,element=beta:gpt-y,color=red)", "unknown argument 'color'"),
        ("!/route-list(name=nope)", "Failover route 'nope' does not exist"),
        ("!/create-failover-route(name=x1,policy=zz)", "unknown policy 'zz'"),
        ("!/route-append(name=chat,element=betagpt)", "must be 'backend:model'"),
        ("!/route-append(name=chat,element=gamma:gpt-z)", "Backend 'gamma' in element 'gamma:gpt-z' is not configured"),
        ("!/route-append(name=chat,element=alpha:gpt-x)", "already in failover route 'chat'"),
        ("!/create-failover-route(name=chat,policy=k)", "Failover route 'chat' already exists"),
        ("!/create-failover-route(name=plain,policy=k)", "'plain' is a model_name in model_list"),
        ("!/create-failover-route(name=bad/name,policy=k)", "route name 'bad/name'"),
        ("!/set(model=nope)", "Failover route 'nope' does not exist"),
        ("!/route-reset(name=chat)", "has no runtime changes"),
    ],
)
def test_a_bad_command_is_a_400_naming_the_problem_and_changes_nothing(
    proxy: ProxyProcess, upstream: FakeUpstream, command: str, says: str
) -> None:
    before = reply(send(proxy, "!/list-failover-routes"))
    assert says in error(send(proxy, command), 400)
    assert reply(send(proxy, "!/list-failover-routes")) == before
    assert upstream.received == []


def test_set_sends_a_session_to_a_route_until_unset(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    assert reply(send(proxy, "!/create-failover-route(name=session-route,policy=m)"))
    assert reply(send(proxy, "!/route-append(name=session-route,element=beta:gpt-y)"))
    mine = {"x-session-id": "session-1"}
    assert reply(send(proxy, "!/set(model=session-route)", model="plain", headers=mine)) == (
        "This session's requests now go to 'session-route'"
    )
    r = send(proxy, "hi", model="plain", headers=mine)
    assert r.status_code == 200 and r.headers["x-failover-route"] == "session-route"
    assert calls(upstream) == [("b1", "gpt-y")]
    other = send(proxy, "hi", model="plain", headers={"x-session-id": "session-2"})
    assert other.status_code == 200 and "x-failover-route" not in other.headers  # another session: as asked
    # a session without a header is the caller's key: the user key's own session
    assert reply(send(proxy, "!/set(model=session-route)", key=USER_KEY, model="plain"))
    assert send(proxy, "hi", key=USER_KEY, model="plain").headers["x-failover-route"] == "session-route"
    assert reply(send(proxy, "!/unset(model)", key=USER_KEY))
    assert "x-failover-route" not in send(proxy, "hi", key=USER_KEY, model="plain").headers
    assert reply(send(proxy, "!/unset(model)", model="plain", headers=mine)) == "This session's model override is cleared"
    assert "x-failover-route" not in send(proxy, "hi", model="plain", headers=mine).headers
    assert reply(send(proxy, "!/delete-failover-route(name=session-route)"))


def test_fifty_concurrent_appends_from_ten_clients_lose_none(proxy: ProxyProcess) -> None:
    assert reply(send(proxy, "!/create-failover-route(name=busy,policy=m)"))

    def append(i: int) -> int:
        return send(proxy, f"!/route-append(name=busy,element=alpha:model-{i})").status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(append, range(50)))
    assert statuses == [200] * 50
    listed = reply(send(proxy, "!/route-list(name=busy)")).split("elements: ")[1].split(", ")
    assert sorted(listed) == sorted(f"alpha:model-{i}" for i in range(50))
    assert reply(send(proxy, "!/delete-failover-route(name=busy)"))


def test_the_admin_api_reads_and_writes_routes(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    admin = {"Authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=proxy.url, headers=admin, timeout=30) as c:
        listed = c.get("/failover/routes").json()
        assert {r["name"]: r["source"] for r in listed["routes"]}["chat"] == "config"
        assert listed["store"] == "file"

        r = c.put("/failover/routes/api-route", json={"policy": "K", "elements": ["beta:gpt-y", {"element": "alpha:gpt-x"}]})
        assert r.status_code == 200, r.text
        assert r.json()["action"] == "put" and r.json()["after"]["policy"] == "k"
        one = c.get("/failover/routes/api-route").json()
        assert one["policy"] == "k" and one["elements"] == ["beta:gpt-y", "alpha:gpt-x"] and one["source"] == "runtime"
        served = send(proxy, "hi", model="api-route")
        assert served.status_code == 200 and served.headers["x-failover-backend"] == "beta"

        bad = c.put("/failover/routes/api-route", json={"policy": "k", "elements": ["beta:gpt-y"], "max_retries_per_element": 99})
        assert "max_retries_per_element" in error(bad, 400)
        assert c.get("/failover/routes/api-route").json()["elements"] == ["beta:gpt-y", "alpha:gpt-x"]  # unchanged
        assert "unknown policy" in error(c.put("/failover/routes/x2", json={"policy": "zz"}), 400)
        assert "model_list" in error(c.put("/failover/routes/plain", json={"elements": []}), 400)
        not_json = c.put("/failover/routes/x3", content=b"not json")  # LiteLLM's auth reads the body first
        assert not_json.status_code == 400 and not_json.json()["error"]["message"]

        assert c.delete("/failover/routes/api-route").status_code == 200
        error(c.get("/failover/routes/api-route"), 404)
        error(c.delete("/failover/routes/api-route"), 404)
        # config.yaml's route changed at run time, then reset to config.yaml's
        assert c.put("/failover/routes/chat", json={"policy": "m", "elements": ["beta:gpt-y"]}).status_code == 200
        assert c.get("/failover/routes/chat").json()["source"] == "runtime"
        assert c.post("/failover/routes/chat/reset").status_code == 200
        assert c.get("/failover/routes/chat").json() | {"route": None} == {
            "name": "chat", "policy": "m", "elements": ["alpha:gpt-x"], "source": "config", "route": None,
        }


def test_reload_applies_a_good_file_and_refuses_a_bad_one(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_config(tmp_path, upstream)
    admin = {"Authorization": f"Bearer {MASTER_KEY}"}
    with ProxyProcess(path, master_key=MASTER_KEY) as proxy, httpx.Client(base_url=proxy.url, headers=admin, timeout=30) as c:
        assert reply(send(proxy, "!/create-failover-route(name=runtime-one,policy=m)"))
        cfg = yaml.safe_load(path.read_text())
        fs = cfg["failover_settings"]
        fs["backends"]["gamma"] = {"provider": "openai", "api_base": upstream.url, "api_keys": {"g1": "sk-cmd-g1"}}
        fs["routes"]["chat"] = {"policy": "m", "elements": ["gamma:gpt-z"]}
        path.write_text(yaml.safe_dump(cfg))
        r = c.post("/failover/reload")
        assert r.status_code == 200, r.text
        assert r.json()["routes"]["chat"] == {"policy": "m", "elements": ["gamma:gpt-z"]}
        assert "runtime-one" in r.json()["routes"], "a reload keeps the runtime changes"
        served = send(proxy, "hi")
        assert served.status_code == 200 and served.headers["x-failover-backend"] == "gamma"
        assert [(r.key, r.model) for r in upstream.received] == [("sk-cmd-g1", "gpt-z")]

        fs["routes"]["chat"]["policy"] = "zz"
        path.write_text(yaml.safe_dump(cfg))
        r = c.post("/failover/reload")
        assert "failover_settings.routes.chat.policy: unknown policy 'zz'" in error(r, 400, "failover_config_error")
        assert send(proxy, "hi").headers["x-failover-backend"] == "gamma", "the running routes stay"
        error(httpx.post(f"{proxy.url}/failover/reload", headers={"Authorization": f"Bearer {USER_KEY}"}), 403, "failover_command_forbidden")


def test_a_restart_keeps_every_runtime_change(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_config(tmp_path, upstream)
    with ProxyProcess(path, master_key=MASTER_KEY) as proxy:
        assert reply(send(proxy, "!/create-failover-route(name=kept,policy=mk)"))
        assert reply(send(proxy, "!/route-append(name=kept,element=beta:gpt-y)"))
        assert reply(send(proxy, "!/delete-failover-route(name=chat)"))
    assert (tmp_path / "config.failover-routes.json").exists()
    with ProxyProcess(path, master_key=MASTER_KEY) as proxy:
        assert reply(send(proxy, "!/route-list(name=kept)")) == "Failover route 'kept' (policy: mk) elements: beta:gpt-y"
        assert "Failover route 'chat' does not exist" in error(send(proxy, "!/route-list(name=kept2)".replace("kept2", "chat"), model="kept"), 400)
        assert send(proxy, "hi", model="kept").headers["x-failover-key"] == "b1"


def test_a_request_in_flight_finishes_on_the_plan_it_started_with(proxy: ProxyProcess, upstream: FakeUpstream) -> None:
    assert reply(send(proxy, "!/create-failover-route(name=flight,policy=m)"))
    assert reply(send(proxy, "!/route-append(name=flight,element=alpha:slow)"))
    upstream.set(Behavior(delay_s=2.0))
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(send, proxy, "hi", model="flight")
        deadline = time.monotonic() + 10
        while not upstream.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reply(send(proxy, "!/delete-failover-route(name=flight)"))
        r = slow.result(timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-failover-route"] == "flight"


def test_worker_processes_share_changes_through_the_state_file(upstream: FakeUpstream, tmp_path: Path) -> None:
    """`--num_workers 2` without Redis: a change made by whichever worker answered is served by
    both before their next request (each checks the state file's stamp)."""
    path = write_config(tmp_path, upstream)
    with ProxyProcess(path, workers=2, master_key=MASTER_KEY) as proxy:
        for i in range(6):
            assert reply(send(proxy, f"!/create-failover-route(name=w{i},policy=m)"))
            assert reply(send(proxy, f"!/route-append(name=w{i},element=beta:gpt-y)"))
            for _ in range(4):  # the connection pool is not shared: each request may reach either worker
                r = send(proxy, "hi", model=f"w{i}")
                assert r.status_code == 200 and r.headers["x-failover-route"] == f"w{i}", r.text
        listing = reply(send(proxy, "!/list-failover-routes")).splitlines()[0]
        assert listing == "Failover routes: chat:m, " + ", ".join(f"w{i}:m" for i in range(6))


def test_the_readmes_curl_without_content_type_is_read_as_json(proxy: ProxyProcess) -> None:
    """`curl -X PUT ... -d '{...}'` sends Content-Type: application/x-www-form-urlencoded; httpx's
    `content=` sends none. Both used to answer 500 (LiteLLM's auth read the body as a form)."""
    body = b'{"policy": "km", "elements": ["alpha:gpt-x", {"element": "beta:gpt-y", "catch": ["rate_limit"]}]}'
    admin = {"Authorization": f"Bearer {MASTER_KEY}"}
    for name, content_type in (("curl-form", {"Content-Type": "application/x-www-form-urlencoded"}), ("curl-none", {})):
        r = httpx.put(f"{proxy.url}/failover/routes/{name}", content=body, headers={**admin, **content_type}, timeout=30)
        assert r.status_code == 200, r.text
        assert httpx.get(f"{proxy.url}/failover/routes/{name}", headers=admin).json()["elements"] == ["alpha:gpt-x", "beta:gpt-y"]
        assert httpx.delete(f"{proxy.url}/failover/routes/{name}", headers=admin).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-not-a-key"}, {"Authorization": "Basic abc"}])
def test_the_plugins_endpoints_answer_401_to_a_caller_without_a_valid_key(proxy: ProxyProcess, headers: dict[str, str]) -> None:
    """This proxy has no database: LiteLLM's own error path answered 500 without a key, 400
    `no_db_connection` with a wrong one."""
    for method, path in (
        ("GET", "/failover/routes"),
        ("GET", "/failover/routes/chat"),
        ("GET", "/failover/status"),
        ("PUT", "/failover/routes/chat"),
        ("DELETE", "/failover/routes/chat"),
        ("POST", "/failover/routes/chat/reset"),
        ("POST", "/failover/reload"),
    ):
        r = httpx.request(method, f"{proxy.url}{path}", headers=headers, json={"elements": []} if method == "PUT" else None, timeout=30)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        error = r.json()["error"]
        assert error["type"] == "auth_error" and error["code"] == "401" and "Authentication failed" in error["message"], error
    assert "sk-not-a-key" not in proxy.log_text()
