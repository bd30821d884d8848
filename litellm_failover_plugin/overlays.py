"""Which stored run-time routes can be served over a given config.yaml. Pure: no litellm, I/O or clock.

A stored route that no longer validates (config.yaml lost a backend it uses, say) is set aside
with the reason: every other stored route is still served. Nothing stored is ever dropped here;
the operator fixes config.yaml or drops the stored change (`!/route-reset`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ConfigError, FailoverSettings, parse_settings
from .routetable import Overlay, effective_routes, unservable

_PREFIX = "invalid failover_settings:\n  "


@dataclass(frozen=True)
class Served:
    settings: FailoverSettings
    unserved: dict[str, str] = field(default_factory=dict)  # stored route -> why it is not served


def compose(section: Mapping[str, Any], overlay: Overlay) -> FailoverSettings:
    """`overlay` over config.yaml's `section`, all or nothing. Raises ConfigError."""
    out = dict(section)
    base = out.get("routes") or {}
    out["routes"] = effective_routes(base if isinstance(base, Mapping) else {}, overlay)
    return parse_settings(out)


def reason(e: ConfigError) -> str:
    return str(e).removeprefix(_PREFIX).replace("\n  ", "; ")


def serve(section: Mapping[str, Any], overlay: Overlay) -> Served:
    """The settings to serve: config.yaml with every stored route that validates over it, and
    the ones that do not, each with why. Raises ConfigError only if `section` itself is bad."""
    base = section.get("routes") or {}
    # what no edit could make now (a control character in a name, a parameter that says where a
    # key goes: written by an older version), then what config.yaml no longer fits
    unserved = unservable(overlay, base if isinstance(base, Mapping) else {})
    if not unserved:
        try:
            return Served(compose(section, overlay))
        except ConfigError:
            pass
    accepted = {n: r for n, r in overlay.routes.items() if n not in unserved}
    while True:  # set aside the routes the error names (a few parses, whatever the number of routes)
        try:
            return Served(compose(section, Overlay(overlay.version, accepted)), unserved)
        except ConfigError as e:
            blamed = _blame(e, accepted)
        if not blamed:
            break
        for name, why in blamed.items():
            unserved[name] = why
            del accepted[name]
    kept: dict[str, Any] = {}  # the error names no stored route: one at a time, over what was kept before it
    for name, route in accepted.items():
        try:
            compose(section, Overlay(overlay.version, {**kept, name: route}))
        except ConfigError as e:
            unserved[name] = reason(e)
            continue
        kept[name] = route
    return Served(compose(section, Overlay(overlay.version, kept)), unserved)


def _blame(e: ConfigError, routes: Mapping[str, Any]) -> dict[str, str]:
    """The stored routes a validation error is about (`routes.NAME.` in its message), with what it says of each."""
    out: dict[str, list[str]] = {}
    for line in reason(e).split("; "):
        named = [n for n in routes if f"routes.{n}." in line or f"routes.{n}:" in line]
        if named:
            out.setdefault(max(named, key=len), []).append(line)
    return {n: "; ".join(lines) for n, lines in out.items()}


def not_served_message(name: str, why: str) -> str:
    return (
        f"stored run-time route {name!r} is not served: {why}. Fix config.yaml and reload, or drop the "
        f"stored change with `!/route-reset(name={name})` (POST /failover/routes/{name}/reset)"
    )


def conflict_message(conflicts: Mapping[str, str]) -> str:
    """A reload refused because of the stored overlay, not because of config.yaml itself."""
    parts = []
    for name, why in conflicts.items():
        parts.append(
            f"the run-time change to route {name!r} stored in the route store (not in config.yaml) does not fit "
            f"the new config.yaml: {why}; drop it with `!/route-reset(name={name})` "
            f"(POST /failover/routes/{name}/reset), then reload again"
        )
    return "config.yaml itself is valid, but " + "; ".join(parts)


def hidden_config_routes(section: Mapping[str, Any], overlay: Overlay) -> list[str]:
    """config.yaml routes that a stored deletion keeps out of service."""
    base = section.get("routes") or {}
    return [n for n, r in overlay.routes.items() if r is None and isinstance(base, Mapping) and n in base]
