"""LiteLLM's fallbacks around routes.

A route as the source: when its walk gives up (every candidate tried or skipped, the retry
budget, the queue's limit) or hands back an error as is, LiteLLM's own fallback step runs, as
it does after an ordinary model group's retries (adapter.fallbacks_after): router-level
`fallbacks`, `context_window_fallbacks`, `content_policy_fallbacks`, the request's own, `"*"`,
`disable_fallbacks` and `max_fallbacks` mean what they mean to LiteLLM. Each hop is an ordinary
router call; a hop that is a route walks that route (a route as the target).

While a route's fallbacks run, each hop is noted (`observed`, through a context variable: the
hops run inside the route's call) so the client learns what happened: the route's x-failover-*
headers still describe its own attempts, and x-failover-fallback names the model group that
served, x-failover-fallback-failed those that failed too. When none served, the client gets the
route's own error (LiteLLM re-raises it), which says which fallbacks failed as well.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable
from typing import Any, TypeVar

from litellm.router import Router

from ..fallback_trace import FallbackTrace
from . import adapter
from .translate import HEADER_PREFIX, METADATA_KEY

T = TypeVar("T")

_TRACE: contextvars.ContextVar[FallbackTrace | None] = contextvars.ContextVar("failover_fallback_trace", default=None)


async def observed(model: str, call: Awaitable[T]) -> T:
    """Await one router call; when it is a hop of a route's fallbacks, note how it ended."""
    trace = _TRACE.get()
    if trace is None:
        return await call
    hop = trace.start(model)
    try:
        response = await call
    except Exception as e:
        hop.ok, hop.status = False, _status(e)
        raise
    hop.ok = True
    return response


async def after_route(router: Router, error: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """LiteLLM's fallbacks for a route that failed with `error`: the response of the fallback that
    served, or `error` raised again (with what was tried) when none did. `kwargs`: the call's as
    the route got them."""
    outer = _TRACE.get()  # a route that is itself a hop: its hops belong to the first route's trace
    trace = outer if outer is not None else FallbackTrace()
    token = _TRACE.set(trace) if outer is None else None
    try:
        response = await adapter.fallbacks_after(router, error, args, kwargs)
    except Exception as e:
        if outer is None and e is error and trace.hops:
            _failed_too(error, trace, kwargs)
        raise
    finally:
        if token is not None:
            _TRACE.reset(token)
    if outer is None:
        _served_by_fallback(response, error, trace, kwargs)
    return response


def _route_headers(error: Exception) -> dict[str, str]:
    """The x-failover-* headers the route's error carries (its attempts; no Retry-After)."""
    headers = getattr(error, "failover_headers", None) or getattr(error, "headers", None) or {}
    return {k: str(v) for k, v in dict(headers).items() if k.startswith(HEADER_PREFIX)}


def _note(kwargs: dict[str, Any], headers: dict[str, str], trace: FallbackTrace) -> None:
    """Leave the fallbacks beside the route's attempts in the request's metadata (the proxy's
    response headers hook reads the headers there)."""
    for bucket in ("metadata", "litellm_metadata"):
        md = kwargs.get(bucket)
        if not isinstance(md, dict):
            continue
        info = md.get(METADATA_KEY)
        info = dict(info) if isinstance(info, dict) else {}
        info["headers"] = {**(info.get("headers") or {}), **headers}
        info["fallback"] = trace.to_dict()
        md[METADATA_KEY] = info


def _served_by_fallback(response: Any, error: Exception, trace: FallbackTrace, kwargs: dict[str, Any]) -> None:
    headers = {**_route_headers(error), **trace.headers()}
    _note(kwargs, headers, trace)
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):  # for callers without the proxy: the route's view wins over a hop's
        hidden["additional_headers"] = {**(hidden.get("additional_headers") or {}), **headers}


def _failed_too(error: Exception, trace: FallbackTrace, kwargs: dict[str, Any]) -> None:
    """The route's error, as it goes back: it also names the fallbacks that failed."""
    extra = trace.headers()
    _note(kwargs, {**_route_headers(error), **extra}, trace)
    for name in ("failover_headers", "headers"):
        headers = getattr(error, name, None)
        if isinstance(headers, dict):
            headers.update(extra)
    message = getattr(error, "message", None)
    if isinstance(message, str):
        error.message = f"{message}; LiteLLM fallbacks failed too: {trace.summary()}"  # type: ignore[attr-defined]


def _status(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None
