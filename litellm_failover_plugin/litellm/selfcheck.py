"""The hooks checked again on live traffic: routes are refused rather than served wrongly.

compat.check() reads LiteLLM's code at start-up; this watches what the hooks actually do with
the route requests the proxy serves. A hook that stopped doing its part would otherwise turn a
route into an ordinary shuffled model group without a word. What is watched, and what it costs:

- the pre-call hook marks each route request (a context variable, which the task that makes
  the call inherits) before it is routed; the runner looks for the mark when the router hands
  it a route request (`entered`: one lookup per route request). No mark: the pre-call hook was
  bypassed, and with it the client's input checks, queue priorities and commands.
- before each call of a route deployment the router asks its callbacks
  (CustomLogger.async_pre_call_check): a call the runner is not making (no call of the runner
  in flight to that key) went around the shadowed async_function_with_fallbacks: LiteLLM is
  choosing the deployments itself (`deployment_call`: two dict lookups per call).
- LiteLLM's Rust core (rustcore.py): each route request checks its switches (LITELLM_RUST,
  litellm.rust(True)) as the start-up did, and an attempt's response it served (its
  `x-litellm-rust` / `x-litellm-core` header) is refused (adapter.set_response_headers).
- a chat stream must come back in the stream wrapper the runner reads its first chunk from
  (`stream_unwrapped`, called by streams.supports).
- the first route request the runner serves with a 200 must have gone through the response
  headers hook by the end of its HTTP request (`request_ended`, called by clients.ClientWatch
  until that is seen once; then nothing).

A finding is logged once as an error naming the hook. From then on every route request is
answered 503 `failover_unavailable` naming the hook (the request that found it too, when it
is found before the upstream call), until the proxy runs a LiteLLM whose hooks hold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from litellm.proxy._types import ProxyException

from . import rustcore
from .clients import END_CHECKS, HEADERS_RAN, SERVED, note
from .compat import litellm_version

log = logging.getLogger("litellm_failover_plugin")

UNAVAILABLE_TYPE = "failover_unavailable"
PRE_CALL = "CustomLogger.async_pre_call_hook"
SHADOW = "Router.async_function_with_fallbacks (shadowed)"
STREAM = "stream wrapper"
HEADERS = "response headers hook"

_broken: tuple[str, str] | None = None  # (hook, what it did), once found: for the whole process
_seen: ContextVar[str | None] = ContextVar("failover_seen", default=None)  # the route the pre-call hook saw


def broken() -> tuple[str, str] | None:
    return _broken


def refusal() -> ProxyException | None:
    """The error every route request gets once a hook was found broken, else None."""
    if _broken is None:
        return None
    hook, why = _broken
    return ProxyException(
        message=(
            f"failover routes are unavailable on this proxy: LiteLLM {litellm_version()} no longer does what "
            f"the plugin relies on (hook {hook!r}: {why}). The route is not served as a plain model group; "
            "see the proxy's log"
        ),
        type=UNAVAILABLE_TYPE,
        param=None,
        code=503,
    )


def found(hook: str, why: str) -> ProxyException:
    """A hook was seen not doing its part: refuse routes from now on. The refusal to raise."""
    global _broken
    if _broken is None:
        _broken = (hook, why)
        log.error(
            "failover: LiteLLM %s hook %r is not doing what the plugin relies on: %s. Every failover route "
            "request is now refused (503 %s) instead of being served as a plain model group; run a supported "
            "LiteLLM version",
            litellm_version(),
            hook,
            why,
            UNAVAILABLE_TYPE,
        )
        END_CHECKS.clear()
    refused = refusal()
    assert refused is not None
    return refused


def reset() -> None:
    """Forget a finding (tests; a process that found one keeps it)."""
    global _broken
    _broken = None
    END_CHECKS.clear()


def watch_first_response() -> None:
    """Check, at the end of HTTP requests, that the first route response served with a 200 went
    through the response headers hook (until that is seen once)."""
    if _broken is None and request_ended not in END_CHECKS:
        END_CHECKS.append(request_ended)


def mark(route: str) -> None:
    """The pre-call hook saw this route request (in the request's task, before the call's task
    is made from it)."""
    _seen.set(route)


def entered(kwargs: Mapping[str, Any]) -> None:
    """The runner got a route request (proxy only): raise the refusal if it must not be served."""
    if _broken is not None:
        raise found(*_broken)
    rust = rustcore.problem()  # its switches can be turned on while the proxy runs
    if rust is not None:
        raise found(rustcore.HOOK, rust)
    # a LiteLLM fallback from a model_list group to a route carries the original request's metadata
    if _seen.get() is None and not kwargs.get("fallback_depth"):
        raise found(PRE_CALL, "a request for a route reached the router without passing the plugin's pre-call hook")


def deployment_call(runner: Any, deployment: Any) -> None:
    """The router is about to call `deployment` (CustomLogger.async_pre_call_check)."""
    info = deployment.get("model_info") if isinstance(deployment, dict) else None
    id = info.get("id") if isinstance(info, dict) else None
    if isinstance(info, dict) and info.get("failover_front"):  # the runner answers for a route: never called
        raise found(SHADOW, f"route {info.get('failover_route')!r} was called as a plain model group (LiteLLM chose its deployment itself)")
    candidate = runner.candidates.get(id) if isinstance(id, str) else None
    if candidate is None:  # not a route's deployment
        return
    if _broken is not None:
        raise found(*_broken)
    if runner.herd.in_flight[candidate.health_id] <= 0:  # the runner counts its calls in flight
        raise found(
            SHADOW,
            f"a call of route {candidate.route!r}'s deployment did not come from the plugin's attempt loop "
            "(LiteLLM chose the deployment itself)",
        )


def stream_unwrapped(response: Any) -> None:
    """A chat stream came back without the wrapper whose generator the runner reads."""
    found(STREAM, f"a chat stream came back as {type(response).__name__}, without the router's stream wrapper")


def headers_ran() -> None:
    if END_CHECKS:
        note(HEADERS_RAN)


def request_ended(notes: frozenset[str], status: int | None) -> None:
    if SERVED not in notes or status != 200:
        return  # not a route response, or one the proxy turned into an error: nothing to tell
    if HEADERS_RAN in notes:
        END_CHECKS.remove(request_ended)  # seen once: no more checks
        return
    found(HEADERS, "a route response went out without passing the plugin's response headers hook")
