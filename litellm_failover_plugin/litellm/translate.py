"""LiteLLM's values into ours and back: exceptions -> Failure, routes -> deployments, headers."""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import litellm
import openai
import pydantic
from litellm import constants as litellm_constants
from litellm import exceptions as llm_errors

from ..conditions import Failure, Kind
from ..config import FailoverSettings
from ..routing import Candidate, RoutePlan, front_id, keys_group
from ..streaming import StreamFailed

_QUOTA = re.compile(r"quota|billing|insufficient_quota|credit balance|exceeded your current", re.I)
_REASON_LIMIT = 160

HEADER_PREFIX = "x-failover-"
METADATA_KEY = "failover"  # where a request's metadata carries what the plugin did (headers, attempts)


class Redactor:
    """Replaces every configured API key value in a text with '***'."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first, so a key that contains another is replaced whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        # whole tokens only: a short key ("x") must not garble words that contain it
        alternatives = "|".join(re.escape(s) for s in self._secrets)
        self._pattern = re.compile(rf"(?<![\w\-])(?:{alternatives})(?![\w\-])") if alternatives else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub("***", text) if self._pattern is not None else text

    @classmethod
    def for_settings(cls, settings: FailoverSettings, also: Redactor | None = None) -> Redactor:
        keys = [k.get_secret_value() for b in settings.backends.values() for k in b.api_keys.values()]
        return cls([*keys, *(also._secrets if also is not None else [])])


def _retry_after(exc: BaseException) -> float | None:
    """The upstream's Retry-After (or retry-after-ms) in seconds; None when absent or unusable."""
    headers: Mapping[str, Any] | None = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    seconds: float | None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            seconds = float(ms) / 1000.0
        else:
            value = headers.get("retry-after")
            if value is None:
                return None
            seconds = _seconds(str(value))
    except (TypeError, ValueError, OverflowError):
        return None  # garbage: the breaker's own cooldown applies
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _seconds(value: str) -> float | None:
    """Retry-After is delta-seconds or an HTTP date."""
    value = value.strip()
    with contextlib.suppress(ValueError):  # not a number: maybe a date
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


_TIMEOUTS = (llm_errors.Timeout, openai.APITimeoutError, httpx.TimeoutException, TimeoutError)
_TRANSPORT = (httpx.TransportError, OSError)  # aiohttp's connection errors are OSErrors too
# Python errors LiteLLM raises while it builds a request from what the client sent; a response
# that cannot be parsed (JSON, pydantic) is the upstream's doing and is not among them
_BUILDING = (TypeError, ValueError, KeyError, AttributeError, IndexError)
_PARSING = (json.JSONDecodeError, pydantic.ValidationError)


def _chain(exc: BaseException, limit: int = 10) -> list[BaseException]:
    """The exception and what caused it: LiteLLM wraps a refused connection in a 500."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < limit:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "original_exception", None)]
    return seen


def _never_sent(chain: list[BaseException]) -> bool:
    """LiteLLM wrapped a Python error of its own request building (e.g. `messages: "hi"`)."""
    return any(isinstance(e, _BUILDING) and not isinstance(e, _PARSING) for e in chain)


def classify(exc: BaseException, redact: Redactor) -> Failure:
    """What kind of failure an exception from one upstream attempt is."""
    if isinstance(exc, StreamFailed):  # a stream that broke, stalled or came back empty
        return exc.failure
    if isinstance(exc, llm_errors.MidStreamFallbackError) and exc.original_exception is not None:
        exc = exc.original_exception
    message = str(getattr(exc, "message", None) or exc)
    reason = redact(" ".join(message.split()))[:_REASON_LIMIT]
    chain = _chain(exc)
    # a timeout is also an APIConnectionError to openai: look for timeouts first
    if any(isinstance(e, _TIMEOUTS) for e in chain):
        return Failure(None, Kind.TIMEOUT, reason)
    if any(isinstance(e, _TRANSPORT) for e in chain):
        return Failure(None, Kind.NETWORK, reason)
    if isinstance(exc, llm_errors.APIConnectionError) and _never_sent(chain):
        return Failure(None, None, reason, local=True)
    if any(isinstance(e, openai.APIConnectionError) for e in chain):
        return Failure(None, Kind.NETWORK, reason)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        return Failure(None, None, reason)
    quota = status in (402, 403, 429) and bool(_QUOTA.search(message))
    return Failure(status, Kind.QUOTA if quota else None, reason, _retry_after(exc))


def check_providers(settings: FailoverSettings) -> None:
    """Every backend's provider is one LiteLLM knows; else ConfigError naming the field."""
    from ..config import ConfigError

    known = {str(getattr(p, "value", p)) for p in litellm.provider_list}
    bad = [
        f"failover_settings.backends.{name}.provider: unknown LiteLLM provider {b.provider!r} (e.g. openai, azure, anthropic)"
        for name, b in settings.backends.items()
        if b.provider not in known
    ]
    if bad:
        raise ConfigError("invalid failover_settings:\n  " + "\n  ".join(bad))


def build_deployments(settings: FailoverSettings, plans: Mapping[str, RoutePlan]) -> list[dict[str, Any]]:
    """Per route: its front deployment under the route's name (never called: the runner answers
    for the route), then one deployment per (backend:model, key) in the plan, with a stable id,
    in the route's keys group (routing.front_id, routing.keys_group)."""
    deployments = []
    for plan in plans.values():
        keys = _key_deployments(settings, plan)
        # a call that reached the front went around the runner: selfcheck refuses it before it is made
        params: dict[str, Any] = {"model": "openai/failover-route", "mock_response": "", "api_key": "none"}
        guardrails = _union(d["litellm_params"].get("guardrails") for d in keys)
        if guardrails:  # the proxy applies a model's guardrails before routing: every key's, as before
            params["guardrails"] = guardrails
        front = {"model_name": plan.name, "litellm_params": params}
        front["model_info"] = {"id": front_id(plan.name), "failover_route": plan.name, "failover_front": True}
        deployments += [front, *keys]
    return deployments


def _union(lists: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for items in lists:
        for item in [items] if isinstance(items, str) else items if isinstance(items, list) else []:
            if item not in out:
                out.append(item)
    return out


def _key_deployments(settings: FailoverSettings, plan: RoutePlan) -> list[dict[str, Any]]:
    route = settings.routes[plan.name]
    deployments = []
    for c in plan.candidates:
        backend = settings.backends[c.backend]
        params: dict[str, Any] = {"model": f"{backend.provider}/{c.model}"}
        if backend.api_base:
            params["api_base"] = backend.api_base
        params.update(backend.litellm_params)
        params.update(route.elements[c.element_index].litellm_params)
        endpoint = backend.key_endpoints.get(c.key)
        if endpoint is not None:  # this key's own endpoint (Azure regions): it wins
            if endpoint.api_base:
                params["api_base"] = endpoint.api_base
            if endpoint.api_version:
                params["api_version"] = endpoint.api_version
            params.update(endpoint.litellm_params)
        # one attempt is one upstream call: no SDK retries, no litellm retries inside it
        params["max_retries"] = 0
        params.pop("num_retries", None)
        params["api_key"] = backend.api_keys[c.key].get_secret_value()
        deployments.append(
            {
                "model_name": keys_group(plan.name),
                "litellm_params": params,
                "model_info": {
                    "id": c.deployment_id,
                    "failover_route": plan.name,
                    "failover_backend": c.backend,
                    "failover_model": c.model,
                    "failover_key": c.key,
                },
            }
        )
    return deployments


def response_headers(route: str, served: Candidate | None, calls: int) -> dict[str, str]:
    """The x-failover-* headers: who served (or last failed) this request, and after how many calls."""
    return {
        f"{HEADER_PREFIX}route": route,
        f"{HEADER_PREFIX}backend": served.backend if served else "none",  # no upstream call was made
        f"{HEADER_PREFIX}model": served.model if served else "none",
        f"{HEADER_PREFIX}key": served.key if served else "none",
        f"{HEADER_PREFIX}attempts": str(calls),
    }


# the proxy's flag for "leave the response's `model` as it is" (it would put the requested model,
# the route's name, back in the body and in every streamed chunk); absent in older LiteLLMs
_RAW_MODEL_NAME = getattr(litellm_constants, "RETURN_RAW_MODEL_NAME_METADATA_KEY", None)


def name_served_model(kwargs: Mapping[str, Any], response: Any, model: str) -> None:
    """A route's answer names the element's model that served it, not the route: in the body
    (and, set by the stream's supervisor, in every chunk); the proxy is told to leave it."""
    if _RAW_MODEL_NAME is not None:
        for bucket in ("metadata", "litellm_metadata"):
            md = kwargs.get(bucket)
            if isinstance(md, dict):
                md[_RAW_MODEL_NAME] = True
    if response is not None and isinstance(getattr(response, "model", None), str):
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            response.model = model


def cost_per_token(settings: FailoverSettings, c: Candidate) -> float | None:
    """Price of one token (input + output): the element's own, else LiteLLM's cost map."""
    element = settings.routes[c.route].elements[c.element_index]
    if element.cost_per_token is not None:
        return element.cost_per_token
    provider = settings.backends[c.backend].provider
    info = litellm.model_cost.get(f"{provider}/{c.model}") or litellm.model_cost.get(c.model) or {}
    prices = [info.get("input_cost_per_token"), info.get("output_cost_per_token")]
    known = [float(p) for p in prices if isinstance(p, (int, float))]
    return sum(known) if known else None


def total_tokens(response: Any) -> int | None:
    """The tokens an answer used, as its usage says (prompt + completion); None when it has none."""
    usage = response.get("usage") if isinstance(response, Mapping) else getattr(response, "usage", None)
    total = usage.get("total_tokens") if isinstance(usage, Mapping) else getattr(usage, "total_tokens", None)
    return total if isinstance(total, int) and not isinstance(total, bool) else None
