"""`!/...` chat commands that manage failover routes. Pure: parse, authorize, apply, reply.

A command is the whole content of the last user message of a chat completion request, e.g.
`!/route-append(name=chat,element=openai:gpt-4o)`. `parse` turns the text into a `Command`
(None when the text is not a command at all); `execute` applies it to the route overlay and
returns the reply text, the new overlay and the change to store and log, or a session change.
Wording follows llm-interactive-proxy, where these commands come from.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import routetable as rt
from .policies import POLICIES
from .routetable import Catalog, Change, Overlay, RouteEditError

PREFIX = "!/"
COMMAND_ERROR_TYPE = "failover_command_error"
FORBIDDEN_TYPE = "failover_command_forbidden"
_SYNTAX = re.compile(r"^!/([a-z][a-z\-]*)(?:\((.*)\))?$", re.S)
_ARG = re.compile(r"^\s*([a-z_]+)\s*(?:=\s*(.*?))?\s*$", re.S)


class CommandError(ValueError):
    """A command that cannot be carried out (HTTP 400). Nothing changed."""


class Access(enum.Enum):
    READ = "read"  # anyone the proxy lets in
    SESSION = "session"  # anyone: changes only the caller's own session
    WRITE = "write"  # proxy admins (or anyone, with commands.writers: any)


@dataclass(frozen=True)
class Spec:
    access: Access
    args: tuple[str, ...]  # required arguments, in the order help shows them
    usage: str
    summary: str


SPECS: dict[str, Spec] = {
    "create-failover-route": Spec(
        Access.WRITE, ("name", "policy"), "!/create-failover-route(name=<route>,policy=<policy>)",
        "create an empty route (policy: " + "|".join(POLICIES) + ")",
    ),
    "delete-failover-route": Spec(Access.WRITE, ("name",), "!/delete-failover-route(name=<route>)", "delete a route"),
    "list-failover-routes": Spec(Access.READ, (), "!/list-failover-routes", "every route with its policy and elements"),
    "route-list": Spec(Access.READ, ("name",), "!/route-list(name=<route>)", "one route's policy and elements, in order"),
    "route-append": Spec(
        Access.WRITE, ("name", "element"), "!/route-append(name=<route>,element=<backend:model>)", "add an element last"
    ),
    "route-prepend": Spec(
        Access.WRITE, ("name", "element"), "!/route-prepend(name=<route>,element=<backend:model>)", "add an element first"
    ),
    "route-clear": Spec(Access.WRITE, ("name",), "!/route-clear(name=<route>)", "remove every element of a route"),
    "route-reset": Spec(Access.WRITE, ("name",), "!/route-reset(name=<route>)", "drop a route's runtime changes"),
    "set": Spec(Access.SESSION, ("model",), "!/set(model=<route>)", "send this session's requests to a route"),
    "unset": Spec(Access.SESSION, (), "!/unset(model)", "stop sending this session's requests to a route"),
    "help": Spec(Access.READ, (), "!/help", "this list"),
}


@dataclass(frozen=True)
class Command:
    name: str
    args: Mapping[str, str]

    @property
    def spec(self) -> Spec:
        return SPECS[self.name]


def command_text(messages: Any) -> str | None:
    """The text of the last user message when it is a command (`!/...`), else None."""
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # [{"type": "text", "text": "..."}]
                texts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
                content = texts[0] if len(texts) == 1 and len(content) == 1 else None
            if isinstance(content, str) and content.strip().startswith(PREFIX):
                return content.strip()
            return None
    return None


def parse(text: str) -> Command:
    """`!/name(key=value,...)` -> Command. Raises CommandError naming what is wrong."""
    m = _SYNTAX.match(text.strip())
    if m is None:
        raise CommandError(f"malformed command {text[:80]!r}: expected !/name or !/name(key=value,...); try !/help")
    name, body = m.group(1), m.group(2)
    spec = SPECS.get(name)
    if spec is None:
        raise CommandError(f"unknown command '!/{name}'; try !/help")
    args: dict[str, str] = {}
    if body is not None and body.strip():
        for part in body.split(","):
            a = _ARG.match(part)
            if a is None:
                raise CommandError(f"!/{name}: malformed argument {part.strip()[:40]!r}; usage: {spec.usage}")
            key, value = a.group(1), a.group(2)
            if key in args:
                raise CommandError(f"!/{name}: argument {key!r} given twice")
            args[key] = value if value is not None else ""
    allowed = set(spec.args) | ({"model"} if name == "unset" else set())
    extra = sorted(set(args) - allowed)
    if extra:
        raise CommandError(f"!/{name}: unknown argument {extra[0]!r}; usage: {spec.usage}")
    missing = [a for a in spec.args if not args.get(a)]
    if missing:
        raise CommandError(f"!/{name} requires {' and '.join(spec.args)}; usage: {spec.usage}")
    return Command(name, args)


def may_run(command: Command, *, is_admin: bool, writers: str) -> bool:
    return command.spec.access is not Access.WRITE or is_admin or writers == "any"


@dataclass(frozen=True)
class SessionChange:
    route: str | None  # None: the session's override is cleared


@dataclass(frozen=True)
class Result:
    reply: str
    overlay: Overlay | None = None  # the new overlay, when the command changed routes
    change: Change | None = None
    session: SessionChange | None = None


def describe(name: str, route: Mapping[str, Any]) -> str:
    elements = rt.element_names(route)
    policy = rt.policy_of(route)
    if not elements:
        return f"Failover route {name!r} (policy: {policy}) has no elements"
    return f"Failover route {name!r} (policy: {policy}) elements: {', '.join(elements)}"


def help_text() -> str:
    width = max(len(s.usage) for s in SPECS.values())
    lines = [f"{s.usage.ljust(width)}  {s.summary}" for s in SPECS.values()]
    return "Failover route commands:\n" + "\n".join(lines)


def execute(command: Command, overlay: Overlay, catalog: Catalog) -> Result:
    """Carry out an authorized command. Raises CommandError (nothing changes) when it cannot."""
    a = command.args
    try:
        match command.name:
            case "help":
                return Result(help_text())
            case "list-failover-routes":
                routes = rt.effective_routes(catalog.base, overlay)
                if not routes:
                    return Result("No failover routes defined")
                head = "Failover routes: " + ", ".join(f"{n}:{rt.policy_of(r)}" for n, r in routes.items())
                return Result("\n".join([head, *(describe(n, r) for n, r in routes.items())]))
            case "route-list":
                route = rt.effective_routes(catalog.base, overlay).get(a["name"])
                if route is None:
                    raise RouteEditError(f"Failover route {a['name']!r} does not exist")
                return Result(describe(a["name"], route))
            case "create-failover-route":
                new, change = rt.create(overlay, catalog, a["name"], a["policy"])
                return Result(f"Failover route {a['name']!r} created with policy {rt.policy_of(change.after or {})!r}", new, change)
            case "delete-failover-route":
                new, change = rt.delete(overlay, catalog, a["name"])
                return Result(f"Failover route {a['name']!r} deleted", new, change)
            case "route-append" | "route-prepend":
                first = command.name == "route-prepend"
                new, change = rt.add_element(overlay, catalog, a["name"], a["element"], first=first)
                where = "prepended to" if first else "appended to"
                return Result(f"Element {a['element'].strip()!r} {where} failover route {a['name']!r}", new, change)
            case "route-clear":
                new, change = rt.clear(overlay, catalog, a["name"])
                return Result(f"All elements cleared from failover route {a['name']!r}", new, change)
            case "route-reset":
                new, change = rt.reset(overlay, catalog, a["name"])
                back = "config.yaml's version is back" if change.after else "it is gone (config.yaml has no such route)"
                return Result(f"Failover route {a['name']!r} reset: {back}", new, change)
            case "set":
                name = a["model"]
                if name not in rt.effective_routes(catalog.base, overlay) and name not in catalog.reserved:
                    raise RouteEditError(f"Failover route {name!r} does not exist")
                return Result(f"This session's requests now go to {name!r}", session=SessionChange(name))
            case "unset":
                if a and "model" not in a:
                    raise CommandError("!/unset takes 'model': !/unset(model)")
                return Result("This session's model override is cleared", session=SessionChange(None))
    except RouteEditError as e:
        raise CommandError(str(e)) from None
    raise CommandError(f"unknown command '!/{command.name}'")  # unreachable: parse checks names
