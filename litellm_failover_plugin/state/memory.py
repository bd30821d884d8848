"""In-process breaker state: the default, for a single proxy process."""

from __future__ import annotations

from collections.abc import Sequence

from ..breaker import CLOSED, Breaker
from .base import Update, is_clean


class MemoryStore:
    """A dict. Each update is atomic because nothing awaits between its read and its write."""

    def __init__(self) -> None:
        self._state: dict[str, Breaker] = {}

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

    async def publish_recovery(self, id: str) -> None:
        return None  # one process: its own queues were woken already

    async def aclose(self) -> None:
        return None
