"""Routes changed at run time, over the routes of config.yaml. Pure: no litellm, I/O or clock.

config.yaml is the base. A route created or changed at run time is kept whole in an `Overlay`
(name -> the route as it would be written in config.yaml) and wins over config.yaml's route of
the same name; a deleted config.yaml route is kept as a tombstone (None) and stays deleted; `reset` drops
the runtime version, so config.yaml's route (if any) is back. Every edit returns a new Overlay
with the next version and a `Change` (before -> after) to log; a refused edit raises
`RouteEditError` and changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .policies import POLICIES

RouteMapping = dict[str, Any]  # one route, as written under failover_settings.routes
ROUTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # fullmatch: a `$` would take a trailing newline
MODEL_NAME = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no spaces: it goes into headers and URLs


# An element's litellm_params a run-time edit may set: what the call asks of the model and how
# long it may take. Never where the key is sent or what is sent with it (api_base, base_url,
# api_key, api_version, headers, extra_headers, organization, custom_llm_provider, ...): those
# come from config.yaml only, whoever makes the edit.
RUNTIME_PARAMS = frozenset(
    {
        "timeout",
        "stream_timeout",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
        "reasoning_effort",
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A run-time edit builds LiteLLM deployments on the event loop (every element x its keys): a
# route of 1,000 elements held every request for 3.7 s, 100,000 for minutes, and again at each
# restart. Routes have a few elements; config.yaml is not limited.
MAX_RUNTIME_ELEMENTS = 64
MAX_RUNTIME_ROUTES = 256


class RouteEditError(ValueError):
    """An edit that cannot be made. The message says why; nothing was changed."""


@dataclass(frozen=True)
class Overlay:
    version: int = 0
    routes: Mapping[str, RouteMapping | None] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "routes": dict(self.routes)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> Overlay:
        if not raw:
            return cls()
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("routes"), dict):
            raise ValueError("not a failover route overlay")
        return cls(int(data.get("version", 0)), dict(data["routes"]))


@dataclass(frozen=True)
class Catalog:
    """What edits are checked against: config.yaml's routes, its backends, and the model_list
    names a route may not take."""

    base: Mapping[str, RouteMapping]
    backends: frozenset[str]
    reserved: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Change:
    action: str
    route: str
    before: RouteMapping | None
    after: RouteMapping | None


def effective_routes(base: Mapping[str, RouteMapping], overlay: Overlay) -> dict[str, RouteMapping]:
    """config.yaml's routes with the runtime changes applied, in config order, new ones last."""
    out = {name: dict(r) for name, r in base.items()}
    for name, route in overlay.routes.items():
        if route is None:
            out.pop(name, None)
        elif isinstance(route, Mapping):  # anything else (a hand-edited file) is set aside, see overlays.py
            out[name] = dict(route)
    return out


def element_names(route: Mapping[str, Any]) -> list[str]:
    """The `backend:model` of each element of a route mapping, in order."""
    out = []
    for e in route.get("elements") or []:
        out.append(e if isinstance(e, str) else str(e.get("element", "")) if isinstance(e, Mapping) else str(e))
    return out


def policy_of(route: Mapping[str, Any]) -> str:
    return str(route.get("policy", "m")).strip().lower()


def check_route_name(name: str) -> str:
    if not isinstance(name, str) or not ROUTE_NAME.fullmatch(name):
        raise RouteEditError(
            f"route name {name!r} must start with a letter or digit and use only letters, digits, '_', '-' and '.'"
        )
    return name


def check_policy(policy: str) -> str:
    p = policy.strip().lower()
    if p not in POLICIES:
        raise RouteEditError(f"unknown policy {policy!r}; one of: {', '.join(POLICIES)}")
    return p


def check_element(element: str, catalog: Catalog) -> str:
    if _CONTROL.search(element):
        raise RouteEditError(f"element {element!r} contains a control character")
    backend, sep, model = element.strip().partition(":")
    if not sep or not backend or not model:
        raise RouteEditError(f"element {element!r} must be 'backend:model'")
    if not MODEL_NAME.fullmatch(model):
        raise RouteEditError(f"model {model!r} in element {element!r} must be printable ASCII without spaces")
    if backend not in catalog.backends:
        known = ", ".join(sorted(catalog.backends)) or "none"
        raise RouteEditError(f"Backend {backend!r} in element {element!r} is not configured (backends: {known})")
    return f"{backend}:{model}"


def _existing(overlay: Overlay, catalog: Catalog, name: str) -> RouteMapping:
    route = effective_routes(catalog.base, overlay).get(name)
    if route is None:
        raise RouteEditError(f"Failover route {name!r} does not exist")
    return route


def check_size(overlay: Overlay, name: str, route: Mapping[str, Any] | None) -> None:
    """A run-time route has at most MAX_RUNTIME_ELEMENTS elements; the store at most MAX_RUNTIME_ROUTES routes."""
    if route is not None:
        elements = route.get("elements")
        count = len(elements) if isinstance(elements, list) else 0
        if count > MAX_RUNTIME_ELEMENTS:
            raise RouteEditError(f"a route changed at run time has at most {MAX_RUNTIME_ELEMENTS} elements ({count} given); put larger routes in config.yaml")
    if route is not None and name not in overlay.routes and len(overlay.routes) >= MAX_RUNTIME_ROUTES:
        raise RouteEditError(f"at most {MAX_RUNTIME_ROUTES} routes may be changed at run time; reset some, or put them in config.yaml")


def _write(overlay: Overlay, name: str, route: RouteMapping | None) -> Overlay:
    check_size(overlay, name, route)
    return Overlay(overlay.version + 1, {**overlay.routes, name: route})


def create(overlay: Overlay, catalog: Catalog, name: str, policy: str) -> tuple[Overlay, Change]:
    check_route_name(name)
    policy = check_policy(policy)
    if name in catalog.reserved:
        raise RouteEditError(f"{name!r} is a model_name in model_list; give the route another name")
    if name in effective_routes(catalog.base, overlay):
        raise RouteEditError(f"Failover route {name!r} already exists")
    route: RouteMapping = {"policy": policy, "elements": []}
    return _write(overlay, name, route), Change("create", name, None, route)


def put(overlay: Overlay, catalog: Catalog, name: str, route: Mapping[str, Any]) -> tuple[Overlay, Change]:
    """Create or replace a whole route (the admin API). Its full validation is the caller's."""
    check_route_name(name)
    if name in catalog.reserved:
        raise RouteEditError(f"{name!r} is a model_name in model_list; give the route another name")
    if not isinstance(route, Mapping):
        raise RouteEditError("a route must be a mapping, as under failover_settings.routes in config.yaml")
    before = effective_routes(catalog.base, overlay).get(name)
    new = dict(route)
    if "policy" in new and isinstance(new["policy"], str):
        new["policy"] = check_policy(new["policy"])
    for e in element_names(new):
        check_element(e, catalog)
    check_runtime_params(new, catalog.base.get(name))
    return _write(overlay, name, new), Change("put", name, before, new)


def delete(overlay: Overlay, catalog: Catalog, name: str) -> tuple[Overlay, Change]:
    """A config.yaml route is kept deleted by a tombstone; a route made at run time is forgotten
    (a tombstone would hide a route of that name that config.yaml gains later)."""
    before = _existing(overlay, catalog, name)
    if name in catalog.base:
        return _write(overlay, name, None), Change("delete", name, before, None)
    routes = {k: v for k, v in overlay.routes.items() if k != name}
    return Overlay(overlay.version + 1, routes), Change("delete", name, before, None)


def add_element(overlay: Overlay, catalog: Catalog, name: str, element: str, *, first: bool) -> tuple[Overlay, Change]:
    before = _existing(overlay, catalog, name)
    element = check_element(element, catalog)
    if element in element_names(before):
        raise RouteEditError(f"Element {element!r} is already in failover route {name!r}")
    elements = list(before.get("elements") or [])
    elements = [element, *elements] if first else [*elements, element]
    after = {**before, "elements": elements}
    return _write(overlay, name, after), Change("prepend" if first else "append", name, before, after)


def clear(overlay: Overlay, catalog: Catalog, name: str) -> tuple[Overlay, Change]:
    before = _existing(overlay, catalog, name)
    after = {**before, "elements": []}
    return _write(overlay, name, after), Change("clear", name, before, after)


def reset(overlay: Overlay, catalog: Catalog, name: str) -> tuple[Overlay, Change]:
    """Forget the runtime version of a route: config.yaml's (if it has one) is in force again."""
    if name not in overlay.routes:
        raise RouteEditError(f"Failover route {name!r} has no runtime changes to reset")
    before = effective_routes(catalog.base, overlay).get(name)
    routes = {k: v for k, v in overlay.routes.items() if k != name}
    after = catalog.base.get(name)
    return Overlay(overlay.version + 1, routes), Change("reset", name, before, dict(after) if after else None)


def _element_params(route: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """element name -> its litellm_params, for the elements of a route mapping that have some."""
    out: dict[str, Mapping[str, Any]] = {}
    for e in (route or {}).get("elements") or []:
        if isinstance(e, Mapping) and isinstance(e.get("litellm_params"), Mapping):
            out[str(e.get("element", ""))] = e["litellm_params"]
    return out


def check_runtime_params(route: Mapping[str, Any], config_route: Mapping[str, Any] | None) -> None:
    """A run-time route may set only RUNTIME_PARAMS in its elements' litellm_params; any other
    one only with the value config.yaml's route of the same name gives the same element (a route
    read from the API and written back with a change keeps its config.yaml parameters)."""
    configured = _element_params(config_route)
    for element, params in _element_params(route).items():
        for key, value in params.items():
            if key in RUNTIME_PARAMS:
                continue
            if key in configured.get(element, {}) and configured[element][key] == value:
                continue
            raise RouteEditError(
                f"element {element!r}: litellm_params.{key} cannot be set at run time (where a key is sent and "
                f"what is sent with it come from config.yaml only); allowed: {', '.join(sorted(RUNTIME_PARAMS))}"
            )


def unservable(overlay: Overlay, base: Mapping[str, RouteMapping]) -> dict[str, str]:
    """Stored runtime routes no edit could make now (written by an older version): route name ->
    why. overlays.serve sets them aside with the others that do not validate, so one cannot stop the others."""
    bad: dict[str, str] = {}
    for name, route in overlay.routes.items():
        try:
            check_route_name(name)
            if route is not None:
                if not isinstance(route, Mapping):
                    raise RouteEditError("the stored route is not a mapping")
                check_size(Overlay(), name, route)
                for e in element_names(route):
                    if _CONTROL.search(e):
                        raise RouteEditError(f"element {e!r} contains a control character")
                check_runtime_params(route, base.get(name))
        except RouteEditError as e:
            bad[name] = str(e)
    return bad
