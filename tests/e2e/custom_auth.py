"""`general_settings.custom_auth` for the command tests: the master key is a proxy admin, another
key is an ordinary internal user (copied beside the test config.yaml; the proxy imports it).

The security tests add keys LiteLLM limits: one to model `cheap`, one whose team may use only
`cheap`, a view-only one, and one whose models are read at every request from `shifty.json`
beside this file (a key whose access changes while its session lives)."""

import json
from pathlib import Path

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

MASTER_KEY = "sk-master-cmd-test"
USER_KEY = "sk-user-cmd-test"
CHEAP_KEY = "sk-cheap-only-test"
TEAM_KEY = "sk-team-cheap-test"
VIEWER_KEY = "sk-viewer-test"
SHIFTY_KEY = "sk-shifty-test"


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key == MASTER_KEY:
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.PROXY_ADMIN, user_id="ops")
    if api_key == USER_KEY:
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.INTERNAL_USER, user_id="alice")
    if api_key == CHEAP_KEY:
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.INTERNAL_USER, user_id="bob", models=["cheap"])
    if api_key == TEAM_KEY:
        return UserAPIKeyAuth(
            api_key=api_key, user_role=LitellmUserRoles.INTERNAL_USER, user_id="carol", team_id="team-cheap", team_models=["cheap"]
        )
    if api_key == VIEWER_KEY:
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.INTERNAL_USER_VIEW_ONLY, user_id="vera")
    if api_key == SHIFTY_KEY:
        models = json.loads(Path(__file__).with_name("shifty.json").read_text())
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.INTERNAL_USER, user_id="sam", models=models)
    raise Exception("unknown key")
