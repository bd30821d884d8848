"""The LiteLLM internals the plugin hooks, in one place, checked before any route is installed.

LiteLLM promises none of these; they move between releases. Each is a `Hook` below with a check
of what this code relies on. `check()` runs them all on the installed LiteLLM (install() and
the proxy's start-up call it): if one is not what the plugin expects, it raises
UnsupportedLiteLLM naming the hook and the LiteLLM version, and no route is installed. A release
that moved a hook is refused, never run with a quietly different behaviour.

The rest of this module is the plugin's only use of those internals: shadowing the router's
fallback method, the stream wrapper's first chunk, the cooldown cache, the proxy's globals and
its disconnect handling. pyproject.toml and the README name the versions tested (SUPPORTED).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import openai
from litellm.router import Router

from ..config import ConfigError

log = logging.getLogger("litellm_failover_plugin")

SUPPORTED = ">=1.102.4,<1.107"  # pyproject.toml's requirement; the README lists what was run
TESTED = ("1.102.4", "1.104.0", "1.106.12")
FALLBACKS = "async_function_with_fallbacks"  # the Router method every async call goes through

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


def litellm_version() -> str:
    return version("litellm")


class UnsupportedLiteLLM(ConfigError):
    """A hook of the installed LiteLLM is not what the plugin relies on: routes are refused."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"hook {name!r}: {why}" for name, why in problems)
        super().__init__(
            f"litellm_failover_plugin does not support LiteLLM {litellm_version()} "
            f"(supported: litellm{SUPPORTED}; tested: {', '.join(TESTED)}): {lines}. "
            "No failover route is installed; install a supported LiteLLM version"
        )


@dataclass(frozen=True)
class Hook:
    name: str
    proxy_only: bool
    check: Callable[[], str | None]  # None when the hook is as expected, else what differs


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _params(fn: Any) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _method(cls: type, name: str, *, is_async: bool, params: tuple[str, ...] = ()) -> str | None:
    fn = inspect.getattr_static(cls, name, None)
    if isinstance(fn, (staticmethod, classmethod)):
        fn = fn.__func__
    if fn is None or not callable(fn):
        return f"{cls.__name__}.{name} is missing"
    fn = inspect.unwrap(fn)
    if inspect.iscoroutinefunction(fn) != is_async:
        return f"{cls.__name__}.{name} is {'not ' if is_async else ''}async"
    missing = [p for p in params if p not in _params(fn)]
    if missing:
        return f"{cls.__name__}.{name} takes no {', '.join(missing)}"
    return None


def _fallbacks() -> str | None:
    """Every async router call goes through async_function_with_fallbacks(original_function=one
    attempt, model=...), a plain method an instance attribute can shadow."""
    router = Router
    if FALLBACKS in getattr(router, "__slots__", ()) or not inspect.isfunction(inspect.getattr_static(router, FALLBACKS, None)):
        return f"Router.{FALLBACKS} is not a plain method an instance attribute can shadow"
    problem = _method(router, FALLBACKS, is_async=True, params=("kwargs",))
    if problem:
        return problem
    for entry in ("acompletion", "aembedding", "atext_completion"):
        src = _source(getattr(router, entry, None))
        if FALLBACKS not in src or "original_function" not in src:
            return f"Router.{entry} no longer calls {FALLBACKS}(original_function=...)"
    return _method(router, "function_with_fallbacks", is_async=False, params=("kwargs",))


def _response_headers() -> str | None:
    return _method(
        Router, "set_response_headers", is_async=True, params=("response", "model_group", "request_kwargs")
    )


def _stream_wrapper() -> str | None:
    """A routed stream is Router._acompletion_streaming_iterator's wrapper; its chunks come from
    `_async_generator`, which first_chunk_or_raise reads and puts back."""
    src = _source(getattr(Router, "_acompletion_streaming_iterator", None))
    if not src:
        return "Router._acompletion_streaming_iterator is missing"
    if "self._async_generator = async_generator" not in src or "self._async_generator.__anext__()" not in src:
        return "the stream wrapper of Router._acompletion_streaming_iterator no longer reads self._async_generator"
    if "model_response: CustomStreamWrapper" not in src:
        return "Router._acompletion_streaming_iterator no longer takes model_response (read by inner_stream)"
    return None


def inner_stream(gen: Any) -> Any:
    """LiteLLM's CustomStreamWrapper underneath a routed stream's generator (it knows whether
    the upstream sent a finish_reason), read from the generator's frame: `_stream_wrapper`
    checks at start-up that the function holds it as `model_response`. None when not visible."""
    frame = getattr(gen, "ag_frame", None)
    inner = frame.f_locals.get("model_response") if frame is not None else None
    return inner if hasattr(inner, "received_finish_reason") else None


def _cooldown_cache() -> str | None:
    from litellm.router_utils import cooldown_cache

    cls = cooldown_cache.CooldownCache
    problem = _method(cls, "async_get_active_cooldowns", is_async=True, params=("model_ids", "parent_otel_span"))
    problem = problem or _method(cls, "get_cooldown_cache_key", is_async=False, params=("model_id",))
    if problem:
        return problem
    fields = getattr(cooldown_cache, "CooldownCacheValue", None)
    if not {"timestamp", "cooldown_time"} <= set(getattr(fields, "__annotations__", {})):
        return "CooldownCacheValue has no timestamp and cooldown_time"
    if "cooldown_store" not in _source(cls):
        return "CooldownCache has no cooldown_store"
    return None


def _pre_call_hook() -> str | None:
    from litellm.integrations.custom_logger import CustomLogger

    return _method(
        CustomLogger, "async_pre_call_hook", is_async=True, params=("user_api_key_dict", "cache", "data", "call_type")
    )


def _headers_hook() -> str | None:
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.proxy.utils import ProxyLogging

    name = "async_post_call_response_headers_hook"
    problem = _method(CustomLogger, name, is_async=True, params=("data", "user_api_key_dict", "response"))
    if problem:
        return problem
    if name not in _source(getattr(ProxyLogging, "post_call_response_headers_hook", None)):
        return f"ProxyLogging.post_call_response_headers_hook no longer calls {name}"
    return None


def _proxy_globals() -> str | None:
    from litellm.proxy import proxy_server

    missing = [
        name
        for name in ("llm_router", "user_config_file_path", "general_settings", "app", "user_api_key_auth")
        if not hasattr(proxy_server, name)
    ]
    if missing:
        return f"litellm.proxy.proxy_server has no {', '.join(missing)}"
    if not isinstance(proxy_server.general_settings, MutableMapping):
        return f"proxy_server.general_settings is a {type(proxy_server.general_settings).__name__}, not a mapping"
    return None


def _disconnects() -> str | None:
    """A queued request whose client left is cancelled only if the proxy cancels the call's task
    on disconnect, which it does under general_settings.cancel_on_disconnect."""
    from litellm.proxy import common_request_processing as crp

    if not hasattr(crp, "_await_llm_call_cancelling_on_disconnect"):
        return "common_request_processing has no _await_llm_call_cancelling_on_disconnect"
    processing = getattr(crp, "ProxyBaseLLMRequestProcessing", object)
    for fn in vars(processing).values():
        src = _source(fn) if inspect.isfunction(fn) else ""
        if 'general_settings.get("cancel_on_disconnect"' in src and "_await_llm_call_cancelling_on_disconnect" in src:
            return None
    return "the proxy no longer cancels a request's call on disconnect under general_settings.cancel_on_disconnect"


HOOKS = (
    Hook("Router.async_function_with_fallbacks (shadowed)", False, _fallbacks),
    Hook("Router.set_response_headers", False, _response_headers),
    Hook("stream wrapper", False, _stream_wrapper),
    Hook("cooldown cache", False, _cooldown_cache),
    Hook("CustomLogger.async_pre_call_hook", True, _pre_call_hook),
    Hook("response headers hook", True, _headers_hook),
    Hook("proxy globals", True, _proxy_globals),
    Hook("disconnect handling", True, _disconnects),
)


def problems(*, proxy: bool) -> list[tuple[str, str]]:
    """(hook, what differs) for every hook that is not what the plugin expects."""
    found = []
    for hook in HOOKS:
        if hook.proxy_only and not proxy:
            continue
        try:
            why = hook.check()
        except Exception as e:  # an import or attribute that moved is the same finding
            why = f"{type(e).__name__}: {e}"
        if why is not None:
            found.append((hook.name, why))
    return found


@functools.cache
def _checked(proxy: bool) -> tuple[tuple[str, str], ...]:
    return tuple(problems(proxy=proxy))


def check(*, proxy: bool = False) -> None:
    """Raise UnsupportedLiteLLM unless every hook (with `proxy`, the proxy's too) is as expected.
    Checked once per process."""
    found = _checked(proxy)
    if found:
        raise UnsupportedLiteLLM(list(found))
    if proxy:
        log.info("failover: LiteLLM %s hooks checked (supported: %s)", litellm_version(), SUPPORTED)


# --- the router ----------------------------------------------------------------------------


def shadow_fallbacks(router: Router, runner: Any) -> None:
    """Route every async call of this router instance through `runner`."""
    setattr(router, FALLBACKS, runner)


def shadowing(router: Any) -> Any:
    """What shadows the router's fallback method on this instance, or None."""
    return getattr(router, "__dict__", {}).get(FALLBACKS)


def unshadow(router: Router) -> None:
    router.__dict__.pop(FALLBACKS, None)


async def set_response_headers(router: Router, response: Any, model_group: str, request_kwargs: dict[str, Any]) -> Any:
    return await router.set_response_headers(response=response, model_group=model_group, request_kwargs=request_kwargs)


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


async def active_cooldowns(router: Router, ids: list[str]) -> dict[str, tuple[float, int | None]]:
    """LiteLLM's active cooldowns among `ids`: id -> (when it ends, in epoch seconds; the HTTP
    status that caused it, None when unknown)."""
    cooling = await router.cooldown_cache.async_get_active_cooldowns(model_ids=ids, parent_otel_span=None)
    return {i: (float(v["timestamp"]) + float(v["cooldown_time"]), _status(v.get("status_code"))) for i, v in cooling}


def _status(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


async def clear_cooldown(router: Router, id: str) -> None:
    cache = router.cooldown_cache
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
