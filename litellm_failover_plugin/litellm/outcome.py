"""What a route request leaves behind: the exhausted error, and the attempts in its metadata."""

from __future__ import annotations

from typing import Any

from litellm.proxy._types import ProxyException

from ..breaker import BreakerConfig
from ..decisions import retry_after_s
from ..errors import EXHAUSTED_TYPE, FailoverExhausted
from ..routing import Candidate, FailoverRun
from .translate import METADATA_KEY, response_headers

PRIORITY_KEY = "failover_priority"  # the plugin moves a request's `priority` here (see plugin.py)


class ProxyFailoverExhausted(FailoverExhausted, ProxyException):
    """FailoverExhausted that the proxy renders as an OpenAI error with its own status."""

    def __init__(self, route: str, run: FailoverRun, headers: dict[str, str], status: int | None = None) -> None:
        FailoverExhausted.__init__(self, route, run.history, status or run.exhausted_status(), run.stopped)
        ProxyException.__init__(
            self,
            message=self.message,
            type=EXHAUSTED_TYPE,
            param=None,
            code=self.status_code,
            headers=dict(headers),
        )
        self.failover_headers = headers

    def to_dict(self) -> dict[str, Any]:
        error = self.to_openai_error()["error"]
        assert isinstance(error, dict)
        return error


def record(kwargs: dict[str, Any], run: FailoverRun, served: Candidate | None) -> dict[str, str]:
    """Leave what happened in the request's metadata, where the proxy's hooks read it; the
    response headers that say it."""
    headers = response_headers(run.plan.name, served, run.calls)
    info = {"headers": headers, "attempts": [a.to_dict() for a in run.history]}
    for bucket in ("metadata", "litellm_metadata"):
        md = kwargs.get(bucket)
        if isinstance(md, dict):
            md[METADATA_KEY] = info
    return headers


def exhausted(
    run: FailoverRun,
    kwargs: dict[str, Any],
    cfg: BreakerConfig,
    now: float,
    status: int | None = None,
    retry_after: float | None = None,
) -> ProxyFailoverExhausted:
    """The error of a request no candidate served: its attempts, the last key called, and a
    Retry-After when one is known (`retry_after`: when the earliest candidate is back) or
    `status` is forced (a queue that could not wait)."""
    called = [a.candidate for a in run.history if a.outcome.called]  # every pass: a queue wait may end with none
    headers = record(kwargs, run, called[-1] if called else None)
    last = run.last_failure
    seconds = retry_after_s(now, retry_after, last.retry_after_s if last is not None else None, status is not None, cfg)
    if seconds is not None:
        headers = {**headers, "retry-after": str(seconds)}
    return ProxyFailoverExhausted(run.plan.name, run, headers, status)


def local_failure(kwargs: dict[str, Any], run: FailoverRun, reason: str) -> ProxyException:
    """A call that never left the proxy (the request could not be sent): the client's error."""
    return ProxyException(
        message=f"invalid request: {reason}",
        type="invalid_request_error",
        param=None,
        code=400,
        headers=record(kwargs, run, None),
    )


def priority(kwargs: dict[str, Any], default: int) -> int:
    """The request's own priority, else its key's or team's metadata, else the route's default."""
    md = kwargs.get("metadata") or kwargs.get("litellm_metadata") or {}
    for value in (
        md.get(PRIORITY_KEY),
        md.get("priority"),
        (md.get("user_api_key_metadata") or {}).get("priority"),
        (md.get("user_api_key_team_metadata") or {}).get("priority"),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default
