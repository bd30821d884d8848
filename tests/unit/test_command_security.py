"""The `!/` parser and run-time route edits against a hostile caller (issue 19). Pure."""

from __future__ import annotations

import time

import pytest

from litellm_failover_plugin import routetable as rt
from litellm_failover_plugin.commands import MAX_LENGTH, CommandError, command_text, parse
from litellm_failover_plugin.routetable import Catalog, RouteEditError

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
