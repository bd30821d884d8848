"""Run-time routes kept by `LiveRoutes` over a real state file and a real redis-server, without a
proxy: stored routes that no longer validate, stores that cannot be read, stores that lost
versions, reloads refused because of the stored overlay. Two `LiveRoutes` on one store stand for
two processes (or replicas)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from litellm_failover_plugin import routetable as rt
from litellm_failover_plugin.config import ConfigError, parse_settings
from litellm_failover_plugin.litellm import live as live_module
from litellm_failover_plugin.litellm.live import LiveRoutes, StoreUnavailable, route_store_for
from litellm_failover_plugin.state.routes import FileRouteStore, RedisRouteStore
from tests.redis_server import RedisServer


def section(*backends: str, routes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "backends": {b: {"provider": "openai", "api_base": "http://127.0.0.1:9", "api_keys": {f"{b}1": f"sk-{b}1"}} for b in backends},
        "routes": routes if routes is not None else {"chat": {"policy": "m", "elements": ["alpha:gpt-x"]}},
    }


def write_config(path: Path, sec: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump({"failover_settings": sec}))
    return str(path)


async def make(live: LiveRoutes, name: str, *elements: str) -> None:
    catalog = live.catalog()
    await live.change(lambda o: rt.put(o, catalog, name, {"policy": "m", "elements": list(elements)}), "test")


async def test_a_restart_serves_every_stored_route_that_validates_and_lists_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileRouteStore(tmp_path / "routes.json")
    before = LiveRoutes(section("alpha", "gamma"), store)
    await before.load()
    await make(before, "ga", "gamma:g1")
    await make(before, "ok1", "alpha:a1")
    await make(before, "ok2", "alpha:a2")
    # restart: config.yaml lost backend gamma, which one stored route uses
    after = LiveRoutes(section("alpha"), FileRouteStore(tmp_path / "routes.json"))
    with caplog.at_level(logging.INFO, "litellm_failover_plugin"):
        await after.load()
    assert set(after.settings.routes) == {"chat", "ok1", "ok2"}, "the valid stored routes are served"
    assert list(after.unserved) == ["ga"] and "unknown backend 'gamma'" in after.unserved["ga"]
    report = after.report()
    assert report["not_served"] == [{"name": "ga", "why": after.unserved["ga"], "route": {"policy": "m", "elements": ["gamma:g1"]}}]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "'ga' is not served" in errors[0] and "!/route-reset(name=ga)" in errors[0]
    # other changes still work; dropping the stored change is the way out
    await make(after, "ok3", "alpha:a3")
    assert "ok3" in after.settings.routes and "ga" in after.unserved
    catalog = after.catalog()
    with pytest.raises(rt.RouteEditError, match="unknown backend 'gamma'"):  # an edit may not leave it unservable
        await after.change(lambda o: rt.add_element(o, catalog, "ga", "alpha:a9", first=False), "test")
    await after.change(lambda o: rt.reset(o, catalog, "ga"), "test")
    assert after.unserved == {} and (await store.load()).routes.keys() == {"ok1", "ok2", "ok3"}


async def test_a_reload_refused_by_the_stored_overlay_says_so_and_how_to_drop_it(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    write_config(config, section("alpha", "gamma"))
    live = LiveRoutes(section("alpha", "gamma"), FileRouteStore(tmp_path / "routes.json"), config_path=str(config))
    await live.load()
    await make(live, "gr", "gamma:g1")
    write_config(config, section("alpha"))  # good on its own: gr is not in it
    with pytest.raises(ConfigError) as refused:
        await live.reload(str(config), "test")
    message = str(refused.value)
    assert "config.yaml itself is valid" in message and "run-time change to route 'gr'" in message
    assert "!/route-reset(name=gr)" in message and "POST /failover/routes/gr/reset" in message
    assert "gr" in live.settings.routes and "gamma" in live.settings.backends, "the running routes stay"
    catalog = live.catalog()
    await live.change(lambda o: rt.reset(o, catalog, "gr"), "test")
    await live.reload(str(config), "test")
    assert set(live.settings.backends) == {"alpha"}


async def test_a_route_made_and_deleted_at_run_time_does_not_hide_a_later_config_route(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    write_config(config, section("alpha"))
    live = LiveRoutes(section("alpha"), FileRouteStore(tmp_path / "routes.json"), config_path=str(config))
    await live.load()
    await make(live, "later", "alpha:a1")
    catalog = live.catalog()
    await live.change(lambda o: rt.delete(o, catalog, "later"), "test")
    assert "later" not in live.settings.routes and "later" not in live.overlay.routes
    write_config(config, section("alpha", routes={"chat": {"elements": ["alpha:gpt-x"]}, "later": {"elements": ["alpha:cfg"]}}))
    await live.reload(str(config), "test")
    assert [e.element for e in live.settings.routes["later"].elements] == ["alpha:cfg"]


@pytest.mark.parametrize("damage", ["garbage", "directory", "symlink", "bad-json-shape"])
async def test_a_state_file_that_cannot_be_read_serves_the_last_good_routes_and_refuses_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = tmp_path / "routes.json"
    t = [1000.0]
    live = LiveRoutes(section("alpha"), FileRouteStore(path), clock=lambda: t[0])
    await live.load()
    await make(live, "kept", "alpha:a1")
    path.unlink()
    if damage == "garbage":
        path.write_text("{not json")
    elif damage == "directory":
        path.mkdir()
    elif damage == "symlink":
        (tmp_path / "other.txt").write_text("plain text, not JSON")
        path.symlink_to(tmp_path / "other.txt")
    else:
        path.write_text('{"version": "x", "routes": []}')
    with caplog.at_level(logging.ERROR, "litellm_failover_plugin"):
        for _ in range(3):
            t[0] += 5
            await live.before_request()  # never raises
    assert "kept" in live.settings.routes and live.overlay.version == 1, "the last good routes stay"
    assert live.problem is not None and str(path) in live.problem and live.report()["store_problem"] == live.problem
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1, "said once"
    with pytest.raises(StoreUnavailable, match="route store cannot be used") as refused:
        await make(live, "new", "alpha:a2")
    assert str(path) in str(refused.value)


async def test_a_truncated_state_file_gets_the_newer_version_back_and_no_change_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    live = LiveRoutes(section("alpha"), FileRouteStore(path))
    await live.load()
    for i in range(3):
        await make(live, f"r{i}", "alpha:a1")
    path.write_text("")  # truncated
    await make(live, "after", "alpha:a2")
    stored = await FileRouteStore(path).load()
    assert stored.version == 4 and set(stored.routes) == {"r0", "r1", "r2", "after"}
    assert "after" in live.settings.routes
    path.unlink()  # gone: the next look writes the served version back
    await live.before_request()
    assert (await FileRouteStore(path).load()).version == 4


async def test_two_processes_on_one_file_see_each_others_writes_on_their_next_look(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    one, two = LiveRoutes(section("alpha"), FileRouteStore(path)), LiveRoutes(section("alpha"), FileRouteStore(path))
    await one.load()
    await two.load()
    await make(one, "from-one", "alpha:a1")
    await two.before_request()
    assert "from-one" in two.settings.routes


def test_the_state_file_is_checked_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    for state_file, says in ((tmp_path / "afile" / "routes.json", "is not a directory"), (tmp_path / "adir", "is a directory")):
        settings = parse_settings({**section("alpha"), "commands": {"state_file": str(state_file)}})
        with pytest.raises(ConfigError, match="failover_settings.commands.state_file: .*" + says):
            route_store_for(settings, str(tmp_path / "config.yaml"))
    settings = parse_settings({**section("alpha"), "commands": {"state_file": str(tmp_path / "new" / "routes.json")}})
    assert isinstance(route_store_for(settings, None), FileRouteStore)


async def test_a_state_file_that_cannot_be_written_answers_503_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = LiveRoutes(section("alpha"), FileRouteStore(tmp_path / "routes.json"))
    await live.load()

    def read_only(*_: object, **__: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # as on a read-only mount (root writes through a chmod)
    with pytest.raises(StoreUnavailable, match=r"cannot write the state file .*Read-only file system.*commands\.state_file"):
        await make(live, "new", "alpha:a1")
    assert live.overlay.version == 0 and "new" not in live.settings.routes


# --- Redis: two replicas -----------------------------------------------------------------------


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[tuple[LiveRoutes, LiveRoutes]]:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    made = [LiveRoutes(section("alpha"), RedisRouteStore.from_url(redis_server.url, timeout_s=0.5)) for _ in range(2)]
    for live in made:
        assert isinstance(live.store, RedisRouteStore)
        live.store = RedisRouteStore(live.store._redis, prefix=prefix)
        await live.load()
    tasks = [asyncio.create_task(live.listen()) for live in made]
    yield made[0], made[1]
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for live in made:
        assert isinstance(live.store, RedisRouteStore)
        await live.store.aclose()


async def eventually(check: Any, timeout_s: float = 15.0) -> None:
    """Wait until `check()` (a function, or a coroutine function) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_redis_coming_back_empty_gets_the_routes_and_sessions_back(
    replicas: tuple[LiveRoutes, LiveRoutes], redis_server: RedisServer
) -> None:
    a, b = replicas
    assert isinstance(a.store, RedisRouteStore)
    await make(a, "kept", "alpha:a1")
    await a.set_session("h:session-1", "kept")
    await eventually(lambda: "kept" in b.settings.routes and "h:session-1" in b.sessions)
    redis_server.stop()
    redis_server.start()  # empty: no persistence
    store = RedisRouteStore(RedisRouteStore.from_url(redis_server.url)._redis, prefix=a.store.key.removesuffix("routes"))

    async def restored() -> bool:
        with contextlib.suppress(Exception):
            return (await store.load()).version == 1 and await store.session("h:session-1") == "kept"
        return False

    try:
        await eventually(restored)
        # both replicas re-read after the outage, and still serve the route and the session
        await eventually(lambda: not a._resync_due and not b._resync_due)
        await asyncio.sleep(1.5)
        assert "kept" in a.settings.routes and "kept" in b.settings.routes, "an empty Redis deleted nothing"
        assert a.sessions.keys() == b.sessions.keys() == {"h:session-1"}
        await make(b, "after", "alpha:a2")
        assert (await store.load()).version == 2
    finally:
        await store.aclose()


async def test_a_flushed_redis_is_noticed_without_an_outage(
    replicas: tuple[LiveRoutes, LiveRoutes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_module, "EPOCH_CHECK_S", 0.2)
    a, b = replicas
    assert isinstance(a.store, RedisRouteStore)
    await make(a, "kept", "alpha:a1")
    await a.set_session("h:session-1", "kept")
    await eventually(lambda: "h:session-1" in b.sessions)
    await a.store._redis.flushdb()
    await make(b, "more", "alpha:a2")  # an edit on an emptied store starts from the newer version known here
    assert (await a.store.load()).routes.keys() == {"kept", "more"}
    store = a.store
    await eventually(lambda: store.session("h:session-1"))  # written back once a replica looked


async def test_a_message_that_is_not_ours_does_not_stop_a_replica_listening(replicas: tuple[LiveRoutes, LiveRoutes]) -> None:
    a, b = replicas
    assert isinstance(a.store, RedisRouteStore)
    await a.store._redis.publish(a.store.channel, "not-a-version")
    await asyncio.sleep(0.3)
    await make(a, "after-garbage", "alpha:a1")
    await eventually(lambda: "after-garbage" in b.settings.routes)
