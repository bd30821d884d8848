"""Rate limits known in advance: a key's `rpm` and `tpm`, counted in fixed one-minute windows.

A key (its health id: backend:model/key, shared by every route that uses it) with a limit has
two counters per window in the state store: the calls made to it and the tokens its answers
used. A window is a fixed slice of wall-clock time (window n covers [n*60, (n+1)*60) epoch
seconds), the same on every replica, as LiteLLM's usage-based-routing-v2 counts (per UTC
minute). A fixed window lets each counter be one INCR with an expiry; a sliding window would
need a sorted set per key (a write and a trim per call) for a smoothness the providers, which
count in their own windows anyway, do not promise.

- rpm counts calls made, failed ones included (providers and LiteLLM count attempts): a call
  reserves its slot before it is made (`admitted`), so concurrent requests and replicas never
  make more than `rpm` calls in a window; a reservation refused is given back.
- tpm counts the tokens the answers used (their usage: prompt + completion), added once the
  answer is in. A key is at its limit once a window's tokens reached `tpm`; the next request's
  own size is not guessed (that needs a tokenizer per model, and would still be a guess).

Pure: the caller passes `now` and does the counting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW_S = 60  # rpm and tpm are per minute


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits per window; None: no such limit."""

    rpm: int | None = None
    tpm: int | None = None

    def __bool__(self) -> bool:
        return self.rpm is not None or self.tpm is not None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Usage:
    """What a key used in one window: calls made (reserved) and tokens answered."""

    requests: int = 0
    tokens: int = 0


def window_of(now: float, length_s: float = WINDOW_S) -> int:
    """The number of the window `now` (epoch seconds) falls in."""
    return math.floor(now / length_s)


def window_end(window: int, length_s: float = WINDOW_S) -> float:
    """When window `window` ends (and the next one starts), in epoch seconds."""
    return (window + 1) * length_s


def counter_keys(health_id: str, window: int) -> tuple[str, str]:
    """The state store's counters of a key in a window: (calls, tokens)."""
    base = f"{health_id}:{window}"
    return base + ":rpm", base + ":tpm"


def ttl_s(length_s: float = WINDOW_S) -> int:
    """How long a window's counters are kept: past its end, for the status view and clock skew."""
    return math.ceil(2 * length_s)


def at_limit(limits: Limits, used: Usage) -> bool:
    """Whether a key has no room left in the window it used `used` of."""
    if limits.rpm is not None and used.requests >= limits.rpm:
        return True
    return limits.tpm is not None and used.tokens >= limits.tpm


def admitted(limits: Limits, requests_with_this_call: int, tokens: int) -> bool:
    """Whether a call that reserved its slot (the window's call count now `requests_with_this_call`,
    its own included) may be made: within rpm, and tokens still under tpm."""
    if limits.rpm is not None and requests_with_this_call > limits.rpm:
        return False
    return limits.tpm is None or tokens < limits.tpm


def describe(limits: Limits, used: Usage) -> str:
    """`rpm 2/2 tpm 150/1000`: a key's use of its limits in the current window, for status."""
    parts = []
    if limits.rpm is not None:
        parts.append(f"rpm {min(used.requests, limits.rpm)}/{limits.rpm}")
    if limits.tpm is not None:
        parts.append(f"tpm {used.tokens}/{limits.tpm}")
    return " ".join(parts)
