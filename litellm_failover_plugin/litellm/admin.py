"""The admin REST API on the proxy, behind the proxy's own auth: routes and reload.

    GET    /failover/routes               every route in force, with where it comes from
    GET    /failover/routes/{name}        one route
    PUT    /failover/routes/{name}        create or replace a route (body: as in config.yaml)
    DELETE /failover/routes/{name}        delete a route
    POST   /failover/routes/{name}/reset  drop a route's runtime changes
    POST   /failover/reload               re-read failover_settings from config.yaml

Reads: proxy admins see everything; other keys see only the routes they may use (LiteLLM's own
model access check), without parameters, and not /failover/status.

Writes take the same validation, store and sharing as the `!/` commands, and the same rule on
who may: proxy admins (the master key, or a caller whose role is proxy_admin), or anyone with
`commands.writers: any`.

No request here answers 500: a caller LiteLLM cannot authenticate gets an OpenAI-shaped 401
whatever LiteLLM's database state (`authenticated`), a body sent without a Content-Type is read
as JSON, and a route store that cannot be used is a 503 naming the problem.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from litellm.proxy._types import ProxyException
from litellm.proxy.auth.user_api_key_auth import user_api_key_auth

from ..commands import COMMAND_ERROR_TYPE, FORBIDDEN_TYPE
from ..config import ConfigError
from ..routetable import Change, Overlay, RouteEditError
from ..routetable import delete as delete_route
from ..routetable import put as put_route
from ..routetable import reset as reset_route
from . import adapter
from .live import StoreUnavailable
from .model_access import may_use

if TYPE_CHECKING:
    from .plugin import FailoverPlugin

PREFIX = "/failover"
AUTH_ERROR_TYPE = "auth_error"


@functools.wraps(user_api_key_auth)  # FastAPI resolves the same key headers as for LiteLLM's own routes
async def authenticated(*args: Any, **kwargs: Any) -> Any:
    """The proxy's own key check, answering 401 (OpenAI-shaped) for any caller it cannot
    authenticate: without a database, LiteLLM's own error path fails (500) on a missing key."""
    request = kwargs.get("request", args[0] if args else None)
    if isinstance(request, Request):
        with contextlib.suppress(Exception):  # LiteLLM reads a body without Content-Type as a form and
            await request.body()  # consumes it; read first, the body stays readable as JSON
    try:
        return await user_api_key_auth(*args, **kwargs)
    except ProxyException as e:
        if str(e.code).startswith("4") and e.type != "no_db_connection":
            raise
        raise _unauthorized(e.message) from None
    except HTTPException as e:
        if 400 <= e.status_code < 500:
            raise ProxyException(str(e.detail), AUTH_ERROR_TYPE, None, e.status_code) from None
        raise _unauthorized(str(e.detail)) from None
    except Exception as e:  # LiteLLM's error path failing, without a database: what it was handling
        raise _unauthorized(_cause(e)) from None


def _cause(e: BaseException) -> str:
    seen: BaseException | None = e
    while seen is not None and isinstance(seen, ImportError):
        seen = seen.__context__
    return str(seen) if seen is not None else type(e).__name__


def _unauthorized(why: str) -> ProxyException:
    why = why.strip() or "no valid key"
    return ProxyException(f"Authentication failed: {why} (send Authorization: Bearer <key>)", AUTH_ERROR_TYPE, None, 401)


Caller = Annotated[Any, Depends(authenticated)]  # the proxy's own key check; its UserAPIKeyAuth


def is_admin(user: Any) -> bool:
    role = getattr(user, "user_role", None)
    return str(getattr(role, "value", role)) == "proxy_admin"


def who(user: Any) -> str:
    """Who made a change, for the log line: never a key, at most its alias or user id."""
    for attr in ("key_alias", "user_id", "team_id"):
        value = getattr(user, attr, None)
        if value:
            return f"{attr}:{value}"
    return "role:" + str(getattr(getattr(user, "user_role", None), "value", "unknown"))


def sees_all(plugin: FailoverPlugin, user: Any) -> bool:
    """Proxy admins (and everyone, on a proxy without auth: `commands.writers: any`) read every
    route with its parameters, and the status; others read only the routes they may use."""
    return is_admin(user) or plugin.live.settings.commands.writers == "any"


async def usable_routes(plugin: FailoverPlugin, user: Any) -> list[str]:
    """The routes in force that `user` may name in a request (LiteLLM's own check)."""
    router = adapter.live_router()
    return [n for n in plugin.live.settings.routes if await may_use(user, n, router)]


def error_body(message: str, type_: str, status: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": str(status)}}


def route_view(plugin: FailoverPlugin, name: str) -> dict[str, Any] | None:
    live = plugin.live
    route = live.settings.routes.get(name)
    if route is None:
        return None
    runtime = name in live.overlay.routes
    written = live.overlay.routes[name] if runtime else live.base_routes.get(name)
    return {
        "name": name,
        "policy": route.policy,
        "elements": [e.element for e in route.elements],
        "source": "runtime" if runtime else "config",
        "route": written,
    }


def public_view(view: dict[str, Any] | None) -> dict[str, Any]:
    """What a non-admin reads of a route: no parameters, no source."""
    assert view is not None
    return {k: view[k] for k in ("name", "policy", "elements")}


STATUS_PATH = "/failover/status"
_added = False


def add_status_routes(plugin_of: Callable[[], FailoverPlugin]) -> None:
    """GET /failover/status and the route admin API on the proxy, behind the proxy's own key
    check; once per process."""
    global _added
    if _added:
        return

    async def failover_status(user: Caller) -> Any:
        plugin = plugin_of()
        if not sees_all(plugin, user):
            return JSONResponse(
                error_body("/failover/status needs a proxy admin (the master key or role proxy_admin)", FORBIDDEN_TYPE, 403),
                status_code=403,
            )
        await plugin.live.before_request()  # another process's change to the state file: shown now
        return await plugin.status()

    try:
        app, _ = adapter.proxy_app()
    except ImportError:  # litellm used without its proxy extras
        return
    app.add_api_route(STATUS_PATH, failover_status, methods=["GET"])
    add_admin_routes(plugin_of)
    _added = True


def add_admin_routes(plugin_of: Callable[[], FailoverPlugin]) -> None:
    app, _ = adapter.proxy_app()

    def fail(message: str, status: int, type_: str = COMMAND_ERROR_TYPE) -> JSONResponse:
        return JSONResponse(error_body(message, type_, status), status_code=status)

    def forbidden(plugin: FailoverPlugin, user: Any) -> JSONResponse | None:
        if is_admin(user) or plugin.live.settings.commands.writers == "any":
            return None
        return fail("changing failover routes needs a proxy admin (the master key or role proxy_admin)", 403, FORBIDDEN_TYPE)

    async def write(user: Any, edit: Callable[[Overlay], tuple[Overlay, Change]]) -> JSONResponse:
        plugin = plugin_of()
        plugin.ensure_installed()
        denied = forbidden(plugin, user)
        if denied is not None:
            return denied
        try:
            change = await plugin.live.change(edit, who(user))
        except RouteEditError as e:
            status = 404 if "does not exist" in str(e) else 400
            return fail(str(e), status)
        except StoreUnavailable as e:
            return fail(str(e), 503)
        return JSONResponse(
            {
                "action": change.action,
                "route": change.route,
                "version": plugin.live.overlay.version,
                "before": change.before,
                "after": change.after,
            }
        )

    async def list_routes(user: Caller) -> dict[str, Any]:
        plugin = plugin_of()
        plugin.ensure_installed()
        live = plugin.live
        await live.before_request()  # another process's change to the state file: shown now
        if not sees_all(plugin, user):  # names, policies and elements of the routes it may use
            return {"routes": [public_view(route_view(plugin, n)) for n in await usable_routes(plugin, user)]}
        return {
            **live.report(),
            "routes": [route_view(plugin, n) for n in live.settings.routes],
            "deleted": sorted(n for n, r in live.overlay.routes.items() if r is None),
        }

    async def get_route(name: str, user: Caller) -> Any:
        plugin = plugin_of()
        await plugin.live.before_request()  # another process's change to the state file: shown now
        view = route_view(plugin, name)
        if view is not None and not sees_all(plugin, user):
            view = public_view(view) if await may_use(user, name, adapter.live_router()) else None
        return view if view is not None else fail(f"Failover route {name!r} does not exist", 404)

    async def put(name: str, request: Request, user: Caller) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"null")
        except RuntimeError:  # the body was consumed before us
            return fail("the body could not be read: send it with Content-Type: application/json", 400)
        except ValueError as e:
            return fail(f"the body must be a JSON route mapping: {e}", 400)
        if not isinstance(body, dict):
            return fail("the body must be a route mapping, as under failover_settings.routes in config.yaml", 400)
        catalog = plugin_of().live.catalog()
        return await write(user, lambda o: put_route(o, catalog, name, body))

    async def delete(name: str, user: Caller) -> JSONResponse:
        catalog = plugin_of().live.catalog()
        return await write(user, lambda o: delete_route(o, catalog, name))

    async def reset(name: str, user: Caller) -> JSONResponse:
        catalog = plugin_of().live.catalog()
        return await write(user, lambda o: reset_route(o, catalog, name))

    async def reload(user: Caller) -> JSONResponse:
        plugin = plugin_of()
        plugin.ensure_installed()
        denied = forbidden(plugin, user)
        if denied is not None:
            return denied
        if plugin.config_path is None:
            return fail("this proxy was not started from a config file", 400)
        try:
            settings = await plugin.live.reload(plugin.config_path, who(user))
        except ConfigError as e:
            return fail(f"reload refused, the running routes stay: {e}", 400, "failover_config_error")
        routes = {n: {"policy": r.policy, "elements": [e.element for e in r.elements]} for n, r in settings.routes.items()}
        return JSONResponse({"reloaded": True, "routes": routes})

    app.add_api_route(f"{PREFIX}/routes", list_routes, methods=["GET"])
    app.add_api_route(f"{PREFIX}/routes/{{name}}", get_route, methods=["GET"])
    app.add_api_route(f"{PREFIX}/routes/{{name}}", put, methods=["PUT"])
    app.add_api_route(f"{PREFIX}/routes/{{name}}", delete, methods=["DELETE"])
    app.add_api_route(f"{PREFIX}/routes/{{name}}/reset", reset, methods=["POST"])
    app.add_api_route(f"{PREFIX}/reload", reload, methods=["POST"])

