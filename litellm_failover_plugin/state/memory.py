"""In-process breaker state: the default, for a single proxy process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..breaker import CLOSED, Breaker
from .base import Update, is_clean


class MemoryStore:
    """A dict. Each update is atomic because nothing awaits between its read and its write."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._state: dict[str, Breaker] = {}
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (value, expires at, by `clock`)
        self._clock = clock

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        get = self._state.get
        return [get(i, CLOSED) for i in ids]

    async def update(self, id: str, fn: Update) -> tuple[Breaker, Breaker]:
        old = self._state.get(id, CLOSED)
        new = fn(old)
        if is_clean(new):
            self._state.pop(id, None)
        else:
            self._state[id] = new
        return old, new

    async def items(self) -> dict[str, Breaker]:
        return dict(self._state)

    async def add(self, counts: Sequence[tuple[str, int]], ttl_s: int) -> list[int]:
        now = self._clock()
        self._counters = {k: v for k, v in self._counters.items() if v[1] > now}  # a few keys: the limited ones
        out = []
        for key, n in counts:
            value = self._counters.get(key, (0, 0.0))[0] + n
            self._counters[key] = (value, now + ttl_s)
            out.append(value)
        return out

    async def counts(self, keys: Sequence[str]) -> list[int]:
        now = self._clock()
        found = (self._counters.get(k) for k in keys)
        return [v[0] if v is not None and v[1] > now else 0 for v in found]

    async def publish_recovery(self, id: str) -> None:
        return None  # one process: its own queues were woken already

    async def aclose(self) -> None:
        return None
