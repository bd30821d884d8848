"""Chaos: run-time routes through restarts with stale routes, a damaged state file, and Redis
restarted empty, on real proxies.

The README's promises ("What survives a restart, a reload and a Redis restart"): every stored
route that validates is served after a restart and the others are listed with why; a state
file that cannot be read never fails a request (the last good routes serve, changes answer 503
naming it, it is logged once); versions only move forward (a truncated file loses no change);
Redis restarted empty deletes nothing, routes and sessions included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
MASTER_KEY = "sk-master-durable"
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


def config(upstream: FakeUpstream, *backends: str, **failover: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-dur-plain"}}
        ],
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "general_settings": {"master_key": MASTER_KEY},
        "failover_settings": {
            "backends": {
                b: {"provider": "openai", "api_base": upstream.url, "api_keys": {f"{b}1": f"sk-dur-{b}1"}} for b in backends
            },
            "routes": {"chat": {"policy": "m", "elements": ["alpha:gpt-x"]}},
            **failover,
        },
    }


def write(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def chat(proxy: ProxyProcess, model: str, content: str = "hi", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={**ADMIN, **(headers or {})}, timeout=30)


def put(proxy: ProxyProcess, name: str, *elements: str) -> httpx.Response:
    return httpx.put(f"{proxy.url}/failover/routes/{name}", json={"policy": "m", "elements": list(elements)}, headers=ADMIN, timeout=30)


def routes(proxy: ProxyProcess) -> dict[str, Any]:
    r = httpx.get(f"{proxy.url}/failover/routes", headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def names(proxy: ProxyProcess) -> set[str]:
    return {r["name"] for r in routes(proxy)["routes"]}


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        time.sleep(0.1)


def test_a_restart_serves_every_stored_route_that_validates_and_lists_the_other(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", config(upstream, "alpha", "gamma"))
    with ProxyProcess(path, master_key=MASTER_KEY) as proxy:
        assert put(proxy, "ok1", "alpha:one").status_code == 200
        assert put(proxy, "ga", "gamma:g").status_code == 200
        assert put(proxy, "ok2", "alpha:two").status_code == 200
        write(path, config(upstream, "alpha"))  # config.yaml loses gamma, which only the stored route uses
        r = httpx.post(f"{proxy.url}/failover/reload", headers=ADMIN, timeout=30)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert "config.yaml itself is valid" in message and "run-time change to route 'ga'" in message
        assert "`!/route-reset(name=ga)`" in message and "POST /failover/routes/ga/reset" in message
        assert chat(proxy, "ga").status_code == 200, "a refused reload leaves the running routes"
    with ProxyProcess(path, master_key=MASTER_KEY) as proxy:  # the restart: config.yaml without gamma
        for model in ("chat", "ok1", "ok2"):
            r = chat(proxy, model)
            assert r.status_code == 200 and r.headers["x-failover-route"] == model, r.text
        assert chat(proxy, "ga").status_code in (400, 404)
        listed = routes(proxy)
        assert {r["name"] for r in listed["routes"]} == {"chat", "ok1", "ok2"}
        [unserved] = listed["not_served"]
        assert unserved["name"] == "ga" and "unknown backend 'gamma'" in unserved["why"]
        assert unserved["route"] == {"policy": "m", "elements": ["gamma:g"]}
        status = httpx.get(f"{proxy.url}/failover/status", headers=ADMIN, timeout=30).json()
        assert [u["name"] for u in status["routes_not_served"]] == ["ga"]
        errors = [line for line in proxy.log_text().splitlines() if "'ga' is not served" in line]
        assert len(errors) == 1 and "ERROR" in errors[0] and "!/route-reset(name=ga)" in errors[0], errors
        reset = chat(proxy, "chat", "!/route-reset(name=ga)")
        assert reset.status_code == 200, reset.text
        assert routes(proxy)["not_served"] == []
        assert "Internal Server Error" not in proxy.log_text()


def damage(state: Path, how: str, tmp_path: Path) -> None:
    state.unlink()
    if how == "garbage":
        state.write_text('{"version": 3, "routes": {"kept": ')  # cut mid-write by another tool
    elif how == "symlink":
        (tmp_path / "notes.txt").write_text("these are notes, not JSON\n")
        state.symlink_to(tmp_path / "notes.txt")
    elif how == "directory":
        state.mkdir()


def undamage(state: Path, good: str) -> None:
    if state.is_dir() and not state.is_symlink():
        state.rmdir()
    else:
        state.unlink()
    state.write_text(good)


def test_a_damaged_state_file_never_fails_a_request(upstream: FakeUpstream, tmp_path: Path) -> None:
    """Two proxies on one state file (as `--num_workers` has): the damage is seen by both."""
    path = write(tmp_path / "config.yaml", config(upstream, "alpha"))
    state = tmp_path / "config.failover-routes.json"
    with ProxyProcess(path, master_key=MASTER_KEY) as a, ProxyProcess(path, master_key=MASTER_KEY) as b:
        assert put(a, "kept", "alpha:k").status_code == 200
        status = httpx.get(f"{b.url}/failover/status", headers=ADMIN, timeout=30).json()
        assert "kept" in {d["route"] for d in status["deployments"]}, "so does GET /failover/status"
        assert "kept" in names(b), "GET /failover/routes shows another process's change at once"
        good = state.read_text()
        for how in ("garbage", "symlink", "directory"):
            damage(state, how, tmp_path)
            for proxy in (a, b):
                for model in ("plain", "chat", "kept"):  # served: the last good routes
                    r = chat(proxy, model)
                    assert r.status_code == 200, (how, model, r.status_code, r.text)
                listed = routes(proxy)
                assert "kept" in {r["name"] for r in listed["routes"]}
                assert str(state) in listed["store_problem"], (how, listed["store_problem"])
                refused = put(proxy, "new", "alpha:n")
                assert refused.status_code == 503, (how, refused.text)
                assert str(state) in refused.json()["error"]["message"]
                command = chat(proxy, "chat", "!/route-append(name=kept,element=alpha:n)")
                assert command.status_code == 503, (how, command.text)
            undamage(state, good)
            wait_for(lambda: routes(a)["store_problem"] is None and routes(b)["store_problem"] is None, what="readable again")
        for proxy in (a, b):
            log = proxy.log_text()
            assert "Internal Server Error" not in log
            said = [line for line in log.splitlines() if "serving the routes known here" in line]
            assert len(said) == 3, said  # once per damage, not once per request
            assert "Is a directory" in said[2] and all("ERROR" in line for line in said)

        # truncated: the next change is made on the newer version, nothing is lost
        state.write_text("")
        assert put(a, "after-truncation", "alpha:t").status_code == 200
        r = chat(b, "chat", "!/route-append(name=after-truncation,element=alpha:u)")
        assert r.status_code == 200, r.text
        stored = yaml.safe_load(state.read_text())
        assert set(stored["routes"]) == {"kept", "after-truncation"} and stored["version"] == 3
        for proxy in (a, b):
            assert chat(proxy, "kept").status_code == 200
            assert [r["elements"] for r in routes(proxy)["routes"] if r["name"] == "after-truncation"] == [["alpha:t", "alpha:u"]]


def test_a_state_file_that_cannot_be_one_stops_start_up_naming_commands_state_file(upstream: FakeUpstream, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    cfg = config(upstream, "alpha", commands={"state_file": str(tmp_path / "a-file" / "routes.json")})
    proxy = ProxyProcess(write(tmp_path / "config.yaml", cfg), master_key=MASTER_KEY)
    with pytest.raises(RuntimeError, match="proxy exited"):
        proxy.start(timeout_s=120)
    lines = [line for line in proxy.log_text().splitlines() if line.strip()]
    proxy.close()
    assert "failover_settings.commands.state_file:" in lines[-1] and "is not a directory" in lines[-1], lines[-3:]


class Traffic:
    """One client per replica asking for `model` back to back (with a session header) until stopped."""

    def __init__(self, replicas: list[ProxyProcess], model: str, headers: dict[str, str]) -> None:
        self.results: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(p, model, headers)) for p in replicas]

    def _run(self, proxy: ProxyProcess, model: str, headers: dict[str, str]) -> None:
        while not self._stop.is_set():
            try:
                r = chat(proxy, model, headers=headers)
                self.results.append((r.status_code, r.headers.get("x-failover-route", "")))
            except httpx.HTTPError as e:
                self.results.append((0, type(e).__name__))
            time.sleep(0.05)

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def test_redis_restarted_empty_deletes_no_route_and_no_session(upstream: FakeUpstream, redis_server: RedisServer) -> None:
    cfg = config(upstream, "alpha", redis_url=redis_server.url)
    session = {"x-session-id": "durable-session"}
    with ProxyProcess(cfg, master_key=MASTER_KEY) as a, ProxyProcess(cfg, master_key=MASTER_KEY) as b:
        assert put(a, "kept", "alpha:k").status_code == 200
        assert chat(a, "plain", "!/set(model=kept)", headers=session).status_code == 200
        for proxy in (a, b):
            r = chat(proxy, "plain", headers=session)  # the session sends it to its route
            assert r.status_code == 200 and r.headers["x-failover-route"] == "kept", r.text
        client = redis.Redis.from_url(redis_server.url)
        with Traffic([a, b], "plain", session) as traffic:
            wait_for(lambda: len(traffic.results) >= 10, what="traffic")
            redis_server.stop()
            redis_server.start()  # empty: no persistence
            back = time.monotonic()
            wait_for(lambda: client.get("litellm_failover:routes") is not None, what="the routes written back")
            print(f"routes written back {time.monotonic() - back:.1f} s after Redis came back empty")  # `-s` shows it
            wait_for(lambda: all("re-read" in p.log_text() for p in (a, b)), what="both replicas re-read")
            seen = len(traffic.results)
            wait_for(lambda: len(traffic.results) >= seen + 20, what="traffic after the re-read")
        client.close()
        served = traffic.results
        assert all(status == 200 for status, _ in served), [s for s in served if s[0] != 200][:5]
        assert all(route == "kept" for _, route in served), "the session kept its route all along"
        for proxy in (a, b):
            assert "kept" in names(proxy)
        assert "Redis lost the route store's data" in a.log_text() + b.log_text()
        assert yaml.safe_load(redis.Redis.from_url(redis_server.url).get("litellm_failover:routes") or "{}")["version"] == 1

