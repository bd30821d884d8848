"""A `!/` command in a chat request, carried out by the proxy's pre-call hook.

Parse it, check who may run it, run it on the live routes (a session's route for `!/set`), and
leave its reply in the request (replies.py), which the runner then answers with no upstream
call. Errors are the client's: 400 `failover_command_error`, 403 `failover_command_forbidden`,
503 when the route store cannot be reached.
"""

from __future__ import annotations

from typing import Any

from litellm.exceptions import ModifyResponseException
from litellm.proxy._types import ProxyException

from ..commands import COMMAND_ERROR_TYPE, FORBIDDEN_TYPE, CommandError, may_run, parse
from ..routing import KEYS_GROUP_PREFIX
from .admin import is_admin, who
from .live import LiveRoutes, StoreUnavailable, session_id
from .model_access import may_use
from .replies import SESSION_WARNING_KEY, leave_reply

_LISTINGS = frozenset({"list-failover-routes", "route-list"})  # a non-admin reads only the routes it may use


async def carry_out(live: LiveRoutes, text: str, user: Any, data: dict[str, Any], router: Any) -> None:
    """Carry out a `!/` command; its reply is answered by the runner without an upstream call."""
    try:
        command = parse(text)
    except CommandError as e:
        raise command_error(str(e), 400) from None
    if not may_run(command, is_admin=is_admin(user), writers=live.settings.commands.writers):
        raise command_error(
            f"!/{command.name} changes failover routes and needs a proxy admin (the master key or role proxy_admin)",
            403,
            FORBIDDEN_TYPE,
        )
    hidden: frozenset[str] = frozenset()
    if command.name in _LISTINGS and not (is_admin(user) or live.settings.commands.writers == "any"):
        hidden = frozenset([n for n in live.settings.routes if not await may_use(user, n, router)])
    try:
        result = await live.run_command(command, who(user), hidden=hidden)
        if result.session is not None:
            headers = (data.get("proxy_server_request") or {}).get("headers")
            sid = session_id(headers, user)
            if sid is None:
                raise CommandError(f"!/{command.name} needs a session: send an x-session-id header")
            route = result.session.route
            if route is not None and not await may_use(user, route, router):
                raise command_error(f"this key may not use model {route!r}", 403, FORBIDDEN_TYPE)
            await live.set_session(sid, route)
    except CommandError as e:
        raise command_error(str(e), 400) from None
    except StoreUnavailable as e:
        raise command_error(str(e), 503) from None
    leave_reply(data, command.name, result.reply)
    names = {n for n in getattr(router, "model_names", None) or () if not n.startswith(KEYS_GROUP_PREFIX)}
    if data.get("model") not in names:
        # e.g. the command deleted the route it was sent to: the reply still needs a model
        # name the proxy routes (the runner answers it; the reply names the model asked for)
        if not names:
            raise ModifyResponseException(message=result.reply, model=str(data.get("model") or ""), request_data=data)
        data["model"] = sorted(names)[0]


async def apply_session(live: LiveRoutes, user: Any, data: dict[str, Any], router: Any) -> None:
    """A chat request of a session `!/set` to a route goes to that route, when the caller may
    still use it (checked again now: key, team or access groups may have changed since) and it
    still exists. Otherwise the request goes to the model it names, with a warning header."""
    headers = (data.get("proxy_server_request") or {}).get("headers")
    route = live.session_route(session_id(headers, user))
    if route is None or route == data.get("model"):
        return
    if route not in live.settings.routes and route not in live.catalog().reserved:
        why = f"this session's route {route!r} no longer exists; served the model asked for"
    elif not await may_use(user, route, router):
        why = f"this key may not use this session's route {route!r}; served the model asked for"
    else:
        data["model"] = route
        return
    md = data.setdefault("metadata", {})
    if isinstance(md, dict):
        md[SESSION_WARNING_KEY] = why


def command_error(message: str, status: int, type_: str = COMMAND_ERROR_TYPE) -> ProxyException:
    return ProxyException(message=message, type=type_, param=None, code=status)
