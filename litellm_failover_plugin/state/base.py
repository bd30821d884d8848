"""The StateStore protocol and the wire form of a breaker."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from typing import Protocol

from ..breaker import CLOSED, Breaker, State

Update = Callable[[Breaker], Breaker]


class StateStore(Protocol):
    """Breaker state per deployment id. A missing id is a closed breaker."""

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        """The breakers of `ids`, in order, in one round trip."""
        ...

    async def update(self, id: str, fn: Update) -> tuple[Breaker, Breaker]:
        """Apply `fn` to the stored breaker as one atomic step; return (old, new)."""
        ...

    async def items(self) -> dict[str, Breaker]:
        """Every breaker that is not plainly closed (for the status view)."""
        ...

    async def publish_recovery(self, id: str) -> None:
        """Tell the other replicas sharing this store that a key is back, so their queues wake
        at once (a no-op for a store nothing else shares)."""
        ...

    async def aclose(self) -> None: ...


_FIELDS = tuple(f.name for f in fields(Breaker))


def encode(b: Breaker) -> str:
    data = asdict(b)
    data["state"] = b.state.value
    return json.dumps(data, separators=(",", ":"))


def decode(raw: str | bytes | None) -> Breaker:
    if raw is None:
        return CLOSED
    data = json.loads(raw)
    data["state"] = State(data["state"])
    return Breaker(**{k: v for k, v in data.items() if k in _FIELDS})


def is_clean(b: Breaker) -> bool:
    """Nothing worth storing: the default closed breaker (window counters aside)."""
    return b.state is State.CLOSED and b.failures == 0 and b.window_calls == 0
