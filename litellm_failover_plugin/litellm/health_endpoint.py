"""GET /failover/health: can this process serve routes? For load balancers and readiness probes.

    GET /failover/health              200 while this process can serve its routes: the plugin
                                      is installed on the router and LiteLLM's hooks hold
                                      (selfcheck.py); 503 while starting or once a hook broke
    GET /failover/health?route=NAME   200 while route NAME has a callable candidate, else 503;
                                      404 for a route that does not exist

An outage of one provider, or a route with no elements (one just made by
`!/create-failover-route`, or emptied), never makes the process unready: every replica sees the
same upstreams, and a load balancer that pulled them all would turn one route's outage into
every route's. The body shows every route's state either way.

A candidate is callable when its breaker is closed (or due its probe) and LiteLLM has not cooled
it down: the same reading a request makes before its walk (runner._snapshot), so the answer and
the next request agree.

No key check by default (a load balancer has no key). The answer then says ready or not and each
route's counts; which backends, models and key names are up or down (`keys`) only when
`failover_settings.health_endpoint.details: true`, or to a proxy admin's key. Never a key's value.
`auth: true` puts the endpoint behind the proxy's key check; `enabled: false` leaves it out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request

from . import adapter, selfcheck

if TYPE_CHECKING:
    from ..config import HealthEndpointSettings
    from .plugin import FailoverPlugin
    from .runner import FailoverRunner

HEALTH_PATH = "/failover/health"
_added = False


def add_health_route_once(plugin_of: Callable[[], FailoverPlugin], settings: HealthEndpointSettings) -> None:
    """GET /failover/health on the proxy, once per process, unless switched off."""
    global _added
    if _added or not settings.enabled:
        return
    try:
        add_health_route(plugin_of, auth=settings.auth)
    except ImportError:  # litellm used without its proxy extras
        return
    _added = True


async def route_health(runner: FailoverRunner, details: bool, only: str | None = None) -> dict[str, Any]:
    """{route: its candidates' availability}; `ok` false when none may be called. `details`:
    which keys (backend:model/key names) are callable, due a probe or unavailable, and why."""
    out: dict[str, Any] = {}
    for name, plan in runner.plans.items():
        if only is not None and name != only:
            continue
        snap = await runner._snapshot(plan.candidates)
        callable_, down = [], {}
        for c in plan.candidates:
            label = f"{c.element}/{c.key}"
            skip = snap.unavailable.get(c.deployment_id)
            if skip is None:
                callable_.append(label)
            else:
                down[label] = skip.value
        due = [f"{c.element}/{c.key}" for c in plan.candidates if c.health_id in snap.due]
        route: dict[str, Any] = {
            "ok": bool(callable_),
            "candidates": len(plan.candidates),
            "callable": len(callable_),
            "probe_due": len(due),
        }
        if details:
            route["keys"] = {"callable": callable_, "probe_due": due, "unavailable": down}
        out[name] = route
    return out


def _not_ready(plugin: FailoverPlugin) -> str | None:
    """Why this process cannot serve routes now, or None."""
    try:
        plugin.ensure_installed()
    except Exception as e:  # e.g. a config refused at install: not ready, and say why
        return f"routes not installed: {type(e).__name__}"
    if plugin.runner is None:
        return "routes not installed yet (the router is not up)"
    broken = selfcheck.broken()
    if broken is not None:
        return f"LiteLLM hook {broken[0]!r} is not doing what the plugin relies on: route requests are refused"
    return None


async def health_answer(plugin: FailoverPlugin, route: str | None = None, details: bool = False) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of GET /failover/health (`route`: of ?route=NAME)."""
    body: dict[str, Any] = {"worker": os.getpid()}
    why = _not_ready(plugin)
    if why is not None:
        return 503, {**body, "status": "unavailable", "ready": False, "reason": why}
    runner = plugin.runner
    assert runner is not None
    if route is not None and route not in runner.plans:
        error = {"message": f"no failover route {route!r}", "type": "not_found_error", "param": "route", "code": "404"}
        return 404, {**body, "error": error}
    try:
        routes = await route_health(runner, details, route)
    except Exception as e:  # the state store and LiteLLM's cooldowns are read as a request reads them
        return 503, {**body, "status": "unavailable", "ready": False, "reason": f"state not readable: {type(e).__name__}"}
    down = sorted(n for n, r in routes.items() if not r["ok"])
    ready = not down if route is not None else True
    body.update(status="ok" if ready else "unavailable", ready=ready, unavailable_routes=down, routes=routes)
    if route is not None:
        body["route"] = route
    return (200 if ready else 503), body


async def _caller_is_admin(request: Request) -> bool:
    """Whether the request carries a proxy admin's key (LiteLLM's own key check, as the admin
    API runs it); no key or a refused one: False, never an error."""
    from litellm.proxy.auth import user_api_key_auth as auth

    from .admin import is_admin

    headers = (
        auth.api_key_header,
        auth.azure_api_key_header,
        auth.anthropic_api_key_header,
        auth.google_ai_studio_api_key_header,
        auth.azure_apim_header,
        auth.custom_litellm_key_header,
    )
    values = [await h(request) for h in headers]
    if not any(values):
        return False
    with contextlib.suppress(Exception):
        return is_admin(await auth.user_api_key_auth(request, *values))
    return False


def add_health_route(plugin_of: Callable[[], FailoverPlugin], *, auth: bool) -> None:
    from fastapi import Depends
    from fastapi.responses import JSONResponse

    app, user_api_key_auth = adapter.proxy_app()

    async def failover_health(request: Request, route: str | None = None) -> JSONResponse:
        plugin = plugin_of()
        details = plugin.settings.health_endpoint.details or await _caller_is_admin(request)
        status, body = await health_answer(plugin, route, details)
        return JSONResponse(body, status_code=status)

    dependencies = [Depends(user_api_key_auth)] if auth else []
    app.add_api_route(HEALTH_PATH, failover_health, methods=["GET"], dependencies=dependencies)
