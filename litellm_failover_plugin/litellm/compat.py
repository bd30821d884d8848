"""The start-up check: are the LiteLLM internals the plugin hooks still what it relies on?

LiteLLM promises none of them; they move between releases. Each is a `Hook` below with a check
of what adapter.py (and failure_log.py, clients.py) relies on, made by reading LiteLLM's code and
signatures. `check()` runs them all on the installed LiteLLM (install() and the proxy's start-up
call it): if one is not what the plugin expects, it raises UnsupportedLiteLLM naming the hook
and the LiteLLM version, and no route is installed. A release that moved a hook is refused,
never run with a quietly different behaviour. pyproject.toml and the README name the versions
tested (SUPPORTED).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from litellm.router import Router

from ..config import ConfigError
from . import failure_log, lookup, rustcore
from .adapter import AFTER_RETRIES, CORE_MODEL_NAMES, FALLBACKS

log = logging.getLogger("litellm_failover_plugin")

SUPPORTED = ">=1.102.4,<1.110"  # pyproject.toml's requirement; the README lists what was run
TESTED = ("1.102.4", "1.104.0", "1.106.12", "1.108.14", "1.109.3")


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


def _method(cls: type, name: str, *, is_async: bool, params: tuple[str, ...] = ()) -> str | None:
    """`cls.name`, found as Python finds it (lookup.attribute), is a method of that kind that can
    be called with the keyword arguments `params` (a parameter added with a default is no break)."""
    fn = lookup.function(cls, name)
    if fn is None:
        return f"{cls.__name__}.{name} is missing"
    if inspect.iscoroutinefunction(fn) != is_async:
        return f"{cls.__name__}.{name} is {'not ' if is_async else ''}async"
    itself = () if isinstance(lookup.attribute(cls, name)[1], staticmethod) else (None,)
    if not lookup.accepts(fn, *itself, **dict.fromkeys(params)):
        return f"{cls.__name__}.{name} cannot be called with ({', '.join(params)})"
    return None


def runs_on(router: type) -> type:
    """The class whose methods a router's calls run on: the router class itself, or the core class
    a LiteLLM 1.108+ Router facade hands its calls to (where `acompletion` is defined)."""
    owner, _ = lookup.attribute(router, "acompletion")
    return owner if owner is not None else router


def _fallbacks() -> str | None:
    """Every async router call goes through async_function_with_fallbacks(original_function=one
    attempt, model=...), a plain method an instance attribute can shadow (on the object the
    router's calls run on: install() checks the shadow is seen there, selfcheck.py on traffic)."""
    core = runs_on(Router)
    if not lookup.shadowable(core, FALLBACKS):
        return f"Router.{FALLBACKS} is not a plain method an instance attribute can shadow"
    fn = lookup.function(core, FALLBACKS)
    if not inspect.iscoroutinefunction(fn):
        return f"Router.{FALLBACKS} is not async"
    if not lookup.accepts(fn, None, model="m", original_function=None, messages=[], metadata={}):
        return f"Router.{FALLBACKS} does not take the call's keyword arguments"
    for entry in ("acompletion", "aembedding", "atext_completion"):
        src = _source(lookup.function(Router, entry))
        if FALLBACKS not in src or "original_function" not in src:
            return f"Router.{entry} no longer calls {FALLBACKS}(original_function=...)"
    sync = lookup.function(Router, "function_with_fallbacks")
    if sync is None or inspect.iscoroutinefunction(sync) or not lookup.accepts(sync, None, model="m"):
        return "Router.function_with_fallbacks is missing or no plain method taking the call's keyword arguments"
    return None


def _fallback_step() -> str | None:
    """LiteLLM's fallbacks run after a route as after any model group's retries: its own step
    `async_function_with_fallbacks_common_utils(e, ...)` picks the fallbacks, and each hop calls
    router.async_function_with_fallbacks again (the shadowed method: a hop may be a route)."""
    from litellm.router_utils import fallback_event_handlers as handlers

    lists = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
    params = ("e", "disable_fallbacks", *lists, "model_group", "args", "kwargs", "include_fallback_errors")
    problem = _method(Router, AFTER_RETRIES, is_async=True, params=params)
    if problem:
        return problem
    src = _source(lookup.function(Router, FALLBACKS))
    if not all(w in src for w in (AFTER_RETRIES, 'kwargs.pop("disable_fallbacks"')) or not all(
        re.search(rf"self\.(_core_)?{n}\b", src) for n in lists
    ):
        return f"Router.{FALLBACKS} no longer hands its error and fallback settings to {AFTER_RETRIES}"
    if not _hop_reenters(_source(getattr(handlers, "run_async_fallback", None))):
        return "run_async_fallback no longer calls router.async_function_with_fallbacks for a hop"
    return None


def _hop_reenters(hop: str) -> bool:
    """A fallback hop calls the router's async_function_with_fallbacks: directly (up to 1.106), or
    through the routing context the router hands it (1.108+: `ctx.with_fallbacks(...)`, which
    calls it on the router core, where the shadow is)."""
    if "litellm_router.async_function_with_fallbacks(" in hop:
        return True
    if "ctx.with_fallbacks(" not in hop:
        return False
    try:
        context = importlib.import_module("litellm.router_api").RoutingContext
    except (ImportError, AttributeError):
        return False
    return f"self._router.{FALLBACKS}(" in _source(lookup.function(context, "with_fallbacks"))


def _model_names() -> str | None:
    """The proxy lists model names through what adapter.model_name_methods names (the plugin hides
    its keys groups there): Router.get_model_names; on a 1.109 core, registry().names() calls
    the core's _core_get_model_names."""
    problem = _method(Router, "get_model_names", is_async=False, params=("team_id",))
    if problem or runs_on(Router) is Router:
        return problem
    try:
        registry = importlib.import_module("litellm.router_api").RouterRegistry
    except (ImportError, AttributeError):
        return "litellm.router_api has no RouterRegistry (how the proxy lists model names)"
    if f"{CORE_MODEL_NAMES}(" not in _source(lookup.function(registry, "names")):
        return f"RouterRegistry.names no longer lists model names through the core's {CORE_MODEL_NAMES}"
    return _method(runs_on(Router), CORE_MODEL_NAMES, is_async=False, params=("team_id",))


def _response_headers() -> str | None:
    return _method(
        Router, "set_response_headers", is_async=True, params=("response", "model_group", "request_kwargs")
    )


def _stream_wrapper() -> str | None:
    """A routed stream is Router._acompletion_streaming_iterator's wrapper; its chunks come from
    `_async_generator`, which adapter.first_chunk_or_raise reads and puts back."""
    src = _source(lookup.function(Router, "_acompletion_streaming_iterator"))
    if not src:
        return "Router._acompletion_streaming_iterator is missing"
    if "self._async_generator = async_generator" not in src or "self._async_generator.__anext__()" not in src:
        return "the stream wrapper of Router._acompletion_streaming_iterator no longer reads self._async_generator"
    if "model_response: CustomStreamWrapper" not in src:
        return "Router._acompletion_streaming_iterator no longer takes model_response (read by inner_stream)"
    return None


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
    if name not in _source(lookup.function(ProxyLogging, "post_call_response_headers_hook")):
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


def _app_middleware() -> str | None:
    """clients.watch_clients wraps the proxy app's built middleware stack."""
    from litellm.proxy import proxy_server

    from .clients import check_app

    return check_app(proxy_server.app)


HOOKS = (
    Hook("Router.async_function_with_fallbacks (shadowed)", False, _fallbacks),
    Hook("Router.async_function_with_fallbacks_common_utils (fallbacks after a route)", False, _fallback_step),
    Hook("Router.set_response_headers", False, _response_headers),
    Hook("model names (keys groups hidden)", False, _model_names),
    Hook("stream wrapper", False, _stream_wrapper),
    Hook("cooldown cache", False, _cooldown_cache),
    Hook("CustomLogger.async_pre_call_hook", True, _pre_call_hook),
    Hook("response headers hook", True, _headers_hook),
    Hook("proxy globals", True, _proxy_globals),
    Hook("disconnect handling", True, _disconnects),
    Hook("proxy app middleware", True, _app_middleware),
    Hook("failure logging (deferred while an attempt falls over)", False, failure_log.check),
    Hook(rustcore.HOOK, False, rustcore.problem),
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
