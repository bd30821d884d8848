"""The attempt loop, installed on a live `litellm.Router`.

Every router call (acompletion, aembedding, atext_completion, ...) goes through
`Router.async_function_with_fallbacks(original_function=<one attempt>, model=..., ...)`.
`install` shadows that method on the router instance: a call for a route name walks the
route's plan, each attempt one call of `original_function` pinned to one deployment id (so
LiteLLM's clients, callbacks, spend logs and cooldowns all see it); any other model name goes
to LiteLLM's own method untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import litellm
from litellm.proxy._types import ProxyException
from litellm.types.router import Deployment

from ..config import ConfigError, FailoverSettings
from ..errors import EXHAUSTED_TYPE, FailoverExhausted
from ..routing import Candidate, FailoverRun, RoutePlan, Verdict, compile_routes
from .translate import Redactor, build_deployments, classify, response_headers

log = logging.getLogger("litellm_failover_plugin")

# Router-level retry and fallback settings: a route attempt is exactly one upstream call.
_ROUTER_ONLY_KWARGS = (
    "original_function",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "num_retries",
    "model_group_retry_policy",
    "disable_fallbacks",
    "include_fallback_errors",
)
METADATA_KEY = "failover"


class ProxyFailoverExhausted(FailoverExhausted, ProxyException):
    """FailoverExhausted that the proxy renders as an OpenAI error with its own status."""

    def __init__(self, route: str, run: FailoverRun, headers: dict[str, str]) -> None:
        FailoverExhausted.__init__(self, route, run.attempts, run.exhausted_status())
        ProxyException.__init__(
            self,
            message=self.message,
            type=EXHAUSTED_TYPE,
            param=None,
            code=self.status_code,
            headers=dict(headers),
        )
        self.failover_headers = headers

    def to_dict(self) -> dict[str, Any]:
        error = self.to_openai_error()["error"]
        assert isinstance(error, dict)
        return error


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item


async def _first_chunk_or_raise(response: Any) -> Any:
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


class FailoverRunner:
    """Stands in for `router.async_function_with_fallbacks` on one router instance."""

    def __init__(self, router: litellm.Router, settings: FailoverSettings, plans: Mapping[str, RoutePlan]):
        self.router = router
        self.settings = settings
        self.plans = dict(plans)
        self._original = router.async_function_with_fallbacks
        self._redact = Redactor.for_settings(settings)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        plan = self.plans.get(kwargs.get("model"))  # type: ignore[arg-type]
        if plan is None:
            return await self._original(*args, **kwargs)
        return await self.run(plan, args, kwargs)

    async def _unavailable(self, plan: RoutePlan) -> frozenset[str]:
        cooling = await self.router.cooldown_cache.async_get_active_cooldowns(
            model_ids=list(plan.deployment_ids), parent_otel_span=None
        )
        return frozenset(model_id for model_id, _ in cooling)

    async def run(self, plan: RoutePlan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        original_function = kwargs["original_function"]
        for name in _ROUTER_ONLY_KWARGS:
            kwargs.pop(name, None)
        stream = kwargs.get("stream") is True
        run = FailoverRun(plan, await self._unavailable(plan))
        last: Candidate | None = None
        for candidate in run.candidates():
            last = candidate
            call_kwargs = dict(kwargs)
            call_kwargs["model"] = candidate.deployment_id
            try:
                response = await original_function(*args, **call_kwargs)
                response = await self.router.set_response_headers(
                    response=response, model_group=plan.name, request_kwargs=call_kwargs
                )
                if stream:
                    response = await _first_chunk_or_raise(response)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify(exc, self._redact)
                if run.failed(candidate, failure) is Verdict.RETURN:
                    headers = self._record(kwargs, run, candidate)
                    exc.failover_headers = headers  # type: ignore[attr-defined]
                    raise
                log.info(
                    "failover route=%s deployment=%s key=%s failed (%s): moving on",
                    plan.name,
                    candidate.deployment_id,
                    candidate.key,
                    failure.label,
                )
                continue
            run.succeeded(candidate)
            headers = self._record(kwargs, run, candidate)
            hidden = getattr(response, "_hidden_params", None)
            if isinstance(hidden, dict):
                extra = hidden.get("additional_headers")
                hidden["additional_headers"] = {**(extra or {}), **headers}
            return response
        headers = self._record(kwargs, run, last)
        raise ProxyFailoverExhausted(plan.name, run, headers)

    def _record(self, kwargs: dict[str, Any], run: FailoverRun, served: Candidate | None) -> dict[str, str]:
        """Leave what happened in the request's metadata, where the proxy's hooks read it."""
        headers = response_headers(run.plan.name, served, run.calls)
        info = {"headers": headers, "attempts": [a.to_dict() for a in run.attempts]}
        for bucket in ("metadata", "litellm_metadata"):
            md = kwargs.get(bucket)
            if isinstance(md, dict):
                md[METADATA_KEY] = info
        return headers


def install(router: litellm.Router, settings: FailoverSettings) -> FailoverRunner:
    """Put the routes' deployments and the attempt loop on a router. Idempotent.

    Raises ConfigError if a route name is already a model group of the router.
    """
    current = router.__dict__.get("async_function_with_fallbacks")
    if isinstance(current, FailoverRunner):
        if current.settings is settings and all(router.has_model_id(i) for i in _first_ids(current)):
            return current
        router.__dict__.pop("async_function_with_fallbacks")
    plans = compile_routes(settings)
    ours = {d["model_info"]["id"] for d in build_deployments(settings, plans)}
    for name in plans:
        foreign = [i for i in router.get_model_ids(model_name=name) if i not in ours]
        if foreign:
            raise ConfigError(
                f"failover_settings.routes.{name}: {name!r} is also a model_name in model_list; "
                "give the route or the model another name"
            )
    for deployment in build_deployments(settings, plans):
        if not router.has_model_id(deployment["model_info"]["id"]):
            router.add_deployment(Deployment(**deployment))
    runner = FailoverRunner(router, settings, plans)
    router.async_function_with_fallbacks = runner  # type: ignore[method-assign]
    router.function_with_fallbacks = _SyncGuard(router, plans)  # type: ignore[method-assign]
    log.info(
        "failover routes installed: %s",
        ", ".join(f"{p.name} ({p.policy}, {len(p.candidates)} candidates)" for p in plans.values()),
    )
    return runner


class _SyncGuard:
    """Routes are async-only: a sync call for a route name fails loudly instead of load balancing."""

    def __init__(self, router: litellm.Router, plans: Mapping[str, RoutePlan]) -> None:
        self._original = type(router).function_with_fallbacks.__get__(router)
        self._routes = frozenset(plans)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("model") in self._routes:
            raise NotImplementedError(
                f"failover route {kwargs.get('model')!r} is async-only: use router.acompletion() "
                "(the proxy always does)"
            )
        return self._original(*args, **kwargs)


def _first_ids(runner: FailoverRunner) -> list[str]:
    return [p.candidates[0].deployment_id for p in runner.plans.values() if p.candidates]


def installed_runner(router: Any) -> FailoverRunner | None:
    current = getattr(router, "__dict__", {}).get("async_function_with_fallbacks")
    return current if isinstance(current, FailoverRunner) else None
