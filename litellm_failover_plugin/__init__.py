"""Ordered failover routes for the LiteLLM proxy.

In config.yaml::

    litellm_settings:
      callbacks: litellm_failover_plugin.plugin
    failover_settings:
      ...

From Python: ``attach(router, settings)``. The pure core (config, policies, routing) imports
without litellm; ``plugin`` and ``attach`` load the LiteLLM glue on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .conditions import Conditions, Failure, Kind
from .config import ConfigError, FailoverSettings, parse_settings
from .configfile import load_settings
from .errors import FailoverExhausted
from .policies import POLICIES
from .routing import FailoverRun, RoutePlan, compile_routes

try:
    __version__ = version("litellm-failover-plugin")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "POLICIES",
    "Conditions",
    "ConfigError",
    "FailoverExhausted",
    "FailoverRun",
    "FailoverSettings",
    "Failure",
    "Kind",
    "RoutePlan",
    "attach",
    "compile_routes",
    "load_settings",
    "parse_settings",
    "plugin",
]


def __getattr__(name: str) -> Any:
    # `litellm_settings.callbacks: litellm_failover_plugin.plugin` resolves this attribute while
    # the proxy loads its config: build the plugin from that config then, not at import.
    if name == "plugin":
        from .litellm import proxy_plugin

        return proxy_plugin()
    if name == "attach":
        from .litellm import attach

        return attach
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
