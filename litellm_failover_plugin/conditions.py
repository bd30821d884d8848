"""What an upstream failure is, and which failures fall over.

Pure data and pure functions: no litellm, no HTTP, no clock. The LiteLLM glue turns an
exception into a `Failure`; everything here decides from that value alone.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Kind(enum.Enum):
    """Named groups of failures, usable next to plain status codes in any condition list."""

    RATE_LIMIT = "rate_limit"  # 429
    AUTH = "auth"  # 401, 403
    UNAVAILABLE = "unavailable"  # 500, 502, 503, 504
    QUOTA = "quota"  # quota or billing exhausted (usually a 429 or 402 that says so)
    TIMEOUT = "timeout"  # no answer in time
    NETWORK = "network"  # connection refused or reset, DNS
    STREAM = "stream"  # a stream came back empty, malformed, or ended without finishing
    ALL = "all"  # anything at all


_KIND_STATUSES: dict[Kind, frozenset[int]] = {
    Kind.RATE_LIMIT: frozenset({429}),
    Kind.AUTH: frozenset({401, 403}),
    Kind.UNAVAILABLE: frozenset({500, 502, 503, 504}),
}


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed upstream attempt, as the decision core sees it.

    `status` is the upstream's HTTP status, or None when there was no HTTP answer (timeouts and
    connection errors). `quota` marks a rate-limit or payment error that says the quota is spent.
    """

    status: int | None
    kind: Kind | None = None  # TIMEOUT or NETWORK when status is None; QUOTA when it says so
    reason: str = ""
    retry_after_s: float | None = None
    local: bool = False  # it never left the proxy (LiteLLM could not build the request): the client's

    @property
    def kinds(self) -> frozenset[Kind]:
        kinds = {kind for kind, statuses in _KIND_STATUSES.items() if self.status in statuses}
        if self.kind is not None:
            kinds.add(self.kind)
        return frozenset(kinds)

    @property
    def label(self) -> str:
        """Short name for attempt lists: the status, else the kind."""
        if self.status is not None:
            return str(self.status)
        return self.kind.value if self.kind is not None else "error"


@dataclass(frozen=True, slots=True)
class Conditions:
    """A set of status codes and kinds. Matches a failure that has one of them."""

    statuses: frozenset[int] = frozenset()
    kinds: frozenset[Kind] = frozenset()

    @classmethod
    def parse(cls, items: Iterable[int | str]) -> Conditions:
        """Build from config items: ints (or digit strings) 100-599 and kind names.

        Raises ValueError naming the first item that is neither.
        """
        statuses: set[int] = set()
        kinds: set[Kind] = set()
        for item in items:
            if isinstance(item, bool):
                raise ValueError(f"{item!r} is not a status code or a kind")
            if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
                code = int(item)
                if not 100 <= code <= 599:
                    raise ValueError(f"{code} is not an HTTP status code (100-599)")
                statuses.add(code)
                continue
            try:
                kinds.add(Kind(str(item).strip().lower()))
            except ValueError:
                names = ", ".join(k.value for k in Kind)
                raise ValueError(f"{item!r} is not a status code or one of: {names}") from None
        return cls(frozenset(statuses), frozenset(kinds))

    def matches(self, failure: Failure) -> bool:
        if Kind.ALL in self.kinds:
            return True
        if failure.status is not None and failure.status in self.statuses:
            return True
        return not self.kinds.isdisjoint(failure.kinds)

    def describe(self) -> list[str]:
        return [str(s) for s in sorted(self.statuses)] + sorted(k.value for k in self.kinds)


DEFAULT_FALLBACK = Conditions.parse([408, 429, 500, 502, 503, 504, "timeout", "network"])
# retried on the same key by default: an overloaded or refusing upstream may answer the next call;
# one that took too long (a timeout, a stall) or broke a stream is left for the next candidate
DEFAULT_RETRY_ON = Conditions.parse([429, 500, 502, 503, 504, "network"])
ANY_FAILURE = Conditions(kinds=frozenset({Kind.ALL}))


def falls_over(failure: Failure, conditions: Conditions) -> bool:
    """Whether a failed attempt moves on to the next candidate.

    Timeouts, connection errors and broken streams always do: there is no upstream answer to hand back, so a
    dead candidate must never turn into a client error. Any other failure (an HTTP status, or
    an error with neither status nor kind) falls over only when the list that applies to the
    failed candidate names it; otherwise it goes back to the client as it is.
    """
    if failure.local:  # the next candidate would get the same request: it is the client's error
        return False
    if failure.status is None and failure.kind in (Kind.TIMEOUT, Kind.NETWORK, Kind.STREAM):
        return True
    return conditions.matches(failure)


def key_refused(failure: Failure) -> bool:
    """A 401/403 from the upstream: that key is refused (revoked, wrong, not allowed), not the
    backend or the request. Unlisted, it moves on to the element's next key only."""
    return not failure.local and failure.status in (401, 403)
