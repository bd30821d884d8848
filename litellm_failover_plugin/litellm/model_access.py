"""May this caller use this model? Asked of LiteLLM's own checks, never reimplemented.

A `!/set` session sends a caller's requests to a model it did not name in the request, after
LiteLLM's access check ran on the model it did name. Before a session is made, and again at
every request it rewrites, the caller must be allowed the session's model by what LiteLLM checks
when a key names a model: the key's models and access groups, its team's models and access
groups, the team member's scope, the project and the end user (LiteLLM's
`is_model_authorized_for_token`, what it runs for a fallback it did not ask for). A LiteLLM
without it is asked the key's and the team's checks; a failure to ask is a no (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("litellm_failover_plugin")
_Check = Callable[..., Awaitable[bool]]


def _token_check() -> _Check | None:
    try:
        from litellm.proxy.auth.fallback_model_access import is_model_authorized_for_token
    except ImportError:  # an older LiteLLM
        return None
    return is_model_authorized_for_token


async def _key_and_team(*, model: str, valid_token: Any, llm_router: Any) -> bool:
    """Older LiteLLMs: the key's models (and access groups), then its team's."""
    from litellm.proxy._types import LiteLLM_TeamTable
    from litellm.proxy.auth.auth_checks import can_key_call_model, can_team_access_model

    try:
        await can_key_call_model(model=model, llm_model_list=None, valid_token=valid_token, llm_router=llm_router)
        if getattr(valid_token, "team_id", None) is not None:
            team = LiteLLM_TeamTable(team_id=valid_token.team_id, models=list(valid_token.team_models or []))
            await can_team_access_model(model=model, team_object=team, llm_router=llm_router)
    except Exception:  # LiteLLM raises ProxyException, HTTPException or Exception for a no
        return False
    return True


async def may_use(user: Any, model: str, router: Any) -> bool:
    """True when LiteLLM would let `user` (its UserAPIKeyAuth) name `model` in a request."""
    if user is None or router is None:
        return False
    check = _token_check() or _key_and_team
    try:
        return bool(await check(model=model, valid_token=user, llm_router=router))
    except Exception as e:  # fail closed: a lookup that failed grants nothing
        log.warning("failover sessions: could not check access to model %r (%s); refused", model, type(e).__name__)
        return False
