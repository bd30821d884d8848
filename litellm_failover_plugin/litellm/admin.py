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
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
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
Caller = Annotated[Any, Depends(user_api_key_auth)]  # the proxy's own key check; its UserAPIKeyAuth


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
        if not sees_all(plugin, user):  # names, policies and elements of the routes it may use
            return {"routes": [public_view(route_view(plugin, n)) for n in await usable_routes(plugin, user)]}
        return {
            "version": live.overlay.version,
            "store": live.store.kind,
            "routes": [route_view(plugin, n) for n in live.settings.routes],
            "deleted": sorted(n for n, r in live.overlay.routes.items() if r is None),
        }

    async def get_route(name: str, user: Caller) -> Any:
        plugin = plugin_of()
        view = route_view(plugin, name)
        if view is not None and not sees_all(plugin, user):
            view = public_view(view) if await may_use(user, name, adapter.live_router()) else None
        return view if view is not None else fail(f"Failover route {name!r} does not exist", 404)

    async def put(name: str, request: Request, user: Caller) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"null")
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

