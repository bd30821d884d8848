"""Keep serving when the shared store is down: a decision, logged once per outage.

While the primary store (Redis) fails, reads and updates go to a local memory store, so
requests keep being served on what this replica knows. When the primary answers again, the
breakers this replica changed during the outage are written back (the local view wins for
those: it is the newer news), and the local copy is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from redis.exceptions import RedisError

from ..breaker import CLOSED, Breaker
from .base import StateStore, Update
from .memory import MemoryStore

log = logging.getLogger("litellm_failover_plugin")
T = TypeVar("T")
_DOWN = (RedisError, OSError, TimeoutError)


class ResilientStore:
    def __init__(self, primary: StateStore, name: str = "redis") -> None:
        self._primary = primary
        self._local = MemoryStore()
        self._dirty: set[str] = set()
        self._name = name
        self.down = False

    async def _try(self, call: Callable[[], Awaitable[T]]) -> T | None:
        for _ in range(2):
            try:
                result = await call()
            except _DOWN as e:
                if not self.down:
                    self.down = True
                    log.warning(
                        "failover state store %s unreachable (%s): serving on this replica's local state "
                        "until it is back",
                        self._name,
                        type(e).__name__,
                    )
                return None
            if not self.down:
                return result
            if not await self._resync():
                return None
            # back: what was just read predates the write-back, read again
        return None

    async def _resync(self) -> bool:
        local = await self._local.items()
        try:
            for id in self._dirty:
                b = local.get(id, CLOSED)
                await self._primary.update(id, lambda _old, b=b: b)
        except _DOWN:
            return False  # still flaky: stay on local state, try again on the next call
        log.warning("failover state store %s is back: %d breaker(s) written back", self._name, len(self._dirty))
        self.down = False
        self._dirty.clear()
        self._local = MemoryStore()
        return True

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        result = await self._try(lambda: self._primary.get_many(ids))
        return result if result is not None else await self._local.get_many(ids)

    async def update(self, id: str, fn: Update) -> tuple[Breaker, Breaker]:
        result = await self._try(lambda: self._primary.update(id, fn))
        if result is not None:
            return result
        self._dirty.add(id)
        return await self._local.update(id, fn)

    async def items(self) -> dict[str, Breaker]:
        result = await self._try(self._primary.items)
        return result if result is not None else await self._local.items()

    async def publish_recovery(self, id: str) -> None:
        publish = getattr(self._primary, "publish_recovery", None)
        if publish is not None:
            await self._try(lambda: publish(id))

    @property
    def primary(self) -> StateStore:
        return self._primary

    async def aclose(self) -> None:
        await self._primary.aclose()
