"""GET /failover/health: is every route servable right now? For load balancers and readiness probes.

    200  every route has at least one callable candidate
    503  some route has none (each named), or the routes are not installed yet

A candidate is callable when its breaker is closed (or due its probe) and LiteLLM has not cooled
it down: the same reading a request makes before its walk (runner._snapshot), so the answer and
the next request agree. A route with no elements has no candidate, so it is never servable.

No key check by default (a load balancer has no key): the answer names routes, backends, models
and key names, never a key's value. `failover_settings.health_endpoint: {auth: true}` puts it
behind the proxy's key check; `enabled: false` leaves it out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import adapter

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


async def route_health(runner: FailoverRunner) -> dict[str, Any]:
    """{route: its candidates' availability}; `ok` false when none may be called."""
    out: dict[str, Any] = {}
    for name, plan in runner.plans.items():
        snap = await runner._snapshot(plan.candidates)
        callable_, down = [], {}
        for c in plan.candidates:
            label = f"{c.element}/{c.key}"
            skip = snap.unavailable.get(c.deployment_id)
            if skip is None:
                callable_.append(label)
            else:
                down[label] = skip.value
        out[name] = {
            "ok": bool(callable_),
            "candidates": len(plan.candidates),
            "callable": callable_,
            "probe_due": [f"{c.element}/{c.key}" for c in plan.candidates if c.health_id in snap.due],
            "unavailable": down,
        }
    return out


async def health_answer(plugin: FailoverPlugin) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of GET /failover/health."""
    body: dict[str, Any] = {"worker": os.getpid()}
    try:
        plugin.ensure_installed()
    except Exception as e:  # e.g. a config refused at install: not ready, and say why
        return 503, {**body, "status": "unavailable", "reason": f"routes not installed: {type(e).__name__}"}
    runner = plugin.runner
    if runner is None:
        return 503, {**body, "status": "unavailable", "reason": "routes not installed yet (the router is not up)"}
    try:
        routes = await route_health(runner)
    except Exception as e:
        return 503, {**body, "status": "unavailable", "reason": f"state not readable: {type(e).__name__}"}
    down = sorted(n for n, r in routes.items() if not r["ok"])
    body.update(status="unavailable" if down else "ok", unavailable_routes=down, routes=routes)
    return (503 if down else 200), body


def add_health_route(plugin_of: Callable[[], FailoverPlugin], *, auth: bool) -> None:
    from fastapi import Depends
    from fastapi.responses import JSONResponse

    app, user_api_key_auth = adapter.proxy_app()

    async def failover_health() -> JSONResponse:
        status, body = await health_answer(plugin_of())
        return JSONResponse(body, status_code=status)

    dependencies = [Depends(user_api_key_auth)] if auth else []
    app.add_api_route(HEALTH_PATH, failover_health, methods=["GET"], dependencies=dependencies)
