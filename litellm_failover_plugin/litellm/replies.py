"""Answers the plugin makes itself, with no upstream call: replies to `!/` commands.

The proxy's pre-call hook carries a command out (command_hook.py) and leaves its reply in the request's metadata;
the router call then reaches the runner, which answers with an ordinary chat completion (a
stream when the request asked for one) built here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import litellm
from litellm.utils import ModelResponseIterator

from .translate import HEADER_PREFIX, METADATA_KEY

COMMAND_KEY = "failover_command"
COMMAND_HEADER = f"{HEADER_PREFIX}command"
SESSION_WARNING_KEY = "failover_session_warning"  # why a request's session did not rewrite it
SESSION_WARNING_HEADER = f"{HEADER_PREFIX}session-warning"


def leave_reply(data: dict[str, Any], command: str, reply: str) -> None:
    """Mark a request as answered by a command (called from the pre-call hook)."""
    md = data.setdefault("metadata", {})
    md[COMMAND_KEY] = {"command": command, "reply": reply, "model": str(data.get("model") or "")}
    md[METADATA_KEY] = {"headers": {COMMAND_HEADER: command}}


def command_reply(kwargs: dict[str, Any]) -> Any:
    """The reply to a command this request carried, or None when it carried none."""
    for bucket in ("metadata", "litellm_metadata"):
        md = kwargs.get(bucket)
        if isinstance(md, dict) and isinstance(md.get(COMMAND_KEY), dict):
            return _completion(md[COMMAND_KEY], stream=kwargs.get("stream") is True, logging_obj=kwargs.get("litellm_logging_obj"))
    return None


def _completion(info: dict[str, Any], *, stream: bool, logging_obj: Any) -> Any:
    model = info.get("model") or "failover"
    response = litellm.ModelResponse(
        id=f"chatcmpl-failover-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        model=model,
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": info["reply"]}}],
    )
    response.usage = litellm.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    if not stream:
        return response
    return litellm.CustomStreamWrapper(
        completion_stream=ModelResponseIterator(model_response=response, convert_to_delta=True),
        model=model,
        custom_llm_provider="cached_response",
        logging_obj=logging_obj,
    )
