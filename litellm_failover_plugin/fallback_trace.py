"""What LiteLLM's fallbacks did after a route failed: which model groups they tried, which served.

After a route's walk (and its queue) gives up, LiteLLM's own fallback machinery picks the
next model groups (`router_settings.fallbacks`, the request's `fallbacks`, context-window and
content-policy fallbacks, `"*"`). Each of its hops enters the router's fallback method, which
the plugin shadows: the hop is noted here, in the order the hops start, with how it ended.
A hop that itself falls back (a model group with fallbacks of its own, or a route) is followed
by its hops; so the one that served is the last hop started that succeeded, and every other
hop failed. Pure: no litellm, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FALLBACK_HEADER = "x-failover-fallback"  # the model group that served, when a fallback did
FAILED_HEADER = "x-failover-fallback-failed"  # the fallbacks tried that failed, in order
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/@+\-]")  # names may come from a client's request body
_NAME_LIMIT = 64


def safe_name(model: str) -> str:
    """A model group name fit for a header: a client's request-level `fallbacks` may name anything."""
    return _UNSAFE.sub("_", model)[:_NAME_LIMIT] or "_"


@dataclass
class Hop:
    model: str
    status: int | None = None  # the error's HTTP status when it failed and had one
    ok: bool | None = None  # None while it runs


@dataclass
class FallbackTrace:
    """The hops of one request's fallbacks after its route failed, in the order they started."""

    hops: list[Hop] = field(default_factory=list)

    def start(self, model: str) -> Hop:
        hop = Hop(safe_name(model))
        self.hops.append(hop)
        return hop

    @property
    def served(self) -> Hop | None:
        """The hop whose answer the client gets: the last one started that succeeded."""
        done = [h for h in self.hops if h.ok]
        return done[-1] if done else None

    @property
    def failed(self) -> list[Hop]:
        served = self.served
        return [h for h in self.hops if h is not served]

    def headers(self) -> dict[str, str]:
        """x-failover-fallback (who served) and x-failover-fallback-failed (what failed, in order)."""
        out = {}
        if self.served is not None:
            out[FALLBACK_HEADER] = self.served.model
        if self.failed:
            out[FAILED_HEADER] = ",".join(h.model for h in self.failed)
        return out

    def summary(self) -> str:
        """For the route's error when no fallback served: `plain=503, other=error`."""
        return ", ".join(f"{h.model}={h.status if h.status is not None else 'error'}" for h in self.failed)

    def to_dict(self) -> dict[str, object]:
        """For the request's metadata, beside the route's attempts."""
        served = self.served
        return {
            "served": served.model if served is not None else None,
            "failed": [{"model": h.model, "status": h.status} for h in self.failed],
        }
