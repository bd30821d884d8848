"""`!/...` chat commands that manage failover routes. Pure: parse, authorize, apply, reply.

A command is the whole content of the last message (a user's) of a chat completion request, e.g.
`!/route-append(name=chat,element=openai:gpt-4o)`. `command_text` finds it (None when the
request carries none); `parse` turns it into a `Command`; `execute` applies it to the route overlay and
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
MAX_LENGTH = 2048  # a command is short: a longer text is refused before it is parsed
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_ARG_NAME = re.compile(r"[a-z_]{1,32}")  # used with fullmatch on a bounded string: no backtracking
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    "help": Spec(Access.READ, (), "!/help or !/help(<command>)", "this list, or one command's usage"),
}


@dataclass(frozen=True)
class Command:
    name: str
    args: Mapping[str, str]

    @property
    def spec(self) -> Spec:
        return SPECS[self.name]


def command_name(text: str) -> str | None:
    """The known command a stripped `text` is (`!/name`, then the end or `(`), else None.

    Only a known name is a command: any other `!/...` text (a shebang, a path) is the model's.
    Reads at most a few dozen characters, whatever the text's length."""
    if not text.startswith(PREFIX):
        return None
    end = len(PREFIX)
    limit = min(len(text), end + 40)
    while end < limit and text[end] in _NAME_CHARS:
        end += 1
    name = text[len(PREFIX) : end]
    if name not in SPECS:
        return None
    return name if text[end : end + 1] in ("", "(") else None


def command_text(messages: Any) -> str | None:
    """The text of the last user message when it is a known command (`!/name...`), else None.

    The last user message only counts when it is the conversation's last message: an agent
    loop that resends a conversation with the command's reply (or anything else) after it
    does not run the command again."""
    if not isinstance(messages, list) or not messages:
        return None
    message = messages[-1]
    if not isinstance(message, Mapping) or message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, list):  # [{"type": "text", "text": "..."}]
        texts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        content = texts[0] if len(texts) == 1 and len(content) == 1 else None
    if not isinstance(content, str):
        return None
    if not content[:64].lstrip().startswith(PREFIX):  # cheap, whatever the message's length
        return None
    text = content.strip()
    return text if command_name(text) is not None else None


def parse(text: str) -> Command:
    """`!/name(key=value,...)` -> Command. Raises CommandError naming what is wrong.

    Linear in the text's length, and the text is at most MAX_LENGTH characters."""
    text = text.strip()
    if len(text) > MAX_LENGTH:
        raise CommandError(f"command too long ({len(text)} characters; at most {MAX_LENGTH}); try !/help")
    name = command_name(text)
    if name is None:
        head = text[: len(PREFIX) + 40]
        raise CommandError(f"unknown command {head!r}; try !/help")
    spec = SPECS[name]
    body: str | None = None
    rest = text[len(PREFIX) + len(name) :]
    if rest:
        if not rest.endswith(")"):
            raise CommandError(f"malformed command {text[:80]!r}: expected !/name or !/name(key=value,...); try !/help")
        body = rest[1:-1]
    args: dict[str, str] = {}
    if name == "help" and body is not None and body.strip() and "=" not in body:
        return Command(name, {"command": _help_topic(body)})  # !/help(route-append), as the original
    if body is not None and body.strip():
        for part in body.split(","):
            key, _, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not _ARG_NAME.fullmatch(key):
                raise CommandError(f"!/{name}: malformed argument {part.strip()[:40]!r}; usage: {spec.usage}")
            if _CONTROL.search(value):
                raise CommandError(f"!/{name}: argument {key!r} contains a control character")
            if key in args:
                raise CommandError(f"!/{name}: argument {key!r} given twice")
            args[key] = value
    allowed = set(spec.args) | {"unset": {"model"}, "help": {"command"}}.get(name, set())
    extra = sorted(set(args) - allowed)
    if extra:
        raise CommandError(f"!/{name}: unknown argument {extra[0]!r}; usage: {spec.usage}")
    missing = [a for a in spec.args if not args.get(a)]
    if missing:
        raise CommandError(f"!/{name} requires {' and '.join(spec.args)}; usage: {spec.usage}")
    return Command(name, args)


def _help_topic(body: str) -> str:
    topic = body.strip().removeprefix(PREFIX)
    if topic not in SPECS:
        raise CommandError(f"!/help: unknown command {topic[:40]!r}; commands: {', '.join(SPECS)}")
    return topic


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
                if a.get("command"):
                    spec = SPECS[_help_topic(a["command"])]
                    return Result(f"{spec.usage}  {spec.summary}")
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
