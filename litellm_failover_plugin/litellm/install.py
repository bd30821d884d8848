"""Putting failover routes on a router: their deployments, the attempt loop, a guard for sync calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from litellm.router import Router
from litellm.types.router import Deployment

from ..config import ConfigError, FailoverSettings
from ..instrumentation import RoutesServed
from ..routing import KEYS_GROUP_PREFIX, RoutePlan, compile_routes, front_id, keys_group
from ..state import StateStore
from . import adapter, compat, failure_log, transport
from .runner import FailoverRunner
from .translate import build_deployments

log = logging.getLogger("litellm_failover_plugin")


def install(router: Router, settings: FailoverSettings, store: StateStore | None = None) -> FailoverRunner:
    """Put the routes' deployments and the attempt loop on a router. Idempotent.

    `store` holds breaker state (shared through Redis by several replicas); in memory if None.
    Raises ConfigError if a route name is already a model group of the router, and
    compat.UnsupportedLiteLLM (a ConfigError) if a LiteLLM internal it hooks has moved.
    """
    compat.check()
    current = adapter.shadowing(router)
    if isinstance(current, FailoverRunner):
        if current.settings is settings and all(router.has_model_id(front_id(r)) for r in current.plans):
            return current
        adapter.unshadow(router)
    plans = compile_routes(settings)
    _place(router, settings, plans)
    runner = FailoverRunner(router, settings, plans, store)
    runner.restore = lambda: _place(router, runner.settings, runner.plans)
    unseen = adapter.shadow_fallbacks(router, runner)
    if unseen is not None:
        raise compat.UnsupportedLiteLLM([("Router.async_function_with_fallbacks (shadowed)", unseen)])
    failure_log.install()
    transport.warm_up()  # LiteLLM's first-call imports, so first_chunk_s measures the upstream
    transport.install()  # chunks sent before a cut are delivered
    router.function_with_fallbacks = _SyncGuard(router, runner)  # type: ignore[method-assign]
    for name in adapter.model_name_methods(router):
        setattr(router, name, _HiddenKeyGroups(router, name))
    _log_routes("failover routes installed", plans)
    return runner


def update(router: Router, runner: FailoverRunner, settings: FailoverSettings) -> None:
    """Serve new settings (routes changed at run time, or a reload) on a running router.

    New deployments are added and changed ones (a rotated key) replaced before the new plans
    are served; deployments no route uses any more are removed once the requests that started
    before the change have finished. Raises ConfigError (nothing changed) on a name clash.
    """
    plans = compile_routes(settings)
    before = set(runner.deployment_ids)
    _place(router, settings, plans)
    runner.update(settings, plans)
    runner.retire(before - set(runner.deployment_ids))
    if runner.hooks:  # metrics of deleted routes and removed keys go
        runner.emit(RoutesServed.of(runner.candidates.values(), plans))
    _log_routes("failover routes updated", plans)


def _place(router: Router, settings: FailoverSettings, plans: Mapping[str, RoutePlan]) -> None:
    deployments = build_deployments(settings, plans)
    ours = {d["model_info"]["id"] for d in deployments}
    for name in plans:
        for model_name in (name, keys_group(name)):
            foreign = [i for i in router.get_model_ids(model_name=model_name) if i not in ours and not is_ours(router, i)]
            if foreign:
                raise ConfigError(
                    f"failover_settings.routes.{name}: {model_name!r} is also a model_name in model_list; "
                    "give the route or the model another name"
                )
    for deployment in deployments:
        if not router.has_model_id(deployment["model_info"]["id"]):
            router.add_deployment(Deployment(**deployment))
        else:
            router.upsert_deployment(Deployment(**deployment))  # no-op unless its params changed


def is_ours(router: Router, id: str) -> bool:
    """A deployment the plugin made for a route (not one of model_list's)."""
    index = router.model_id_to_deployment_index_map.get(id)
    if index is None:
        return False
    deployments: list[dict[str, Any]] = router.model_list  # (1.109 types it through a deprecation descriptor)
    return bool((deployments[index].get("model_info") or {}).get("failover_route"))


def is_keys_group(router: Router, name: str) -> bool:
    """A route's keys group (routing.keys_group): a LiteLLM model name clients may not ask for."""
    return name.startswith(KEYS_GROUP_PREFIX) and any(is_ours(router, i) for i in router.get_model_ids(model_name=name))


def foreign_model_names(router: Router) -> frozenset[str]:
    """model_list's names: a route may not take one of them."""
    names = set()
    deployments: list[dict[str, Any]] = router.model_list
    for d in deployments:
        info = d.get("model_info") or {}
        if not info.get("failover_route"):
            names.add(str(d.get("model_name")))
    return frozenset(names)


def _log_routes(what: str, plans: Mapping[str, RoutePlan]) -> None:
    log.info("%s: %s", what, ", ".join(f"{p.name} ({p.policy}, {len(p.candidates)} candidates)" for p in plans.values()) or "none")


class _SyncGuard:
    """Routes are async-only: a sync call for a route name fails loudly instead of load balancing."""

    def __init__(self, router: Router, runner: FailoverRunner) -> None:
        current = vars(router).get("function_with_fallbacks")
        # LiteLLM's own method as the router resolves it (a patched class attribute included),
        # never a guard of an earlier install
        self._original: Callable[..., Any] = (
            current._original if isinstance(current, _SyncGuard) else router.function_with_fallbacks
        )
        self._runner = runner

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("model") in self._runner.plans:
            raise NotImplementedError(
                f"failover route {kwargs.get('model')!r} is async-only: use router.acompletion() "
                "(the proxy always does)"
            )
        return self._original(*args, **kwargs)


class _HiddenKeyGroups:
    """The router's model names without the routes' keys groups: /v1/models and the proxy's
    model checks list routes, never the groups of keys behind them."""

    def __init__(self, router: Router, name: str) -> None:
        current = vars(router).get(name)
        self._original: Callable[..., list[str]] = (
            current._original if isinstance(current, _HiddenKeyGroups) else getattr(router, name)
        )

    def __call__(self, *args: Any, **kwargs: Any) -> list[str]:
        return [n for n in self._original(*args, **kwargs) if not n.startswith(KEYS_GROUP_PREFIX)]


def installed_runner(router: Any) -> FailoverRunner | None:
    current = adapter.shadowing(router)
    return current if isinstance(current, FailoverRunner) else None
