"""LiteLLM's Rust core: a route request it serves would go without the plugin's hooks.

What the supported releases have, read in their source:
- The router. Up to 1.108 `litellm.Router` is the Python router. In 1.109 it is a facade that
  hands every call to a core object built with it (`router_core.make_core`: only `PythonCore`
  there); 1.110 builds a Rust core (`router_rust.RustCore`) instead, and is not supported. A
  router whose calls run on an object that does not see the plugin's shadow is refused when
  the routes are installed (adapter.shadow_fallbacks), and selfcheck.py watches the traffic.
- The Rust bridge (`litellm/rust_bridge`, in every supported release): one SDK call, i.e. one
  attempt of a route, is executed in Rust when its switches say so. Its failure is then not
  logged through `Logging.failure_handler` (failure_log.py), nor its stream read through the
  router's stream wrapper. Read in 1.102.4: one switch, `rust_enabled()` (`litellm.rust(True)`,
  else `LITELLM_RUST` true) turns on the optional Rust paths (chat completions to anthropic and
  bedrock, messages, ...); OCR is Rust unless `LITELLM_RUST` is false. Read in 1.106.12-1.109.3:
  the rules of `rust_bridge/catalog.py` decide, per request:
  - RUST_OPT_IN: Rust when `LITELLM_RUST` in the environment is true, or else when the process
    called `litellm.rust(True)` (/v1/messages to anthropic; 1.108 also deepseek and vertex_ai);
    RUST_OPT_OUT (none yet): Rust unless one of them says false.
  Either kind of switch, on, is refused at start-up and on every route request (`problem`).
  - RUST_REQUIRED: always Rust (OCR; transcription to bedrock). They cannot be turned off: a
    route response such a call served carries the header below (`served_by`), and is answered
    503 failover_unavailable instead (selfcheck.found).
- A response Rust served carries `x-litellm-rust: true` (rust_bridge/response_metadata.py);
  LiteLLM's announced Rust router reports its core in `x-litellm-core` (anything but "python"
  counts).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

HOOK = "LiteLLM Rust core"
RUST_HEADER = "x-litellm-rust"
CORE_HEADER = "x-litellm-core"
ENV = "LITELLM_RUST"
# the catalog's routes whose requests a failover route serves (every one goes through the router's
# async_function_with_fallbacks); token counting and tokenizers serve no route request
ROUTE_REQUESTS = ("chat_completions", "embeddings", "messages", "responses", "transcription", "ocr")


def problem() -> str | None:
    """Why a route request could now be served by LiteLLM's Rust core, or None. Checked at start-up
    (compat.HOOKS) and on each route request (selfcheck.entered): the switches can change."""
    try:
        configuration = importlib.import_module("litellm.rust_bridge.configuration")
    except ImportError:  # no Rust bridge
        return None
    try:
        catalog = importlib.import_module("litellm.rust_bridge.catalog")
    except ImportError:
        catalog = None
    if catalog is not None and hasattr(configuration, "decision"):  # a catalog of rules (1.106 on)
        switched = sorted(
            {
                rule.route.value
                for rule in catalog.RULES
                if rule.route.value in ROUTE_REQUESTS
                and rule.rollout in (configuration.Rollout.RUST_OPT_IN, configuration.Rollout.RUST_OPT_OUT)
                and configuration.decision(rule.rollout) is not configuration.Decision.PYTHON
            }
        )
        what = f"{', '.join(switched)} requests"
        environment_wins = True
    else:  # one switch for the optional Rust paths (1.102-1.104: chat completions, messages, ...)
        enabled = getattr(configuration, "rust_enabled", None)
        switched = ["optional"] if callable(enabled) and enabled() else []
        what = "requests of its optional Rust paths (chat completions to anthropic and bedrock, messages, ...)"
        environment_wins = False
    if not switched:
        return None
    raw = os.environ.get(ENV)
    env_set = raw is not None and configuration._parse_env_bool(raw) is not None
    process_set = getattr(configuration._CONFIGURATION, "override", None) is not None
    if env_set and (environment_wins or not process_set):
        why = f"the environment sets {ENV}={raw.strip() if raw else raw}"
    elif process_set:
        why = "the process called litellm.rust(True)"
    else:
        why = f"LiteLLM {_version()} does so by default"
    return (
        f"{why}, so LiteLLM's Rust core may serve {what}, which bypass the plugin's hooks; "
        f"unset it (or set {ENV}=false)"
    )


def served_by(response: Any) -> str | None:
    """What says a route response came from LiteLLM's Rust core (its header), or None."""
    hidden = getattr(response, "_hidden_params", None)
    if hidden is None and isinstance(response, Mapping):
        hidden = response.get("_hidden_params")
    headers = hidden.get("additional_headers") if isinstance(hidden, Mapping) else None
    if not isinstance(headers, Mapping):
        return None
    value = {str(k).lower(): v for k, v in headers.items()}
    if str(value.get(RUST_HEADER, "")).lower() == "true":
        return f"{RUST_HEADER}: true"
    core = value.get(CORE_HEADER)
    if core is not None and str(core).lower() != "python":
        return f"{CORE_HEADER}: {core}"
    return None


def _version() -> str:
    from importlib.metadata import version

    return version("litellm")
