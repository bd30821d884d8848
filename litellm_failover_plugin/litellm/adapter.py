"""The plugin's only use of LiteLLM internals at run time, in one place.

Shadowing the router's fallback method and handing a failed route to LiteLLM's own fallback
step, the response headers, a stream wrapper's first chunk, the cooldown cache, the proxy's
globals and its disconnect handling, the embedding client; failure_log.py, the other one, defers
the failure logging of an attempt the plugin falls over from. LiteLLM promises none of these:
compat.py checks each of them on the installed LiteLLM before any route is installed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import openai
from litellm.router import Router

from . import rustcore
from .clients import END_CHECKS, SERVED, note

log = logging.getLogger("litellm_failover_plugin")

FALLBACKS = "async_function_with_fallbacks"  # the Router method every async call goes through
AFTER_RETRIES = "async_function_with_fallbacks_common_utils"  # its fallback step, after its retries

# Router-level retry and fallback settings: a route attempt is exactly one upstream call.
ROUTER_ONLY_KWARGS = (
    "original_function",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "num_retries",
    "model_group_retry_policy",
    "disable_fallbacks",
    "include_fallback_errors",
)


# --- the router ----------------------------------------------------------------------------


def calls_run_on(router: Router) -> Any:
    """The object whose methods serve this router's calls: the router itself, or the core object
    a LiteLLM 1.108+ Router facade hands every call to (`self` of its bound `acompletion`)."""
    return getattr(router.acompletion, "__self__", router)


def shadow_fallbacks(router: Router, runner: Any) -> str | None:
    """Route every async call of this router instance through `runner`. An instance attribute set
    on the router (a 1.108+ facade passes it on to its core) shadows the method for the object the
    calls run on. Returns what went wrong (the shadow undone) if that object does not see it."""
    setattr(router, FALLBACKS, runner)
    core = calls_run_on(router)
    if getattr(core, FALLBACKS, None) is runner:
        return None
    unshadow(router)
    return f"the object {type(core).__name__} the router's calls run on does not see a shadowed {FALLBACKS}"


def shadowing(router: Any) -> Any:
    """What shadows the router's fallback method on this instance, or None."""
    return getattr(router, "__dict__", {}).get(FALLBACKS)


def unshadow(router: Router) -> None:
    """Undo shadow_fallbacks (on a facade, its core's shadow too: `del` goes through to it)."""
    if FALLBACKS in vars(router):
        delattr(router, FALLBACKS)


def model_name_methods(router: Router) -> list[str]:
    """The router methods the proxy lists model names with (/v1/models, its model checks), where
    the plugin hides its keys groups: `get_model_names`; on 1.109 /v1/models reads
    `registry().names()`, which calls the core's `_core_get_model_names` (compat.py checks it)."""
    core = calls_run_on(router)
    return ["get_model_names"] + ([CORE_MODEL_NAMES] if core is not router and hasattr(core, CORE_MODEL_NAMES) else [])


CORE_MODEL_NAMES = "_core_get_model_names"


async def fallbacks_after(router: Router, error: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What Router.async_function_with_fallbacks does once its retries failed with `error`: LiteLLM's
    own fallback rules pick the next model groups (or re-raise `error`). `kwargs`: the call's, as
    the route got them (router-only settings included)."""
    disable = kwargs.pop("disable_fallbacks", False)
    kwargs.pop("mock_timeout", None)
    return await getattr(router, AFTER_RETRIES)(
        e=error,
        disable_fallbacks=disable,
        fallbacks=kwargs.get("fallbacks", router.fallbacks),
        context_window_fallbacks=kwargs.get("context_window_fallbacks", router.context_window_fallbacks),
        content_policy_fallbacks=kwargs.get("content_policy_fallbacks", router.content_policy_fallbacks),
        model_group=kwargs.get("model"),
        args=args,
        kwargs=kwargs,
        include_fallback_errors=kwargs.get("include_fallback_errors", False) is True,
    )


# a hop that picks again inside the group that just failed: weighted failover, order-based fallbacks
_REPICK_KWARGS = ("_excluded_deployment_ids", "_target_order")


def repicks(kwargs: dict[str, Any]) -> bool:
    """Whether LiteLLM's fallback hop is another pick inside the same group (for a route: its
    walk already tried every candidate, so it gets `walked_already`)."""
    return any(kwargs.get(name) is not None for name in _REPICK_KWARGS)


def walked_already(route: str) -> Exception:
    """An APIError: LiteLLM's weighted failover then goes on to the regular fallbacks."""
    from litellm.exceptions import ServiceUnavailableError

    return ServiceUnavailableError(
        message=f"failover route {route!r} already tried every candidate for this request", model=route, llm_provider=""
    )


async def set_response_headers(router: Router, response: Any, model_group: str, request_kwargs: dict[str, Any]) -> Any:
    """LiteLLM's response headers on an attempt's response. An attempt LiteLLM's Rust core served
    (rustcore.py) went without the plugin's hooks: the request is refused instead (selfcheck)."""
    rust = rustcore.served_by(response)
    if rust is not None:
        from . import selfcheck

        raise selfcheck.found(rustcore.HOOK, f"route {model_group!r} got a response from LiteLLM's Rust core ({rust})")
    if END_CHECKS:  # the first route response is checked (selfcheck.py)
        note(SERVED)
    return await router.set_response_headers(response=response, model_group=model_group, request_kwargs=request_kwargs)


@functools.cache
def _eof_message() -> str | None:
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    eof = getattr(CustomStreamWrapper, "_stream_eof_error", None)
    try:
        return str(eof()) if callable(eof) else None
    except Exception:
        return None


def ended_unfinished(exc: BaseException) -> bool:
    """Whether a stream's error is LiteLLM saying the upstream ended without a finish_reason:
    1.109 raises it (an APIConnectionError around CustomStreamWrapper._stream_eof_error()) where
    earlier releases made a finish chunk up (streams.py tells those apart by inner_stream)."""
    message = _eof_message()
    if not message:
        return False
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        if message in str(e):
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "original_exception", None)]
    return False


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item


async def first_chunk_or_raise(response: Any) -> Any:
    """Wait for a stream's first chunk, so an error before it can still fail over.

    The router hands back a wrapper whose `_async_generator` yields the chunks; the first one
    is read here and put back in front, so the client sees the whole stream.
    """
    gen = getattr(response, "_async_generator", None)
    if gen is None:
        return response
    try:
        first = await gen.__anext__()
    except StopAsyncIteration:
        return response
    except BaseException:
        await gen.aclose()
        raise
    response._async_generator = _prepend(first, gen)
    return response


def inner_stream(gen: Any) -> Any:
    """LiteLLM's CustomStreamWrapper underneath a routed stream's generator (it knows whether
    the upstream sent a finish_reason), read from the generator's frame: compat.py checks at
    start-up that the function holds it as `model_response`. None when not visible."""
    frame = getattr(gen, "ag_frame", None)
    inner = frame.f_locals.get("model_response") if frame is not None else None
    return inner if hasattr(inner, "received_finish_reason") else None


async def active_cooldowns(router: Router, ids: list[str]) -> dict[str, tuple[float, float, int | None]]:
    """LiteLLM's active cooldowns among `ids`: id -> (when it began and when it ends, in epoch
    seconds; the HTTP status that caused it, None when unknown). With LiteLLM's Redis, what
    another process set reaches this one's memory within a second, and stays there."""
    cache: Any = router.cooldown_cache  # (1.109 types it through a deprecation descriptor)
    cooling = await cache.async_get_active_cooldowns(model_ids=ids, parent_otel_span=None)
    return {i: (t := float(v["timestamp"]), t + float(v["cooldown_time"]), _status(v.get("status_code"))) for i, v in cooling}


def _status(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


async def clear_cooldown(router: Router, id: str) -> None:
    cache: Any = router.cooldown_cache
    await cache.cooldown_store.async_delete_cache(cache.get_cooldown_cache_key(id))


# --- the proxy -----------------------------------------------------------------------------


def live_router() -> Router | None:
    from litellm.proxy import proxy_server

    return proxy_server.llm_router


def proxy_config_path() -> str | None:
    from litellm.proxy import proxy_server

    path = proxy_server.user_config_file_path
    return str(path) if path else None


def proxy_app() -> tuple[Any, Any]:
    """The proxy's FastAPI app and its key check (a route dependency)."""
    from litellm.proxy.auth.user_api_key_auth import user_api_key_auth
    from litellm.proxy.proxy_server import app

    return app, user_api_key_auth


def prometheus_callback_on() -> bool:
    """Whether LiteLLM's `prometheus` callback is configured (it serves /metrics from the default
    prometheus_client registry), by name or as its logger instance."""
    import litellm

    lists = ("callbacks", "success_callback", "_async_success_callback", "failure_callback", "_async_failure_callback")
    for name in lists:
        for cb in getattr(litellm, name, None) or []:
            if cb == "prometheus" or type(cb).__name__ == "PrometheusLogger":
                return True
    return False


def watch_clients() -> None:
    """Know, at a queued request's turn, whether its client is still there (clients.py)."""
    from litellm.proxy.proxy_server import app

    from .clients import watch_clients as watch

    watch(app)


_refused_warned = False


def cancel_on_disconnect() -> bool:
    """Make the proxy cancel a request's call when its client disconnects, so a queued request
    whose client left leaves the queue. True when it is on.

    general_settings is a dict on some releases and a settings store on others (which keeps
    runtime values apart from the config file's, and may drop them on a reload: so this is
    called again on every routed request). An operator's explicit `cancel_on_disconnect: false`
    in config.yaml stands, with a warning.
    """
    global _refused_warned
    from litellm.proxy import proxy_server

    settings = proxy_server.general_settings
    current = settings.get("cancel_on_disconnect")
    if current is True:
        return True
    if current is False:
        if not _refused_warned:
            _refused_warned = True
            log.warning(
                "failover queue: general_settings.cancel_on_disconnect is false in the proxy's config, so a "
                "queued request whose client disconnects stays queued until it is served or times out"
            )
        return False
    settings["cancel_on_disconnect"] = True
    log.info("failover queue: turned on general_settings.cancel_on_disconnect (a client that leaves, leaves the queue)")
    return True


# --- embeddings: one attempt, one call ---------------------------------------------------------


class _NoRetryOpenAI(openai.AsyncOpenAI):
    """An OpenAI client that never retries, whatever is set on it later."""

    @property  # type: ignore[override,unused-ignore]
    def max_retries(self) -> int:
        return 0

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        pass  # LiteLLM's embedding handler sets `max_retries or 2` on the client it is given


_embedding_clients: dict[str, tuple[tuple[Any, ...], openai.AsyncOpenAI]] = {}


def embedding_client(router: Router, deployment_id: str) -> openai.AsyncOpenAI | None:
    """The client for one route deployment's embedding calls, or None to leave LiteLLM's.

    LiteLLM's OpenAI embedding handler turns a deployment's `max_retries: 0` into its default of
    2 (`max_retries or DEFAULT_MAX_RETRIES`), so a failing attempt would cost three upstream
    calls; a client that cannot be told to retry keeps it at one. OpenAI-style providers only."""
    deployment = router.get_deployment(model_id=deployment_id)
    if deployment is None:
        return None
    p = deployment.litellm_params
    if not str(p.model).startswith("openai/"):
        return None
    api_key = p.api_key
    timeout = p.timeout if isinstance(p.timeout, (int, float)) else None
    identity = (api_key, p.api_base, timeout, p.organization)
    cached = _embedding_clients.get(deployment_id)
    if cached is not None and cached[0] == identity:
        return cached[1]
    client = _NoRetryOpenAI(
        api_key=api_key or "none", base_url=p.api_base, organization=p.organization, timeout=timeout or 600.0, max_retries=0
    )
    _embedding_clients[deployment_id] = (identity, client)
    return client
