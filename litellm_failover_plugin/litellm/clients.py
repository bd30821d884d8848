"""Whether the client of the request being served is still there.

A queued request whose client left must not cost an upstream call. The proxy cancels a
request's call when its client disconnects (general_settings.cancel_on_disconnect, turned on
for routes with a queue), but that alone leaves holes: an operator may turn it off, and a
disconnect noticed at the very moment a queued request is released may not have reached the
request as a cancellation yet. So the plugin wraps the proxy's ASGI app (`watch_clients`):
every HTTP request's `receive` is remembered in a context variable, which the tasks serving the
request inherit, and a disconnect any reader of it sees is noted. `client_left()` is asked at
the moment of release (waiting.py), by the task about to make the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DISCONNECTED = "Client disconnected the request"  # what LiteLLM's proxy says (and logs at info) for a 499


class ClientLeft(HTTPException):
    """The request's client disconnected while it waited: it leaves without an upstream call."""

    def __init__(self) -> None:
        super().__init__(status_code=499, detail=DISCONNECTED)


class _Client:
    """One HTTP request's `receive`, noting a disconnect whoever reads it; and what the plugin's
    hooks noted about the request while END_CHECKS wait for its end."""

    __slots__ = ("left", "notes", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.left = False
        self.notes: set[str] = set()

    async def __call__(self) -> Message:
        message = await self.receive()
        if message.get("type") == "http.disconnect":
            self.left = True
        return message


_client: ContextVar[_Client | None] = ContextVar("failover_client", default=None)

SERVED, HEADERS_RAN = "failover:served", "failover:headers"  # notes selfcheck.py reads

# Called with (notes, response status) as each HTTP request ends, while there are any
# (selfcheck.py: the first route response's checks). Empty: no cost beyond this check.
END_CHECKS: list[Callable[[frozenset[str], int | None], None]] = []


def note(what: str) -> None:
    """Note something about the current HTTP request, for END_CHECKS."""
    client = _client.get()
    if client is not None:
        client.notes.add(what)


class ClientWatch:
    """ASGI middleware: makes each HTTP request's client known to `client_left()`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = _Client(scope, receive)
        token = _client.set(client)
        if not END_CHECKS:
            try:
                await self.app(scope, client, send)
            finally:
                _client.reset(token)
            return
        status: int | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, client, send_noting_status)
        finally:
            _client.reset(token)
            for check in list(END_CHECKS):
                check(frozenset(client.notes), status)


def watch_clients(app: Any) -> None:
    """Wrap a Starlette app's middleware stack (built already once the app has started, when
    `add_middleware` is refused) in ClientWatch. Idempotent."""
    stack = app.middleware_stack
    if isinstance(stack, ClientWatch):
        return
    app.middleware_stack = ClientWatch(stack if stack is not None else app.build_middleware_stack())


def check_app(app: Any) -> str | None:
    """What watch_clients relies on (compat.HOOKS): a Starlette app whose built middleware
    stack is an attribute it calls."""
    if not callable(getattr(app, "build_middleware_stack", None)) or not hasattr(app, "middleware_stack"):
        return f"the proxy's app ({type(app).__name__}) has no middleware_stack / build_middleware_stack"
    return None


def watched() -> bool:
    """Whether the current request's client is watched (the request came through ClientWatch)."""
    return _client.get() is not None


async def client_left() -> bool:
    """Whether the client of the current request is gone: a cancellation is pending on this task
    (the proxy cancels on disconnect), or a disconnect was seen or is there to be read now.

    Only once the request's body has been read (a waiting request's has): asking reads one
    message if one is ready, and before the end of the body that would be a piece of it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return True
    client = _client.get()
    if client is None:  # not served by the proxy (Python use), or the request came before the watch
        return False
    if not client.left:
        await Request(client.scope, client).is_disconnected()  # notes the disconnect through client()
    return client.left
