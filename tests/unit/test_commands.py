"""The `!/` commands and the route overlay: parse, who may, apply, reply. Pure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from litellm_failover_plugin import routetable as rt
from litellm_failover_plugin.commands import Command, CommandError, command_text, execute, may_run, parse
from litellm_failover_plugin.routetable import Catalog, Overlay, RouteEditError, effective_routes
from litellm_failover_plugin.state.routes import FileRouteStore

CATALOG = Catalog(
    base={"chat": {"policy": "m", "elements": ["alpha:gpt-x", {"element": "beta:gpt-y", "catch": [429]}]}},
    backends=frozenset({"alpha", "beta"}),
    reserved=frozenset({"plain"}),
)


def run(text: str, overlay: Overlay | None = None) -> tuple[str, Overlay]:
    overlay = overlay or Overlay()
    result = execute(parse(text), overlay, CATALOG)
    return result.reply, result.overlay or overlay


def test_parse_reads_names_and_arguments() -> None:
    assert parse("!/route-append(name=chat, element=beta:gpt-y)") == Command("route-append", {"name": "chat", "element": "beta:gpt-y"})
    assert parse("  !/list-failover-routes ") == Command("list-failover-routes", {})
    assert parse("!/unset(model)") == Command("unset", {"model": ""})
    assert parse("!/help()") == Command("help", {})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("!/nope", "unknown command '!/nope'"),
        ("!/route-list(name=a", "malformed command"),
        ("!/route-list(name=a,name=b)", "given twice"),
        ("!/route-list()", "requires name"),
        ("!/route-list(name=)", "requires name"),
        ("!/route-list(name=a,x=1)", "unknown argument 'x'"),
        ("!/route-list(name=a)x", "malformed command"),
    ],
)
def test_parse_errors_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(CommandError, match=None) as info:
        parse(text)
    assert says in str(info.value)


def test_a_command_is_the_whole_last_user_message() -> None:
    assert command_text([{"role": "user", "content": " !/help "}]) == "!/help"
    assert command_text([{"role": "user", "content": [{"type": "text", "text": "!/help"}]}]) == "!/help"
    # a resent conversation with the command's reply after it does not run it again
    assert command_text([{"role": "user", "content": "!/help"}, {"role": "assistant", "content": "x"}]) is None
    assert command_text([{"role": "user", "content": "!/help"}, {"role": "user", "content": "hi"}]) is None
    assert command_text([{"role": "user", "content": "please run !/help"}]) is None
    assert command_text("!/help") is None


def test_writes_need_an_admin_unless_writers_is_any() -> None:
    write, read, session = parse("!/route-clear(name=chat)"), parse("!/route-list(name=chat)"), parse("!/set(model=chat)")
    assert not may_run(write, is_admin=False, writers="admin")
    assert may_run(write, is_admin=True, writers="admin")
    assert may_run(write, is_admin=False, writers="any")
    assert may_run(read, is_admin=False, writers="admin") and may_run(session, is_admin=False, writers="admin")


def test_a_session_of_edits_and_its_replies() -> None:
    reply, o = run("!/create-failover-route(name=smart,policy=K)")
    assert reply == "Failover route 'smart' created with policy 'k'" and o.version == 1
    reply, o = run("!/route-append(name=smart,element=beta:gpt-y)", o)
    assert reply == "Element 'beta:gpt-y' appended to failover route 'smart'"
    reply, o = run("!/route-prepend(name=smart,element=alpha:gpt-x)", o)
    assert reply == "Element 'alpha:gpt-x' prepended to failover route 'smart'"
    assert run("!/route-list(name=smart)", o)[0] == "Failover route 'smart' (policy: k) elements: alpha:gpt-x, beta:gpt-y"
    listing = run("!/list-failover-routes", o)[0].splitlines()
    assert listing[0] == "Failover routes: chat:m, smart:k"
    assert listing[1] == "Failover route 'chat' (policy: m) elements: alpha:gpt-x, beta:gpt-y"
    reply, o = run("!/route-clear(name=smart)", o)
    assert reply == "All elements cleared from failover route 'smart'"
    assert run("!/route-list(name=smart)", o)[0] == "Failover route 'smart' (policy: k) has no elements"
    reply, o = run("!/delete-failover-route(name=smart)", o)
    assert reply == "Failover route 'smart' deleted" and o.version == 5
    assert run("!/list-failover-routes", o)[0].startswith("Failover routes: chat:m")


def test_a_runtime_route_wins_over_config_and_reset_brings_config_back() -> None:
    _, o = run("!/route-append(name=chat,element=alpha:gpt-z)")
    route = effective_routes(CATALOG.base, o)["chat"]
    assert route["elements"][1] == {"element": "beta:gpt-y", "catch": [429]}, "element settings are kept"
    assert rt.element_names(route) == ["alpha:gpt-x", "beta:gpt-y", "alpha:gpt-z"]
    _, o = run("!/delete-failover-route(name=chat)", o)
    assert "chat" not in effective_routes(CATALOG.base, o), "a deleted config route stays deleted"
    reply, o = run("!/route-reset(name=chat)", o)
    assert reply == "Failover route 'chat' reset: config.yaml's version is back"
    assert effective_routes(CATALOG.base, o) == {k: dict(v) for k, v in CATALOG.base.items()}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("!/route-list(name=nope)", "Failover route 'nope' does not exist"),
        ("!/create-failover-route(name=chat,policy=k)", "already exists"),
        ("!/create-failover-route(name=plain,policy=k)", "'plain' is a model_name in model_list"),
        ("!/create-failover-route(name=x,policy=zz)", "unknown policy 'zz'; one of: k, m, km, mk, scored"),
        ("!/create-failover-route(name=a b,policy=k)", "route name 'a b'"),
        ("!/route-append(name=chat,element=alpha)", "must be 'backend:model'"),
        ("!/route-append(name=chat,element=alpha:gpt x)", "must be printable ASCII without spaces"),
        ("!/route-append(name=chat,element=gamma:x)", "Backend 'gamma' in element 'gamma:x' is not configured (backends: alpha, beta)"),
        ("!/route-append(name=chat,element=alpha:gpt-x)", "already in failover route 'chat'"),
        ("!/set(model=nope)", "Failover route 'nope' does not exist"),
        ("!/route-reset(name=chat)", "has no runtime changes"),
    ],
)
def test_refused_edits_say_why(text: str, says: str) -> None:
    with pytest.raises(CommandError) as info:
        run(text)
    assert says in str(info.value)


def test_set_takes_routes_and_model_list_names() -> None:
    assert execute(parse("!/set(model=chat)"), Overlay(), CATALOG).session.route == "chat"  # type: ignore[union-attr]
    assert execute(parse("!/set(model=plain)"), Overlay(), CATALOG).session.route == "plain"  # type: ignore[union-attr]
    assert execute(parse("!/unset(model)"), Overlay(), CATALOG).session.route is None  # type: ignore[union-attr]


def test_the_overlay_round_trips_through_json() -> None:
    _, o = run("!/delete-failover-route(name=chat)")
    _, o = run("!/create-failover-route(name=new,policy=mk)", o)
    assert Overlay.from_json(o.to_json()) == o
    assert Overlay.from_json(None) == Overlay()
    with pytest.raises(ValueError):
        Overlay.from_json('{"version": 1}')


def test_put_checks_what_it_can_and_keeps_the_mapping() -> None:
    o, change = rt.put(Overlay(), CATALOG, "api", {"policy": "KM", "elements": ["alpha:a", {"element": "beta:b"}]})
    assert change.after == {"policy": "km", "elements": ["alpha:a", {"element": "beta:b"}]} and change.before is None
    with pytest.raises(RouteEditError, match="not configured"):
        rt.put(o, CATALOG, "api", {"elements": ["gamma:a"]})


def test_the_file_store_loses_no_change_between_processes(tmp_path: Path) -> None:
    """Two stores on one file stand for two worker processes: 40 interleaved appends all land."""
    path = tmp_path / "routes.json"
    one, two = FileRouteStore(path), FileRouteStore(path)
    assert one.stamp() is None

    async def main() -> Overlay:
        await one.change(lambda o: rt.create(o, CATALOG, "r", "m")[0])
        stamp = one.stamp()
        await asyncio.gather(
            *(
                (one if i % 2 else two).change(lambda o, i=i: rt.add_element(o, CATALOG, "r", f"alpha:m{i}", first=False)[0])
                for i in range(40)
            )
        )
        assert two.stamp() != stamp
        return await two.load()

    final = asyncio.run(main())
    assert final.version == 41
    assert sorted(rt.element_names(effective_routes({}, final)["r"])) == sorted(f"alpha:m{i}" for i in range(40))
    assert not list(tmp_path.glob("*.tmp")), "no temp file is left behind"


def test_a_refused_edit_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    store = FileRouteStore(tmp_path / "routes.json")

    async def main() -> None:
        await store.change(lambda o: rt.create(o, CATALOG, "r", "m")[0])
        before = (tmp_path / "routes.json").read_text()
        with pytest.raises(RouteEditError):
            await store.change(lambda o: rt.create(o, CATALOG, "r", "m")[0])
        assert (tmp_path / "routes.json").read_text() == before

    asyncio.run(main())
