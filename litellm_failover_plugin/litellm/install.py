"""Putting failover routes on a router: their deployments, the attempt loop, a guard for sync calls."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import litellm
from litellm.types.router import Deployment

from ..config import ConfigError, FailoverSettings
from ..routing import RoutePlan, compile_routes
from ..state import StateStore
from . import adapter
from .runner import FailoverRunner
from .translate import build_deployments

log = logging.getLogger("litellm_failover_plugin")


def install(router: litellm.Router, settings: FailoverSettings, store: StateStore | None = None) -> FailoverRunner:
    """Put the routes' deployments and the attempt loop on a router. Idempotent.

    `store` holds breaker state (shared through Redis by several replicas); in memory if None.
    Raises ConfigError if a route name is already a model group of the router, and
    adapter.UnsupportedLiteLLM (a ConfigError) if a LiteLLM internal it hooks has moved.
    """
    adapter.check()
    current = adapter.shadowing(router)
    if isinstance(current, FailoverRunner):
        if current.settings is settings and all(router.has_model_id(i) for i in _first_ids(current)):
            return current
        adapter.unshadow(router)
    plans = compile_routes(settings)
    deployments = build_deployments(settings, plans)
    ours = {d["model_info"]["id"] for d in deployments}
    for name in plans:
        foreign = [i for i in router.get_model_ids(model_name=name) if i not in ours]
        if foreign:
            raise ConfigError(
                f"failover_settings.routes.{name}: {name!r} is also a model_name in model_list; "
                "give the route or the model another name"
            )
    for deployment in deployments:
        if not router.has_model_id(deployment["model_info"]["id"]):
            router.add_deployment(Deployment(**deployment))
    runner = FailoverRunner(router, settings, plans, store)
    adapter.shadow_fallbacks(router, runner)
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
    current = adapter.shadowing(router)
    return current if isinstance(current, FailoverRunner) else None
