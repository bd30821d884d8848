"""A client's request, checked before it is routed. Pure.

A malformed request must be the client's error (an OpenAI-shaped 400 naming the field), never
a failure of the upstream it would have been sent to: otherwise a few bad requests would open
every breaker of a route. Only what LiteLLM cannot send at all is refused here; anything an
upstream may judge (an unknown model, a too-long prompt) still goes to the upstream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return "must be a number of seconds"
    if not _number(value) or value <= 0:
        return "must be a positive number of seconds"
    return None


def _integer(value: Any) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else "must be a whole number"


def _numeric(value: Any) -> str | None:
    return None if _number(value) else "must be a number"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _messages(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of messages"
    for i, m in enumerate(value):
        if not isinstance(m, Mapping):
            return f"item {i} must be an object with a role"
        if not isinstance(m.get("role"), str):
            return f"item {i} must have a string 'role'"
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return f"item {i}: 'content' must be a string or a list of parts"
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "timeout": _positive,
    "request_timeout": _positive,
    "stream": _boolean,
    "max_tokens": _integer,
    "max_completion_tokens": _integer,
    "n": _integer,
    "temperature": _numeric,
    "top_p": _numeric,
}


def check_model(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return f"'model' must be a string, got {type(model).__name__}"
    return None


def check_request(body: Mapping[str, Any], *, chat: bool) -> str | None:
    """Why a request to a route cannot be sent, naming the field; None when it can."""
    if chat and "messages" in body:
        why = _messages(body["messages"])
        if why is not None:
            return f"'messages' {why}"
    for name, check in _CHECKS.items():
        if body.get(name) is not None:
            why = check(body[name])
            if why is not None:
                return f"{name!r} {why}"
    return None
