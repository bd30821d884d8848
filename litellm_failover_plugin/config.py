"""The `failover_settings:` section of LiteLLM's config.yaml, validated with pydantic.

Loading never half-works: any problem raises `ConfigError` whose message names the field
(`failover_settings.routes.chat.policy: ...`), and the proxy refuses to start with it.
API key values are `SecretStr`: they never show in a repr, a log line or an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from .backends import DAY_S, Backend, check_name, element_params, resolve_secret
from .backends import Model as _Model
from .breaker import BreakerConfig
from .conditions import DEFAULT_FALLBACK, DEFAULT_RETRY_ON, Conditions
from .continuation import CONTINUE_INSTRUCTION
from .policies import POLICIES
from .retries import RetryPolicy

SECTION = "failover_settings"
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,256}")  # with fullmatch: `$` would take a trailing newline
_BREAKER = BreakerConfig()  # the defaults live with the code that uses them
_RETRY = RetryPolicy()
WEEK_S = 7 * DAY_S


class ConfigError(ValueError):
    """failover_settings is invalid. The message names every bad field."""


def _conditions(value: Any) -> Conditions:
    if isinstance(value, Conditions):
        return value
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("must be a non-empty list of status codes and kinds")
    return Conditions.parse(value)


ConditionList = Annotated[
    Conditions,
    PlainValidator(_conditions),
    PlainSerializer(lambda c: c.describe(), return_type=list),
]


class StreamTimeouts(_Model):
    """How long a stream may keep the client waiting; unset (or 0) = no limit of the plugin's own."""

    first_chunk_s: float | None = Field(None, ge=0)  # until the first content chunk
    between_chunks_s: float | None = Field(None, ge=0)  # between chunks, after the first


MidStream = Literal["error", "continue"]
Instruction = Annotated[str, Field(min_length=1, max_length=4000)]


class Element(_Model):
    element: str
    stream_timeouts: StreamTimeouts | None = None  # per field over the route's and the defaults'
    catch: ConditionList | None = None
    fallback_status_codes: ConditionList | None = None
    litellm_params: Annotated[dict[str, Any], AfterValidator(lambda v: element_params(v))] = Field(default_factory=dict)
    priority: int = 0  # scored routes: lower first
    cost_per_token: float | None = Field(None, ge=0)  # scored routes: else LiteLLM's cost map
    retry_on: ConditionList | None = None  # failures retried on the same key: else the route's, the defaults'
    prefill: bool = False  # continuations: the model continues a final assistant message in place

    @field_validator("element")
    @classmethod
    def _element(cls, value: str) -> str:
        backend, sep, model = value.partition(":")
        if not sep or not backend or not model:
            raise ValueError(f"{value!r} must be 'backend:model'")
        check_name("backend", backend)
        if not _PRINTABLE.fullmatch(model):
            raise ValueError(f"model {model!r} must be printable ASCII without spaces (it is sent back in a header)")
        return value

    @property
    def backend(self) -> str:
        return self.element.partition(":")[0]

    @property
    def model(self) -> str:
        return self.element.partition(":")[2]


class QueueSettings(_Model):
    """Hold requests while every candidate of a route is down, instead of failing them."""

    enabled: bool = True
    max_size: int = Field(100, ge=1, le=1_000_000)  # per route; over it: an immediate 503 with Retry-After
    max_wait_s: float = Field(30.0, gt=0, le=DAY_S)  # and never past the request's own timeout
    release_concurrency: int = Field(4, ge=1, le=10_000)  # queued requests in flight at once after a recovery
    default_priority: int = 0  # lower is served first
    recheck_s: float = Field(1.0, gt=0, le=3600)  # when no cooldown end is known, look again after this


class ScoreWeights(_Model):
    latency: float = Field(1.0, ge=0)
    reliability: float = Field(1.0, ge=0)
    cost: float = Field(0.0, ge=0)


class Route(_Model):
    policy: str = "m"
    weights: ScoreWeights = Field(default_factory=ScoreWeights)  # scored routes
    queue: QueueSettings | None = None  # overrides failover_settings.queue for this route
    elements: list[Element] = Field(default_factory=list)  # none: answers like an exhausted route
    fallback_status_codes: ConditionList | None = None
    enabled: bool = True
    max_retries_per_element: int | None = Field(None, ge=0, le=10)
    retry_on: ConditionList | None = None  # else the defaults'
    stream_timeouts: StreamTimeouts | None = None  # per field over the defaults'
    mid_stream: MidStream | None = None  # else the defaults'
    max_continuations: int | None = Field(None, ge=0, le=10)
    continue_instruction: Instruction | None = None  # else the defaults'

    @field_validator("policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip().lower()  # policy names are case-insensitive: K = k
        if value not in POLICIES:
            raise ValueError(f"unknown policy {value!r}; one of: {', '.join(POLICIES)}")
        return value

    @field_validator("elements", mode="before")
    @classmethod
    def _elements(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [{"element": v} if isinstance(v, str) else v for v in value]

    @field_validator("elements")
    @classmethod
    def _unique(cls, value: list[Element]) -> list[Element]:
        seen: set[str] = set()
        for e in value:
            if e.element in seen:
                raise ValueError(f"element {e.element!r} is listed twice")
            seen.add(e.element)
        return value


class Defaults(_Model):
    fallback_status_codes: ConditionList = DEFAULT_FALLBACK
    max_retries_per_element: int = Field(0, ge=0, le=10)
    # which failures a same-key retry is for: not timeouts, stalls or broken streams (move on)
    retry_on: ConditionList = DEFAULT_RETRY_ON
    stream_timeouts: StreamTimeouts = Field(default_factory=StreamTimeouts)
    mid_stream: MidStream = "error"  # a stream that fails after its first chunk: error | continue
    max_continuations: int = Field(1, ge=0, le=10)  # continue mode: per request
    continue_instruction: Instruction = CONTINUE_INSTRUCTION  # the user message a continuation ends with


class RetrySettings(_Model):
    """Backoff for same-candidate retries (see retries.py)."""

    base_s: float = Field(_RETRY.base_s, gt=0, le=3600)
    max_wait_s: float = Field(_RETRY.max_wait_s, gt=0, le=DAY_S)
    max_total_s: float = Field(_RETRY.max_total_s, gt=0, le=DAY_S)


class RetryBudgetSettings(_Model):
    """Extra upstream calls (failovers and retries) allowed per `ttl_s`: ratio x requests + floor."""

    ratio: float = Field(0.2, ge=0)
    min_per_s: float = Field(1.0, ge=0)
    ttl_s: int = Field(10, ge=1, le=int(DAY_S))


class BreakerSettings(_Model):
    """Circuit breaker per deployment (backend, model, key). See breaker.py."""

    enabled: bool = True
    failure_threshold: int = Field(_BREAKER.failure_threshold, ge=1, le=1_000_000)
    failure_rate: float | None = Field(_BREAKER.failure_rate, gt=0, le=1)
    window_s: float = Field(_BREAKER.window_s, gt=0, le=WEEK_S)
    min_requests: int = Field(_BREAKER.min_requests, ge=1, le=1_000_000)
    cooldown_s: float = Field(_BREAKER.cooldown_s, gt=0, le=WEEK_S)
    max_cooldown_s: float = Field(_BREAKER.max_cooldown_s, gt=0, le=WEEK_S)
    cooldown_multiplier: float = Field(_BREAKER.cooldown_multiplier, ge=1, le=100)
    probe_timeout_s: float = Field(_BREAKER.probe_timeout_s, gt=0, le=DAY_S)
    quota_park_s: float = Field(_BREAKER.quota_park_s, gt=0, le=WEEK_S)
    # while a key's last call failed (no success since): at most this many calls in flight to it
    # in this process; the others move on without calling it (skipped_busy). 0: no limit
    max_in_flight_while_failing: int = Field(_BREAKER.max_in_flight_while_failing, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _caps(self) -> BreakerSettings:
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError("max_cooldown_s must be at least cooldown_s")
        return self

    def config(self) -> BreakerConfig:
        return BreakerConfig(**self.model_dump(exclude={"enabled"}))


class HealthCheckSettings(_Model):
    """Background probes of open deployments, so recovery costs no user request."""

    interval_s: float = Field(5.0, gt=0, le=DAY_S)
    timeout_s: float = Field(5.0, gt=0, le=3600)
    max_per_interval: int = Field(5, ge=1, le=100_000)


class CommandSettings(_Model):
    """`!/...` chat commands and the admin API that change routes at run time (see commands.py)."""

    enabled: bool = True
    writers: Literal["admin", "any"] = "admin"  # who may create, delete and edit routes
    state_file: str | None = None  # without Redis: where runtime changes are kept (default: beside config.yaml)
    session_ttl_s: float = Field(86400.0, gt=0, le=30 * DAY_S)  # a !/set session expires after this long idle
    max_sessions: int = Field(100_000, ge=1, le=10_000_000)  # per process; past it the least recently used goes


class HealthEndpointSettings(_Model):
    """GET /failover/health, for load balancers and readiness probes (see litellm/health_endpoint.py)."""

    enabled: bool = True
    auth: bool = False  # true: behind the proxy's own key check, like /failover/status
    details: bool = False  # true: name every route's keys (backend:model/key) to any caller, not only admins


class FailoverSettings(_Model):
    defaults: Defaults = Field(default_factory=Defaults)
    backends: dict[str, Backend] = Field(min_length=1)
    routes: dict[str, Route] = Field(default_factory=dict)
    commands: CommandSettings = Field(default_factory=CommandSettings)
    model_fallback_status_codes: dict[str, ConditionList] = Field(default_factory=dict)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    health_checks: HealthCheckSettings | None = None
    retries: RetrySettings = Field(default_factory=RetrySettings)
    retry_budget: RetryBudgetSettings | None = None  # off unless set
    queue: QueueSettings | None = None  # off unless set (here for every route, or per route)
    redis_url: str | None = None  # else router_settings.redis_host/port/password, else in memory
    health_endpoint: HealthEndpointSettings = Field(default_factory=HealthEndpointSettings)
    metrics: bool = False  # serve /metrics even without LiteLLM's prometheus callback

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = resolve_secret(value)
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url

    @field_validator("backends")
    @classmethod
    def _backend_names(cls, value: dict[str, Backend]) -> dict[str, Backend]:
        for name in value:
            check_name("backend", name)
        return value

    @field_validator("routes")
    @classmethod
    def _route_names(cls, value: dict[str, Route]) -> dict[str, Route]:
        for name in value:
            if not _PRINTABLE.fullmatch(name) or "/" in name:
                raise ValueError(
                    f"route name {name!r} must be printable ASCII without spaces or '/' (it is sent back in a header)"
                )
        return value

    @model_validator(mode="after")
    def _references(self) -> FailoverSettings:
        problems: list[str] = []
        elements: set[str] = set()
        for rname, route in self.routes.items():
            for i, e in enumerate(route.elements):
                elements.add(e.element)
                if e.backend not in self.backends:
                    problems.append(
                        f"routes.{rname}.elements.{i}: unknown backend {e.backend!r} "
                        f"(backends: {', '.join(self.backends)})"
                    )
        for key in self.model_fallback_status_codes:
            if key not in elements:
                problems.append(f"model_fallback_status_codes.{key}: not an element of any route")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def queue_for(self, route: str) -> QueueSettings | None:
        q = self.routes[route].queue or self.queue
        return q if q is not None and q.enabled else None

    def retries_for(self, route: str) -> int:
        own = self.routes[route].max_retries_per_element
        return own if own is not None else self.defaults.max_retries_per_element

    def retry_on_for(self, route: str, element: Element) -> Conditions:
        """The failures retried on the same key for one element: element, route, defaults."""
        for own in (element.retry_on, self.routes[route].retry_on):
            if own is not None:
                return own
        return self.defaults.retry_on

    def conditions_for(self, route: str, element: Element) -> Conditions:
        """The fall-over list for one element of a route: element, model, route, defaults."""
        if element.fallback_status_codes is not None:
            return element.fallback_status_codes
        if element.element in self.model_fallback_status_codes:
            return self.model_fallback_status_codes[element.element]
        route_codes = self.routes[route].fallback_status_codes
        if route_codes is not None:
            return route_codes
        return self.defaults.fallback_status_codes


def _format(error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        loc = ".".join(str(p) for p in (SECTION, *err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "invalid failover_settings:\n  " + "\n  ".join(lines)


def parse_settings(section: Any) -> FailoverSettings:
    """Validate a `failover_settings` mapping. Raises ConfigError naming each bad field."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{SECTION} must be a mapping, got {type(section).__name__}")
    try:
        return FailoverSettings.model_validate(dict(section))
    except ValidationError as e:
        raise ConfigError(_format(e)) from None
