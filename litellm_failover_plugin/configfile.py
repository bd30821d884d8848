"""Reading `failover_settings` from a LiteLLM config.yaml: the YAML problems pydantic cannot
see (keys written twice, a route named like a model_list entry) and LiteLLM's own Redis
settings, then validation (config.parse_settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from .config import SECTION, ConfigError, FailoverSettings, parse_settings, resolve_secret


def _redis_from_router_settings(document: Mapping[str, Any]) -> str | None:
    """LiteLLM's own Redis settings, so users configure Redis once."""
    router = document.get("router_settings") or {}
    if not isinstance(router, Mapping) or not router.get("redis_host"):
        return None
    host = resolve_secret(str(router["redis_host"]))
    port = resolve_secret(str(router.get("redis_port", 6379)))
    password = router.get("redis_password")
    auth = f":{quote(resolve_secret(str(password)), safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def load_section(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw `failover_settings` mapping of a LiteLLM config.yaml, with LiteLLM's own Redis
    settings filled in as `redis_url` when the section names none. Not validated yet."""
    try:
        text = Path(path).read_text()
        document = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(document, Mapping) or SECTION not in document:
        raise ConfigError(f"{path} has no {SECTION}: section")
    section = document[SECTION]
    if not isinstance(section, Mapping):
        raise ConfigError(f"{SECTION} must be a mapping, got {type(section).__name__}")
    section = dict(section)
    problems = duplicate_keys(text) + _clashes(document, section)
    if problems:
        raise ConfigError("invalid failover_settings:\n  " + "\n  ".join(problems))
    if section.get("redis_url") is None:
        try:
            url = _redis_from_router_settings(document)
        except ValueError as e:
            raise ConfigError(f"router_settings: {e}") from None
        if url is not None:
            section["redis_url"] = url
    return section


def duplicate_keys(text: str) -> list[str]:
    """Keys written twice in the same mapping of failover_settings (YAML keeps the last one, silently)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return []
    section = None
    if isinstance(root, yaml.MappingNode):
        section = next((v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == SECTION), None)
    out: list[str] = []

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                key = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                if key in seen:
                    out.append(f"{path}.{key}: written twice (line {k.start_mark.line + 1}); YAML would keep only the last")
                seen.add(key)
                walk(v, f"{path}.{key}")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}.{i}")

    if section is not None:
        walk(section, SECTION)
    return out


def _clashes(document: Mapping[str, Any], section: Mapping[str, Any]) -> list[str]:
    """A route named like a model_list entry would take every request of that name."""
    models = document.get("model_list") or []
    names = {str(m.get("model_name")) for m in models if isinstance(m, Mapping)} if isinstance(models, list) else set()
    routes = section.get("routes") or {}
    if not isinstance(routes, Mapping):
        return []
    return [
        f"{SECTION}.routes.{name}: {name!r} is also a model_name in model_list; give the route or the model another name"
        for name in routes
        if str(name) in names
    ]


def load_settings(path: str | os.PathLike[str]) -> FailoverSettings:
    """Read `failover_settings` from a LiteLLM config.yaml (and LiteLLM's Redis settings)."""
    return parse_settings(load_section(path))

