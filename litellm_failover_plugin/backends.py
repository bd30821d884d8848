"""The backends of `failover_settings` and their keys: pydantic models, secrets, litellm_params.

A key is a name and a secret (`a1: os.environ/OPENAI_A1`), or a mapping that also gives it an
endpoint of its own and its rate limits:

    a1: {key: os.environ/AZ_EAST, api_base: https://east..., api_version: "...", rpm: 60, tpm: 100000}

`rpm`/`tpm` in a backend's `litellm_params` apply to each of its keys (a key's own win). The
plugin enforces them itself (limits.py), so they are taken out of the litellm_params LiteLLM
gets: LiteLLM's usage-based routing would otherwise refuse a call at a limit with a 429.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .limits import Limits

ENV_PREFIX = "os.environ/"
DAY_S = 86400.0
LIMITS = ("rpm", "tpm")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")  # with fullmatch: `$` would take a trailing newline


class Model(BaseModel):
    # inf and nan are never a sane cooldown, wait or size
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_name(what: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{what} name {name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '-' and '.'"
        )
    return name


_POSITIVE_PARAMS = ("timeout", "stream_timeout", "max_tokens", "max_completion_tokens")


def check_litellm_params(value: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM takes these as they come (a negative timeout breaks every call): refuse them here."""
    for name in _POSITIVE_PARAMS:
        v = value.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"litellm_params.{name} must be a positive number, got {v!r}")
        if name.endswith("timeout") and v > DAY_S:
            raise ValueError(f"litellm_params.{name} must be at most {DAY_S:g} seconds, got {v!r}")
    return value


def element_params(value: dict[str, Any]) -> dict[str, Any]:
    """An element's litellm_params: a rate limit belongs to a key, shared by every route using it."""
    for name in LIMITS:
        if name in value:
            raise ValueError(
                f"litellm_params.{name} is a key's limit: set it on the key (api_keys: {{a1: {{key: ..., {name}: ...}}}}) "
                "or in its backend's litellm_params"
            )
    return check_litellm_params(value)


def backend_params(value: dict[str, Any]) -> dict[str, Any]:
    """A backend's or a key's litellm_params: the plugin sets the model and the key itself."""
    for forbidden in ("model", "api_key"):
        if forbidden in value:
            raise ValueError(f"{forbidden!r} is set by the plugin; use provider and api_keys instead")
    return check_litellm_params(value)


def resolve_secret(value: str) -> str:
    """`os.environ/NAME` -> the variable's value; anything else is taken as written."""
    if value.startswith(ENV_PREFIX):
        var = value[len(ENV_PREFIX) :]
        resolved = os.environ.get(var)
        if not resolved:
            raise ValueError(f"environment variable {var} is not set")
        return resolved
    return value


def _limit(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where} must be a positive whole number (per minute), got {value!r}")
    return value


def _take_limits(where: str, into: dict[str, Any], params: Any) -> Any:
    """Move rpm/tpm out of `params` (a litellm_params mapping) into `into`, checked; `params` without them."""
    if not isinstance(params, Mapping):
        return params
    params = dict(params)
    for name in LIMITS:
        if name in params:
            if into.get(name) is not None:
                raise ValueError(f"{where}.{name} is given twice (also as litellm_params.{name})")
            into[name] = _limit(f"{where}.litellm_params.{name}", params.pop(name))
    return params


PositiveInt = Annotated[int, Field(ge=1, strict=True)]


class KeyEndpoint(Model):
    """What one key has of its own: its endpoint when it differs from its backend's (Azure and
    other regional deployments have one endpoint per key), and its rate limits."""

    api_base: str | None = None
    api_version: str | None = None
    litellm_params: Annotated[dict[str, Any], AfterValidator(lambda v: backend_params(v))] = Field(default_factory=dict)
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None


class Backend(Model):
    provider: str = Field(min_length=1)
    api_base: str | None = None
    api_keys: dict[str, SecretStr]
    litellm_params: dict[str, Any] = Field(default_factory=dict)
    key_endpoints: dict[str, KeyEndpoint] = Field(default_factory=dict)  # from api_keys' mapping form
    rpm: PositiveInt | None = None  # from litellm_params: each key's, unless the key has its own
    tpm: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _key_mappings(cls, data: Any) -> Any:
        """A key may be a mapping: {key: os.environ/AZ_EAST, api_base: ..., api_version: ..., rpm: ..., tpm: ...,
        litellm_params: {...}}; rpm/tpm in litellm_params (the backend's or a key's) become limits."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        data["litellm_params"] = _take_limits("litellm_params", data, data.get("litellm_params") or {})
        if not isinstance(data.get("api_keys"), Mapping):
            return data
        keys: dict[str, Any] = {}
        endpoints: dict[str, Any] = dict(data.get("key_endpoints") or {})
        for name, raw in data["api_keys"].items():
            if isinstance(raw, Mapping):
                raw = dict(raw)
                if not raw.get("key"):
                    raise ValueError(f"api_keys.{name}: a key written as a mapping needs 'key', e.g. key: os.environ/AZ_EAST")
                keys[name] = raw.pop("key")
                for limit in LIMITS:
                    if raw.get(limit) is not None:
                        raw[limit] = _limit(f"api_keys.{name}.{limit}", raw[limit])
                raw["litellm_params"] = _take_limits(f"api_keys.{name}", raw, raw.get("litellm_params") or {})
                endpoints[str(name)] = raw
            else:
                keys[name] = raw
        return {**data, "api_keys": keys, "key_endpoints": endpoints}

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if isinstance(value, list):  # plain list: name them key1, key2, ...
            value = {f"key{i + 1}": v for i, v in enumerate(value)}
        if not isinstance(value, Mapping) or not value:
            raise ValueError("must name at least one key, e.g. {k1: os.environ/MY_KEY}")
        out: dict[str, SecretStr] = {}
        for name, raw in value.items():
            check_name("key", str(name))
            if isinstance(raw, SecretStr):  # settings dumped and read again
                out[str(name)] = raw
                continue
            if not isinstance(raw, str) or not raw:
                raise ValueError(f"key {name!r} must be a non-empty string")
            try:
                out[str(name)] = SecretStr(resolve_secret(raw))
            except ValueError as e:
                raise ValueError(f"key {name!r}: {e}") from None
        return out

    @field_validator("litellm_params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return backend_params(value)

    def limits(self, key: str) -> Limits:
        """A key's rate limits: its own, else its backend's (per limit)."""
        own = self.key_endpoints.get(key)
        rpm = own.rpm if own is not None and own.rpm is not None else self.rpm
        tpm = own.tpm if own is not None and own.tpm is not None else self.tpm
        return Limits(rpm, tpm)
