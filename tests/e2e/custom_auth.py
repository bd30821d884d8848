"""`general_settings.custom_auth` for the command tests: the master key is a proxy admin, another
key is an ordinary internal user (copied beside the test config.yaml; the proxy imports it)."""

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

MASTER_KEY = "sk-master-cmd-test"
USER_KEY = "sk-user-cmd-test"


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key == MASTER_KEY:
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.PROXY_ADMIN, user_id="ops")
    if api_key == USER_KEY:
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.INTERNAL_USER, user_id="alice")
    raise Exception("unknown key")
