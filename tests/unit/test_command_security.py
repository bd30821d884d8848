"""The `!/` parser and run-time route edits against a hostile caller (issue 19). Pure."""

from __future__ import annotations

import time

import pytest

from litellm_failover_plugin import routetable as rt
from litellm_failover_plugin.commands import MAX_LENGTH, CommandError, command_text, parse
from litellm_failover_plugin.config import ConfigError, parse_settings
from litellm_failover_plugin.overlays import serve
from litellm_failover_plugin.routetable import Catalog, Overlay, RouteEditError

CATALOG = Catalog(base={"chat": {"policy": "m", "elements": ["alpha:gpt-x"]}}, backends=frozenset({"alpha", "beta"}))


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def timed_parse(text: str) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        command = command_text(user(text))
        said = "not a command" if command is None else repr(parse(command))
    except CommandError as e:
        said = str(e)
    return time.perf_counter() - started, said


@pytest.mark.parametrize(
    "text",
    [
        "!/route-list(name=a" + " " * 1_000_000 + "b)",  # the backtracking attack at 1 MB
        "!/route-list(" + "name=a," * 150_000 + ")",
        "!/route-list(" + "(" * 1_000_000,
        "!/help" + "x" * 1_000_000,
        " " * 1_000_000 + "!/help",
        "!/" + "a" * 1_000_000,
    ],
    ids=["spaces", "commas", "parens", "long-name", "leading-space", "unknown-name"],
)
def test_a_megabyte_of_hostile_text_is_answered_in_milliseconds(text: str) -> None:
    took, said = timed_parse(text)
    assert took < 0.25, f"{took:.3f}s: {said[:80]}"  # measured: under 5 ms on a loaded 2-core machine
    assert len(said) < 300, "the answer does not echo the input back"


def test_the_backtracking_input_of_the_report_is_fast() -> None:
    """`!/route-list(name=a` + 40,000 spaces + `b)` held the event loop 13 s before."""
    took, said = timed_parse("!/route-list(name=a" + " " * 40_000 + "b)")
    assert took < 0.05 and "too long" in said
    took, said = timed_parse("!/route-list(name=a" + " " * (MAX_LENGTH - 40) + "b)")  # under the cap: parsed, then refused
    assert took < 0.05 and "route name" not in said  # parse takes it as a value; the route check refuses it later
    with pytest.raises(RouteEditError, match="route name"):
        rt.check_route_name(parse("!/route-list(name=a" + " " * 100 + "b)").args["name"])


@pytest.mark.parametrize(
    "text",
    [
        "!/bin/bash is in my shebang, why?",
        "!/usr/bin/env python",
        "!/frobnicate",
        "!/help me understand this",
        "!/set the table",
        "!/Route-List(name=a)",
        "!/",
        "!/ route-list(name=a)",
    ],
)
def test_only_a_known_command_name_is_a_command(text: str) -> None:
    assert command_text(user(text)) is None


@pytest.mark.parametrize(
    "text", ["!/help", "  !/help  ", "!/help()", "!/route-list(name=chat)", "!/route-list(name=chat", "!/set(model=x) please"]
)
def test_a_known_command_name_is_a_command_even_when_malformed(text: str) -> None:
    assert command_text(user(text)) == text.strip()


def test_a_command_runs_only_when_it_is_the_last_message() -> None:
    cmd = {"role": "user", "content": "!/route-append(name=chat,element=beta:gpt-y)"}
    assert command_text([cmd]) is not None
    assert command_text([cmd, {"role": "assistant", "content": "Element 'beta:gpt-y' appended"}]) is None
    assert command_text([cmd, {"role": "assistant", "content": "x"}, {"role": "tool", "content": "y"}]) is None
    assert command_text([cmd, {"role": "assistant", "content": "x"}, {"role": "user", "content": "hi"}]) is None


@pytest.mark.parametrize(
    "param",
    ["api_base", "base_url", "api_key", "api_version", "headers", "extra_headers", "organization", "custom_llm_provider", "aws_region_name"],
)
def test_a_run_time_edit_cannot_say_where_a_key_goes_or_what_goes_with_it(param: str) -> None:
    route = {"policy": "k", "elements": [{"element": "alpha:gpt-x", "litellm_params": {param: "https://evil.example/v1"}}]}
    with pytest.raises(RouteEditError, match=f"litellm_params.{param} cannot be set at run time"):
        rt.put(Overlay(), CATALOG, "evil", route)
    with pytest.raises(RouteEditError, match="cannot be set at run time"):
        rt.put(Overlay(), CATALOG, "chat", route)  # over a config route too


def test_a_run_time_edit_may_set_the_allowed_parameters_and_keep_config_ones() -> None:
    params = {"timeout": 5, "max_tokens": 100, "temperature": 0.2}
    rt.put(Overlay(), CATALOG, "ok", {"elements": [{"element": "alpha:gpt-x", "litellm_params": params}]})
    base = {"chat": {"elements": [{"element": "alpha:gpt-x", "litellm_params": {"api_version": "2024-10-01"}}]}}
    catalog = Catalog(base=base, backends=CATALOG.backends)
    same = {"elements": [{"element": "alpha:gpt-x", "litellm_params": {"api_version": "2024-10-01", "timeout": 9}}]}
    rt.put(Overlay(), catalog, "chat", same)  # config.yaml's own value, read back and written again
    with pytest.raises(RouteEditError, match="api_version"):
        rt.put(Overlay(), catalog, "chat", {"elements": [{"element": "alpha:gpt-x", "litellm_params": {"api_version": "x"}}]})
    with pytest.raises(RouteEditError, match="api_version"):  # the same value on another route is no config value
        rt.put(Overlay(), catalog, "other", same)


@pytest.mark.parametrize("name", ["chat\n", "chat\r\n", "ch\x00at", "chat\x7f", "\nchat"])
def test_a_route_name_with_a_control_character_is_refused(name: str) -> None:
    with pytest.raises(RouteEditError, match="route name"):
        rt.put(Overlay(), CATALOG, name, {"elements": []})
    with pytest.raises(RouteEditError, match="route name"):
        rt.create(Overlay(), CATALOG, name, "k")


@pytest.mark.parametrize("element", ["alpha:gpt-x\n", "alpha:gpt\x00x", "alpha\n:gpt-x", "alpha:gpt-x\x1b[31m"])
def test_an_element_with_a_control_character_is_refused(element: str) -> None:
    with pytest.raises(RouteEditError, match="control character"):
        rt.put(Overlay(), CATALOG, "r", {"elements": [element]})
    with pytest.raises(RouteEditError, match="control character"):
        rt.add_element(Overlay(), CATALOG, "chat", element, first=False)


def test_a_command_argument_with_a_control_character_is_refused() -> None:
    with pytest.raises(CommandError, match="control character"):
        parse("!/route-append(name=ch\x00at,element=alpha:gpt-x)")
    with pytest.raises(CommandError, match="control character"):
        parse("!/route-append(name=chat,element=alpha:gpt\nx)")


def test_stored_routes_an_older_version_let_in_are_found_and_set_aside() -> None:
    stored = Overlay(
        7,
        {
            "good": {"elements": ["alpha:gpt-x"]},
            "chat\n": {"elements": ["alpha:gpt-x"]},
            "bad-element": {"elements": ["alpha:gpt-x\n"]},
            "redirect": {"elements": [{"element": "alpha:gpt-x", "litellm_params": {"api_base": "http://evil"}}]},
            "gone": None,
        },
    )
    bad = rt.unservable(stored, CATALOG.base)
    assert set(bad) == {"chat\n", "bad-element", "redirect"}
    section = {"backends": {"alpha": {"provider": "openai", "api_keys": {"a1": "sk"}}}}
    served = serve(section, stored)  # the others serve; these are listed with why, not served
    assert served.unserved == bad and set(served.settings.routes) == {"good"}


@pytest.mark.parametrize(
    ("where", "section"),
    [
        ("routes", {"backends": {"alpha": {"provider": "openai", "api_keys": {"a1": "sk"}}}, "routes": {"chat\n": {"elements": ["alpha:m"]}}}),
        ("elements", {"backends": {"alpha": {"provider": "openai", "api_keys": {"a1": "sk"}}}, "routes": {"chat": {"elements": ["alpha:m\n"]}}}),
        ("backends", {"backends": {"alpha\n": {"provider": "openai", "api_keys": {"a1": "sk"}}}}),
        ("api_keys", {"backends": {"alpha": {"provider": "openai", "api_keys": {"a1\n": "sk"}}}}),
    ],
)
def test_config_refuses_a_name_ending_in_a_newline(where: str, section: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=where):
        parse_settings(section)


def test_help_takes_a_command_name() -> None:
    from litellm_failover_plugin.commands import Command, execute

    assert parse("!/help(route-append)") == Command("help", {"command": "route-append"})
    assert parse("!/help(!/set)") == Command("help", {"command": "set"})
    assert parse("!/help(command=unset)") == Command("help", {"command": "unset"})
    reply = execute(parse("!/help(route-append)"), Overlay(), CATALOG).reply
    assert reply == "!/route-append(name=<route>,element=<backend:model>)  add an element last"
    with pytest.raises(CommandError, match="unknown command 'nope'"):
        parse("!/help(nope)")
    with pytest.raises(CommandError, match="unknown command"):
        execute(parse("!/help(command=nope)"), Overlay(), CATALOG)



def test_a_run_time_route_is_bounded_in_elements_and_the_store_in_routes() -> None:
    """An admin PUT of 100,000 elements held the event loop for minutes, and again at each
    restart (found by an attack pass): a run-time route has at most MAX_RUNTIME_ELEMENTS."""
    many = {"policy": "m", "elements": [f"alpha:m{i}" for i in range(100_000)]}
    started = time.perf_counter()
    with pytest.raises(RouteEditError, match=f"at most {rt.MAX_RUNTIME_ELEMENTS} elements"):
        rt.put(Overlay(), CATALOG, "big", many)
    assert time.perf_counter() - started < 2.0
    overlay = Overlay()
    for i in range(rt.MAX_RUNTIME_ELEMENTS - 1):  # config's chat has one already
        overlay, _ = rt.add_element(overlay, CATALOG, "chat", f"beta:m{i}", first=False)
    with pytest.raises(RouteEditError, match="at most"):
        rt.add_element(overlay, CATALOG, "chat", "beta:one-more", first=False)
    full = Overlay(1, {f"r{i}": {"policy": "m", "elements": []} for i in range(rt.MAX_RUNTIME_ROUTES)})
    with pytest.raises(RouteEditError, match=f"at most {rt.MAX_RUNTIME_ROUTES} routes"):
        rt.create(full, CATALOG, "another", "m")
    rt.put(full, CATALOG, "r0", {"policy": "k", "elements": ["alpha:gpt-x"]})  # changing one that is there is fine
    stored = Overlay(2, {"big": many, "small": {"elements": ["alpha:gpt-x"]}})  # as an older version stored it
    assert set(rt.unservable(stored, CATALOG.base)) == {"big"}
